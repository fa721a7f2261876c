package dashboard

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"

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
	return nil
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
// verified user/password pair is remembered (as a hash) for this process.
type authenticator struct {
	auth     Auth
	tokenSum [32]byte
	mu       sync.Mutex
	verified map[[32]byte]bool
}

func newAuthenticator(a Auth) *authenticator {
	if a.TokenName == "" {
		a.TokenName = "token"
	}
	return &authenticator{auth: a, tokenSum: sha256.Sum256([]byte(a.Token)), verified: map[[32]byte]bool{}}
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
	if !ok || au.auth.User == "" || subtle.ConstantTimeCompare([]byte(user), []byte(au.auth.User)) != 1 {
		return ""
	}
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	au.mu.Lock()
	ok = au.verified[key]
	au.mu.Unlock()
	if ok {
		return user
	}
	if bcrypt.CompareHashAndPassword([]byte(au.auth.PasswordHash), []byte(pass)) != nil {
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
		who := au.who(r)
		if who == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="reverify", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(withReviewer(r.Context(), who)))
	})
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
