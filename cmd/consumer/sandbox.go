//go:build !nosandbox

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/app"
	"github.com/zoomprov/consumer/internal/console"
	"github.com/zoomprov/consumer/internal/guard"
	"github.com/zoomprov/consumer/internal/ledger"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/retry"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

// sample is one request the sandbox publishes, with the terminal outcome it
// must end in.
type sample struct {
	id      string
	action  string
	body    string
	what    string
	outcome messages.Outcome
	reason  messages.Reason
	// after, if set, is the sample whose terminal result must come first
	// (per-user order).
	after string
}

func sandboxSamples() []sample {
	return []sample{
		{id: "sandbox-created", action: "ssoCreate", what: "a new SSO user (its password is dropped: Zoom uses it only for autoCreate)",
			body:    `{"action":"ssoCreate","user_info":{"email":"alice@example.com","type":1,"first_name":"Alice","last_name":"Liddell","password":"if42!LfH@"}}`,
			outcome: messages.OutcomeCreated},
		{id: "sandbox-exists", action: "ssoCreate", what: "a user already in the account: 409, then looked up",
			body:    `{"action":"ssoCreate","user_info":{"email":"bob@example.com","type":1}}`,
			outcome: messages.OutcomeExists},
		{id: "sandbox-invalid", action: "custCreate", what: "an e-mail that is not an address: never reaches Zoom",
			body:    `{"action":"custCreate","user_info":{"email":"not-an-email","type":2}}`,
			outcome: messages.OutcomeFailed, reason: messages.ReasonInvalidRequest},
		{id: "sandbox-group-missing", action: "ssoCreate", what: "Zoom answers 404 code 4130 (group missing)",
			body:    `{"action":"ssoCreate","user_info":{"email":"carol@example.com","type":1}}`,
			outcome: messages.OutcomeFailed, reason: messages.ReasonNotFound},
		{id: "sandbox-no-phone", action: "ssoCreate", what: "Zoom Phone asked for, no licence left: 404 code 1102",
			body:    `{"action":"ssoCreate","user_info":{"email":"ivan@example.com","type":2,"feature":{"zoom_phone":true}}}`,
			outcome: messages.OutcomeFailed, reason: messages.ReasonNotFound},
		{id: "sandbox-weak-password", action: "autoCreate", what: "Zoom rejects the password: 400 code 300",
			body:    `{"action":"autoCreate","user_info":{"email":"dan@example.com","type":1,"password":"password1"}}`,
			outcome: messages.OutcomeFailed, reason: messages.ReasonZoomRejected},
		{id: "sandbox-flaky", action: "custCreate", what: "two 502 gateway pages from Zoom, then success",
			body:    `{"action":"custCreate","user_info":{"email":"grace@example.com","type":2,"first_name":"Grace","last_name":"Hopper"}}`,
			outcome: messages.OutcomeCreated},
		{id: "sandbox-quota-1", action: "create", what: "invitation; the daily create quota is 1 per 5 s here",
			body:    `{"action":"create","user_info":{"email":"erin@example.com","type":1}}`,
			outcome: messages.OutcomeCreated},
		{id: "sandbox-quota-2", action: "create", what: "invitation beyond the quota: deferred until it resets",
			body:    `{"action":"create","user_info":{"email":"frank@example.com","type":1}}`,
			outcome: messages.OutcomeCreated},
		{id: "sandbox-quota-3", action: "create", what: "invitation beyond the quota: deferred until it resets",
			body:    `{"action":"create","user_info":{"email":"heidi@example.com","type":1}}`,
			outcome: messages.OutcomeCreated},
		// One user's whole life, published back to back: applied in order.
		{id: "sandbox-life-1-rename", action: "update", what: "alice renamed (waits for her creation above)",
			body:    `{"email":"alice@example.com","user":{"first_name":"Alicia","job_title":"Engineer"}}`,
			outcome: messages.OutcomeUpdated, after: "sandbox-created"},
		{id: "sandbox-life-2-leaves", action: "deactivate", what: "alice leaves: deactivated (her licence goes)",
			body:    `{"email":"alice@example.com"}`,
			outcome: messages.OutcomeDeactivated, after: "sandbox-life-1-rename"},
		{id: "sandbox-life-3-rehired", action: "activate", what: "alice rehired: activated",
			body:    `{"email":"alice@example.com"}`,
			outcome: messages.OutcomeActivated, after: "sandbox-life-2-leaves"},
		{id: "sandbox-life-4-licence", action: "update", what: "alice's licence back (type 2)",
			body:    `{"email":"alice@example.com","user":{"type":2}}`,
			outcome: messages.OutcomeUpdated, after: "sandbox-life-3-rehired"},
		{id: "sandbox-life-5-deleted", action: "delete", what: "alice deleted, her meetings and recordings to bob",
			body:    `{"email":"alice@example.com","action":"delete","transfer_email":"bob@example.com","transfer_meeting":true,"transfer_recording":true}`,
			outcome: messages.OutcomeDeleted, after: "sandbox-life-4-licence"},
		// An update behind a creation the daily quota holds waits for it;
		// another user's update does not.
		{id: "sandbox-waits-for-quota", action: "update", what: "frank's update: waits until his invitation is through",
			body:    `{"email":"frank@example.com","user":{"dept":"Sales"}}`,
			outcome: messages.OutcomeUpdated, after: "sandbox-quota-2"},
		{id: "sandbox-goes-through", action: "update", what: "bob's update meanwhile: goes through",
			body:    `{"email":"bob@example.com","user":{"dept":"Sales"}}`,
			outcome: messages.OutcomeUpdated},
	}
}

