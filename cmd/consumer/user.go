package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/app"
	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/ledger"
	"github.com/zoomprov/consumer/internal/topology"
)

const userUsage = `usage: consumer user <command> [flags]

commands:
  show EMAIL      what happened to one person: state, Zoom id, every finished request (--json for scripts)
  forget EMAIL    erase one person: the ledger entry, their result events and dead letters (--reason, audited)
  reindex         rebuild the ledger from the result stream

The address is matched case-insensitively. Run 'consumer user <command> -h' for a command's flags.`

// userCommand reads, erases and rebuilds the per-user ledger.
func userCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, userUsage)
		return &exitError{code: 2}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "show":
		return userShow(ctx, rest, getenv, stdout, stderr)
	case "forget":
		return userForget(ctx, rest, getenv, stdout, stderr)
	case "reindex":
		return userReindex(ctx, rest, getenv, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, userUsage)
		return nil
	default:
		return usageError("user: unknown command %q (want show, forget or reindex)", cmd)
	}
}

// userCmd is what the user subcommands share: their flag set and, once
// started, the connection.
type userCmd struct {
	name  string
	fs    *flag.FlagSet
	email string
	js    jetstream.JetStream
	nc    *nats.Conn
	topo  topology.Topology
}

// start parses args (the address, when the command takes one, before or
// after the flags), runs checks, and connects; on success the caller
// defers c.nc.Close.
func (c *userCmd) start(args []string, getenv func(string) string, stderr io.Writer, takesEmail bool, checks ...func() error) error {
	if takesEmail {
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			c.email, args = args[0], args[1:]
		} else if n := len(args); n > 0 && !strings.HasPrefix(args[n-1], "-") && (n == 1 || !flagTakesValue(args[n-2])) {
			c.email, args = args[n-1], args[:n-1]
		}
	}
	cfg, err := parseSettings(c.fs, args, getenv, natsSettings())
	if err != nil {
		return flagError(c.fs, stderr, err)
	}
	if takesEmail {
		e := strings.TrimSpace(c.email)
		switch {
		case e == "":
			return usageError("%s: give the person's address, e.g. consumer %s bob@example.com", c.name, c.name)
		case strings.ContainsAny(e, " \t\r\n") || !strings.Contains(e, "@") || len(e) > 512:
			return usageError("%s: want an address such as bob@example.com, got %q", c.name, c.email)
		}
		c.email = e
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	nc, js, err := app.Connect(cfg, nopLogger())
	if err != nil {
		return err
	}
	c.nc, c.js, c.topo = nc, js, cfg.Topology()
	return nil
}

// fail words an error for the command line.
func (c *userCmd) fail(err error) error {
	err = explainRefusal(c.nc, err)
	switch {
	case errors.Is(err, ledger.ErrNoLedger):
		return &exitError{code: 1, msg: fmt.Sprintf("%s: the ledger's bucket %s does not exist on this server (the service creates it at start-up with PROVISION_STREAMS=true; else create it from deploy/nats)", c.name, c.topo.LedgerBucket)}
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return &exitError{code: 1, msg: fmt.Sprintf("%s: %v (is the service provisioned on this server?)", c.name, err)}
	case errors.Is(err, context.Canceled):
		return &exitError{code: 1, msg: c.name + ": interrupted"}
	}
	return fmt.Errorf("%s: %s", c.name, strings.TrimPrefix(err.Error(), "ledger: "))
}

// userShow prints what happened to one person.
func userShow(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := &userCmd{name: "user show", fs: newFlagSet("user show")}
	asJSON := c.fs.Bool("json", false, `print one JSON object: email, state, zoom_user_id and requests`)
	if err := c.start(args, getenv, stderr, true); err != nil {
		return err
	}
	defer c.nc.Close()
	v, err := ledger.Show(ctx, c.js, c.topo, c.email)
	if err != nil {
		return c.fail(err)
	}
	if *asJSON {
		return writeJSON(stdout, v)
	}
	return printUser(stdout, v)
}

