package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/app"
	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/deadletter"
	"github.com/zoomprov/consumer/internal/dlq"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/internal/seal"
	"github.com/zoomprov/consumer/internal/topology"
)

const dlqUsage = `usage: consumer dlq <command> [flags]

commands:
  ls       list dead letters: a table, or --json for scripts
  show     everything about one dead letter (consumer dlq show SEQ), password masked
  replay   republish dead letters to their request subject, then delete them
  purge    delete dead letters (needs --yes)

filters of ls, replay and purge (combined with AND; the values of one are alternatives):
  --reason   invalid_request, zoom_rejected, not_found, retries_exhausted
  --status   Zoom's HTTP status (0: Zoom was not called)      --code    Zoom's error code
  --action   create, autoCreate, custCreate, ssoCreate
  --since, --until   an RFC 3339 time, or how long ago: 24h, 90m, 7d
  --email    an address, or a domain (@example.com)           --seq     10-20,25 or 100-
Each of --reason, --status, --code and --action may be repeated or comma separated.

Run 'consumer dlq <command> -h' for a command's flags.`

// confirmAbove is how many dead letters replay touches without asking.
const confirmAbove = 10

// dlqCommand reads, replays and purges dead letters.
func dlqCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, dlqUsage)
		return &exitError{code: 2}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "ls", "list":
		return dlqList(ctx, rest, getenv, stdout, stderr)
	case "show":
		return dlqShow(ctx, rest, getenv, stdout, stderr)
	case "replay":
		return dlqReplay(ctx, rest, getenv, stdin, stdout, stderr)
	case "purge":
		return dlqPurge(ctx, rest, getenv, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, dlqUsage)
		return nil
	default:
		return usageError("dlq: unknown command %q (want ls, show, replay or purge)", cmd)
	}
}

// listFlag collects a repeatable, comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for p := range strings.SplitSeq(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// filterFlags are the filter flags of ls, replay and purge.
type filterFlags struct {
	reasons, statuses, codes, actions listFlag
	since, until, email, seq          string
}

func addFilterFlags(fs *flag.FlagSet) *filterFlags {
	f := &filterFlags{}
	fs.Var(&f.reasons, "reason", "dead-letter reason: invalid_request, zoom_rejected, not_found, retries_exhausted (repeatable or comma separated)")
	fs.Var(&f.statuses, "status", "Zoom's HTTP status, e.g. 404; 0 = Zoom was not called (repeatable or comma separated)")
	fs.Var(&f.codes, "code", "Zoom's error code, e.g. 4130 (repeatable or comma separated)")
	fs.Var(&f.actions, "action", "action or operation: create, autoCreate, custCreate, ssoCreate, update, deactivate, activate, delete (repeatable or comma separated)")
	fs.StringVar(&f.since, "since", "", "dead-lettered at or after: an RFC 3339 time, or how long ago (24h, 90m, 7d)")
	fs.StringVar(&f.until, "until", "", "dead-lettered before: an RFC 3339 time, or how long ago (24h, 90m, 7d)")
	fs.StringVar(&f.email, "email", "", "the request's e-mail: an address, or a domain (@example.com or example.com)")
	fs.StringVar(&f.seq, "seq", "", "dead-letter sequences: 10-20,25 or 100- (100 and later)")
	return f
}

var deadLetterReasons = []messages.Reason{
	messages.ReasonInvalidRequest, messages.ReasonZoomRejected, messages.ReasonNotFound, messages.ReasonRetriesExhausted,
}

