package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"reverify"
	"reverify/campaign"
	"reverify/storage/postgres"
	"reverify/worker/fleet"
)

// WriteEstimate prints a dry run's count of what would be sent.
func WriteEstimate(w io.Writer, e campaign.Estimate, notVerifiedSince time.Duration) {
	fmt.Fprintf(w, "dry run: %d objects match; %d would be sent to the liveness API (at least %d API calls, about %d billable answers)\n",
		e.Matched, e.Send, e.Send, e.Send)
	if e.Distinct < e.Send {
		fmt.Fprintf(w, "  about %d distinct images by ETag and size: each is analysed once per run, so about %d billable answers\n",
			e.Distinct, e.Distinct)
	}
	if e.Empty+e.Large > 0 {
		fmt.Fprintf(w, "  not sent: %d empty, %d over %d bytes\n", e.Empty, e.Large, e.MaxObjectBytes)
	}
	if e.Unknown > 0 {
		fmt.Fprintf(w, "  %d manifest entries counted without checking S3 (size unknown)\n", e.Unknown)
	}
	if e.Bytes > 0 {
		fmt.Fprintf(w, "  %s of images to fetch\n", HumanBytes(e.Bytes))
	}
	if e.Recent > 0 {
		fmt.Fprintf(w, "  %d objects skipped: scored within %s\n", e.Recent, notVerifiedSince)
	}
}

// HumanBytes prints n in binary units: 512 B, 1.5 KiB, 2.0 GiB.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Throughput is completions per second since the run was created (until it
// finished).
func Throughput(p postgres.Progress, now time.Time) float64 {
	if p.Run.StartedAt == nil || p.Done == 0 {
		return 0
	}
	end := now
	if p.Run.FinishedAt != nil {
		end = *p.Run.FinishedAt
	}
	secs := end.Sub(p.Run.CreatedAt).Seconds()
	if secs <= 0 {
		return 0
	}
	return float64(p.Done) / secs
}

// ETA is the time left at the last minute's rate, "-" when unknown.
func ETA(p postgres.Progress) string {
	if p.Pending > 0 && p.RecentPerSecond > 0 {
		return (time.Duration(float64(p.Pending)/p.RecentPerSecond) * time.Second).String()
	}
	return "-"
}

// WriteProgress prints a run: its settings, progress, throughput, scores and
// counts by status.
func WriteProgress(w io.Writer, p postgres.Progress, now time.Time) {
	r := p.Run
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "run\t%s\n", r.ID)
	fmt.Fprintf(tw, "name\t%s\n", r.Name)
	fmt.Fprintf(tw, "status\t%s\n", r.Status)
	fmt.Fprintf(tw, "priority\t%s\n", r.Priority)
	if len(r.Labels) > 0 {
		fmt.Fprintf(tw, "labels\t%s\n", Labels(r.Labels))
	}
	fmt.Fprintf(tw, "source\t%s\n", r.Source)
	fmt.Fprintf(tw, "queue\t%s\n", r.Queue)
	fmt.Fprintf(tw, "created\t%s\n", reverify.FormatTime(r.CreatedAt))
	fmt.Fprintf(tw, "started\t%s\n", when(r.StartedAt))
	fmt.Fprintf(tw, "finished\t%s\n", when(r.FinishedAt))
	pct := 0.0
	if r.Total > 0 {
		pct = 100 * float64(p.Done) / float64(r.Total)
	}
	fmt.Fprintf(tw, "progress\t%d/%d done (%.1f%%), %d pending\n", p.Done, r.Total, pct, p.Pending)
	rate := Throughput(p, now)
	if r.FinishedAt == nil {
		fmt.Fprintf(tw, "throughput\t%.1f images/s overall, %.1f/s over the last minute, ETA %s\n", rate, p.RecentPerSecond, ETA(p))
	} else {
		fmt.Fprintf(tw, "throughput\t%.1f images/s\n", rate)
	}
	fmt.Fprintf(tw, "api calls\t%d made, %d billable answers (with a transaction ID)\n", p.APICalls, p.BillableAnswers)
	if !r.Limits.IsZero() {
		fmt.Fprintf(tw, "caps\t%s\n", LimitsText(r.Limits))
	}
	th := r.Threshold
	if th.Count > 0 {
		fmt.Fprintf(tw, "fails when\t%d objects failed, or more than %g%% once %d are done\n", th.Count, th.Percent, th.MinDone)
	} else {
		fmt.Fprintf(tw, "fails when\tmore than %g%% failed once %d are done\n", th.Percent, th.MinDone)
	}
	if p.ByStatus[reverify.StatusScored] > 0 {
		fmt.Fprintf(tw, "scores\tmin %.2f, avg %.2f, max %.2f\n", p.ScoreMin, p.ScoreAvg, p.ScoreMax)
	}
	tw.Flush()
	fmt.Fprintln(w, "by status:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, s := range reverify.Statuses() {
		if n, ok := p.ByStatus[s]; ok {
			fmt.Fprintf(tw, "  %s\t%d\t\n", s, n)
		}
	}
	tw.Flush()
}

// Counts prints a run's finished objects by status: "scored=8 failed=1".
func Counts(by map[reverify.Status]int64) string {
	var parts []string
	for _, s := range reverify.Statuses() {
		if n, ok := by[s]; ok && s.Terminal() {
			parts = append(parts, fmt.Sprintf("%s=%d", s, n))
		}
	}
	return strings.Join(parts, " ")
}

