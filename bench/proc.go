package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat
// (100 on every Linux this runs on).
const clockTicks = 100

// proc is a child process whose CPU and memory are read from /proc.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *os.File
	exited chan struct{}
	err    error
}

// startProc runs bin with args and env (added to the harness's own), its
// output going to logPath.
func startProc(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: out, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		out.Close()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// cpu returns the process's user+system CPU time so far.
func (p *proc) cpu() (time.Duration, error) {
	d, err := processCPU(p.pid(), false)
	if err != nil {
		return 0, fmt.Errorf("%s cpu: %w", p.name, err)
	}
	return d, nil
}

// memory returns the current and peak resident set size in bytes.
func (p *proc) memory() (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0, 0, fmt.Errorf("%s memory: %w", p.name, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			peak = n << 10
		}
	}
	return rss, peak, nil
}

// wait waits for the process to exit on its own.
func (p *proc) wait(ctx context.Context) error {
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("%s: %w (see %s)", p.name, p.err, p.out.Name())
		}
		return nil
	case <-ctx.Done():
		p.stop()
		return ctx.Err()
	}
}

// waitPeak waits like wait and returns the process's peak RSS, polled
// from VmHWM every 20 ms. The exit rusage's maxrss would not do: Linux
// folds the parent's RSS at fork into it (the harness holds a million keys
// by then).
func (p *proc) waitPeak(ctx context.Context) (int64, error) {
	var peak int64
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, hwm, err := p.memory(); err == nil {
			peak = max(peak, hwm)
		}
		select {
		case <-p.exited:
			return peak, p.wait(ctx)
		case <-ctx.Done():
			p.stop()
			return peak, ctx.Err()
		case <-tick.C:
		}
	}
}

// cpuUsed is the exit rusage's CPU time of the whole life.
func (p *proc) cpuUsed() time.Duration {
	ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stop sends SIGTERM, then SIGKILL after 10 s.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// machineCPU returns the whole machine's busy and total CPU ticks so far,
// summed over cores, from the first line of /proc/stat.
func machineCPU() (busy, total int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("machine cpu: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("machine cpu: unexpected /proc/stat line %q", line)
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, nil
}

// serverCPU samples the CPU of the PostgreSQL and Redis servers on this
// machine, found by command name, so a run can say what each image cost
// them as well. PostgreSQL's backends come and go; the CPU of those that
// exited is in the postmaster's cutime and cstime, so the sum over live
// processes of their own and their waited-for children's CPU never goes
// back. Servers on another machine read as zero.
type serverCPU struct {
	names map[int]string // pid → command name, read once per pid
}

func newServerCPU() *serverCPU { return &serverCPU{names: map[int]string{}} }

// sample returns the CPU the PostgreSQL and Redis servers have used so far.
func (s *serverCPU) sample() (pg, redis time.Duration, err error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, fmt.Errorf("server cpu: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		name, seen := s.names[pid]
		if !seen {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			name = strings.TrimSpace(string(b))
			s.names[pid] = name
		}
		if name != "postgres" && name != "redis-server" {
			continue
		}
		used, err := processCPU(pid, true)
		if err != nil {
			continue // exited since the listing
		}
		if name == "postgres" {
			pg += used
		} else {
			redis += used
		}
	}
	return pg, redis, nil
}

// processCPU reads a process's user and system CPU from /proc, with its
// waited-for children's when children is set.
func processCPU(pid int, children bool) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name: utime and stime are
	// fields 14 and 15 of the whole line, cutime and cstime 16 and 17.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, fmt.Errorf("pid %d: short /proc stat", pid)
	}
	last := 12
	if children {
		last = 14
	}
	var ticks int64
	for _, v := range f[11 : last+1] {
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
