package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"reverify/storage/objects"
)

// VersitygwInstall is the command that installs the pinned versitygw where
// VersitygwPath looks for it.
const VersitygwInstall = "GOBIN=${XDG_CACHE_HOME:-$HOME/.cache}/reverify/bin go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// VersitygwPath finds the versitygw binary: $REVERIFY_VERSITYGW, else
// $XDG_CACHE_HOME/reverify/bin/versitygw (or $HOME/.cache/...), else
// versitygw on $PATH.
func VersitygwPath() (string, error) {
	if p := os.Getenv("REVERIFY_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("REVERIFY_VERSITYGW: %w", err)
		}
		return p, nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, ".cache")
		}
	}
	if cache != "" {
		p := filepath.Join(cache, "reverify", "bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath("versitygw")
	if err != nil {
		return "", fmt.Errorf("versitygw not found in $REVERIFY_VERSITYGW, the cache dir or $PATH: %w", err)
	}
	return p, nil
}

// S3Server is a running versitygw process owned by one test.
type S3Server struct {
	Endpoint  string // e.g. "http://127.0.0.1:40123"
	AccessKey string
	SecretKey string
	Region    string
	Client    *s3.Client // path-style client for Endpoint
}

// Config returns the objects.Config that reaches the server.
func (s S3Server) Config() objects.Config {
	return objects.Config{
		Endpoint:  s.Endpoint,
		Region:    s.Region,
		PathStyle: true,
		AccessKey: s.AccessKey,
		SecretKey: s.SecretKey,
	}
}

// CreateBucket creates bucket, failing t on error.
func (s S3Server) CreateBucket(t testing.TB, bucket string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("testenv: create bucket %s: %v", bucket, err)
	}
}

// PutObject stores body at bucket/key, failing t on error.
func (s S3Server) PutObject(t testing.TB, bucket, key string, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s.Client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
	})
	if err != nil {
		t.Fatalf("testenv: put %s/%s: %v", bucket, key, err)
	}
}

// S3 starts a versitygw server for this test on a free port of 127.0.0.1,
// storing into a temporary directory, and waits until it answers. The
// process is killed when the test ends. Without the binary the test fails
// in CI and is skipped elsewhere.
func S3(t testing.TB) S3Server {
	t.Helper()
	bin, err := VersitygwPath()
	if err != nil {
		unavailable(t, "%v; install it with: %s", err, VersitygwInstall)
	}
	srv := S3Server{
		AccessKey: "test" + randomHex(t, 6),
		SecretKey: randomHex(t, 20),
		Region:    objects.DefaultRegion,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := StartVersitygw(ctx, Versitygw{
		Bin:    bin,
		Access: srv.AccessKey,
		Secret: srv.SecretKey,
		Root:   t.TempDir(), // removed after the process is killed (cleanups run LIFO)
		Log:    filepath.Join(t.TempDir(), "versitygw.log"),
	})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { _ = v.Stop(syscall.SIGKILL, TerminateGrace) })
	srv.Endpoint, srv.Client = v.Config.Endpoint, v.Client
	return srv
}

// Versitygw says how StartVersitygw runs the server.
type Versitygw struct {
	Bin    string // the binary; empty: VersitygwPath
	Access string
	Secret string
	Root   string // the posix backend's directory (bucket = directory); must exist
	Log    string // stdout and stderr
	// KeepAlive adds --keep-alive. Without it versitygw answers every
	// request with "Connection: close", so each request dials anew, which
	// AWS S3 does not make clients do.
	KeepAlive bool
	// TLS, when set, serves HTTPS with its certificate (--cert, --key);
	// the returned Client trusts its authority.
	TLS *TLSFiles
}

// VersitygwServer is a running versitygw.
type VersitygwServer struct {
	*Process
	Config objects.Config // reaches the server: endpoint, region, path style, keys
	Client *s3.Client     // path-style client for Config
}

// StartVersitygw starts versitygw on a free port of 127.0.0.1 and waits
// until it answers S3 requests; the caller stops it. A port taken between
// FreePort and versitygw's bind makes it exit, so a few ports are tried.
func StartVersitygw(ctx context.Context, v Versitygw) (*VersitygwServer, error) {
	if v.Bin == "" {
		bin, err := VersitygwPath()
		if err != nil {
			return nil, err
		}
		v.Bin = bin
	}
	var lastErr error
	for range 3 {
		var srv *VersitygwServer
		if srv, lastErr = startVersitygw(ctx, v); lastErr == nil {
			return srv, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("versitygw did not start: %w", lastErr)
}

func startVersitygw(ctx context.Context, v Versitygw) (*VersitygwServer, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	args := []string{"--access", v.Access, "--secret", v.Secret, "--port", port.Addr(), "--quiet"}
	if v.KeepAlive {
		args = append(args, "--keep-alive")
	}
	scheme := "http"
	if v.TLS != nil {
		args = append(args, "--cert", v.TLS.Cert, "--key", v.TLS.Key)
		scheme = "https"
	}
	p, err := Start(Command{Name: "versitygw on " + port.Addr(), Bin: v.Bin, Args: append(args, "posix", v.Root), Log: v.Log})
	if err != nil {
		return nil, err
	}
	srv := &VersitygwServer{Process: p, Config: objects.Config{
		Endpoint:  scheme + "://" + port.Addr(),
		Region:    objects.DefaultRegion,
		PathStyle: true,
		AccessKey: v.Access,
		SecretKey: v.Secret,
	}}
	if srv.Client, err = objects.NewClient(ctx, srv.Config); err != nil {
		_ = p.Stop(syscall.SIGKILL, TerminateGrace)
		return nil, fmt.Errorf("s3 client: %w", err)
	}
	if v.TLS != nil {
		hc, err := v.TLS.Client(30 * time.Second)
		if err != nil {
			_ = p.Stop(syscall.SIGKILL, TerminateGrace)
			return nil, err
		}
		srv.Client = s3.New(srv.Client.Options(), func(o *s3.Options) { o.HTTPClient = hc })
	}
	ready, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err = p.WaitReady(ready, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := srv.Client.ListBuckets(ctx, &s3.ListBucketsInput{})
		return err
	})
	if err != nil {
		_ = p.Stop(syscall.SIGKILL, TerminateGrace)
		return nil, err
	}
	return srv, nil
}
