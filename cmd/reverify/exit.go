package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes, as documented in the root command's help and
// docs/operations.md.
const (
	exitOK    = 0 // done
	exitError = 1 // the command failed (a setting, a service, a run that ended badly with --exit-status)
	exitUsage = 2 // the command line is wrong: an unknown command or flag, a flag value, the number of arguments
)

// usageError is a command line that cannot be run as typed; it exits 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usage error.
func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// asUsage marks err (if any) as a usage error.
func asUsage(err error) error {
	if err == nil || errors.As(err, new(usageError)) {
		return err
	}
	return usageError{err}
}

// exitCode is the process's exit status for err.
func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, new(usageError)):
		return exitUsage
	}
	return exitError
}

// classifyUsage makes cobra's own command line errors usage errors: flag
// parse errors (through the flag error function, which subcommands
// inherit) and wrong arguments (each command's Args), and lets a command
// with subcommands refuse an unknown one instead of printing help and
// exiting 0.
func classifyUsage(c *cobra.Command) {
	if c.Parent() == nil {
		c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return asUsage(err) })
	}
	if c.HasSubCommands() {
		c.Args = unknownSubcommand
		if c.Run == nil && c.RunE == nil {
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
	} else if args := c.Args; args != nil {
		c.Args = func(cmd *cobra.Command, a []string) error { return asUsage(args(cmd, a)) }
	}
	for _, sub := range c.Commands() {
		classifyUsage(sub)
	}
}

// unknownSubcommand refuses arguments to a command that only groups others.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageError{errors.New(msg)}
}
