package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/app"
	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/guard"
	"github.com/zoomprov/consumer/internal/topology"
)

// guardCommand shows the guard against mass deprovisioning, and releases
// or rejects the requests it holds.
func guardCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError("guard: want a subcommand: status, release or reject")
	}
	switch args[0] {
	case "status":
		return guardStatusCommand(ctx, args[1:], getenv, stdout, stderr)
	case "release", "reject":
		return guardDecideCommand(ctx, args[0], args[1:], getenv, stdout, stderr)
	}
	return usageError("guard: unknown subcommand %q (want status, release or reject)", args[0])
}

// guardSettings are the NATS and topology settings, and the guard's own
// (shown when no replica has written the guard yet).
func guardSettings() []setting {
	out := natsSettings()
	for _, s := range settings() {
		if s.env == "GUARD_LIMIT" || s.env == "GUARD_WINDOW" {
			out = append(out, s)
		}
	}
	return out
}

// GuardStatus is what `consumer guard status --json` prints.
type GuardStatus struct {
	State        string          `json:"state"` // open or tripped
	Limit        int             `json:"limit"`
	Window       string          `json:"window"`
	Used         int             `json:"used"`
	TrippedAt    *time.Time      `json:"tripped_at"`
	Held         int             `json:"held"`
	ApprovedUpTo uint64          `json:"approved_up_to"`
	RejectedUpTo uint64          `json:"rejected_up_to"`
	Decision     *guard.Decision `json:"last_decision,omitempty"`
}

func guardStatusCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("guard status")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	cfg, err := parseSettings(fs, args, getenv, guardSettings())
	if err != nil {
		return flagError(fs, stderr, err)
	}
	if fs.NArg() > 0 {
		return usageError("guard status: unexpected argument %q", fs.Arg(0))
	}
	nc, js, err := app.Connect(cfg, nopLogger())
	if err != nil {
		return err
	}
	defer nc.Close()
	defer func() { err = explainRefusal(nc, err) }()
	topo := cfg.Topology()
	st, err := readGuard(ctx, js, topo)
	if err != nil {
		return err
	}
	now := time.Now()
	out := GuardStatus{State: "open", Limit: st.Limit, Window: st.Window.String(), ApprovedUpTo: st.ApprovedUpTo,
		RejectedUpTo: st.RejectedUpTo, Decision: st.Decision, Held: heldRequests(ctx, js, topo)}
	if st.Limit == 0 && st.Window == 0 { // no replica wrote it yet: the settings here
		out.Limit, out.Window = cfg.GuardLimit, cfg.GuardWindow.String()
		st.Window = cfg.GuardWindow
	}
	out.Used = st.Used(now)
	if st.Tripped {
		out.State = "tripped"
		at := st.TrippedAt.UTC()
		out.TrippedAt = &at
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tLIMIT\tWINDOW\tUSED\tTRIPPED AT\tHELD")
	tripped := "-"
	if out.TrippedAt != nil {
		tripped = out.TrippedAt.Format(time.RFC3339)
	}
	fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%d\n", out.State, out.Limit, out.Window, out.Used, tripped, out.Held)
	if err := tw.Flush(); err != nil {
		return err
	}
	if d := out.Decision; d != nil {
		fmt.Fprintf(stdout, "last decision: %s by %s at %s up to sequence %d: %s\n", d.Verb, d.Actor, d.At.UTC().Format(time.RFC3339), d.UpTo, d.Reason)
	}
	if out.State == "tripped" {
		fmt.Fprintln(stdout, "decide with: consumer guard release --reason TEXT   or   consumer guard reject --reason TEXT")
	}
	return nil
}

func guardDecideCommand(ctx context.Context, verb string, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("guard " + verb)
	reason := fs.String("reason", "", "why (required; recorded in the audit event)")
	actor := fs.String("actor", audit.DefaultActor(), "who decides (recorded in the audit event)")
	cfg, err := parseSettings(fs, args, getenv, natsSettings())
	if err != nil {
		return flagError(fs, stderr, err)
	}
	switch {
	case fs.NArg() > 0:
		return usageError("guard %s: unexpected argument %q", verb, fs.Arg(0))
	case strings.TrimSpace(*reason) == "":
		return usageError("guard %s: --reason is required", verb)
	}
	nc, js, err := app.Connect(cfg, nopLogger())
	if err != nil {
		return err
	}
	defer nc.Close()
	defer func() { err = explainRefusal(nc, err) }()
	decide := guard.Release
	if verb == "reject" {
		decide = guard.Reject
	}
	res, err := decide(ctx, js, cfg.Topology(), *actor, *reason, time.Now())
	switch {
	case errors.Is(err, guard.ErrOpen):
		return &exitError{code: 1, msg: "guard " + verb + ": the guard is open; nothing is held"}
	case errors.Is(err, jetstream.ErrBucketNotFound):
		return fmt.Errorf("%w (is the service provisioned on this server?)", err)
	case err != nil:
		return err
	}
	what := "go to Zoom without counting against the limit"
	if verb == "reject" {
		what = "are dead-lettered (guard_rejected) without a Zoom call"
	}
	fmt.Fprintf(stdout, "guard %s: the destructive requests stored up to sequence %d (%d waiting) %s; the guard is open and its window starts afresh\n",
		res.Verb, res.UpTo, res.Held, what)
	return nil
}

// readGuard reads the guard from the quota bucket.
func readGuard(ctx context.Context, js jetstream.JetStream, topo topology.Topology) (guard.State, error) {
	st, err := guard.Load(ctx, js, topo)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return st, fmt.Errorf("%w (is the service provisioned on this server?)", err)
	}
	return st, err
}

// heldRequests is how many destructive requests wait in the request
// stream (originals and parked copies): every one stored is unfinished.
// 0 when the stream cannot be read.
func heldRequests(ctx context.Context, js jetstream.JetStream, topo topology.Topology) int {
	return guard.Waiting(ctx, js, topo)
}
