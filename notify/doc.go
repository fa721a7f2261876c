// Package notify tells webhooks what runs and the fleet do: a run needs
// confirmation, started, completed, failed or was cancelled; the fleet
// stopped calling the API (a circuit opened) or spent its daily budget.
//
// Events are an outbox in the ledger. A run's are recorded with its
// status changes, in the same transaction (a trigger), and the fleet's by
// a Recorder, which never makes its caller wait. A Sender, run by one
// worker of the fleet at a time, turns each event into one delivery per
// webhook (the run's, given with `enqueue --notify`, and the fleet's,
// REVERIFY_NOTIFY) and sends them: reverify's JSON document signed with
// HMAC-SHA256 (Reverify-Signature: t=<unix>,v1=<hex>, as Stripe signs),
// or a Slack message. Failed attempts are retried with backoff and every
// attempt is recorded, so delivery survives restarts and never holds up
// the pipeline.
package notify
