package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Command is a process for Start to run.
type Command struct {
	Name string   // names the process in errors
	Bin  string   // the program
	Args []string // its arguments
	Env  []string // added to this process's own environment
	// Log is the file that receives the process's stdout and stderr
	// (created or truncated). When empty, both go to Output, or nowhere
	// when Output is nil too.
	Log    string
	Output io.Writer
	// Stdout, when set, receives standard output alone (a command's
	// result); Log or Output then get standard error only.
	Stdout io.Writer
}

// Process is a child process started by Start. Its methods are safe for
// concurrent use.
type Process struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // cmd.Wait's result, set before done is closed

	stopOnce sync.Once
	stopErr  error
}

// TerminateGrace is how long Terminate waits after SIGTERM before SIGKILL.
const TerminateGrace = 10 * time.Second

// Start runs c and returns at once; the process runs until it exits or is
// stopped. It is not tied to a context: stop it with Stop or Terminate.
func Start(c Command) (*Process, error) {
	cmd := exec.Command(c.Bin, c.Args...)
	cmd.Env = append(os.Environ(), c.Env...)
	var logFile *os.File
	if c.Log != "" {
		f, err := os.Create(c.Log)
		if err != nil {
			return nil, fmt.Errorf("%s log: %w", c.Name, err)
		}
		logFile = f
		cmd.Stdout, cmd.Stderr = f, f
	} else if c.Output != nil {
		cmd.Stdout, cmd.Stderr = c.Output, c.Output
		// A grandchild holding the output pipe must not keep Wait from
		// returning once the process itself has exited.
		cmd.WaitDelay = time.Second
	}
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
		cmd.WaitDelay = time.Second
	}
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("start %s: %w", c.Name, err)
	}
	p := &Process{name: c.Name, log: c.Log, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		if logFile != nil {
			logFile.Close()
		}
		close(p.done)
	}()
	return p, nil
}

// StartT starts c for a test: a failure to start fails t, and the process
// is killed (SIGKILL) when the test ends unless it was stopped before.
func StartT(t testing.TB, c Command) *Process {
	t.Helper()
	p, err := Start(c)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { _ = p.Stop(syscall.SIGKILL, TerminateGrace) })
	return p
}

// Name is the process's name from its Command.
func (p *Process) Name() string { return p.name }

// Pid is the process's ID, e.g. for reading /proc/PID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// LogPath is the Command's Log ("" when output went elsewhere).
func (p *Process) LogPath() string { return p.log }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// State is the exited process's state (exit code, rusage); nil while it
// runs.
func (p *Process) State() *os.ProcessState {
	select {
	case <-p.done:
		return p.cmd.ProcessState
	default:
		return nil
	}
}

// Wait waits for the process to exit on its own and returns its exit error
// (nil for status 0). If ctx ends first, the process is terminated and
// ctx's error returned.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.exitErr()
	case <-ctx.Done():
		_ = p.Terminate()
		return ctx.Err()
	}
}

// Terminate is Stop(SIGTERM, TerminateGrace).
func (p *Process) Terminate() error { return p.Stop(syscall.SIGTERM, TerminateGrace) }

// Stop sends sig to the process and waits up to grace for it to exit, then
// kills it (SIGKILL) and waits for that. It returns how the process ended:
// nil for exit status 0, and nil when sig is SIGKILL (dying of it is what
// was asked); an error for any other ending, including not stopping within
// grace. Only the first call acts; later calls return its result. A
// process that had already exited is not signalled.
func (p *Process) Stop(sig os.Signal, grace time.Duration) error {
	p.stopOnce.Do(func() { p.stopErr = p.stop(sig, grace) })
	return p.stopErr
}

func (p *Process) stop(sig os.Signal, grace time.Duration) error {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(sig)
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-p.done:
		case <-timer.C:
			_ = p.cmd.Process.Kill()
			<-p.done
			return fmt.Errorf("%s did not stop within %s after %v%s", p.name, grace, sig, p.logRef())
		}
	}
	if sig == syscall.SIGKILL {
		return nil
	}
	return p.exitErr()
}

func (p *Process) exitErr() error {
	if p.err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w%s", p.name, p.err, p.logRef())
}

func (p *Process) logRef() string {
	if p.log == "" {
		return ""
	}
	return " (see " + p.log + ")"
}

// WaitReady calls ready every 50 ms until it returns nil. It fails as soon
// as the process exits, and when ctx ends; either error carries the end of
// the process's log.
func (p *Process) WaitReady(ctx context.Context, ready func(context.Context) error) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		// An exited process is never ready, even if something else answers
		// on its port.
		select {
		case <-p.done:
			return p.exitedEarly()
		default:
		}
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return p.exitedEarly()
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w%s", p.name, errors.Join(err, ctx.Err()), p.logTail())
		case <-tick.C:
		}
	}
}

func (p *Process) exitedEarly() error {
	return fmt.Errorf("%s exited before it was ready: %v%s", p.name, p.cmd.ProcessState, p.logTail())
}

// TCPReady is a readiness check for WaitReady: addr accepts a connection.
func TCPReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// logTail is the last bytes of the log, for error messages.
func (p *Process) logTail() string {
	const max = 16 << 10
	if p.log == "" {
		return ""
	}
	f, err := os.Open(p.log)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		_, _ = f.Seek(-max, io.SeekEnd)
	}
	b, _ := io.ReadAll(io.LimitReader(f, max))
	if len(b) == 0 {
		return p.logRef()
	}
	return p.logRef() + ":\n" + string(b)
}

// Port is a TCP port number on 127.0.0.1.
type Port int

// Addr is "127.0.0.1:PORT".
func (p Port) Addr() string { return net.JoinHostPort("127.0.0.1", p.String()) }

func (p Port) String() string { return strconv.Itoa(int(p)) }

// FreePort returns a port of 127.0.0.1 that was free a moment ago: the
// system picks it for a listener that is closed again, so another process
// can take it before the caller binds it (callers that care retry).
func FreePort() (Port, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return Port(port), nil
}

// FreePortT is FreePort failing t on error.
func FreePortT(t testing.TB) Port {
	t.Helper()
	p, err := FreePort()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return p
}
