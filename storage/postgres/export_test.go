package postgres

// QueuedWrites is how many writes wait for a flusher.
func (s *Store) QueuedWrites() int { return len(s.group.pending) }

// Classify is classify, for its table test.
var Classify = classify

// KeysetPage is how many rows a keyset-paged read fetches at a time.
const KeysetPage = keysetPage
