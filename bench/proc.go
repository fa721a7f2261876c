package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"reverify/internal/testenv"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat
// (100 on every Linux this runs on).
const clockTicks = 100

// procCPU returns p's user+system CPU time so far.
func procCPU(p *testenv.Process) (time.Duration, error) {
	d, err := processCPU(p.Pid(), false)
	if err != nil {
		return 0, fmt.Errorf("%s cpu: %w", p.Name(), err)
	}
	return d, nil
}

// procMemory returns p's current and peak resident set size in bytes.
func procMemory(p *testenv.Process) (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, 0, fmt.Errorf("%s memory: %w", p.Name(), err)
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

// waitPeak waits like p.Wait and returns p's peak RSS, polled from VmHWM
// every 20 ms. The exit rusage's maxrss would not do: Linux folds the
// parent's RSS at fork into it (the harness holds a million keys by then).
func waitPeak(ctx context.Context, p *testenv.Process) (int64, error) {
	var peak int64
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, hwm, err := procMemory(p); err == nil {
			peak = max(peak, hwm)
		}
		select {
		case <-p.Done():
			return peak, p.Wait(ctx)
		case <-ctx.Done():
			_ = p.Terminate()
			return peak, ctx.Err()
		case <-tick.C:
		}
	}
}

// cpuUsed is the exit rusage's CPU time of p's whole life.
func cpuUsed(p *testenv.Process) time.Duration {
	st := p.State()
	if st == nil {
		return 0
	}
	ru, ok := st.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