// filter turns the flags into a dlq.Filter; a malformed value is a usage
// error naming the flag.
func (f *filterFlags) filter(cmd string, now time.Time) (dlq.Filter, error) {
	var out dlq.Filter
	for _, r := range f.reasons {
		if !slices.Contains(deadLetterReasons, messages.Reason(r)) {
			return out, usageError("%s: --reason: unknown reason %q (want invalid_request, zoom_rejected, not_found or retries_exhausted)", cmd, r)
		}
		out.Reasons = append(out.Reasons, messages.Reason(r))
	}
	for _, s := range f.statuses {
		n, err := strconv.Atoi(s)
		if err != nil || n != 0 && (n < 100 || n > 599) {
			return out, usageError("%s: --status: want an HTTP status such as 404, or 0 for none, got %q", cmd, s)
		}
		out.Statuses = append(out.Statuses, n)
	}
	for _, s := range f.codes {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return out, usageError("%s: --code: want a Zoom error code such as 4130, got %q", cmd, s)
		}
		out.Codes = append(out.Codes, n)
	}
	for _, a := range f.actions {
		if strings.ContainsAny(a, " \t*>") {
			return out, usageError("%s: --action: want an action such as ssoCreate, got %q", cmd, a)
		}
		out.Actions = append(out.Actions, a)
	}
	var err error
	if out.Since, err = parseWhen(f.since, now); err != nil {
		return out, usageError("%s: --since: %v", cmd, err)
	}
	if out.Until, err = parseWhen(f.until, now); err != nil {
		return out, usageError("%s: --until: %v", cmd, err)
	}
	if !out.Since.IsZero() && !out.Until.IsZero() && !out.Since.Before(out.Until) {
		return out, usageError("%s: --since %s is not before --until %s", cmd, out.Since.Format(time.RFC3339), out.Until.Format(time.RFC3339))
	}
	if f.email != "" {
		e := strings.TrimSpace(f.email)
		if strings.TrimPrefix(e, "@") == "" || strings.ContainsAny(e, " \t") || strings.Count(e, "@") > 1 {
			return out, usageError("%s: --email: want an address or a domain such as @example.com, got %q", cmd, f.email)
		}
		out.Email = e
	}
	if f.seq != "" {
		if out.Seqs, err = dlq.ParseSeqRanges(f.seq); err != nil {
			return out, usageError("%s: --seq: %s", cmd, strings.TrimPrefix(err.Error(), "dlq: "))
		}
	}
	return out, nil
}

// parseWhen reads an RFC 3339 time or a duration ago ("24h", "7d");
// empty is the zero time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 || n > 100*365 || math.IsNaN(n) {
			return time.Time{}, fmt.Errorf("want an RFC 3339 time such as 2026-05-01T08:00:00Z or how long ago such as 24h or 7d, got %q", s)
		}
		d = time.Duration(n * float64(24*time.Hour))
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d < 0 {
			return time.Time{}, fmt.Errorf("want an RFC 3339 time such as 2026-05-01T08:00:00Z or how long ago such as 24h or 7d, got %q", s)
		}
	}
	return now.Add(-d).UTC(), nil
}

// dlqCmd is what the dlq subcommands share: their flag set, the filter
// flags of ls, replay and purge, and, once started, the connection.
type dlqCmd struct {
	name string
	fs   *flag.FlagSet
	ff   *filterFlags // nil: the command takes no filters
	// extra are settings the command takes besides NATS and names.
	extra []setting
	keys  *seal.Keyring

	filter dlq.Filter
	js     jetstream.JetStream
	nc     *nats.Conn
	topo   topology.Topology
	close  func()
}

func newDLQCmd(name string, filters bool) *dlqCmd {
	c := &dlqCmd{name: name, fs: newFlagSet(name)}
	if filters {
		c.ff = addFilterFlags(c.fs)
	}
	return c
}

// start parses args, runs checks in order, and connects to NATS; on success
// the caller defers c.close. The checks are the command's own validation
// and c.readFilter: their order decides which mistake is reported first.
func (c *dlqCmd) start(args []string, getenv func(string) string, stderr io.Writer, checks ...func() error) error {
	cfg, err := parseSettings(c.fs, args, getenv, append(natsSettings(), c.extra...))
	if err != nil {
		return flagError(c.fs, stderr, err)
	}
	c.keys = cfg.DeadLetterKeys
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	nc, js, err := app.Connect(cfg, nopLogger())
	if err != nil {
		return err
	}
	c.js, c.nc, c.topo, c.close = js, nc, cfg.Topology(), nc.Close
	return nil
}

// readFilter turns the filter flags into c.filter.
func (c *dlqCmd) readFilter() error {
	var err error
	c.filter, err = c.ff.filter(c.name, time.Now())
	return err
}

// fail words errors from the dlq package for the command line.
func (c *dlqCmd) fail(err error) error {
	err = explainRefusal(c.nc, err)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("%s: stream %s does not exist on this server (is the service provisioned here? DLQ_STREAM names it)", c.name, c.topo.DeadLetterStream)
	}
	if errors.Is(err, context.Canceled) {
		return &exitError{code: 1, msg: c.name + ": interrupted"}
	}
	return fmt.Errorf("%s: %s", c.name, strings.TrimPrefix(err.Error(), "dlq: "))
}

