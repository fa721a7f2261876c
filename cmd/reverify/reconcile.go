package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"reverify/tasks"
	"reverify/worker/fleet"
)

func (a *app) runsReconcileCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "reconcile RUN_ID",
		Short: "Re-enqueue every object of the run that has no result yet (after Redis lost its data)",
		Long: `reconcile puts back the task of every object of a run that has no terminal
result. Tasks Redis still holds are not duplicated (task IDs collide), so it is
safe at any time. Workers run the same check for all active runs every
--reconcile-every.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			store, queue, closeAll, err := a.openLedgerAndQueue(ctx, 4)
			if err != nil {
				return err
			}
			defer closeAll()
			run, err := store.Run(ctx, args[0])
			if err != nil {
				return err
			}
			s, err := tasks.NewProducer(store, queue).Requeue(ctx, run)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "run %s: %d pending objects, %d tasks re-enqueued, %d already queued\n",
				run.ID, s.Seen, s.Enqueued, s.Duplicate)
			return nil
		},
	}
}

// writeFleetStatus tells why a run may not be moving: open circuits or a
// spent daily budget. It stays silent when Redis cannot be read.
func (a *app) writeFleetStatus(ctx context.Context, w io.Writer) {
	opt, err := a.cfg.redis()
	if err != nil {
		return
	}
	rdb, err := redisClient(opt)
	if err != nil {
		return
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := fleet.New(rdb, fleet.Config{}).Status(ctx)
	if err != nil {
		return
	}
	if st.AuthOpenFor > 0 {
		fmt.Fprintf(w, "fleet: the API refused the key (%s); calls paused for %s\n", st.AuthReason, st.AuthOpenFor.Round(time.Second))
	}
	if st.OutageOpenFor > 0 {
		fmt.Fprintf(w, "fleet: the API looks down; calls paused for %s\n", st.OutageOpenFor.Round(time.Second))
	}
	switch {
	case st.BudgetSpent():
		fmt.Fprintf(w, "fleet: daily API budget spent (%d/%d calls); tasks wait for the next UTC day, in %s\n",
			st.BudgetUsed, st.DailyBudget, st.BudgetResets.Round(time.Minute))
	case st.DailyBudget > 0:
		fmt.Fprintf(w, "fleet: %d of %d API calls of today's budget used (UTC)\n", st.BudgetUsed, st.DailyBudget)
	case st.BudgetUsed > 0:
		fmt.Fprintf(w, "fleet: %d API calls today (UTC)\n", st.BudgetUsed)
	}
}