// sandboxCommand runs the real service against an embedded JetStream
// server and the Zoom simulator, publishes samples of every outcome, and
// prints what happens.
func sandboxCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sandbox")
	exitWhenIdle := fs.Bool("exit-when-idle", false, "exit once every sample has a terminal result: 0 if all are as expected, 1 otherwise")
	natsPort := fs.Int("nats-port", 4222, "port of the embedded NATS server (a random one if taken; 0 = random)")
	logLevel := fs.String("log-level", "error", "service log level (info shows one line per outcome)")
	idleTimeout := fs.Duration("timeout", 2*time.Minute, "with --exit-when-idle: fail if the samples are not done by then")
	if err := fs.Parse(args); err != nil {
		return flagError(fs, stderr, err)
	}
	if fs.NArg() > 0 {
		return usageError("sandbox: unexpected argument %q", fs.Arg(0))
	}

	js, err := testenv.StartNATS(testenv.NATSOptions{Port: *natsPort})
	if err != nil && *natsPort != 0 {
		js, err = testenv.StartNATS(testenv.NATSOptions{})
	}
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer js.Shutdown()

	sim := testenv.NewSimulator(testenv.SimConfig{
		RatePerSecond:    30, // Zoom Pro, Light endpoints
		DailyCreateLimit: 1,
		DailyWindow:      5 * time.Second,
	})
	defer sim.Close()
	sim.AddUser("bob@example.com", 1)
	for _, u := range sandboxGuardUsers {
		sim.AddUser(u, 1)
	}
	sim.FailEmail("carol@example.com", 0, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: sales."})
	sim.FailEmail("grace@example.com", 2, testenv.Fault{Status: 502, HTML: true})

	fmt.Fprintf(stdout, "NATS JetStream (embedded): %s\nZoom simulator:            %s\n\n", js.URL(), sim.APIURL())

	cfg, err := parseConfig(newFlagSet("sandbox-config"), nil, func(string) string { return "" })
	if err != nil {
		return err
	}
	cfg.NATSURL = js.URL()
	cfg.ZoomAccountID, cfg.ZoomClientID, cfg.ZoomClientSecret = "sim-account", "sim-client", "sim-secret"
	cfg.ZoomAPIURL, cfg.ZoomTokenURL = sim.APIURL(), sim.TokenURL()
	// The health endpoints and the operator console: on HTTP_ADDR if set,
	// else on a free port of the loopback interface.
	cfg.HTTPAddr = getenv("HTTP_ADDR")
	if cfg.HTTPAddr == "" || cfg.HTTPAddr == "off" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	consoleSecret, cleanup, err := sandboxConsole(&cfg)
	if err != nil {
		return fmt.Errorf("sandbox: console: %w", err)
	}
	defer cleanup()
	cfg.LogLevel = *logLevel
	cfg.LogFormat = "console"
	cfg.ShutdownTimeout = 5 * time.Second
	// A guard small enough for the sandbox to trip: alice's leaving and
	// deletion take both slots, the next leaver trips it.
	cfg.GuardLimit, cfg.GuardWindow = 2, time.Hour
	log := newLogger(cfg, stderr)

	svcCtx, stopSvc := context.WithCancel(ctx)
	defer stopSvc()
	svc := app.New(cfg, log, version)
	svcErr := make(chan error, 1)
	go func() { svcErr <- svc.Run(svcCtx) }()
	select {
	case <-svc.Ready():
	case err := <-svcErr:
		return fmt.Errorf("sandbox: service did not start: %w", err)
	case <-ctx.Done():
		return nil
	}
	consoleURL := "http://" + svc.HTTPAddr() + "/console/"
	fmt.Fprintf(stdout, "Operator console:          %s\n  log in with the token %s (the login %q: your changes are audited under that name)\n\n", consoleURL, consoleSecret, sandboxConsoleUser)

	nc, err := nats.Connect(js.URL())
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer nc.Close()
	jsc, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	samples := sandboxSamples()
	tracker := newSampleTracker(samples)
	oc, err := jsc.OrderedConsumer(ctx, cfg.ResultStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{cfg.ResultPrefix + ".>"}})
	if err != nil {
		return fmt.Errorf("sandbox: watch results: %w", err)
	}
	var printMu sync.Mutex
	cc, err := oc.Consume(func(m jetstream.Msg) {
		ev, err := messages.DecodeEvent(m.Data())
		if err != nil || ev.Data.Outcome == "" { // an audit event
			return
		}
		printMu.Lock()
		fmt.Fprintln(stdout, formatEvent(ev))
		printMu.Unlock()
		tracker.record(ev)
	})
	if err != nil {
		return fmt.Errorf("sandbox: watch results: %w", err)
	}
	defer cc.Stop()

	fmt.Fprintln(stdout, "Publishing sample requests:")
	for _, s := range samples {
		m := nats.NewMsg(cfg.Topology().RequestSubject(s.action))
		m.Data = []byte(s.body)
		if _, err := jsc.PublishMsg(ctx, m, jetstream.WithMsgID(s.id)); err != nil {
			return fmt.Errorf("sandbox: publish %s: %w", s.id, err)
		}
		printMu.Lock()
		fmt.Fprintf(stdout, "  %-22s %-10s %s\n", s.id, s.action, s.what)
		printMu.Unlock()
	}
	printMu.Lock()
	fmt.Fprintln(stdout, "\nResults as they arrive (outcome, request id, email, details):")
	printMu.Unlock()

	timeout := time.NewTimer(*idleTimeout)
	defer timeout.Stop()
	select {
	case <-tracker.done:
	case <-ctx.Done():
		return nil
	case err := <-svcErr:
		return fmt.Errorf("sandbox: service stopped: %w", err)
	case <-timeout.C:
		if *exitWhenIdle {
			printMu.Lock()
			tracker.summary(stdout)
			printMu.Unlock()
			return &exitError{code: 1, msg: fmt.Sprintf("sandbox: samples not finished within %v", *idleTimeout)}
		}
	}
	printMu.Lock()
	ok := tracker.summary(stdout)
	printMu.Unlock()
	if !sandboxGuard(ctx, jsc, cfg, stdout, &printMu) {
		ok = false
	}
	// The ledger of the user whose whole life the samples play.
	shown := sampleUserShow(ctx, jsc, cfg.Topology(), samples)
	printMu.Lock()
	fmt.Fprint(stdout, shown)
	printMu.Unlock()
	if !sandboxDrift(ctx, jsc, cfg, sim, stdout, &printMu) {
		ok = false
	}

	if *exitWhenIdle {
		if err := checkConsole(ctx, consoleURL, consoleSecret); err != nil {
			fmt.Fprintf(stdout, "\nsandbox: the operator console does not answer as it should: %v\n", err)
			ok = false
		} else {
			fmt.Fprintf(stdout, "\nThe operator console answered GET %s with the token (200, the overview).\n", consoleURL)
		}
		fmt.Fprint(stdout, "\n"+dlqTry(js.URL(), false))
		stopSvc()
		if err := <-svcErr; err != nil {
			return fmt.Errorf("sandbox: service: %w", err)
		}
		if !ok {
			return &exitError{code: 1, msg: "sandbox: some outcomes differ from the expected ones"}
		}
		return nil
	}
	fmt.Fprintf(stdout, `
The service keeps running. Publish your own requests, for example:
  go run ./cmd/consumer publish --nats-url %[1]s --action ssoCreate --email you@example.com --type 1 --wait 10s
  echo '{"action":"custCreate","user_info":{"email":"x@example.com","type":2}}' | go run ./cmd/consumer publish --nats-url %[1]s --file - --wait 10s
See the quota gates, the budget per replica and the backlog:
  go run ./cmd/consumer quota --nats-url %[1]s
What happened to one person (the per-user ledger):
  go run ./cmd/consumer user show %[3]s --nats-url %[1]s
Compare Zoom with the ledger (drift, and the plan that repairs it):
  ZOOM_ACCOUNT_ID=sim-account ZOOM_CLIENT_ID=sim-client ZOOM_CLIENT_SECRET=sim-secret go run ./cmd/consumer reconcile --nats-url %[1]s --zoom-api-url %[4]s --zoom-token-url %[5]s
%[2]sThe dead letters, the guard, the quotas and anyone's history are also in the operator console:
  %[6]s (token %[7]s)
Press Ctrl-C to stop.
`, js.URL(), dlqTry(js.URL(), true), sandboxLifeUser, sim.APIURL(), sim.TokenURL(), consoleURL, consoleSecret)
	select {
	case <-ctx.Done():
	case err := <-svcErr:
		return fmt.Errorf("sandbox: service stopped: %w", err)
	}
	stopSvc()
	return <-svcErr
}

