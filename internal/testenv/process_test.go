package testenv_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
)

// TestHelperProcess is the child the launcher tests start: this test
// binary again, doing what REVERIFY_TESTENV_PROC says.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("REVERIFY_TESTENV_PROC")
	if mode == "" {
		t.Skip("helper for the process tests")
	}
	if mode == "ignore-term" {
		signal.Ignore(syscall.SIGTERM)
	}
	fmt.Println("helper", mode, os.Getenv("HELPER_WORD"))
	switch mode {
	case "serve": // listen on HELPER_PORT until SIGTERM, then exit 0
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("HELPER_PORT"))
		if err != nil {
			os.Exit(4)
		}
		defer ln.Close()
		<-term
		os.Exit(0)
	case "ignore-term":
		time.Sleep(time.Minute)
	case "fail":
		fmt.Fprintln(os.Stderr, "helper failing on purpose")
		os.Exit(3)
	}
	os.Exit(0)
}

func helper(t *testing.T, mode string, env ...string) testenv.Command {
	return testenv.Command{
		Name: "helper " + mode,
		Bin:  os.Args[0],
		Args: []string{"-test.run=^TestHelperProcess$", "-test.count=1"},
		Env:  append([]string{"REVERIFY_TESTENV_PROC=" + mode}, env...),
		Log:  filepath.Join(t.TempDir(), mode+".log"),
	}
}

func TestProcessReadyAndTerminate(t *testing.T) {
	t.Parallel()
	port := testenv.FreePortT(t)
	p := testenv.StartT(t, helper(t, "serve", "HELPER_PORT="+port.String(), "HELPER_WORD=hello"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, p.WaitReady(ctx, testenv.TCPReady(port.Addr())))
	require.Positive(t, p.Pid())
	require.Nil(t, p.State(), "running")

	require.NoError(t, p.Terminate(), "exits 0 on SIGTERM")
	require.NotNil(t, p.State())
	require.NoError(t, p.Terminate(), "a second stop returns the first's result")
	log, err := os.ReadFile(p.LogPath())
	require.NoError(t, err)
	require.Contains(t, string(log), "helper serve hello", "stdout in the log, environment passed")
}

func TestProcessKilledAfterGrace(t *testing.T) {
	t.Parallel()
	p := testenv.StartT(t, helper(t, "ignore-term"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, p.WaitReady(ctx, func(context.Context) error {
		b, err := os.ReadFile(p.LogPath())
		if err != nil || !bytes.Contains(b, []byte("helper ignore-term")) {
			return fmt.Errorf("SIGTERM not ignored yet")
		}
		return nil
	}))
	start := time.Now()
	err := p.Stop(syscall.SIGTERM, 300*time.Millisecond)
	require.ErrorContains(t, err, "did not stop within 300ms")
	require.Less(t, time.Since(start), 10*time.Second)
	select {
	case <-p.Done():
	default:
		t.Fatal("process still running after Stop")
	}
}

func TestProcessSIGKILLIsAStop(t *testing.T) {
	t.Parallel()
	p := testenv.StartT(t, helper(t, "ignore-term"))
	require.NoError(t, p.Stop(syscall.SIGKILL, time.Second))
}

func TestProcessExitBeforeReady(t *testing.T) {
	t.Parallel()
	p := testenv.StartT(t, helper(t, "fail"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := p.WaitReady(ctx, func(context.Context) error { return fmt.Errorf("never ready") })
	require.ErrorContains(t, err, "exited before it was ready")
	require.ErrorContains(t, err, "helper failing on purpose", "the log's end is in the error")
	require.NoError(t, ctx.Err(), "failed at the exit, not at the deadline")

	err = p.Wait(ctx)
	require.ErrorContains(t, err, "exit status 3")
	require.ErrorContains(t, err, p.LogPath())
	require.Equal(t, 3, p.State().ExitCode())
}

func TestProcessWaitReadyDeadline(t *testing.T) {
	t.Parallel()
	port := testenv.FreePortT(t)
	p := testenv.StartT(t, helper(t, "ignore-term"))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := p.WaitReady(ctx, testenv.TCPReady(port.Addr()))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "not ready")
}

func TestProcessWaitStopsOnContext(t *testing.T) {
	t.Parallel()
	port := testenv.FreePortT(t)
	p := testenv.StartT(t, helper(t, "serve", "HELPER_PORT="+port.String()))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, p.Wait(ctx), context.DeadlineExceeded)
	select {
	case <-p.Done():
	default:
		t.Fatal("Wait returned at the deadline but left the process running")
	}
}

func TestStartTKillsAtCleanup(t *testing.T) {
	t.Parallel()
	var p *testenv.Process
	t.Run("owner", func(t *testing.T) {
		p = testenv.StartT(t, helper(t, "ignore-term"))
	})
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the process outlived its test")
	}
}

func TestStartMissingBinary(t *testing.T) {
	t.Parallel()
	_, err := testenv.Start(testenv.Command{Name: "nothing", Bin: "/nonexistent/bin"})
	require.ErrorContains(t, err, "start nothing")
}

func TestFreePort(t *testing.T) {
	t.Parallel()
	port, err := testenv.FreePort()
	require.NoError(t, err)
	require.Positive(t, int(port))
	require.Equal(t, "127.0.0.1:"+strconv.Itoa(int(port)), port.Addr())
	ln, err := net.Listen("tcp", port.Addr())
	require.NoError(t, err, "the port can be bound")
	require.NoError(t, ln.Close())
}

// TestStartVersitygwKeepAlive checks that KeepAlive reaches versitygw:
// without it every answer says "Connection: close".
func TestStartVersitygwKeepAlive(t *testing.T) {
	t.Parallel()
	if _, err := testenv.VersitygwPath(); err != nil {
		testenv.S3(t) // skips, or fails in CI, with the install hint
	}
	closes := func(endpoint string) bool {
		t.Helper()
		resp, err := http.Get(endpoint + "/")
		require.NoError(t, err)
		resp.Body.Close()
		return resp.Close
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := testenv.StartVersitygw(ctx, testenv.Versitygw{Access: "keepalive", Secret: "keepalivesecret",
		Root: t.TempDir(), Log: filepath.Join(t.TempDir(), "versitygw.log"), KeepAlive: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Terminate() })
	require.False(t, closes(v.Config.Endpoint), "--keep-alive")
	require.True(t, closes(testenv.S3(t).Endpoint), "no --keep-alive")
	require.NoError(t, v.Terminate(), "versitygw exits cleanly on SIGTERM")
}
