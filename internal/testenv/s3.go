package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
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
	root := t.TempDir() // removed after the process is killed (cleanups run LIFO)

	srv := S3Server{
		AccessKey: "test" + randomHex(t, 6),
		SecretKey: randomHex(t, 20),
		Region:    objects.DefaultRegion,
	}

	// The free port is found by listening and closing, so another process
	// can take it before versitygw binds it; try a few times.
	var lastErr error
	for range 3 {
		var p *process
		p, lastErr = startVersitygw(t, bin, srv.AccessKey, srv.SecretKey, root)
		if lastErr != nil {
			continue
		}
		srv.Endpoint = "http://" + p.addr
		srv.Client, lastErr = objects.NewClient(context.Background(), srv.Config())
		if lastErr != nil {
			p.stop()
			t.Fatalf("testenv: s3 client: %v", lastErr)
		}
		if lastErr = p.waitReady(srv.Client, 20*time.Second); lastErr != nil {
			p.stop()
			continue
		}
		t.Cleanup(p.stop)
		return srv
	}
	t.Fatalf("testenv: versitygw did not start: %v", lastErr)
	return S3Server{}
}

// process is one running versitygw.
type process struct {
	addr   string
	cmd    *exec.Cmd
	out    *tailBuffer
	exited chan struct{} // closed when the process has exited
	once   sync.Once
}

func startVersitygw(t testing.TB, bin, access, secret, root string) (*process, error) {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p := &process{addr: addr, out: &tailBuffer{max: 16 << 10}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "--access", access, "--secret", secret, "--port", addr, "--quiet", "posix", root)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// waitReady polls the server with ListBuckets until it answers.
func (p *process) waitReady(client *s3.Client, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := client.ListBuckets(ctx, &s3.ListBucketsInput{})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("versitygw on %s exited: %v\n%s", p.addr, p.cmd.ProcessState, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("versitygw on %s not ready after %s: %w\n%s", p.addr, timeout, err, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills the process and waits for it to exit.
func (p *process) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", err
	}
	return addr, nil
}

// tailBuffer keeps the last max bytes written to it; safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