// sampleTracker collects the result events of the samples.
type sampleTracker struct {
	mu       sync.Mutex
	samples  map[string]sample
	terminal map[string]messages.Result
	deferred map[string]int
	// arrived numbers the terminal results in the order they came.
	arrived map[string]int
	done    chan struct{}
}

func newSampleTracker(samples []sample) *sampleTracker {
	t := &sampleTracker{samples: map[string]sample{}, terminal: map[string]messages.Result{}, deferred: map[string]int{}, arrived: map[string]int{}, done: make(chan struct{})}
	for _, s := range samples {
		t.samples[s.id] = s
	}
	return t
}

func (t *sampleTracker) record(ev messages.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := ev.Data
	if _, ok := t.samples[r.RequestID]; !ok {
		return
	}
	if r.Outcome == messages.OutcomeDeferred {
		t.deferred[r.RequestID]++
		return
	}
	if _, seen := t.terminal[r.RequestID]; seen {
		return
	}
	t.terminal[r.RequestID] = r
	t.arrived[r.RequestID] = len(t.arrived) + 1
	if len(t.terminal) == len(t.samples) {
		close(t.done)
	}
}

// summary prints the table of expected and actual outcomes and reports
// whether all match and at least one request was deferred by the quota.
func (t *sampleTracker) summary(w io.Writer) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]string, 0, len(t.samples))
	for id := range t.samples {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	fmt.Fprintln(w, "\nSummary:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REQUEST\tEXPECTED\tGOT\tDEFERRED\tOK")
	allOK, deferrals := true, 0
	for _, id := range ids {
		s := t.samples[id]
		want := string(s.outcome)
		if s.reason != "" {
			want += " (" + string(s.reason) + ")"
		}
		got, ok := "(none)", false
		if r, seen := t.terminal[id]; seen {
			got = string(r.Outcome)
			if r.Reason != "" {
				got += " (" + string(r.Reason) + ")"
			}
			ok = r.Outcome == s.outcome && r.Reason == s.reason
			if s.after != "" && t.arrived[s.after] > t.arrived[id] {
				got += ", before " + s.after
				ok = false
			}
		}
		deferrals += t.deferred[id]
		allOK = allOK && ok
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", id, want, got, t.deferred[id], map[bool]string{true: "yes", false: "NO"}[ok])
	}
	tw.Flush()
	if deferrals == 0 {
		fmt.Fprintln(w, "expected at least one quota deferral among the create requests; saw none")
		allOK = false
	}
	fmt.Fprintf(w, "%d samples, %d as expected, %d quota deferrals\n", len(ids), countOK(t), deferrals)
	return allOK
}

