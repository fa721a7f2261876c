package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"reverify/internal/testenv"
	"reverify/storage/objects"
	"reverify/storage/postgres"
)

// env is the harness's private world: a build of the binary, a versitygw
// process over a directory the harness writes objects into, a database of
// its own and a Redis database it flushes.
type env struct {
	dir         string // scratch directory, removed by close
	bin         string // reverify binary
	binProf     string // reverify with a pprof endpoint, built on first use
	self        string // this harness, for its helper modes
	s3          objects.Config
	s3Root      string // versitygw's posix root: bucket = directory
	s3Proc      *testenv.Process
	adminURL    string
	dbName      string
	dbURL       string
	redisAddr   string
	redisDB     int
	redis       *redis.Client
	s3KeepAlive bool     // versitygw --keep-alive (see testenv.Versitygw)
	workerEnv   []string // added to the worker's environment (experiments)
	// pollCommands is the Redis commands of one poll of a pipeline run,
	// counted on first use.
	pollCommands int64

	store *postgres.Store // the harness's own reads of the ledger
	// tls and s3TLS are the certificate and the HTTPS versitygw (over the
	// same root) of the TLS variants, made on first use.
	tls   *testenv.TLSFiles
	s3TLS *testenv.VersitygwServer
}

const (
	s3Access = "benchaccess"
	s3Secret = "benchsecretbenchsecret"
	apiKey   = "bench-key"
)

func newEnv(ctx context.Context, o options) (*env, error) {
	dir, err := os.MkdirTemp("", "reverify-bench-")
	if err != nil {
		return nil, fmt.Errorf("scratch dir: %w", err)
	}
	e := &env{dir: dir, adminURL: o.adminURL, redisAddr: o.redisAddr, redisDB: o.redisDB, s3KeepAlive: o.s3KeepAlive, workerEnv: o.workerEnv}
	if err := e.setup(ctx); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *env) setup(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	e.self = self
	e.bin = filepath.Join(e.dir, "reverify")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", e.bin, "./cmd/reverify")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build reverify: %w\n%s", err, out)
	}
	if err := e.startS3(ctx); err != nil {
		return err
	}
	if err := e.createDatabase(ctx); err != nil {
		return err
	}
	if e.store, err = postgres.Open(ctx, e.dbURL, 4); err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	e.redis = redis.NewClient(&redis.Options{Addr: e.redisAddr, DB: e.redisDB})
	if err := e.redis.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis %s: %w", e.redisAddr, err)
	}
	return nil
}

func (e *env) startS3(ctx context.Context) error {
	e.s3Root = filepath.Join(e.dir, "s3")
	if err := os.MkdirAll(e.s3Root, 0o755); err != nil {
		return fmt.Errorf("s3 root: %w", err)
	}
	v, err := testenv.StartVersitygw(ctx, testenv.Versitygw{Access: s3Access, Secret: s3Secret, Root: e.s3Root,
		Log: filepath.Join(e.dir, "versitygw.log"), KeepAlive: e.s3KeepAlive})
	if err != nil {
		return err
	}
	e.s3Proc, e.s3 = v.Process, v.Config
	return nil
}

// tlsFiles returns the harness's certificate authority and loopback
// certificate, made on first use.
func (e *env) tlsFiles() (testenv.TLSFiles, error) {
	if e.tls == nil {
		dir := filepath.Join(e.dir, "tls")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return testenv.TLSFiles{}, fmt.Errorf("tls dir: %w", err)
		}
		files, err := testenv.WriteTLS(dir)
		if err != nil {
			return files, err
		}
		e.tls = &files
	}
	return *e.tls, nil
}