// list returns the dead letters that match the filter.
func (c *dlqCmd) list(ctx context.Context) ([]dlq.Entry, error) {
	entries, err := dlq.List(ctx, c.js, c.topo, c.filter)
	if err != nil {
		return nil, c.fail(err)
	}
	return entries, nil
}

// listSome is list for replay and purge, where no match is an error.
func (c *dlqCmd) listSome(ctx context.Context) ([]dlq.Entry, error) {
	entries, err := c.list(ctx)
	if err == nil && len(entries) == 0 {
		err = c.noMatch(ctx)
	}
	return entries, err
}

// noMatch says why nothing matched: an empty stream, or the filters.
func (c *dlqCmd) noMatch(ctx context.Context) error {
	n, err := dlq.Count(ctx, c.js, c.topo)
	switch {
	case err != nil:
		return c.fail(err)
	case n == 0:
		return &exitError{code: 1, msg: fmt.Sprintf("%s: no dead letters: %s is empty", c.name, c.topo.DeadLetterStream)}
	case c.filter.IsZero():
		return &exitError{code: 1, msg: fmt.Sprintf("%s: no dead letters match", c.name)}
	default:
		return &exitError{code: 1, msg: fmt.Sprintf("%s: no dead letters match the filters (%s holds %d)", c.name, c.topo.DeadLetterStream, n)}
	}
}

// dlqList prints the dead letters that match the filters.
func dlqList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newDLQCmd("dlq ls", true)
	asJSON := c.fs.Bool("json", false, "print a JSON array, one object per dead letter (e-mails masked)")
	if err := c.start(args, getenv, stderr, c.readFilter); err != nil {
		return err
	}
	defer c.close()
	entries, err := c.list(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]entryJSON, 0, len(entries))
		for _, e := range entries {
			out = append(out, newEntryJSON(c.topo, e, true))
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	total, err := dlq.Count(ctx, c.js, c.topo)
	if err != nil {
		return c.fail(err)
	}
	switch {
	case total == 0:
		fmt.Fprintf(stdout, "no dead letters: %s is empty\n", c.topo.DeadLetterStream)
		return nil
	case len(entries) == 0:
		fmt.Fprintf(stdout, "no dead letters match (%s holds %d)\n", c.topo.DeadLetterStream, total)
		return nil
	}
	if err := printEntries(stdout, c.topo, entries); err != nil {
		return err
	}
	if c.filter.IsZero() {
		fmt.Fprintln(stdout, plural(len(entries), "dead letter"))
	} else {
		fmt.Fprintf(stdout, "%d of %s match\n", len(entries), plural(int(total), "dead letter"))
	}
	return nil
}

// printEntries prints the dead-letter table.
func printEntries(w io.Writer, topo topology.Topology, entries []dlq.Entry) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tDEAD-LETTERED AT\tACTION\tREASON\tHTTP\tCODE\tMESSAGE\tREQUEST ID\tEMAIL")
	for _, e := range entries {
		d := e.DeadLetter
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.UTC().Format(time.RFC3339),
			cell(e.Action, 20), cell(string(d.Reason), 20), orDash(d.HTTPStatus), orDash(d.ZoomCode),
			cell(plainMessage(d.ZoomMessage), 40), cell(e.RequestID(topo), 40), cell(messages.MaskEmail(e.Email), 40))
	}
	return tw.Flush()
}