func countOK(t *sampleTracker) int {
	n := 0
	for id, s := range t.samples {
		if r, ok := t.terminal[id]; ok && r.Outcome == s.outcome && r.Reason == s.reason && (s.after == "" || t.arrived[s.after] < t.arrived[id]) {
			n++
		}
	}
	return n
}

// dlqTry is the sandbox's hint at the dlq commands. live says whether the
// sandbox keeps serving; with --exit-when-idle its server stops at once.
func dlqTry(natsURL string, live bool) string {
	s := fmt.Sprintf(`Look at the dead letters, and at what replaying them would do:
  go run ./cmd/consumer dlq ls --nats-url %[1]s
  go run ./cmd/consumer dlq replay --nats-url %[1]s --dry-run
`, natsURL)
	if !live {
		s += "(the sandbox's NATS server stops as it exits: run it without --exit-when-idle to try them)\n"
	}
	return s
}

// sandboxLifeUser is the sample user whose whole life the sandbox plays.
const sandboxLifeUser = "alice@example.com"

// sampleLedgerWait bounds the wait for the ledger to hold every finished
// request of sandboxLifeUser: it is written a few milliseconds after each
// result.
const sampleLedgerWait = 15 * time.Second

// sampleUserShow returns what `consumer user show` prints of
// sandboxLifeUser, once the ledger holds the result of every sample about
// them (or after sampleLedgerWait, as far as it got).
func sampleUserShow(ctx context.Context, js jetstream.JetStream, topo topology.Topology, samples []sample) string {
	want := 0
	for _, s := range samples {
		if messages.UserKey(messages.BestEffortEmail([]byte(s.body))) == messages.UserKey(sandboxLifeUser) {
			want++
		}
	}
	deadline := time.NewTimer(sampleLedgerWait)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var v ledger.View
	var err error
	for {
		v, err = ledger.Show(ctx, js, topo, sandboxLifeUser)
		if err == nil && len(v.Requests) >= want {
			break
		}
		select {
		case <-ctx.Done():
			return ""
		case <-deadline.C:
		case <-tick.C:
			continue
		}
		break
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nWhat happened to %[1]s (consumer user show %[1]s):\n", sandboxLifeUser)
	if err != nil {
		fmt.Fprintf(&b, "the ledger cannot be read: %v\n", err)
		return b.String()
	}
	_ = printUser(&b, v)
	return b.String()
}

// sandboxGuardUsers leave together after the samples: one more
// deactivation than the sandbox's guard allows.
var sandboxGuardUsers = []string{"mallory@example.com", "oscar@example.com"}

// sandboxGuard shows the guard against mass deprovisioning: two more
// leavers trip it (GUARD_LIMIT is 2 here, and alice's leaving and
// deletion used both slots), consumer guard status shows it, and a
// release lets them go. It reports whether all went as expected.
func sandboxGuard(ctx context.Context, js jetstream.JetStream, cfg Config, stdout io.Writer, mu *sync.Mutex) bool {
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(stdout, format, args...)
		mu.Unlock()
	}
	topo := cfg.Topology()
	say("\nThe guard against mass deprovisioning (GUARD_LIMIT=%d in %v here): %d more leavers\n", cfg.GuardLimit, cfg.GuardWindow, len(sandboxGuardUsers))
	var ids []string
	for i, u := range sandboxGuardUsers {
		id := fmt.Sprintf("sandbox-guard-%d", i+1)
		m := nats.NewMsg(topo.RequestSubject("deactivate"))
		m.Data = []byte(fmt.Sprintf(`{"email":%q}`, u))
		if _, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(id)); err != nil {
			say("sandbox: publish %s: %v\n", id, err)
			return false
		}
		ids = append(ids, id)
	}
	getenv := mapGetenv(map[string]string{"NATS_URL": cfg.NATSURL})
	var out strings.Builder
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := readGuard(ctx, js, topo)
		if err == nil && st.Tripped && guard.Waiting(ctx, js, topo) == len(ids) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			say("sandbox: the guard did not trip (%+v, %v)\n", st, err)
			return false
		}
		retry.Sleep(ctx, 100*time.Millisecond, nil)
	}
	say("  $ consumer guard status\n")
	if err := guardStatusCommand(ctx, nil, getenv, &out, &out); err != nil {
		say("sandbox: guard status: %v\n", err)
		return false
	}
	say("%s", indent(out.String()))
	out.Reset()
	say("  $ consumer guard release --reason \"sandbox: HR confirmed the leavers\"\n")
	if err := guardDecideCommand(ctx, "release", []string{"--reason", "sandbox: HR confirmed the leavers", "--actor", "sandbox"}, getenv, &out, &out); err != nil {
		say("sandbox: guard release: %v\n", err)
		return false
	}
	say("%s", indent(out.String()))
	for ctx.Err() == nil {
		done := 0
		for _, id := range ids {
			if r, ok := resultOf(ctx, js, topo, id); ok && r.Outcome == messages.OutcomeDeactivated {
				done++
			}
		}
		if done == len(ids) {
			say("  both leavers deactivated after the release\n")
			return true
		}
		if time.Now().After(deadline.Add(30 * time.Second)) {
			say("sandbox: the released leavers were not deactivated\n")
			return false
		}
		retry.Sleep(ctx, 100*time.Millisecond, nil)
	}
	return false
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

