package dashboard

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	sigsyaml "sigs.k8s.io/yaml"

	"reverify"
)

// Auth holds the credentials the dashboard accepts: any mix of the single
// user and token (role operator), the users of a file, and an SSO proxy's
// identity header.
type Auth struct {
	User         string // basic auth user name; role operator
	PasswordHash string // bcrypt hash of the basic auth password
	Token        string // bearer token; role operator
	TokenName    string // who a token holder is recorded as in reviews; default "token"
	Users        []User // several people, each with a role (LoadUsers)
	SSO          SSO
}

// User is one identity of the users file: a name, a role and a bcrypt
// password hash, a token's SHA-256, or both.
type User struct {
	Name         string        `json:"name"`
	Role         reverify.Role `json:"role"`
	PasswordHash string        `json:"password_hash,omitempty"`
	TokenSHA256  string        `json:"token_sha256,omitempty"` // hex; the token itself is never in the file
}

// SSO trusts an identity header set by a single sign-on proxy (such as
// oauth2-proxy), from the proxy's addresses only: anyone else could set it.
type SSO struct {
	Header       string                   // e.g. X-Auth-Request-Email
	GroupsHeader string                   // e.g. X-Auth-Request-Groups, comma-separated; "" = no groups
	GroupRoles   map[string]reverify.Role // group → role; a person gets the highest of their groups'
	DefaultRole  reverify.Role            // for a person in no mapped group; "" = none (refused)
	Trusted      []netip.Prefix           // the proxy's addresses; none = SSO off
}

// On reports whether an identity header is trusted from somewhere.
func (s SSO) On() bool { return s.Header != "" && len(s.Trusted) > 0 }

// Configured reports whether any credential is set.
func (a Auth) Configured() bool {
	return a.User != "" || a.Token != "" || len(a.Users) > 0 || a.SSO.On()
}

// Validate checks the settings are usable.
func (a Auth) Validate() error {
	if (a.User == "") != (a.PasswordHash == "") {
		return errors.New("basic auth needs both a user and a password hash")
	}
	if a.PasswordHash != "" {
		if err := checkBcrypt(a.PasswordHash); err != nil {
			return err
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
	names := map[string]bool{}
	tokens := map[string]string{}
	if a.User != "" {
		names[a.User] = true
	}
	if a.Token != "" {
		sum := sha256.Sum256([]byte(a.Token))
		tokens[hex.EncodeToString(sum[:])] = "the bearer token"
	}
	for i, u := range a.Users {
		if err := u.validate(); err != nil {
			return fmt.Errorf("user %d (%q): %w", i+1, u.Name, err)
		}
		if names[u.Name] {
			return fmt.Errorf("user %d: the name %q is used twice", i+1, u.Name)
		}
		names[u.Name] = true
		if u.TokenSHA256 != "" {
			sum := strings.ToLower(u.TokenSHA256)
			if other, ok := tokens[sum]; ok {
				return fmt.Errorf("user %d (%q): same token as %s", i+1, u.Name, other)
			}
			tokens[sum] = fmt.Sprintf("user %q", u.Name)
		}
	}
	if len(a.SSO.Trusted) > 0 && a.SSO.Header == "" {
		return errors.New("trusted proxies are set but no SSO identity header to trust from them")
	}
	if a.SSO.DefaultRole != "" && !a.SSO.DefaultRole.Valid() {
		return fmt.Errorf("SSO default role %q: %w", a.SSO.DefaultRole, errUnknownRole)
	}
	for g, r := range a.SSO.GroupRoles {
		if !r.Valid() {
			return fmt.Errorf("SSO group %q: role %q: %w", g, r, errUnknownRole)
		}
	}
	return nil
}

var errUnknownRole = fmt.Errorf("want one of %s", roleList())

func roleList() string {
	var s []string
	for _, r := range reverify.Roles() {
		s = append(s, string(r))
	}
	return strings.Join(s, ", ")
}

func (u User) validate() error {
	switch {
	case strings.TrimSpace(u.Name) == "" || u.Name != strings.TrimSpace(u.Name):
		return errors.New("a name is required, without surrounding spaces")
	case !u.Role.Valid():
		return fmt.Errorf("role %q: %w", u.Role, errUnknownRole)
	case u.PasswordHash == "" && u.TokenSHA256 == "":
		return errors.New("needs a password_hash (reverify dashboard hash-password) or a token_sha256 (reverify dashboard hash-token)")
	case IsPlaceholder(u.PasswordHash) || IsPlaceholder(u.TokenSHA256):
		return errors.New("holds an example's placeholder")
	}
	if u.PasswordHash != "" {
		if err := checkBcrypt(u.PasswordHash); err != nil {
			return err
		}
	}
	if u.TokenSHA256 != "" {
		if b, err := hex.DecodeString(u.TokenSHA256); err != nil || len(b) != sha256.Size {
			return errors.New("token_sha256 is not 64 hex digits (the SHA-256 of the token: reverify dashboard hash-token)")
		}
	}
	return nil
}

func checkBcrypt(hash string) error {
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return fmt.Errorf("password hash is not a bcrypt hash (make one with `reverify dashboard hash-password`): %w", err)
	}
	return nil
}

// usersFile is the users file: YAML or JSON.
type usersFile struct {
	Users []User `json:"users"`
}

// LoadUsers reads a users file (YAML or JSON):
//
//	users:
//	  - {name: alice@example.com, role: reviewer, password_hash: "$2a$10$..."}
//	  - {name: ci, role: operator, token_sha256: "9f86d0..."}
//
// Unknown fields are refused, so a typo ("passwd") does not silently
// leave a user without a password.
func LoadUsers(src []byte) ([]User, error) {
	var f usersFile
	if err := sigsyaml.UnmarshalStrict(src, &f); err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	if len(f.Users) == 0 {
		return nil, errors.New("users file: no users (want a list under \"users:\")")
	}
	if err := (Auth{Users: f.Users}).Validate(); err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	return f.Users, nil
}

// HashToken returns what a users file holds for token: its SHA-256, hex.
func HashToken(token string) (string, error) {
	if len(token) < 16 {
		return "", errors.New("token is shorter than 16 characters")
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:]), nil
}

