package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"reverify"
	"reverify/dashboard"
	"reverify/health"
	"reverify/ops"
)

type dashboardOptions struct {
	addr           string
	user           string
	passwordHash   string
	token          string
	tokenFile      string
	usersFile      string
	trustedProxies string
	ssoHeader      string
	groupsHeader   string
	groupRoles     string
	ssoDefaultRole string
	readOnly       bool
	viewersImages  bool
	maskKeys       bool
	threshold      int
	rescoreDelta   int
	fourEyes       bool
	claimTTL       time.Duration
	prometheusAddr string
	price          string
}

func (a *app) dashboardCommand() *cobra.Command {
	var o dashboardOptions
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the web dashboard: runs, score histograms, the review queue, and asynqmon under /monitoring",
		Long: `dashboard serves reverify's pages and asynqmon (under /monitoring) on --addr.
It refuses an address beyond loopback unless credentials are configured: the
single user (a bcrypt hash from 'reverify dashboard hash-password') and bearer
token, a users file of people with roles, or an SSO proxy's identity header
trusted from the proxy's addresses only. The single user and token are
operators. Roles: viewer (pages; images only with --viewers-see-images),
reviewer (images, decisions), operator (asynqmon writes, which are audited).
/healthz and /readyz answer without credentials.`,
		Example: `  reverify dashboard
  REVERIFY_DASHBOARD_USER=ops REVERIFY_DASHBOARD_PASSWORD_HASH="$HASH" reverify dashboard --addr :8080
  reverify dashboard --addr :8080 --token-file /run/secrets/dashboard-token --read-only
  reverify dashboard --addr :8080 --users-file /etc/reverify/users.yaml
  reverify dashboard --addr :8080 --trusted-proxies 10.0.5.0/24 --sso-group-roles "kyc-reviewers=reviewer,kyc-ops=operator"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.dashboard(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	stringSetting(f, &o.addr, "addr", "REVERIFY_DASHBOARD_ADDR", "127.0.0.1:8080", "listen address")
	stringSetting(f, &o.user, "user", "REVERIFY_DASHBOARD_USER", "", "basic auth user name")
	secretSetting(f, &o.passwordHash, "password-hash", "REVERIFY_DASHBOARD_PASSWORD_HASH",
		"bcrypt hash of the basic auth password (from: reverify dashboard hash-password)")
	secretSetting(f, &o.token, "token", "REVERIFY_DASHBOARD_TOKEN", "bearer token (prefer the file)")
	stringSetting(f, &o.tokenFile, "token-file", "REVERIFY_DASHBOARD_TOKEN_FILE", "", "file holding the bearer token")
	stringSetting(f, &o.usersFile, "users-file", "REVERIFY_DASHBOARD_USERS_FILE", "",
		"YAML or JSON file of people: name, role, password_hash and/or token_sha256 (docs/security.md)")
	stringSetting(f, &o.trustedProxies, "trusted-proxies", "REVERIFY_DASHBOARD_TRUSTED_PROXIES", "",
		"CIDRs of the SSO proxy: only connections from these may assert an identity in the SSO header (empty = SSO off)")
	stringSetting(f, &o.ssoHeader, "sso-header", "REVERIFY_DASHBOARD_SSO_HEADER", "X-Auth-Request-Email",
		"header in which the SSO proxy names the person")
	stringSetting(f, &o.groupsHeader, "sso-groups-header", "REVERIFY_DASHBOARD_SSO_GROUPS_HEADER", "X-Auth-Request-Groups",
		"header in which the SSO proxy lists the person's groups, comma-separated (empty = none)")
	stringSetting(f, &o.groupRoles, "sso-group-roles", "REVERIFY_DASHBOARD_SSO_GROUP_ROLES", "",
		"group=role,... : an SSO person gets the highest role of their groups")
	stringSetting(f, &o.ssoDefaultRole, "sso-default-role", "REVERIFY_DASHBOARD_SSO_DEFAULT_ROLE", "",
		"role of an SSO person in no mapped group (empty = none: refused)")
	a.envErrs.boolSetting(f, &o.readOnly, "read-only", "REVERIFY_DASHBOARD_READ_ONLY", false,
		"no writes for anyone: no review decisions and a read-only asynqmon")
	a.envErrs.boolSetting(f, &o.viewersImages, "viewers-see-images", "REVERIFY_DASHBOARD_VIEWERS_SEE_IMAGES", false,
		"let the viewer role see images (otherwise reviewers and operators only)")
	a.envErrs.boolSetting(f, &o.maskKeys, "mask-keys", "REVERIFY_DASHBOARD_MASK_KEYS", true,
		"show object keys as hashes, in pages, links and asynqmon task payloads")
	a.envErrs.intSetting(f, &o.threshold, "review-threshold", "REVERIFY_REVIEW_THRESHOLD", 50,
		"scores under this are queued for review")
	a.envErrs.intSetting(f, &o.rescoreDelta, "review-rescore-delta", "REVERIFY_REVIEW_RESCORE_DELTA", 10,
		"an object decided before (same ETag) comes back to the queue only when its score moved by more than this")
	a.envErrs.boolSetting(f, &o.fourEyes, "four-eyes", "REVERIFY_REVIEW_FOUR_EYES", false,
		"a suspected spoof needs a second, different reviewer to confirm it")
	a.envErrs.durationSetting(f, &o.claimTTL, "review-claim-ttl", "REVERIFY_REVIEW_CLAIM_TTL", 10*time.Minute,
		"how long a reviewer holds the item they work on (renewed while the workspace is open)")
	registerPrice(f, &o.price)
	urlSetting(f, &o.prometheusAddr, "prometheus-url", "REVERIFY_PROMETHEUS_URL", "",
		"Prometheus that asynqmon draws queue charts from (empty = no charts)")
	cmd.AddCommand(a.hashPasswordCommand(), a.hashTokenCommand())
	return cmd
}

func (a *app) hashTokenCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "hash-token",
		Short: "Read a bearer token and print its SHA-256 for a users file's token_sha256",
		Long: `hash-token prints the SHA-256 (hex) of a bearer token, what a users file
holds instead of the token. It reads the token like hash-password reads a
password.`,
		Example: `  openssl rand -hex 32 | tee token.txt | reverify dashboard hash-token`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token, err := a.readPassword()
			if err != nil {
				return err
			}
			sum, err := dashboard.HashToken(strings.TrimSpace(token))
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, sum)
			return nil
		},
	}
}

func (a *app) hashPasswordCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "hash-password",
		Short: "Read a password and print its bcrypt hash for REVERIFY_DASHBOARD_PASSWORD_HASH",
		Long: `hash-password prints the bcrypt hash of a password. On a terminal it asks
for the password twice without echoing it; otherwise it reads one line of
standard input.`,
		Example: `  reverify dashboard hash-password
  export REVERIFY_DASHBOARD_PASSWORD_HASH="$(reverify dashboard hash-password < password.txt)"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			password, err := a.readPassword()
			if err != nil {
				return err
			}
			hash, err := dashboard.HashPassword(password)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, hash)
			return nil
		},
	}
}