// cell makes s fit a table cell: one line, at most n characters, "-" when
// empty.
func cell(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// plural says "1 dead letter", "2 dead letters".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// plainMessage drops the "messages: invalid request: " prefix the consumer
// puts on validation errors; in a dead-letter listing it says nothing.
func plainMessage(s string) string {
	return strings.TrimPrefix(s, messages.ErrInvalid.Error()+": ")
}

func orDash(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

// entryJSON is one dead letter in `dlq ls --json` and `dlq show --json`.
type entryJSON struct {
	Seq              uint64 `json:"seq"`
	Subject          string `json:"subject"`
	Action           string `json:"action"`
	Reason           string `json:"reason"`
	HTTPStatus       int    `json:"http_status"`
	ZoomCode         int    `json:"zoom_code"`
	ZoomMessage      string `json:"zoom_message"`
	RequestID        string `json:"request_id"`
	Email            string `json:"email"`
	OriginalSubject  string `json:"original_subject"`
	OriginalSequence uint64 `json:"original_sequence"`
	Deliveries       int    `json:"deliveries"`
	DeadLetteredAt   string `json:"dead_lettered_at"`
	// ReplayOf is set when the dead-lettered request was itself a replay.
	ReplayOf string `json:"replay_of,omitempty"`
	// Replayable is false for an entry replay would skip, and NotReplayable
	// says why.
	Replayable    bool   `json:"replayable"`
	NotReplayable string `json:"not_replayable,omitempty"`
}

func newEntryJSON(topo topology.Topology, e dlq.Entry, maskEmail bool) entryJSON {
	d := e.DeadLetter
	email := e.Email
	if maskEmail {
		email = messages.MaskEmail(email)
	}
	j := entryJSON{
		Seq: e.Seq, Subject: e.Subject, Action: e.Action, Reason: string(d.Reason),
		HTTPStatus: d.HTTPStatus, ZoomCode: d.ZoomCode, ZoomMessage: d.ZoomMessage,
		RequestID: e.RequestID(topo), Email: email,
		OriginalSubject: d.OriginalSubject, OriginalSequence: d.OriginalSequence, Deliveries: d.Deliveries,
		DeadLetteredAt: e.Time.UTC().Format(time.RFC3339),
		ReplayOf:       e.Headers.Get(messages.HeaderOriginalRequestID),
		Replayable:     true,
	}
	if err := e.Replayable(); err != nil {
		j.Replayable, j.NotReplayable = false, err.Error()
	}
	return j
}

// dlqShow prints one dead letter: its headers and its body, indented,
// with the password masked.
func dlqShow(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newDLQCmd("dlq show", false)
	asJSON := c.fs.Bool("json", false, "print JSON")
	// The sequence may come before or after the flags.
	var seqArg string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		seqArg, args = args[0], args[1:]
	} else if n := len(args); n > 0 && !strings.HasPrefix(args[n-1], "-") && (n == 1 || !flagTakesValue(args[n-2])) {
		seqArg, args = args[n-1], args[:n-1]
	}
	var seq uint64
	readSeq := func() error {
		if seqArg == "" {
			return usageError("%s: give the sequence of a dead letter, e.g. consumer dlq show 42 (consumer dlq ls lists them)", c.name)
		}
		var err error
		if seq, err = strconv.ParseUint(seqArg, 10, 64); err != nil || seq == 0 {
			return usageError("%s: want the sequence of a dead letter such as 42, got %q", c.name, seqArg)
		}
		return nil
	}
	if err := c.start(args, getenv, stderr, readSeq); err != nil {
		return err
	}
	defer c.close()
	e, err := dlq.Get(ctx, c.js, c.topo, seq)
	if errors.Is(err, dlq.ErrNotFound) {
		return &exitError{code: 1, msg: fmt.Sprintf("%s: no dead letter with sequence %d in %s (consumer dlq ls lists them)", c.name, seq, c.topo.DeadLetterStream)}
	}
	if err != nil {
		return c.fail(err)
	}
	body, bodyOK := deadletter.MaskBody(e.Body)
	if *asJSON {
		out := struct {
			entryJSON
			Stored  string              `json:"stored"`
			Headers map[string][]string `json:"headers"`
			Body    any                 `json:"body"`
		}{entryJSON: newEntryJSON(c.topo, e, false), Stored: e.Stored.Format(time.RFC3339Nano), Headers: e.Headers, Body: body}
		if bodyOK {
			out.Body = json.RawMessage(body)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(stdout, "dead letter %d of %s, subject %s, stored %s\n\nheaders:\n", e.Seq, c.topo.DeadLetterStream, e.Subject, e.Stored.Format(time.RFC3339))
	tw := tabwriter.NewWriter(stdout, 0, 0, 1, ' ', 0)
	for _, k := range headerOrder(e.Headers) {
		for _, v := range e.Headers[k] {
			fmt.Fprintf(tw, "  %s:\t%s\n", k, v)
		}
	}
	tw.Flush()
	fmt.Fprintln(stdout, "\nbody (password masked):")
	if !bodyOK {
		fmt.Fprintln(stdout, "(not valid JSON; shown as stored)")
	}
	fmt.Fprintln(stdout, body)
	if err := e.Replayable(); err != nil {
		fmt.Fprintf(stdout, "\nnot replayable, still invalid: %s\n", plainMessage(err.Error()))
	} else {
		fmt.Fprintf(stdout, "\nreplay it with: consumer dlq replay --seq %d\n", e.Seq)
	}
	return nil
}

// flagTakesValue reports whether arg is a flag of a dlq command that
// takes a separate value ("--nats-url URL"); only --json and -h do not.
func flagTakesValue(arg string) bool {
	if !strings.HasPrefix(arg, "-") || strings.Contains(arg, "=") {
		return false
	}
	switch strings.TrimLeft(arg, "-") {
	case "json", "h", "help":
		return false
	}
	return true
}

// headerOrder lists the dead-letter headers first, in their documented
// order, then the replay headers, then the others alphabetically.
func headerOrder(h map[string][]string) []string {
	first := []string{
		deadletter.HeaderReason, deadletter.HeaderHTTPStatus, deadletter.HeaderErrorCode, deadletter.HeaderErrorMessage,
		deadletter.HeaderOriginalSubject, deadletter.HeaderOriginalSequence, deadletter.HeaderRequestID,
		deadletter.HeaderDeliveries, deadletter.HeaderDeadLetteredAt,
		messages.HeaderReplayedFrom, messages.HeaderOriginalRequestID,
	}
	var out, rest []string
	for _, k := range first {
		if _, ok := h[k]; ok {
			out = append(out, k)
		}
	}
	for k := range h {
		if !slices.Contains(first, k) {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// dlqReplay republishes dead letters and deletes them once stored.
func dlqReplay(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := newDLQCmd("dlq replay", true)
	c.extra = []setting{settingNamed(sealKeySetting)}
	dryRun := c.fs.Bool("dry-run", false, "print what would be replayed and how much of the daily create quota it needs; change nothing")
	perSecond := c.fs.Float64("rate", 20, "requests republished per second at most (0 = no pacing)")
	yes := c.fs.Bool("yes", false, fmt.Sprintf("replay more than %d dead letters without asking", confirmAbove))
	force := c.fs.Bool("force", false, "replay even while a quota gate holds the requests' action (they then wait in the queue until the reset), and dead letters whose user has a newer request that succeeded")
	asJSON := c.fs.Bool("json", false, "print the summary (with --dry-run: the plan) as JSON; progress goes to stderr")
	actor := c.fs.String("actor", audit.DefaultActor(), "who replays (recorded in the audit event)")
	reason := c.fs.String("audit-reason", "", "why (optional; recorded in the audit event; --reason filters by the dead-letter reason)")
	checkRate := func() error {
		if *perSecond < 0 || math.IsNaN(*perSecond) || math.IsInf(*perSecond, 0) {
			return usageError("%s: --rate: want a number of requests per second, 0 for no pacing, got %v", c.name, *perSecond)
		}
		return nil
	}
	if err := c.start(args, getenv, stderr, checkRate, c.readFilter); err != nil {
		return err
	}
	defer c.close()
	entries, err := c.listSome(ctx)
	if err != nil {
		return err
	}
	// Several dead letters of one user go back in their original order.
	entries = dlq.ReplayOrder(entries)

	// A dry run first: what would be replayed, and whether a gate holds it.
	plan, err := dlq.Replay(ctx, c.js, c.topo, entries, dlq.Options{DryRun: true, Keys: c.keys, Force: *force})
	if errors.Is(err, dlq.ErrLedgerUnavailable) {
		return &exitError{code: 1, msg: fmt.Sprintf("%s: %s; pass --force to replay without looking for newer requests", c.name, strings.TrimPrefix(err.Error(), "dlq: "))}
	}
	if err != nil {
		return c.fail(err)
	}
	if *dryRun {
		if *asJSON {
			return writeJSON(stdout, newReplayJSON(c.topo, plan, entries))
		}
		printPlan(stdout, c.topo, entries, plan, *perSecond)
		return nil
	}
	if plan.Gate != nil && !*force {
		g := plan.Gate
		msg := fmt.Sprintf("%s: the %s quota gate is closed until %s", c.name, g.Scope, g.Until.UTC().Format(time.RFC3339))
		if g.Reason != "" {
			msg += " (" + g.Reason + ")"
		}
		return &exitError{code: 1, msg: msg + ": replaying now would only defer the requests; replay after the reset, or pass --force"}
	}
	if plan.Replayed > confirmAbove && !*yes {
		if !isTerminal(stdin) {
			return usageError("%s: %s to replay; pass --yes to replay more than %d without a prompt", c.name, plural(plan.Replayed, "dead letter"), confirmAbove)
		}
		fmt.Fprintf(stderr, "replay %s? [y/N] ", plural(plan.Replayed, "dead letter"))
		answer, _ := bufio.NewReader(stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return &exitError{code: 1, msg: c.name + ": not confirmed; nothing replayed"}
		}
	}

	progressTo := stdout
	if *asJSON {
		progressTo = stderr
	}
	prog := newProgress(progressTo, "replaying")
	sum, err := dlq.Replay(ctx, c.js, c.topo, entries, dlq.Options{Rate: *perSecond, Force: *force, OnProgress: prog.update, Keys: c.keys, Actor: *actor, Reason: *reason})
	prog.finish()
	if *asJSON {
		if werr := writeJSON(stdout, newReplayJSON(c.topo, sum, nil)); werr != nil {
			return werr
		}
	} else {
		for _, s := range sum.Skipped {
			fmt.Fprintf(stdout, "skipped %d (request %s): still invalid: %s\n", s.Seq, s.RequestID, plainMessage(s.Err.Error()))
		}
		for _, s := range sum.Refused {
			fmt.Fprintf(stdout, "refused %d (request %s): %s\n", s.Seq, s.RequestID, plainMessage(s.Err.Error()))
		}
		printSuperseded(stdout, sum.Superseded)
		fmt.Fprintln(stdout, summaryLine(sum))
	}
	var gateErr *dlq.GateClosedError
	refusedNewer := 0
	for _, s := range sum.Superseded {
		if !s.Forced {
			refusedNewer++
		}
	}
	switch {
	case err == nil && len(sum.Refused) > 0:
		return &exitError{code: 1, msg: fmt.Sprintf("%s: %s refused: their passwords cannot be opened; they stay dead-lettered", c.name, plural(len(sum.Refused), "dead letter"))}
	case err == nil && refusedNewer > 0:
		return &exitError{code: 1, msg: fmt.Sprintf("%s: %s refused: a newer request about the same user succeeded; they stay dead-lettered (--force replays them anyway)", c.name, plural(refusedNewer, "dead letter"))}
	case err == nil:
		return nil
	case errors.As(err, &gateErr):
		return &exitError{code: 1, msg: fmt.Sprintf("%s: stopped: the %s quota gate closed until %s; the other %d stay dead-lettered: replay them after the reset",
			c.name, gateErr.Gate.Scope, gateErr.Gate.Until.UTC().Format(time.RFC3339), gateErr.Pending)}
	case ctx.Err() != nil:
		return &exitError{code: 1, msg: c.name + ": interrupted; run the same command again to finish (what was already republished is not published twice)"}
	default:
		return c.fail(err)
	}
}

// replayJSON is `dlq replay --json`: the summary of a replay, or with
// --dry-run its plan.
type replayJSON struct {
	DryRun bool `json:"dry_run"`
	// Replayed counts the requests the request stream stored anew; in a
	// dry run, those that would be replayed, which Entries lists.
	Replayed   int        `json:"replayed"`
	Duplicates int        `json:"duplicates"`
	Deleted    int        `json:"deleted"`
	Failed     int        `json:"failed"`
	Gone       int        `json:"gone"`
	Skipped    []skipJSON `json:"skipped"`
	Refused    []skipJSON `json:"refused"`
	// Superseded are the dead letters whose user has a newer request that
	// succeeded: refused, or replayed anyway with --force (forced).
	Superseded []supersededJSON `json:"superseded"`
	Creates    int              `json:"creates"`
	Gate       *quota.Gate      `json:"gate,omitempty"`
	Entries    []entryJSON      `json:"entries,omitempty"`
}

// skipJSON is a dead letter replay skipped (still invalid) or refused
// (its password cannot be opened).
type skipJSON struct {
	Seq       uint64 `json:"seq"`
	RequestID string `json:"request_id"`
	Reason    string `json:"reason"`
}

// supersededJSON is a dead letter with a newer successful request about
// its user.
type supersededJSON struct {
	Seq       uint64 `json:"seq"`
	RequestID string `json:"request_id"`
	// NewerRequestID is the latest newer request that succeeded, of
	// Newer in all.
	NewerRequestID string `json:"newer_request_id"`
	NewerAction    string `json:"newer_action"`
	NewerOutcome   string `json:"newer_outcome"`
	NewerSequence  uint64 `json:"newer_stream_sequence"`
	Newer          int    `json:"newer"`
	Forced         bool   `json:"forced"`
}

// printSuperseded prints one line per dead letter with a newer request
// about its user that succeeded, naming that request.
func printSuperseded(w io.Writer, ss []dlq.Superseded) {
	for _, s := range ss {
		if s.Forced {
			fmt.Fprintf(w, "replayed %d (request %s) although %s (--force)\n", s.Seq, s.RequestID, s.Error())
			continue
		}
		fmt.Fprintf(w, "refused %d (request %s): %s\n", s.Seq, s.RequestID, s.Error())
	}
}

// newReplayJSON turns a summary into replayJSON; entries, for a dry run,
// are the dead letters considered, of which those not skipped or refused
// are listed.
func newReplayJSON(topo topology.Topology, s dlq.Summary, entries []dlq.Entry) replayJSON {
	out := replayJSON{
		DryRun: s.DryRun, Replayed: s.Replayed, Duplicates: s.Duplicates, Deleted: s.Deleted, Failed: s.Failed,
		Gone: s.Gone, Creates: s.Creates, Gate: s.Gate, Skipped: []skipJSON{}, Refused: []skipJSON{}, Superseded: []supersededJSON{},
	}
	left := map[uint64]bool{}
	for _, k := range s.Skipped {
		out.Skipped = append(out.Skipped, skipJSON{Seq: k.Seq, RequestID: k.RequestID, Reason: plainMessage(k.Err.Error())})
		left[k.Seq] = true
	}
	for _, k := range s.Refused {
		out.Refused = append(out.Refused, skipJSON{Seq: k.Seq, RequestID: k.RequestID, Reason: plainMessage(k.Err.Error())})
		left[k.Seq] = true
	}
	for _, k := range s.Superseded {
		out.Superseded = append(out.Superseded, supersededJSON{Seq: k.Seq, RequestID: k.RequestID,
			NewerRequestID: k.Newer.RequestID, NewerAction: k.Newer.Action, NewerOutcome: string(k.Newer.Outcome),
			NewerSequence: k.Newer.StreamSequence, Newer: k.Count, Forced: k.Forced})
		if !k.Forced {
			left[k.Seq] = true
		}
	}
	for _, e := range entries {
		if !left[e.Seq] {
			out.Entries = append(out.Entries, newEntryJSON(topo, e, true))
		}
	}
	return out
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// summaryLine is replay's last line of output.
func summaryLine(s dlq.Summary) string {
	line := fmt.Sprintf("replayed %d, duplicates %d, skipped %d (invalid), deleted %d, failed %d",
		s.Replayed, s.Duplicates, len(s.Skipped), s.Deleted, s.Failed)
	if len(s.Refused) > 0 {
		line += fmt.Sprintf(", refused %d (password cannot be opened)", len(s.Refused))
	}
	if s.Gone > 0 {
		line += fmt.Sprintf(", gone %d (deleted by someone else first)", s.Gone)
	}
	if n := len(s.Superseded); n > 0 {
		forced := 0
		for _, k := range s.Superseded {
			if k.Forced {
				forced++
			}
		}
		if forced < n {
			line += fmt.Sprintf(", refused %d (a newer request succeeded)", n-forced)
		}
	}
	return line
}

// printPlan prints what a replay would do.
func printPlan(w io.Writer, topo topology.Topology, entries []dlq.Entry, plan dlq.Summary, perSecond float64) {
	skipped := map[uint64]bool{}
	for _, s := range append(plan.Skipped, plan.Refused...) {
		skipped[s.Seq] = true
	}
	for _, s := range plan.Superseded {
		if !s.Forced {
			skipped[s.Seq] = true
		}
	}
	var replay []dlq.Entry
	for _, e := range entries {
		if !skipped[e.Seq] {
			replay = append(replay, e)
		}
	}
	if len(replay) > 0 {
		pace := "no pacing"
		if perSecond > 0 {
			pace = fmt.Sprintf("at most %g a second", perSecond)
		}
		fmt.Fprintf(w, "would replay %s to %s.<action> (%s):\n", plural(len(replay), "dead letter"), topo.RequestPrefix, pace)
		printEntries(w, topo, replay)
	} else {
		fmt.Fprintln(w, "would replay nothing")
	}
	if len(plan.Skipped) > 0 {
		fmt.Fprintf(w, "would skip %d, still invalid:\n", len(plan.Skipped))
		for _, s := range plan.Skipped {
			fmt.Fprintf(w, "  %d (request %s): %s\n", s.Seq, s.RequestID, plainMessage(s.Err.Error()))
		}
	}
	if len(plan.Refused) > 0 {
		fmt.Fprintf(w, "would refuse %d, password cannot be opened:\n", len(plan.Refused))
		for _, s := range plan.Refused {
			fmt.Fprintf(w, "  %d (request %s): %s\n", s.Seq, s.RequestID, plainMessage(s.Err.Error()))
		}
	}
	var newer, forced []dlq.Superseded
	for _, s := range plan.Superseded {
		if s.Forced {
			forced = append(forced, s)
		} else {
			newer = append(newer, s)
		}
	}
	if len(newer) > 0 {
		fmt.Fprintf(w, "would refuse %d, a newer request about the same user succeeded (--force replays them anyway):\n", len(newer))
		for _, s := range newer {
			fmt.Fprintf(w, "  %d (request %s): %s\n", s.Seq, s.RequestID, s.Error())
		}
	}
	if len(forced) > 0 {
		fmt.Fprintf(w, "would replay %d although a newer request about the same user succeeded (--force):\n", len(forced))
		for _, s := range forced {
			fmt.Fprintf(w, "  %d (request %s): %s\n", s.Seq, s.RequestID, s.Error())
		}
	}
	fmt.Fprintf(w, "daily create quota: needs %s (action create; Zoom allows 1,500 a day on Pro, 10,000 on Business and up)\n", plural(plan.Creates, "invitation"))
	if g := plan.Gate; g != nil {
		fmt.Fprintf(w, "quota gate: %s closed until %s (%s): replay would refuse to start without --force\n", g.Scope, g.Until.UTC().Format(time.RFC3339), g.Reason)
	}
	fmt.Fprintln(w, "dry run: nothing changed")
}

// dlqPurge deletes the dead letters that match the filters.
func dlqPurge(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newDLQCmd("dlq purge", true)
	yes := c.fs.Bool("yes", false, "really delete (required)")
	asJSON := c.fs.Bool("json", false, "print the summary as JSON ({\"deleted\": n, \"gone\": n}); progress goes to stderr")
	actor := c.fs.String("actor", audit.DefaultActor(), "who purges (recorded in the audit event)")
	reason := c.fs.String("audit-reason", "", "why (optional; recorded in the audit event; --reason filters by the dead-letter reason)")
	needYes := func() error {
		if !*yes {
			return usageError("%s: deleting dead letters cannot be undone: pass --yes (consumer dlq ls with the same filters shows what would go)", c.name)
		}
		return nil
	}
	if err := c.start(args, getenv, stderr, c.readFilter, needYes); err != nil {
		return err
	}
	defer c.close()
	entries, err := c.listSome(ctx)
	if err != nil {
		return err
	}
	progressTo := stdout
	if *asJSON {
		progressTo = stderr
	}
	prog := newProgress(progressTo, "deleting")
	sum, err := dlq.Purge(ctx, c.js, c.topo, entries, dlq.PurgeOptions{Actor: *actor, Reason: *reason, OnProgress: prog.update})
	prog.finish()
	if *asJSON {
		if werr := writeJSON(stdout, struct {
			Deleted int `json:"deleted"`
			Gone    int `json:"gone"`
		}{sum.Deleted, sum.Gone}); werr != nil {
			return werr
		}
	} else {
		line := "deleted " + plural(sum.Deleted, "dead letter")
		if sum.Gone > 0 {
			line += fmt.Sprintf(" (%d more were already gone)", sum.Gone)
		}
		fmt.Fprintln(stdout, line)
	}
	if err != nil {
		return c.fail(err)
	}
	return nil
}

// progress shows how far a long operation is: a counter rewritten in place
// on a terminal, otherwise a line every 100 entries.
type progress struct {
	w       io.Writer
	verb    string
	tty     bool
	pending bool // a counter without its newline is on screen
}

func newProgress(w io.Writer, verb string) *progress {
	return &progress{w: w, verb: verb, tty: isTerminal(w)}
}

func (p *progress) update(pr dlq.Progress) {
	if p.tty {
		fmt.Fprintf(p.w, "\r%s %d/%d", p.verb, pr.Done, pr.Total)
		p.pending = true
		return
	}
	if pr.Done%100 == 0 && pr.Done < pr.Total {
		fmt.Fprintf(p.w, "%s %d/%d\n", p.verb, pr.Done, pr.Total)
	}
}

func (p *progress) finish() {
	if p.pending {
		fmt.Fprintln(p.w)
		p.pending = false
	}
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	fi, err := file.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
