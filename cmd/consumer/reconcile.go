package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/zoomprov/consumer/internal/app"
	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/ledger"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/internal/reconcile"
	"github.com/zoomprov/consumer/internal/zoom"
)

// reconcileJoinTimeout bounds the wait for a share of ZOOM_RATE_LIMIT:
// the replicas acknowledge a newcomer within a lease renewal or two, and
// a replica that died leaving a fresh lease holds it back for about 7 s.
const reconcileJoinTimeout = 30 * time.Second

// reconcileSettings are the NATS and topology settings, and Zoom's: the
// command calls Zoom.
func reconcileSettings() []setting {
	out := natsSettings()
	for _, s := range settings() {
		if strings.HasPrefix(s.env, "ZOOM_") {
			out = append(out, s)
		}
	}
	return out
}

// reconcileOutput is what `consumer reconcile --json` prints: the report,
// and with --apply the ids published and the drift left alone.
type reconcileOutput struct {
	reconcile.Report
	Published *[]string            `json:"published,omitempty"`
	Skipped   *[]reconcile.Skipped `json:"skipped,omitempty"`
}

// reconcileCommand lists every Zoom user, compares Zoom with the ledger,
// prints the drift and the plan, and with --apply publishes the plan.
func reconcileCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("reconcile")
	asJSON := fs.Bool("json", false, `print one JSON object: scanned, managed, in_sync, drift, unmanaged (and published, skipped with --apply)`)
	apply := fs.Bool("apply", false, "publish one corrective request per drift into the request stream (Nats-Msg-Id reconcile-...)")
	actor := fs.String("actor", audit.DefaultActor(), "with --apply: who publishes the corrections (recorded in the audit event)")
	reason := fs.String("reason", "correct the drift consumer reconcile found", "with --apply: why (recorded in the audit event)")
	cfg, err := parseSettings(fs, args, getenv, reconcileSettings())
	if err != nil {
		return flagError(fs, stderr, err)
	}
	if err := zoomCredentials(cfg); err != nil {
		return flagError(fs, stderr, err)
	}
	if err := natsTLSPair(cfg); err != nil {
		return flagError(fs, stderr, err)
	}
	if *apply && (strings.TrimSpace(*actor) == "" || strings.TrimSpace(*reason) == "") {
		return usageError("reconcile: --actor and --reason must not be empty")
	}
	nc, js, err := app.Connect(cfg, nopLogger())
	if err != nil {
		return err
	}
	defer nc.Close()
	defer func() { err = explainRefusal(nc, err) }()
	topo := cfg.Topology()
	l, err := ledger.Open(ctx, js, topo)
	if errors.Is(err, ledger.ErrNoLedger) {
		return &exitError{code: 1, msg: fmt.Sprintf("reconcile: the ledger's bucket %s does not exist on this server (the service creates it at start-up with PROVISION_STREAMS=true; else create it from deploy/nats)", topo.LedgerBucket)}
	}
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}

	// The listing's calls count in the account's budget: this command
	// takes a share of ZOOM_RATE_LIMIT beside the running replicas, through
	// a lease of its own in the quota bucket, for as long as it scans.
	quotaKV, err := js.KeyValue(ctx, topo.QuotaBucket)
	if err != nil {
		return fmt.Errorf("reconcile: bucket %s: %w (is the service provisioned on this server?)", topo.QuotaBucket, err)
	}
	pacer := quota.NewPacer(cfg.ZoomRateLimit, quota.NewGates(nil))
	leaseID := reconcile.NewReplicaID("reconcile-")
	coord := quota.NewCoordinator(quotaKV, pacer, quota.CoordinatorConfig{ReplicaID: leaseID, Conn: nc, Log: zerolog.Nop()})
	cctx, stopCoord := context.WithCancel(ctx)
	coordDone := make(chan struct{})
	go func() { defer close(coordDone); coord.Run(cctx) }()
	// The lease goes as the command ends, and the replicas take its share
	// back at once.
	defer func() { stopCoord(); <-coordDone }()
	if err := awaitShare(ctx, pacer); err != nil {
		return err
	}
	share, replicas, _ := pacer.Current()

	zc, err := zoom.New(zoom.Config{
		AccountID: cfg.ZoomAccountID, ClientID: cfg.ZoomClientID, ClientSecret: cfg.ZoomClientSecret,
		BaseURL: cfg.ZoomAPIURL, TokenURL: cfg.ZoomTokenURL, Timeout: cfg.ZoomTimeout, Limiter: pacer,
	})
	if err != nil {
		return err
	}
	defer zc.CloseIdleConnections()

	tty := isTerminal(stderr)
	rep, err := reconcile.Scan(ctx, reconcile.Config{
		Zoom: zc, Ledger: l, Limiter: pacer, SlowDown: pacer.SlowDown,
		Progress: func(p reconcile.Progress) {
			if tty {
				fmt.Fprintf(stderr, "\rlisting Zoom's %s users: %d listed, %d calls", p.Status, p.Listed, p.Calls)
			}
		},
	})
	if tty {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return reconcileFailed(ctx, err)
	}
	// No more Zoom calls: give the share back (the coordinator waits out
	// the last call's second first).
	stopCoord()
	<-coordDone

	out := reconcileOutput{Report: rep}
	var cs []reconcile.Correction
	var skipped []reconcile.Skipped
	runID := reconcile.NewRunID(time.Now())
	cs, skipped = reconcile.Plan(topo, runID, rep.Drift)
	var published []string
	var pubErr error
	if *apply {
		published, pubErr = reconcile.Publish(ctx, js, topo, cs)
		if len(published) > 0 {
			counts := map[string]int{}
			for k, n := range rep.Counts {
				counts[string(k)] = n
			}
			if _, err := audit.Publish(ctx, js, topo, audit.Event{Kind: "drift", Verb: "applied", Subject: runID, Actor: *actor, Reason: *reason,
				Data: map[string]any{"run": runID, "published": published, "skipped": len(skipped), "counts": counts,
					"scanned": rep.Scanned, "managed": rep.Managed, "in_sync": rep.InSync}}, time.Now()); err != nil && pubErr == nil {
				pubErr = fmt.Errorf("the corrections are published, but recording it failed: %w", err)
			}
		}
		out.Published, out.Skipped = &published, &skipped
		if skipped == nil {
			out.Skipped = &[]reconcile.Skipped{}
		}
	}
	if *asJSON {
		if err := writeJSON(stdout, out); err != nil {
			return err
		}
	} else if err := printReconcile(stdout, rep, cs, skipped, reconcileHint{apply: *apply, args: args, published: published,
		share: share, replicas: replicas, budget: cfg.ZoomRateLimit, lease: leaseID}); err != nil {
		return err
	}
	if pubErr != nil {
		return fmt.Errorf("reconcile --apply: published %d of %d corrective requests: %w", len(published), len(cs), pubErr)
	}
	return nil
}

