package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"reverify/storage/postgres"
)

// completionTimeout bounds how long completing a run ID may ask the
// ledger: a shell waits for the answer.
const completionTimeout = 2 * time.Second

// completeRunID completes a run ID from the newest runs in the ledger,
// each described by its status and name. It quietly offers nothing when
// the ledger cannot be reached.
func (a *app) completeRunID(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()
	store, err := a.openStore(ctx, 1)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer store.Close()
	runs, err := store.Runs(ctx, postgres.RunFilter{Limit: 50})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, r := range runs {
		if strings.HasPrefix(r.ID, toComplete) {
			out = append(out, cobra.CompletionWithDesc(r.ID, string(r.Status)+" "+r.Name))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// runIDArg completes the first argument, a run ID, and nothing after it.
func (a *app) runIDArg(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return a.completeRunID(cmd, args, toComplete)
}