// startS3TLS starts, on first use, a second versitygw that serves the same
// root over HTTPS, and returns its process.
func (e *env) startS3TLS(ctx context.Context) (*testenv.Process, error) {
	if e.s3TLS != nil {
		return e.s3TLS.Process, nil
	}
	files, err := e.tlsFiles()
	if err != nil {
		return nil, err
	}
	v, err := testenv.StartVersitygw(ctx, testenv.Versitygw{Access: s3Access, Secret: s3Secret, Root: e.s3Root,
		Log: filepath.Join(e.dir, "versitygw-tls.log"), KeepAlive: e.s3KeepAlive, TLS: &files})
	if err != nil {
		return nil, err
	}
	e.s3TLS = v
	return v.Process, nil
}

func (e *env) createDatabase(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, e.adminURL)
	if err != nil {
		return fmt.Errorf("postgres admin connection: %w", err)
	}
	defer conn.Close(ctx)
	e.dbName = "reverify_bench_" + randomHex(4)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+e.dbName); err != nil {
		e.dbName = ""
		return fmt.Errorf("create database: %w", err)
	}
	cfg, err := pgx.ParseConfig(e.adminURL)
	if err != nil {
		return fmt.Errorf("admin URL: %w", err)
	}
	e.dbURL = fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.User, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), e.dbName)
	migrate := exec.CommandContext(ctx, e.bin, "migrate")
	migrate.Env = append(os.Environ(), "REVERIFY_DATABASE_URL="+e.dbURL) // URLs may hold passwords: never on a command line
	out, err := migrate.CombinedOutput()
	if err != nil {
		return fmt.Errorf("migrate: %w\n%s", err, out)
	}
	return nil
}

// flushRedis empties the harness's Redis database before a case.
func (e *env) flushRedis(ctx context.Context) error {
	if err := e.redis.FlushDB(ctx).Err(); err != nil {
		return fmt.Errorf("flush redis db %d: %w", e.redisDB, err)
	}
	return nil
}

// redisUsedMemory is INFO memory's used_memory (the whole server).
func (e *env) redisUsedMemory(ctx context.Context) (int64, error) {
	return e.redisInfo(ctx, "memory", "used_memory")
}

// redisCommands is INFO stats' total_commands_processed (the whole server).
func (e *env) redisCommands(ctx context.Context) (int64, error) {
	return e.redisInfo(ctx, "stats", "total_commands_processed")
}

func (e *env) redisInfo(ctx context.Context, section, field string) (int64, error) {
	info, err := e.redis.Info(ctx, section).Result()
	if err != nil {
		return 0, fmt.Errorf("redis info: %w", err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("redis info: no %s", field)
}

func (e *env) redisURL() string {
	return fmt.Sprintf("redis://%s/%d", e.redisAddr, e.redisDB)
}

func (e *env) redisOpt() asynq.RedisClientOpt {
	return asynq.RedisClientOpt{Addr: e.redisAddr, DB: e.redisDB}
}

// procEnv is the environment every reverify process gets.
func (e *env) procEnv() []string {
	return []string{
		"REVERIFY_DATABASE_URL=" + e.dbURL,
		"REVERIFY_REDIS_URL=" + e.redisURL(),
		"REVERIFY_S3_ENDPOINT=" + e.s3.Endpoint,
		"REVERIFY_S3_REGION=" + e.s3.Region,
		"REVERIFY_S3_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=" + s3Access,
		"AWS_SECRET_ACCESS_KEY=" + s3Secret,
		"AWS_EC2_METADATA_DISABLED=true",
		"REVERIFY_API_KEY=" + apiKey,
		"REVERIFY_API_RATE_MODE=fixed", // no rate: the pipeline alone; api-limit sets its own
	}
}

func (e *env) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if e.redis != nil {
		_ = e.redis.FlushDB(ctx).Err()
		_ = e.redis.Close()
	}
	if e.s3Proc != nil {
		_ = e.s3Proc.Terminate()
	}
	if e.s3TLS != nil {
		_ = e.s3TLS.Terminate()
	}
	if e.store != nil {
		e.store.Close()
	}
	if e.dbName != "" {
		if conn, err := pgx.Connect(ctx, e.adminURL); err == nil {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+e.dbName+" WITH (FORCE)")
			_ = conn.Close(ctx)
		}
	}
	_ = os.RemoveAll(e.dir)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
