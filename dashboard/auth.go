package dashboard

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Auth holds the credentials the dashboard accepts. Either or both may be set.
type Auth struct {
	User         string // basic auth user name
	PasswordHash string // bcrypt hash of the basic auth password
	Token        string // bearer token
	TokenName    string // who a token holder is recorded as in reviews; default "token"
}

// Configured reports whether any credential is set.
func (a Auth) Configured() bool { return a.User != "" || a.Token != "" }

// Validate checks the settings are usable.
func (a Auth) Validate() error {
	if (a.User == "") != (a.PasswordHash == "") {
		return errors.New("basic auth needs both a user and a password hash")
	}
	if a.PasswordHash != "" {
		if _, err := bcrypt.Cost([]byte(a.PasswordHash)); err != nil {
			return fmt.Errorf("password hash is not a bcrypt hash (make one with `reverify dashboard hash-password`): %w", err)
		}
	}
	if a.Token != "" && len(a.Token) < 16 {
		return errors.New("bearer token is shorter than 16 characters")
	}
	if IsPlaceholder(a.Token) {
		return errors.New("bearer token is an example's placeholder: set a long random one (e.g. openssl rand -hex 32)")
	}
	if IsPlaceholder(a.PasswordHash) {
		return errors.New("password hash is an example's placeholder: make one with `reverify dashboard hash-password`")
	}
	return nil
}

// IsPlaceholder reports whether a secret is an example's placeholder
// ("CHANGE-ME-TO-A-LONG-RANDOM-TOKEN", "$2a$10$CHANGE.ME…", "replace_me"):
// applied unedited, an example would guard the images with a token anyone
// can read in the repository.
func IsPlaceholder(secret string) bool {
	var b strings.Builder
	for _, r := range strings.ToUpper(secret) {
		if ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
			b.WriteRune(r)
		}
	}
	s := b.String()
	return strings.Contains(s, "CHANGEME") || strings.Contains(s, "REPLACEME")
}

// CheckExposure refuses a listen address beyond loopback when no
// credentials are configured: asynqmon can delete and re-run tasks, and
// the pages show people's faces.
func CheckExposure(addr string, a Auth) error {
	if a.Configured() || isLoopback(addr) {
		return nil
	}
	return fmt.Errorf("refusing to serve the dashboard on %q without credentials: listen on 127.0.0.1 or configure basic auth or a bearer token", addr)
}

// isLoopbackHost reports whether a request's Host header (host or
// host:port) names this machine's loopback interface.
func isLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// authenticator checks requests. bcrypt is slow on purpose, so a
// verified user/password pair is remembered (as a hash) for this process,
// and failed attempts are rate-limited per client address.
type authenticator struct {
	auth     Auth
	tokenSum [32]byte
	mu       sync.Mutex
	verified map[[32]byte]bool
	limiter  *loginLimiter
}

func newAuthenticator(a Auth) *authenticator {
	if a.TokenName == "" {
		a.TokenName = "token"
	}
	return &authenticator{auth: a, tokenSum: sha256.Sum256([]byte(a.Token)), verified: map[[32]byte]bool{},
		limiter: newLoginLimiter(loginBurst, loginEvery, loginClients, time.Now)}
}

// who returns the reviewer name of an authenticated request, or "" when
// the request is not authenticated.
func (au *authenticator) who(r *http.Request) string {
	if !au.auth.Configured() {
		return "local"
	}
	if h := r.Header.Get("Authorization"); au.auth.Token != "" && strings.HasPrefix(h, "Bearer ") {
		sum := sha256.Sum256([]byte(strings.TrimPrefix(h, "Bearer ")))
		if subtle.ConstantTimeCompare(sum[:], au.tokenSum[:]) == 1 {
			return au.auth.TokenName
		}
		return ""
	}
	user, pass, ok := r.BasicAuth()
	if !ok || au.auth.User == "" {
		return ""
	}
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	au.mu.Lock()
	ok = au.verified[key]
	au.mu.Unlock()
	if ok {
		return user
	}
	// The password is checked whether or not the user is right, so that a
	// wrong user takes as long as a wrong password: answer times do not
	// tell which user names exist.
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(au.auth.User)) == 1
	passOK := bcrypt.CompareHashAndPassword([]byte(au.auth.PasswordHash), []byte(pass)) == nil
	if !userOK || !passOK {
		return ""
	}
	au.mu.Lock()
	if len(au.verified) < 64 { // bounded: a password change restarts the process anyway
		au.verified[key] = true
	}
	au.mu.Unlock()
	return user
}

