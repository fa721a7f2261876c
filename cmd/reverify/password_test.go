package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"
)

// TestHashPasswordPromptsWithoutEcho: on a terminal, hash-password asks
// twice and the terminal does not echo what is typed; from a pipe it reads
// a line.
func TestHashPasswordPromptsWithoutEcho(t *testing.T) {
	t.Parallel()
	ptmx, tty, err := pty.Open()
	require.NoError(t, err)
	t.Cleanup(func() { ptmx.Close(); tty.Close() })

	echoed := make(chan string, 1)
	go func() {
		var seen bytes.Buffer
		_, _ = io.Copy(&seen, ptmx) // what the terminal shows, until it closes
		echoed <- seen.String()
	}()
	type result struct {
		out, stderr string
		code        int
	}
	done := make(chan result, 1)
	go func() {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"dashboard", "hash-password"}, tty, &out, &errb)
		done <- result{out.String(), errb.String(), code}
	}()
	// Type both lines once the first prompt has switched echo off.
	require.Eventually(t, func() bool { return echoOff(t, tty) }, 5*time.Second, 10*time.Millisecond)
	_, err = ptmx.Write([]byte("correct horse\rcorrect horse\r"))
	require.NoError(t, err)
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("hash-password did not finish")
	}
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "Password: \nAgain: \n", r.stderr)
	hash := strings.TrimSpace(r.out)
	require.NoError(t, bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse")))
	tty.Close()
	select {
	case seen := <-echoed:
		require.NotContains(t, seen, "correct horse", "the terminal did not echo the password")
	case <-time.After(5 * time.Second):
		ptmx.Close()
	}

	out, stderr, code := cli(t, context.Background(), "battery staple\n", "dashboard", "hash-password")
	require.Equal(t, 0, code, stderr)
	require.NoError(t, bcrypt.CompareHashAndPassword([]byte(strings.TrimSpace(out)), []byte("battery staple")))
	require.Empty(t, stderr, "no prompt on a pipe")
}

// echoOff reports whether the terminal's echo is off, as term.ReadPassword
// sets it while it reads.
func echoOff(t *testing.T, tty *os.File) bool {
	t.Helper()
	st, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	require.NoError(t, err)
	return st.Lflag&unix.ECHO == 0
}
