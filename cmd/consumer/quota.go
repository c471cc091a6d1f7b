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
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/internal/topology"
)

// quotaCommand prints the shared quota state: the gates, each live
// replica's share of the per-second budget, and the backlog per action.
func quotaCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	if len(args) > 0 && args[0] == "open" {
		return quotaOpenCommand(ctx, args[1:], getenv, stdout, stderr)
	}
	fs := newFlagSet("quota")
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	cfg, err := parseSettings(fs, args, getenv, natsSettings())
	if err != nil {
		return flagError(fs, stderr, err)
	}
	nc, js, err := app.Connect(cfg, nopLogger())
	if err != nil {
		return err
	}
	defer nc.Close()
	defer func() { err = explainRefusal(nc, err) }()
	topo := cfg.Topology()
	now := time.Now()
	// ACTIONS is not a setting of this command: show every action's
	// backlog.
	actions := cfg.Actions
	if len(actions) == 0 {
		actions = topology.Actions()
	}
	st, err := quota.Read(ctx, js, topo, actions, now)
	if err != nil {
		return fmt.Errorf("quota: %w (is the service provisioned on this server?)", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GATE\tSTATE\tUNTIL\tCLOSED BY\tREASON")
	if len(st.Gates) == 0 {
		fmt.Fprintln(tw, "(none)\topen\t\t\t")
	}
	for _, g := range st.Gates {
		state := "open"
		if now.Before(g.Until) {
			state = fmt.Sprintf("closed (%s left)", g.Until.Sub(now).Round(time.Second))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.Scope, state, g.Until.UTC().Format(time.RFC3339), g.ClosedBy, g.Reason)
	}
	fmt.Fprintln(tw, "\t\t\t\t")
	fmt.Fprintln(tw, "REPLICA\tSHARE/S\t\t\t")
	if len(st.Replicas) == 0 {
		fmt.Fprintln(tw, "(none live)\t\t\t\t")
	}
	for _, r := range st.Replicas {
		fmt.Fprintf(tw, "%s\t%g\t\t\t\n", r.ID, r.Share)
	}
	fmt.Fprintln(tw, "\t\t\t\t")
	fmt.Fprintln(tw, "ACTION\tWAITING\tDELIVERED, NOT SETTLED\tCONSUMER\t")
	for _, b := range st.Backlog {
		state := "active"
		if b.Paused {
			state = "paused"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t\n", b.Action, b.Pending, b.AckPending, state)
	}
	return tw.Flush()
}

// quotaOpenCommand opens a closed quota gate before its reset, for every
// replica, and records who did it and why.
func quotaOpenCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("quota open")
	reason := fs.String("reason", "", "why the gate is opened (required; recorded in the audit event)")
	actor := fs.String("actor", audit.DefaultActor(), "who opens it (recorded in the audit event)")
	scope, rest := "", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		scope, rest = args[0], args[1:]
	}
	cfg, err := parseSettings(fs, rest, getenv, natsSettings())
	if err != nil {
		return flagError(fs, stderr, err)
	}
	switch {
	case scope != "create" && scope != quota.ScopeAll:
		return usageError("quota open: want a scope, create or all, as in: consumer quota open create --reason TEXT")
	case fs.NArg() > 0:
		return usageError("quota open: unexpected argument %q", fs.Arg(0))
	case strings.TrimSpace(*reason) == "":
		return usageError("quota open: --reason is required")
	}
	nc, js, err := app.Connect(cfg, nopLogger())
	if err != nil {
		return err
	}
	defer nc.Close()
	defer func() { err = explainRefusal(nc, err) }()
	gt, _, err := quota.Open(ctx, js, cfg.Topology(), scope, *actor, *reason, time.Now())
	switch {
	case errors.Is(err, quota.ErrGateOpen):
		return &exitError{code: 1, msg: "quota open: the " + scope + " gate is open; nothing to do"}
	case errors.Is(err, jetstream.ErrBucketNotFound):
		return fmt.Errorf("%w (is the service provisioned on this server?)", err)
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "opened the %s gate (it was closed until %s by %s); recorded as %s's action\n", scope, gt.Until.UTC().Format(time.RFC3339), gt.ClosedBy, *actor)
	return nil
}