// ParseGroupRoles reads "group=role,group=role".
func ParseGroupRoles(s string) (map[string]reverify.Role, error) {
	out := map[string]reverify.Role{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		g, r, ok := strings.Cut(pair, "=")
		g, r = strings.TrimSpace(g), strings.TrimSpace(r)
		if !ok || g == "" {
			return nil, fmt.Errorf("%q: want group=role", pair)
		}
		if !reverify.Role(r).Valid() {
			return nil, fmt.Errorf("%q: role %q: %w", pair, r, errUnknownRole)
		}
		out[g] = reverify.Role(r)
	}
	return out, nil
}

// ParsePrefixes reads comma-separated CIDRs or single addresses.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q: want a CIDR (10.0.0.0/8) or an address: %w", f, err)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q: want a CIDR (10.0.0.0/8) or an address: %w", f, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
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

// Identity is who a request is and what they may do.
type Identity struct {
	Name string
	Role reverify.Role // "" or unknown: authenticated, but allowed nothing
	Via  string        // how: "password", "token", "sso", "local"
}

// authenticator checks requests. bcrypt is slow on purpose, so a
// verified user/password pair is remembered (as a hash) for this process,
// and failed attempts are rate-limited per client address.
type authenticator struct {
	auth      Auth
	passwords map[string]User   // by name
	tokens    map[[32]byte]User // by the token's SHA-256
	dummy     string            // a bcrypt hash checked for unknown names
	mu        sync.Mutex
	verified  map[[32]byte]bool
	limiter   *loginLimiter
}

func newAuthenticator(a Auth) *authenticator {
	if a.TokenName == "" {
		a.TokenName = "token"
	}
	au := &authenticator{auth: a, passwords: map[string]User{}, tokens: map[[32]byte]User{}, verified: map[[32]byte]bool{},
		limiter: newLoginLimiter(loginBurst, loginEvery, loginClients, time.Now)}
	// The single user and token of the flags are operators, as they could
	// do everything before roles existed.
	if a.User != "" {
		au.passwords[a.User] = User{Name: a.User, Role: reverify.RoleOperator, PasswordHash: a.PasswordHash}
	}
	if a.Token != "" {
		au.tokens[sha256.Sum256([]byte(a.Token))] = User{Name: a.TokenName, Role: reverify.RoleOperator}
	}
	for _, u := range a.Users {
		if u.PasswordHash != "" {
			au.passwords[u.Name] = u
		}
		if b, err := hex.DecodeString(u.TokenSHA256); err == nil && len(b) == sha256.Size {
			au.tokens[[32]byte(b)] = u
		}
	}
	for _, u := range au.passwords {
		au.dummy = u.PasswordHash
		break
	}
	return au
}