// printUser prints a view: a header and a table of the requests, or one
// line for a person the ledger does not know.
func printUser(w io.Writer, v ledger.View) error {
	if v.State == ledger.StateUnknown && len(v.Requests) == 0 {
		_, err := fmt.Fprintf(w, "%s: unknown: no request about this person has finished (within the results' retention)\n", v.Email)
		return err
	}
	zid := v.ZoomUserID
	if zid == "" {
		zid = "-"
	}
	fmt.Fprintf(w, "email:    %s\nstate:    %s\nzoom id:  %s\n\n", v.Email, v.State, zid)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tFINISHED AT\tREQUEST ID\tACTION\tOUTCOME\tREASON")
	for _, q := range v.Requests {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", q.StreamSequence, q.Time.UTC().Format(time.RFC3339),
			cell(q.RequestID, 60), cell(q.Action, 20), q.Outcome, cell(string(q.Reason), 20))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, plural(len(v.Requests), "request"))
	return err
}

// userForget erases one person and records who did it and why.
func userForget(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := &userCmd{name: "user forget", fs: newFlagSet("user forget")}
	reason := c.fs.String("reason", "", "why the person is erased, e.g. the erasure request's reference (required; recorded in the audit event)")
	actor := c.fs.String("actor", audit.DefaultActor(), "who erases them (recorded in the audit event)")
	asJSON := c.fs.Bool("json", false, "print what was erased as JSON")
	needReason := func() error {
		if strings.TrimSpace(*reason) == "" {
			return usageError("%s: --reason is required (it is recorded in the audit event)", c.name)
		}
		if strings.TrimSpace(*actor) == "" {
			return usageError("%s: --actor must not be empty", c.name)
		}
		return nil
	}
	if err := c.start(args, getenv, stderr, true, needReason); err != nil {
		return err
	}
	defer c.nc.Close()
	rep, err := ledger.Forget(ctx, c.js, c.topo, c.email, *actor, *reason, time.Now())
	if err != nil {
		if rep.Through > 0 {
			return c.fail(fmt.Errorf("stopped after erasing the ledger entry, %s and %s (run it again to finish): %w",
				plural(rep.Results, "result event"), plural(rep.DeadLetters, "dead letter"), err))
		}
		return c.fail(err)
	}
	if *asJSON {
		return writeJSON(stdout, struct {
			Key         string `json:"key"`
			Through     uint64 `json:"through_result_sequence"`
			Results     int    `json:"results_erased"`
			DeadLetters int    `json:"dead_letters_erased"`
			AuditEvent  string `json:"audit_event"`
		}{rep.Key, rep.Through, rep.Results, rep.DeadLetters, rep.Event.ID})
	}
	fmt.Fprintf(stdout, "forgot %s (ledger key %s): erased the ledger entry, %s and %s; recorded as %s's action (%s)\n",
		c.email, rep.Key, plural(rep.Results, "result event"), plural(rep.DeadLetters, "dead letter"), *actor, rep.Event.Type)
	return nil
}

// userReindex rebuilds the ledger from the result stream.
func userReindex(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := &userCmd{name: "user reindex", fs: newFlagSet("user reindex")}
	asJSON := c.fs.Bool("json", false, "print the summary as JSON")
	if err := c.start(args, getenv, stderr, false); err != nil {
		return err
	}
	defer c.nc.Close()
	progressTo := stdout
	if *asJSON {
		progressTo = stderr
	}
	tty := isTerminal(progressTo)
	rep, err := ledger.Reindex(ctx, c.js, c.topo, func(read, total uint64) {
		if tty {
			fmt.Fprintf(progressTo, "\rreading results %d/%d", read, total)
		}
	})
	if tty {
		fmt.Fprintln(progressTo)
	}
	if err != nil {
		return c.fail(err)
	}
	if *asJSON {
		return writeJSON(stdout, struct {
			Cleared int    `json:"cleared"`
			Through uint64 `json:"through_result_sequence"`
			Read    int    `json:"results_read"`
			Applied int    `json:"results_applied"`
			Users   int    `json:"users"`
		}{rep.Cleared, rep.Through, rep.Read, rep.Applied, rep.Users})
	}
	fmt.Fprintf(stdout, "cleared %s; read %s (through sequence %d of %s), %d of them about a person; wrote %s\n",
		entries(rep.Cleared), plural(rep.Read, "result"), rep.Through, c.topo.ResultStream, rep.Applied, entries(rep.Users))
	return nil
}

// entries says "1 entry", "2 entries".
func entries(n int) string {
	if n == 1 {
		return "1 entry"
	}
	return fmt.Sprintf("%d entries", n)
}
