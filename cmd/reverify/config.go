package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/pflag"

	"reverify/dashboard"
	"reverify/storage/objects"
)

// config holds every setting; each has a flag and an environment variable.
type config struct {
	RedisURL    string
	DatabaseURL string
	S3Endpoint  string
	S3Region    string
	S3PathStyle bool
	S3SDKGet    bool
	APIURL      string
	APIKey      string
	APIKeyFile  string
	APITimeout  time.Duration
	LogFormat   string
	LogLevel    string
}

// Each flag has an environment variable: the variable, when set, replaces
// the built-in default; the flag wins over both.

func envUsage(text, env string) string { return fmt.Sprintf("%s [$%s]", text, env) }

func stringSetting(fs *pflag.FlagSet, p *string, flag, env, def, usage string) {
	v := def
	if raw, ok := os.LookupEnv(env); ok {
		v = raw
	}
	fs.StringVar(p, flag, v, envUsage(usage, env))
}

// secretSetting is stringSetting for a secret (an API key, a token, a
// password hash): --help never shows its value, only that it is set.
func secretSetting(fs *pflag.FlagSet, p *string, flag, env, usage string) {
	stringSetting(fs, p, flag, env, "", usage)
	if *p != "" {
		fs.Lookup(flag).DefValue = "(set in $" + env + ", hidden)"
	}
}

// urlSetting is stringSetting for a URL that may hold a password
// (user:password@, ?password=, a key=value DSN's password=): --help shows
// it redacted.
func urlSetting(fs *pflag.FlagSet, p *string, flag, env, def, usage string) {
	stringSetting(fs, p, flag, env, def, usage)
	fs.Lookup(flag).DefValue = redactURL(*p)
}

// secretParams are URL query parameters and DSN keys whose values are secret.
var secretParams = regexp.MustCompile(`(?i)^(password|passwd|pass|sslpassword|token|secret|api[-_]?key|access[-_]?key|secret[-_]?key)$`)

// dsnPassword finds the secret values of a key=value DSN (PostgreSQL's
// "host=h password=p" form), quoted or not.
var dsnPassword = regexp.MustCompile(`(?i)\b(password|sslpassword)(\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)`)

// redactURL returns raw with its secrets replaced by "xxxxx", for --help
// and errors. What is neither a URL nor a DSN is hidden whole when it
// could hold a password (it has an "@").
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" && u.Opaque == "" {
		q, changed := u.Query(), false
		for k := range q {
			if secretParams.MatchString(k) {
				q[k], changed = []string{"xxxxx"}, true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	if dsnPassword.MatchString(raw) {
		return dsnPassword.ReplaceAllString(raw, "${1}${2}xxxxx")
	}
	if strings.Contains(raw, "@") {
		return "(hidden: not a URL)"
	}
	return raw
}

// stringsSetting is a repeatable flag whose environment variable holds
// the values separated by commas; show prints a value in --help.
func stringsSetting(fs *pflag.FlagSet, p *[]string, flag, env, usage string, show func(string) string) {
	var def []string
	if raw, ok := os.LookupEnv(env); ok && strings.TrimSpace(raw) != "" {
		for _, v := range strings.Split(raw, ",") {
			if v = strings.TrimSpace(v); v != "" {
				def = append(def, v)
			}
		}
	}
	fs.StringArrayVar(p, flag, def, envUsage(usage, env))
	shown := make([]string, len(def))
	for i, v := range def {
		shown[i] = show(v)
	}
	if len(def) == 0 {
		fs.Lookup(flag).DefValue = ""
	} else {
		fs.Lookup(flag).DefValue = "[" + strings.Join(shown, ",") + "]"
	}
}

// envErrors collects environment values that do not parse, so they are
// reported before any work starts.
type envErrors []error

// envDefault is def, or env's value parsed; a value that does not parse is
// recorded in e (want says what would).
func envDefault[T any](e *envErrors, env string, def T, parse func(string) (T, error), want string) T {
	raw, ok := os.LookupEnv(env)
	if !ok {
		return def
	}
	v, err := parse(raw)
	if err != nil {
		*e = append(*e, fmt.Errorf("invalid %s=%q: want %s", env, raw, want))
		return def
	}
	return v
}

func (e *envErrors) boolSetting(fs *pflag.FlagSet, p *bool, flag, env string, def bool, usage string) {
	fs.BoolVar(p, flag, envDefault(e, env, def, strconv.ParseBool, "true or false"), envUsage(usage, env))
}

func (e *envErrors) durationSetting(fs *pflag.FlagSet, p *time.Duration, flag, env string, def time.Duration, usage string) {
	fs.DurationVar(p, flag, envDefault(e, env, def, time.ParseDuration, "a duration such as 30s"), envUsage(usage, env))
}

func (e *envErrors) intSetting(fs *pflag.FlagSet, p *int, flag, env string, def int, usage string) {
	fs.IntVar(p, flag, envDefault(e, env, def, strconv.Atoi, "a whole number"), envUsage(usage, env))
}

func (e *envErrors) int64Setting(fs *pflag.FlagSet, p *int64, flag, env string, def int64, usage string) {
	parse := func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }
	fs.Int64Var(p, flag, envDefault(e, env, def, parse, "a whole number"), envUsage(usage, env))
}