func mapGetenv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// resultOf is the terminal result of request id, read from the result
// stream (the last one stored for it).
func resultOf(ctx context.Context, js jetstream.JetStream, topo topology.Topology, id string) (messages.Result, bool) {
	s, err := js.Stream(ctx, topo.ResultStream)
	if err != nil {
		return messages.Result{}, false
	}
	info, err := s.Info(ctx)
	if err != nil {
		return messages.Result{}, false
	}
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0; seq-- {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		if ev, err := messages.DecodeEvent(m.Data); err == nil && ev.Data.RequestID == id && ev.Data.Outcome.Terminal() {
			return ev.Data, true
		}
	}
	return messages.Result{}, false
}

// sandboxConsoleUser is the login the sandbox's console gets.
const sandboxConsoleUser = "sandbox"

// sandboxConsole turns the operator console on: a token file with one
// fresh login in a temporary directory (removed by cleanup), loaded into
// cfg as CONSOLE_TOKEN_FILE would be. It returns the login's secret.
func sandboxConsole(cfg *Config) (secret string, cleanup func(), err error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, err
	}
	secret = hex.EncodeToString(b[:])
	dir, err := os.MkdirTemp("", "zoomprov-sandbox-console-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	path := filepath.Join(dir, "console-tokens")
	if err := os.WriteFile(path, []byte(sandboxConsoleUser+":"+secret+"\n"), 0o600); err != nil {
		cleanup()
		return "", nil, err
	}
	if cfg.ConsoleTokens, err = console.LoadTokens(path); err != nil {
		cleanup()
		return "", nil, err
	}
	return secret, cleanup, nil
}

