package postgres

// QueuedWrites is how many writes wait for a flusher.
func (s *Store) QueuedWrites() int { return len(s.group.pending) }