// awaitShare waits until the pacer may call: the other replicas counted
// this command in, and it has its share of ZOOM_RATE_LIMIT.
func awaitShare(ctx context.Context, pacer *quota.Pacer) error {
	if pacer.Budget() <= 0 {
		return nil // ZOOM_RATE_LIMIT=0: no client-side pacing
	}
	deadline := time.NewTimer(reconcileJoinTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, _, pace := pacer.Current(); pace > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return &exitError{code: 1, msg: "reconcile: interrupted"}
		case <-deadline.C:
			return &exitError{code: 1, msg: fmt.Sprintf("reconcile: no share of ZOOM_RATE_LIMIT within %v: the replicas did not count this command in through the quota bucket's leases (may this NATS user write $KV.zoom_quota.replica.>?)", reconcileJoinTimeout)}
		case <-tick.C:
		}
	}
}

// reconcileFailed words a failed scan for the command line.
func reconcileFailed(ctx context.Context, err error) error {
	var gate *quota.GateClosedError
	switch {
	case ctx.Err() != nil:
		return &exitError{code: 1, msg: "reconcile: interrupted"}
	case errors.As(err, &gate):
		return &exitError{code: 1, msg: fmt.Sprintf("reconcile: the %s quota gate is closed until %s: Zoom refuses the account's calls until then (consumer quota)", gate.Gate.Scope, gate.Gate.Until.UTC().Format(time.RFC3339))}
	}
	return err
}

// reconcileHint is what the text output says around the tables.
type reconcileHint struct {
	apply     bool
	args      []string
	published []string
	// share of budget, with replicas counted (this command among them).
	share, budget float64
	replicas      int
	lease         string
}