// readPassword asks twice without echo on a terminal, else reads a line.
func (a *app) readPassword() (string, error) {
	if f, ok := a.stdin.(interface{ Fd() uintptr }); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		ask := func(prompt string) (string, error) {
			fmt.Fprint(a.stderr, prompt)
			b, err := term.ReadPassword(fd)
			fmt.Fprintln(a.stderr)
			if err != nil {
				return "", fmt.Errorf("read password: %w", err)
			}
			return string(b), nil
		}
		p, err := ask("Password: ")
		if err != nil {
			return "", err
		}
		again, err := ask("Again: ")
		if err != nil {
			return "", err
		}
		if p != again {
			return "", errors.New("the passwords do not match")
		}
		return p, nil
	}
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("read password from standard input: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func (o dashboardOptions) auth() (dashboard.Auth, error) {
	auth := dashboard.Auth{User: o.user, PasswordHash: o.passwordHash, Token: strings.TrimSpace(o.token)}
	if o.tokenFile != "" {
		if auth.Token != "" {
			return auth, fmt.Errorf("set one of REVERIFY_DASHBOARD_TOKEN (--token) and REVERIFY_DASHBOARD_TOKEN_FILE (--token-file), not both")
		}
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return auth, fmt.Errorf("REVERIFY_DASHBOARD_TOKEN_FILE (--token-file): %w", err)
		}
		auth.Token = strings.TrimSpace(string(b))
	}
	if o.usersFile != "" {
		b, err := os.ReadFile(o.usersFile)
		if err != nil {
			return auth, fmt.Errorf("REVERIFY_DASHBOARD_USERS_FILE (--users-file): %w", err)
		}
		if auth.Users, err = dashboard.LoadUsers(b); err != nil {
			return auth, fmt.Errorf("REVERIFY_DASHBOARD_USERS_FILE (--users-file) %s: %w", o.usersFile, err)
		}
	}
	var err error
	if auth.SSO.Trusted, err = dashboard.ParsePrefixes(o.trustedProxies); err != nil {
		return auth, fmt.Errorf("invalid REVERIFY_DASHBOARD_TRUSTED_PROXIES (--trusted-proxies): %w", err)
	}
	if auth.SSO.GroupRoles, err = dashboard.ParseGroupRoles(o.groupRoles); err != nil {
		return auth, fmt.Errorf("invalid REVERIFY_DASHBOARD_SSO_GROUP_ROLES (--sso-group-roles): %w", err)
	}
	auth.SSO.Header, auth.SSO.GroupsHeader = strings.TrimSpace(o.ssoHeader), strings.TrimSpace(o.groupsHeader)
	auth.SSO.DefaultRole = reverify.Role(o.ssoDefaultRole)
	if err := auth.Validate(); err != nil {
		return auth, fmt.Errorf("dashboard credentials (REVERIFY_DASHBOARD_USER, REVERIFY_DASHBOARD_PASSWORD_HASH, REVERIFY_DASHBOARD_TOKEN, REVERIFY_DASHBOARD_USERS_FILE, REVERIFY_DASHBOARD_SSO_*): %w", err)
	}
	return auth, nil
}