// WriteHistory prints a run's status changes, oldest first.
func WriteHistory(w io.Writer, hist []postgres.StatusChange) {
	fmt.Fprintln(w, "history:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, h := range hist {
		from := h.From
		if from == "" {
			from = "(created)"
		}
		fmt.Fprintf(tw, "  %s\t%s -> %s\t%s\t%s\n", reverify.FormatTime(h.ChangedAt), from, h.To, h.Actor, h.Reason)
	}
	tw.Flush()
}

// RunLine is one row of a list of runs.
type RunLine struct {
	Run  reverify.Run
	Done int64
}

// WriteRuns prints runs one per line, newest first as given.
func WriteRuns(w io.Writer, runs []RunLine) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tPRIORITY\tCAPS\tDONE\tTOTAL\tCREATED\tNAME\tLABELS")
	for _, l := range runs {
		r := l.Run
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", r.ID, r.Status, r.Priority, Caps(r.Limits), l.Done, r.Total,
			r.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"), r.Name, Labels(r.Labels))
	}
	return tw.Flush()
}

// Caps is a run's own caps in a few words ("20/s, 4 in flight"; a
// schedule is named, not spelled out: runs show has it); "-" for none.
func Caps(l reverify.RunLimits) string {
	var parts []string
	switch {
	case !l.Schedule.IsZero():
		parts = append(parts, "scheduled rate")
	case l.MaxRate > 0:
		parts = append(parts, l.RateText()+"/s")
	}
	if l.MaxInFlight > 0 {
		parts = append(parts, fmt.Sprintf("%d in flight", l.MaxInFlight))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// Labels prints labels as k=v,k=v in key order.
func Labels(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

// WriteFleetStatus tells why runs may not be moving: open circuits or a
// spent daily budget.
func WriteFleetStatus(w io.Writer, st fleet.Status) {
	if st.AuthOpenFor > 0 {
		fmt.Fprintf(w, "fleet: the API refused the key (%s); calls paused for %s\n", st.AuthReason, st.AuthOpenFor.Round(time.Second))
	}
	if st.OutageOpenFor > 0 {
		fmt.Fprintf(w, "fleet: the API looks down; calls paused for %s\n", st.OutageOpenFor.Round(time.Second))
	}
	if r := FleetRateText(st); r != "" {
		fmt.Fprintf(w, "fleet: %s\n", r)
	}
	if sch := ScheduleText(st); sch != "" {
		fmt.Fprintf(w, "fleet: %s\n", sch)
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

// ScheduleText names the rate schedule the fleet follows ("" without
// one); FleetRateText says when its rate changes next.
func ScheduleText(st fleet.Status) string {
	if st.Schedule.IsZero() {
		return ""
	}
	return "rate schedule " + st.Schedule.String()
}

// FleetRateText says the fleet's API rate now and why: "adaptive API
// rate 143.2 calls/s (probing: …)", "fixed API rate 50 calls/s", "fixed
// API rate 10 calls/s (schedule); changes at …"; "" when it has none (a
// fixed rate of 0: no limit).
func FleetRateText(st fleet.Status) string {
	switch {
	case st.RateReason == fleet.RateSchedule && st.Rate == 0:
		return "no API calls now (schedule)" + nextChange(st)
	case st.Adaptive && st.RateReason == "":
		return "adaptive API rate, not started yet"
	case st.Adaptive:
		return fmt.Sprintf("adaptive API rate %.1f calls/s (%s)", st.Rate, rateReasonText(st.RateReason))
	case st.RateReason == fleet.RateSchedule:
		return fmt.Sprintf("fixed API rate %g calls/s (schedule)%s", st.Rate, nextChange(st))
	case st.Rate > 0:
		return fmt.Sprintf("fixed API rate %.0f calls/s", st.Rate)
	}
	return ""
}

// nextChange says when the schedule changes the rate next.
func nextChange(st fleet.Status) string {
	if st.RateChangesAt.IsZero() {
		return ""
	}
	return "; changes at " + st.RateChangesAt.In(st.Schedule.Zone()).Format("Mon 15:04 MST")
}

// LimitsText describes a run's own caps: "max 20 calls/s, max 10 in
// flight".
func LimitsText(l reverify.RunLimits) string {
	var parts []string
	switch {
	case !l.Schedule.IsZero() && l.MaxRate > 0:
		parts = append(parts, fmt.Sprintf("max rate by schedule %s, else %g calls/s", l.Schedule, l.MaxRate))
	case !l.Schedule.IsZero():
		parts = append(parts, "max rate by schedule "+l.Schedule.String())
	case l.MaxRate > 0:
		parts = append(parts, fmt.Sprintf("max %g calls/s", l.MaxRate))
	}
	if l.MaxInFlight > 0 {
		parts = append(parts, fmt.Sprintf("max %d in flight", l.MaxInFlight))
	}
	if len(parts) == 0 {
		return "no caps of its own (the fleet's limits alone)"
	}
	return strings.Join(parts, ", ")
}

// rateReasonText says why the adaptive rate is what it is.
func rateReasonText(r fleet.RateReason) string {
	switch r {
	case fleet.RateProbing:
		return "probing: growing to find the API's limit"
	case fleet.RateRecovering:
		return "recovering: growing back towards the rate last refused"
	case fleet.RateBackoff429:
		return "backed off after a 429"
	case fleet.RateBackoffTimeout:
		return "backed off after a call timed out"
	case fleet.RateBackoffLatency:
		return "backed off: the API's latency rose"
	case fleet.RateCeiling:
		return "at the --api-rate ceiling"
	case fleet.RateSchedule:
		return "held at the rate schedule's ceiling"
	case fleet.RateDemand:
		return "held near what the fleet asked for in the last second: less work than rate"
	}
	return string(r)
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return reverify.FormatTime(*t)
}