// printReconcile prints a summary line, a table per kind of drift and of
// the unmanaged users, and what to run (or what was published).
func printReconcile(w io.Writer, rep reconcile.Report, cs []reconcile.Correction, skipped []reconcile.Skipped, h reconcileHint) error {
	counts := make([]string, 0, len(reconcile.Kinds))
	for _, k := range reconcile.Kinds {
		counts = append(counts, fmt.Sprintf("%s %d", k, rep.Counts[k]))
	}
	fmt.Fprintf(w, "scanned %s in Zoom: %d managed, %d in sync, %d drift (%s), %d unmanaged\n",
		plural(rep.Scanned, "user"), rep.Managed, rep.InSync, len(rep.Drift), strings.Join(counts, ", "), rep.Counts[reconcile.KindUnmanaged])
	pace := "no client-side pacing (ZOOM_RATE_LIMIT=0)"
	switch {
	case h.budget > 0 && h.replicas <= 1:
		pace = fmt.Sprintf("at %g/s, all of ZOOM_RATE_LIMIT=%g: no replica is running (lease %s)", h.share, h.budget, h.lease)
	case h.budget > 0:
		pace = fmt.Sprintf("at %g/s, a share of ZOOM_RATE_LIMIT=%g with %s (lease %s)", h.share, h.budget, plural(h.replicas-1, "replica"), h.lease)
	}
	fmt.Fprintf(w, "listed in %s, %s; %s\n", rep.Finished.Sub(rep.Started).Round(time.Millisecond), plural(rep.Calls, "call"), pace)
	if rep.Changed > 0 {
		fmt.Fprintf(w, "%s changed in the ledger during the scan: compared again next time\n", plural(rep.Changed, "user"))
	}

	fix := map[string]string{} // kind and email → what repairs it
	for _, c := range cs {
		fix[string(c.Kind)+"\x00"+c.Email] = c.Action
	}
	for _, s := range skipped {
		fix[string(s.Kind)+"\x00"+s.Email] = "none: " + s.Reason
	}
	titles := map[reconcile.Kind]string{
		reconcile.KindMissing: "expected in Zoom, absent: the last creation again",
		reconcile.KindStatus:  "active (or invited) in the ledger and inactive in Zoom, or the reverse",
		reconcile.KindPresent: "deleted by the service, present in Zoom: the last delete again",
		reconcile.KindFields:  "a name or the type the service set differs in Zoom: an update with the expected values",
	}
	for _, k := range reconcile.Kinds {
		var rows []reconcile.Drift
		for _, d := range rep.Drift {
			if d.Kind == k {
				rows = append(rows, d)
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s (%d): %s\n", k, len(rows), titles[k])
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "EMAIL\tEXPECTED\tACTUAL\tZOOM ID\tCORRECTION")
		for _, d := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Email, cell(describe(d.Expected), 50), cell(describe(d.Actual), 50),
				cell(d.ZoomUserID, 30), cell(fix[string(d.Kind)+"\x00"+d.Email], 80))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(rep.Unmanaged) > 0 {
		fmt.Fprintf(w, "\nunmanaged (%d): in Zoom, and no request about them ever succeeded; never acted on\n", len(rep.Unmanaged))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "EMAIL\tSTATUS\tZOOM ID")
		for _, u := range rep.Unmanaged {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Email, u.Status, cell(u.ZoomUserID, 30))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w)
	switch {
	case len(rep.Drift) == 0:
		fmt.Fprintln(w, "no drift: nothing to correct")
	case h.apply:
		fmt.Fprintf(w, "published %s into the request stream (per-user order, quotas and the guard apply):\n", plural(len(h.published), "corrective request"))
		for _, id := range h.published {
			fmt.Fprintf(w, "  %s\n", id)
		}
		fmt.Fprintln(w, "their results: consumer user show EMAIL; then consumer reconcile again")
	case len(cs) > 0:
		fmt.Fprintf(w, "to publish %s: %s\n", plural(len(cs), "corrective request"), applyCommand(h.args))
	}
	if len(skipped) > 0 {
		fmt.Fprintf(w, "%d drift cannot be repaired by a request (CORRECTION says why)\n", len(skipped))
	}
	return nil
}

// describe prints an Expected or Actual value: a state, or the fields
// with their values.
func describe(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Sprint(v)
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		if s, ok := m[k].(string); ok {
			parts[i] = fmt.Sprintf("%s=%q", k, s)
		} else {
			parts[i] = fmt.Sprintf("%s=%v", k, m[k])
		}
	}
	return strings.Join(parts, " ")
}

// applyCommand is the command line that publishes the plan: this one's
// arguments, without --json, with --apply.
func applyCommand(args []string) string {
	parts := []string{"consumer", "reconcile"}
	for _, a := range args {
		if a == "--json" || a == "-json" || strings.HasPrefix(a, "--json=") || strings.HasPrefix(a, "-json=") {
			continue
		}
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(append(parts, "--apply"), " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=.,:/@%+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
