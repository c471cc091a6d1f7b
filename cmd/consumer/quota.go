package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/zoomprov/consumer/internal/app"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/internal/topology"
)

// quotaCommand prints the shared quota state: the gates, each live
// replica's share of the per-second budget, and the backlog per action.
func quotaCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
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