// peerTrusted reports whether the connection comes from an SSO proxy.
func (au *authenticator) peerTrusted(r *http.Request) bool {
	if !au.auth.SSO.On() {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range au.auth.SSO.Trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ssoRole is the highest role of the groups the proxy named, else the
// default.
func (au *authenticator) ssoRole(r *http.Request) reverify.Role {
	best := -1
	if h := au.auth.SSO.GroupsHeader; h != "" {
		for _, v := range r.Header.Values(h) {
			for _, g := range strings.Split(v, ",") {
				if role, ok := au.auth.SSO.GroupRoles[strings.TrimSpace(g)]; ok {
					best = max(best, slices.Index(reverify.Roles(), role))
				}
			}
		}
	}
	if best < 0 {
		return au.auth.SSO.DefaultRole
	}
	return reverify.Roles()[best]
}

// identify returns who an authenticated request is; ok is false when it
// is not authenticated. The SSO header counts only from a trusted proxy:
// from anywhere else it is ignored and the request must bring a password
// or token.
func (au *authenticator) identify(r *http.Request) (Identity, bool) {
	if !au.auth.Configured() {
		return Identity{Name: "local", Role: reverify.RoleOperator, Via: "local"}, true
	}
	if au.peerTrusted(r) {
		if name := strings.TrimSpace(r.Header.Get(au.auth.SSO.Header)); name != "" {
			return Identity{Name: name, Role: au.ssoRole(r), Via: "sso"}, true
		}
	}
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		sum := sha256.Sum256([]byte(strings.TrimPrefix(h, "Bearer ")))
		// Every configured token is compared, so the time taken does not
		// tell which one came close.
		var found User
		for k, u := range au.tokens {
			if subtle.ConstantTimeCompare(sum[:], k[:]) == 1 {
				found = u
			}
		}
		if found.Name == "" {
			return Identity{}, false
		}
		return Identity{Name: found.Name, Role: found.Role, Via: "token"}, true
	}
	user, pass, ok := r.BasicAuth()
	if !ok || len(au.passwords) == 0 {
		return Identity{}, false
	}
	u, known := au.passwords[user]
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	au.mu.Lock()
	ok = au.verified[key]
	au.mu.Unlock()
	if ok && known {
		return Identity{Name: u.Name, Role: u.Role, Via: "password"}, true
	}
	// A hash is checked whether or not the user exists, so that a wrong
	// user takes as long as a wrong password: answer times do not tell
	// which user names exist.
	hash := au.dummy
	if known {
		hash = u.PasswordHash
	}
	passOK := bcrypt.CompareHashAndPassword([]byte(hash), []byte(pass)) == nil
	if !known || !passOK {
		return Identity{}, false
	}
	au.mu.Lock()
	if len(au.verified) < 64 { // bounded: a password change restarts the process anyway
		au.verified[key] = true
	}
	au.mu.Unlock()
	return Identity{Name: u.Name, Role: u.Role, Via: "password"}, true
}

// from is where a request came from, for the audit log: the peer, and
// behind a trusted proxy also the client the proxy says it forwards (the
// last X-Forwarded-For entry, the one the proxy added).
func (au *authenticator) from(r *http.Request) string {
	if !au.peerTrusted(r) {
		return r.RemoteAddr
	}
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 {
		return r.RemoteAddr
	}
	parts := strings.Split(xff[len(xff)-1], ",")
	client := strings.TrimSpace(parts[len(parts)-1])
	if _, err := netip.ParseAddr(client); err != nil {
		return r.RemoteAddr
	}
	return client + " via " + r.RemoteAddr
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
		id, ok := au.identify(r)
		if !ok {
			if r.Header.Get("Authorization") != "" { // a browser's first request carries none
				au.limiter.failed(client)
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="reverify", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		r2 := r.WithContext(withIdentity(r.Context(), id, au.from(r)))
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