func (e envErrors) err() error { return errors.Join(e...) }

func (c *config) register(fs *pflag.FlagSet, e *envErrors) {
	urlSetting(fs, &c.RedisURL, "redis-url", "REVERIFY_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis for the task queue")
	urlSetting(fs, &c.DatabaseURL, "database-url", "REVERIFY_DATABASE_URL",
		"postgres://postgres@127.0.0.1:5432/reverify?sslmode=disable", "PostgreSQL for runs and results")
	urlSetting(fs, &c.S3Endpoint, "s3-endpoint", "REVERIFY_S3_ENDPOINT", "", "S3-compatible endpoint URL (empty = AWS)")
	stringSetting(fs, &c.S3Region, "s3-region", "REVERIFY_S3_REGION", "", "S3 region (empty = from the AWS config, else us-east-1)")
	e.boolSetting(fs, &c.S3PathStyle, "s3-path-style", "REVERIFY_S3_PATH_STYLE", false, "use path-style S3 addressing (MinIO, versitygw)")
	e.boolSetting(fs, &c.S3SDKGet, "s3-sdk-get", "REVERIFY_S3_SDK_GET", false,
		"fetch images through the AWS SDK even against --s3-endpoint (slower; for servers the direct GET does not suit)")
	urlSetting(fs, &c.APIURL, "api-url", "REVERIFY_API_URL", "https://idverify-api.argosidentity.com/modules", "liveness API base URL")
	secretSetting(fs, &c.APIKey, "api-key", "REVERIFY_API_KEY", "liveness API key (prefer the environment or a file)")
	stringSetting(fs, &c.APIKeyFile, "api-key-file", "REVERIFY_API_KEY_FILE", "", "file holding the liveness API key")
	e.durationSetting(fs, &c.APITimeout, "api-timeout", "REVERIFY_API_TIMEOUT", 30*time.Second, "timeout of one API call")
	stringSetting(fs, &c.LogFormat, "log-format", "REVERIFY_LOG_FORMAT", "json", "log format: json or text")
	stringSetting(fs, &c.LogLevel, "log-level", "REVERIFY_LOG_LEVEL", "info", "log level: debug, info, warn, error")
}

// redis parses REVERIFY_REDIS_URL: redis://, rediss://, redis-socket://,
// redis-sentinel:// (asynq's failover option) or
// redis-cluster://[user:password@]host:port[,host:port…].
func (c *config) redis() (asynq.RedisConnOpt, error) {
	if rest, ok := strings.CutPrefix(c.RedisURL, "redis-cluster://"); ok {
		return parseRedisCluster(rest)
	}
	opt, err := asynq.ParseRedisURI(c.RedisURL)
	if err != nil {
		// url.Parse's errors quote the URL, or the part of it (which can
		// be part of a password) that does not parse.
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, errors.New("invalid REVERIFY_REDIS_URL (--redis-url): not a URL (not repeated here: it may hold a password)")
		}
		return nil, fmt.Errorf("invalid REVERIFY_REDIS_URL (--redis-url) %s: %w", redactURL(c.RedisURL), err)
	}
	return opt, nil
}