func (a *app) dashboard(ctx context.Context, o dashboardOptions) error {
	auth, err := o.auth()
	if err != nil {
		return err
	}
	if err := dashboard.CheckExposure(o.addr, auth); err != nil {
		return fmt.Errorf("REVERIFY_DASHBOARD_ADDR (--addr): %w", err)
	}
	if o.threshold < 0 || o.threshold > 100 {
		return fmt.Errorf("invalid REVERIFY_REVIEW_THRESHOLD (--review-threshold) %d: want 0 to 100", o.threshold)
	}
	if o.rescoreDelta < 0 || o.rescoreDelta > 100 {
		return fmt.Errorf("invalid REVERIFY_REVIEW_RESCORE_DELTA (--review-rescore-delta) %d: want 0 to 100", o.rescoreDelta)
	}
	if o.claimTTL < time.Minute || o.claimTTL > 24*time.Hour {
		return fmt.Errorf("invalid REVERIFY_REVIEW_CLAIM_TTL (--review-claim-ttl) %s: want 1m to 24h", o.claimTTL)
	}
	price, err := parsePrice(o.price)
	if err != nil {
		return err
	}
	log, err := a.logger()
	if err != nil {
		return err
	}
	redisOpt, err := a.cfg.redis()
	if err != nil {
		return err
	}
	s3client, err := a.s3Client(ctx)
	if err != nil {
		return err
	}
	store, err := a.openStore(ctx, 8)
	if err != nil {
		return err
	}
	defer store.Close()

	monitor := dashboard.NewMonitor(redisOpt, dashboard.MonitorOptions{
		ReadOnly: o.readOnly, MaskKeys: o.maskKeys, PrometheusAddr: o.prometheusAddr,
	})
	defer monitor.Close()
	checks, closeChecks := ops.Readiness(redisOpt, store)
	defer closeChecks()
	probes := health.New(log, 0, checks...)

	srv, err := dashboard.New(store, dashboard.NewS3Images(s3client), monitor, probes.Register,
		dashboard.Config{
			Auth: auth, ReadOnly: o.readOnly, ViewersSeeImages: o.viewersImages, MaskKeys: o.maskKeys,
			ReviewThreshold: float64(o.threshold), RescoreDelta: float64(o.rescoreDelta),
			FourEyes: o.fourEyes, ClaimTTL: o.claimTTL, Logger: log,
			Forecaster: dashboardForecaster{a: a, store: store, price: price},
		})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("REVERIFY_DASHBOARD_ADDR (--addr): %w", err)
	}
	hs := ops.Serve(ln, srv, log)
	log.InfoContext(ctx, "dashboard listening", "addr", ln.Addr().String(), "read_only", o.readOnly,
		"mask_keys", o.maskKeys, "auth", auth.Configured(), "users", len(auth.Users), "sso", auth.SSO.On())
	fmt.Fprintf(a.stderr, "dashboard on http://%s/ (asynqmon on /monitoring/)\n", ln.Addr())
	select {
	case <-ctx.Done():
	case err := <-hs.Done():
		return fmt.Errorf("dashboard: %w", err)
	}
	return hs.Close(ctx)
}