func (au *authenticator) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := clientKey(r.RemoteAddr)
		if au.auth.Configured() {
			if wait := au.limiter.wait(client); wait > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(wait.Round(time.Second)/time.Second)+1))
				http.Error(w, "too many failed logins from this address; try again later", http.StatusTooManyRequests)
				return
			}
		}
		who := au.who(r)
		if who == "" {
			if r.Header.Get("Authorization") != "" { // a browser's first request carries none
				au.limiter.failed(client)
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="reverify", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		r2 := r.WithContext(withReviewer(r.Context(), who))
		next.ServeHTTP(w, r2)
		// net/http removes the temporary files of a multipart form parsed
		// on the request it made, not on this copy.
		if r2.MultipartForm != nil && r2.MultipartForm != r.MultipartForm {
			_ = r2.MultipartForm.RemoveAll()
		}
	})
}

// Failed logins: a client address may fail loginBurst times, then once
// per loginEvery; loginClients addresses are tracked at most.
const (
	loginBurst   = 10
	loginEvery   = 6 * time.Second
	loginClients = 10000
)

// loginLimiter rate-limits failed logins per client address with a token
// bucket each, in a bounded table: a password guesser gets few tries, and
// the bcrypt work each try costs stays small. Once the table is full, new
// addresses share one bucket, so many addresses buy no more tries.
type loginLimiter struct {
	burst   float64
	every   time.Duration
	max     int
	now     func() time.Time
	mu      sync.Mutex
	clients map[string]*loginBucket
	shared  loginBucket // for addresses the full table has no room for
}

type loginBucket struct {
	tokens float64
	at     time.Time // when tokens was counted
}

func newLoginLimiter(burst int, every time.Duration, size int, now func() time.Time) *loginLimiter {
	return &loginLimiter{burst: float64(burst), every: every, max: size, now: now,
		clients: map[string]*loginBucket{}, shared: loginBucket{tokens: float64(burst), at: now()}}
}

// refill brings b up to now.
func (l *loginLimiter) refill(b *loginBucket, now time.Time) {
	b.tokens = min(l.burst, b.tokens+float64(now.Sub(b.at))/float64(l.every))
	b.at = now
}

// bucket returns client's bucket, nil for a client with no failures on
// record while the table has room.
func (l *loginLimiter) bucket(client string, now time.Time) *loginBucket {
	if b, ok := l.clients[client]; ok {
		return b
	}
	if len(l.clients) < l.max {
		return nil
	}
	l.refill(&l.shared, now)
	return &l.shared
}

// wait returns how long client must wait before its next attempt; 0 lets
// it try.
func (l *loginLimiter) wait(client string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.bucket(client, now)
	if b == nil {
		return 0
	}
	l.refill(b, now)
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(l.every))
}

// failed records a failed attempt of client.
func (l *loginLimiter) failed(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.clients) >= l.max {
		l.sweep(now)
	}
	b := l.bucket(client, now)
	if b == nil {
		b = &loginBucket{tokens: l.burst, at: now}
		l.clients[client] = b
	}
	l.refill(b, now)
	b.tokens = max(0, b.tokens-1)
}

// sweep forgets clients whose bucket has refilled: they hold no record.
func (l *loginLimiter) sweep(now time.Time) {
	for k, b := range l.clients {
		if l.refill(b, now); b.tokens >= l.burst {
			delete(l.clients, k)
		}
	}
}

// clientKey is the address a request's failures count against: its IP,
// an IPv6 address by its /64 (one host usually holds a whole /64). The
// connection's address, not X-Forwarded-For, which any client can set;
// behind a proxy all clients share the proxy's.
func clientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}

// HashPassword returns the bcrypt hash to configure for password.
func HashPassword(password string) (string, error) {
	if len(password) < 12 {
		return "", errors.New("password is shorter than 12 characters")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}