func parseRedisCluster(rest string) (asynq.RedisConnOpt, error) {
	var opt asynq.RedisClusterClientOpt
	if i := strings.LastIndex(rest, "@"); i >= 0 { // a password may hold "@"
		user, pass, _ := strings.Cut(rest[:i], ":")
		opt.Username, opt.Password, rest = user, pass, rest[i+1:]
	}
	for _, addr := range strings.Split(strings.TrimSuffix(rest, "/"), ",") {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("invalid REVERIFY_REDIS_URL (--redis-url): cluster node %q: want host:port", addr)
		}
		opt.Addrs = append(opt.Addrs, addr)
	}
	return opt, nil
}

func (c *config) database() (string, error) {
	cfg, err := pgxpool.ParseConfig(c.DatabaseURL)
	if err != nil || c.DatabaseURL == "" {
		return "", fmt.Errorf("invalid REVERIFY_DATABASE_URL (--database-url): want postgres://user@host:port/db")
	}
	if dashboard.IsPlaceholder(cfg.ConnConfig.Password) {
		return "", fmt.Errorf("REVERIFY_DATABASE_URL (--database-url): the password is an example's placeholder")
	}
	return c.DatabaseURL, nil
}

func (c *config) s3() (objects.Config, error) {
	if c.S3Endpoint != "" {
		u, err := url.Parse(c.S3Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return objects.Config{}, fmt.Errorf("invalid REVERIFY_S3_ENDPOINT (--s3-endpoint) %q: want http(s)://host[:port]", redactURL(c.S3Endpoint))
		}
	}
	return objects.Config{Endpoint: c.S3Endpoint, Region: c.S3Region, PathStyle: c.S3PathStyle, SDKGet: c.S3SDKGet}, nil
}

// apiKey returns the key from the flag/environment or the key file. The
// key itself never appears in an error.
func (c *config) apiKey() (string, error) {
	key, err := c.readAPIKey()
	if err == nil && dashboard.IsPlaceholder(key) {
		return "", errors.New("REVERIFY_API_KEY (--api-key, REVERIFY_API_KEY_FILE) is an example's placeholder")
	}
	return key, err
}

func (c *config) readAPIKey() (string, error) {
	switch {
	case c.APIKey != "" && c.APIKeyFile != "":
		return "", errors.New("set one of REVERIFY_API_KEY (--api-key) and REVERIFY_API_KEY_FILE (--api-key-file), not both")
	case c.APIKey != "":
		return strings.TrimSpace(c.APIKey), nil
	case c.APIKeyFile != "":
		b, err := os.ReadFile(c.APIKeyFile)
		if err != nil {
			return "", fmt.Errorf("REVERIFY_API_KEY_FILE (--api-key-file): %w", err)
		}
		key := strings.TrimSpace(string(b))
		if key == "" {
			return "", fmt.Errorf("REVERIFY_API_KEY_FILE (--api-key-file) %s is empty", c.APIKeyFile)
		}
		return key, nil
	}
	return "", errors.New("missing REVERIFY_API_KEY (--api-key) or REVERIFY_API_KEY_FILE (--api-key-file)")
}

func (c *config) apiURL() (string, error) {
	u, err := url.Parse(c.APIURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("invalid REVERIFY_API_URL (--api-url) %q: want http(s)://host/path", redactURL(c.APIURL))
	}
	return c.APIURL, nil
}

func (c *config) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("invalid REVERIFY_LOG_LEVEL (--log-level) %q: want debug, info, warn or error", c.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.LogFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("invalid REVERIFY_LOG_FORMAT (--log-format) %q: want json or text", c.LogFormat)
}