// checkConsole asks the console for its overview with the bearer token,
// and for it without one (which must not show it).
func checkConsole(ctx context.Context, url, secret string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	get := func(auth bool) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		if auth {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		resp, err := noRedirects.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if code, err := get(true); err != nil || code != http.StatusOK {
		return fmt.Errorf("GET %s with the token: %d, %v; want 200", url, code, err)
	}
	if code, err := get(false); err != nil || code != http.StatusSeeOther {
		return fmt.Errorf("GET %s without a token: %d, %v; want 303 to the login page", url, code, err)
	}
	return nil
}

// noRedirects is an HTTP client that shows redirects instead of
// following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// quoted quotes each argument for a shell, as the sandbox shows commands.
func quoted(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = shellQuote(a)
	}
	return out
}

// sandboxDrift makes a little drift by hand in Zoom, as an admin in its
// portal would (bob deactivated; grace renamed; walter added, whom no
// request ever created; none of the corrections is destructive, so the
// guard's fresh window stays free for the integrators' examples), shows `consumer reconcile --apply`
// (the drift, its plan, and the corrective requests it published, which go
// through the stream like any request), and the second scan, clean.
// It reports whether all went as expected.
func sandboxDrift(ctx context.Context, js jetstream.JetStream, cfg Config, sim *testenv.Simulator, stdout io.Writer, mu *sync.Mutex) bool {
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(stdout, format, args...)
		mu.Unlock()
	}
	say("\nDrift made by hand in Zoom: bob deactivated, grace renamed Gracie, walter added outside the service\n")
	if err := errors.Join(
		sim.AdminSetStatus("bob@example.com", "inactive"),
		sim.AdminUpdate("grace@example.com", func(u *testenv.SimUser) { u.FirstName = "Gracie" }),
		func() error {
			_, err := sim.AdminCreate(testenv.SimUser{Email: "walter@example.com", FirstName: "Walter"})
			return err
		}(),
	); err != nil {
		say("sandbox: drift by hand: %v\n", err)
		return false
	}
	getenv := mapGetenv(map[string]string{"NATS_URL": cfg.NATSURL, "ZOOM_API_URL": cfg.ZoomAPIURL, "ZOOM_TOKEN_URL": cfg.ZoomTokenURL,
		"ZOOM_ACCOUNT_ID": cfg.ZoomAccountID, "ZOOM_CLIENT_ID": cfg.ZoomClientID, "ZOOM_CLIENT_SECRET": cfg.ZoomClientSecret})
	scan := func(args ...string) (string, bool) {
		var out strings.Builder
		// Held while the command runs, so that the results of the
		// corrections it publishes print after what it printed.
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stdout, "  $ consumer %s\n", strings.Join(append([]string{"reconcile"}, quoted(args)...), " "))
		err := reconcileCommand(ctx, args, getenv, &out, &out)
		fmt.Fprintf(stdout, "%s", indent(out.String()))
		if err != nil {
			fmt.Fprintf(stdout, "sandbox: consumer reconcile: %v\n", err)
			return "", false
		}
		return out.String(), true
	}
	// --apply prints the drift and the plan, then publishes it.
	applied, ok := scan("--apply", "--actor", "sandbox", "--reason", "sandbox: drift made by hand")
	if !ok {
		return false
	}
	if want := "2 drift (missing 0, status 1, present 0, fields 1), 1 unmanaged"; !strings.Contains(applied, want) {
		say("sandbox: consumer reconcile found other drift; want %q\n", want)
		return false
	}
	ids := regexp.MustCompile(`(?m)^  (reconcile-\S+)$`).FindAllStringSubmatch(applied, -1)
	if len(ids) != 2 {
		say("sandbox: consumer reconcile --apply published %d corrective requests; want 2\n", len(ids))
		return false
	}
	topo := cfg.Topology()
	deadline := time.Now().Add(30 * time.Second)
	for _, id := range ids {
		for {
			if _, done := resultOf(ctx, js, topo, id[1]); done {
				break // the result is printed as it arrives
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				say("sandbox: no result for %s\n", id[1])
				return false
			}
			retry.Sleep(ctx, 50*time.Millisecond, nil)
		}
	}
	second, ok := scan()
	if !ok {
		return false
	}
	if !strings.Contains(second, "0 drift") {
		say("sandbox: the second scan still found drift\n")
		return false
	}
	return true
}
