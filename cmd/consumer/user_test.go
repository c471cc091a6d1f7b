package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/ledger"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

// lifeStep is one request of a user's life and the outcome it must end in.
type lifeStep struct {
	id, action, body string
	outcome          messages.Outcome
	reason           messages.Reason
}

// userLife is one user's life as the test plans it.
type userLife struct {
	email string
	steps []lifeStep
	state ledger.State
}

// plannedLives are 40 users with mixed lives: whole lives ending in a
// deletion, creations followed by updates, invitations left pending,
// deactivations, an activation that fails before the creation, a user
// Zoom already has, a creation dead-lettered and then a later delete, an
// invalid request, and an address spelt in two cases.
func plannedLives(sim *testenv.Simulator) []userLife {
	create := func(id, action, email string, o messages.Outcome, r messages.Reason) lifeStep {
		typ := 1
		if action == "custCreate" {
			typ = 2
		}
		return lifeStep{id, action, fmt.Sprintf(`{"action":%q,"user_info":{"email":%q,"type":%d,"first_name":"F","last_name":"L"}}`, action, email, typ), o, r}
	}
	op := func(id, action, body string, o messages.Outcome, r messages.Reason) lifeStep {
		return lifeStep{id, action, body, o, r}
	}
	status := func(email string) string { return fmt.Sprintf(`{"email":%q}`, email) }
	var lives []userLife
	for i := range 40 {
		e := fmt.Sprintf("u%d@lives.example.com", i)
		id := func(s string) string { return fmt.Sprintf("life-%d-%s", i, s) }
		var l userLife
		switch {
		case i == 36: // Zoom already has the user
			sim.AddUser(e, 1)
			l = userLife{e, []lifeStep{create(id("c"), "ssoCreate", e, messages.OutcomeExists, "")}, ledger.StateActive}
		case i == 37: // the creation is dead-lettered, a later delete succeeds
			sim.FailEmail(e, 1, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: sales."})
			l = userLife{e, []lifeStep{
				create(id("c"), "ssoCreate", e, messages.OutcomeFailed, messages.ReasonNotFound),
				op(id("d"), "delete", status(e), messages.OutcomeDeleted, ""),
			}, ledger.StateDeleted}
		case i == 38: // one invalid request
			l = userLife{e, []lifeStep{
				op(id("bad"), "custCreate", fmt.Sprintf(`{"action":"custCreate","user_info":{"email":%q,"type":7}}`, e), messages.OutcomeFailed, messages.ReasonInvalidRequest),
			}, ledger.StateUnknown}
		case i == 39: // two spellings of one address
			l = userLife{e, []lifeStep{
				create(id("c"), "ssoCreate", "U39@Lives.Example.COM", messages.OutcomeCreated, ""),
				op(id("u"), "update", `{"email":"u39@lives.example.com","user":{"dept":"Sales"}}`, messages.OutcomeUpdated, ""),
			}, ledger.StateActive}
		case i%5 == 0: // a whole life
			l = userLife{e, []lifeStep{
				create(id("c"), "ssoCreate", e, messages.OutcomeCreated, ""),
				op(id("u"), "update", fmt.Sprintf(`{"email":%q,"user":{"first_name":"Renamed","job_title":"Engineer"}}`, e), messages.OutcomeUpdated, ""),
				op(id("x"), "deactivate", status(e), messages.OutcomeDeactivated, ""),
				op(id("a"), "activate", status(e), messages.OutcomeActivated, ""),
				op(id("d"), "delete", fmt.Sprintf(`{"email":%q,"action":"delete"}`, e), messages.OutcomeDeleted, ""),
			}, ledger.StateDeleted}
		case i%5 == 1:
			l = userLife{e, []lifeStep{
				create(id("c"), "custCreate", e, messages.OutcomeCreated, ""),
				op(id("u"), "update", fmt.Sprintf(`{"email":%q,"user":{"type":1}}`, e), messages.OutcomeUpdated, ""),
			}, ledger.StateActive}
		case i%5 == 2:
			l = userLife{e, []lifeStep{create(id("c"), "create", e, messages.OutcomeCreated, "")}, ledger.StatePending}
		case i%5 == 3:
			l = userLife{e, []lifeStep{
				create(id("c"), "ssoCreate", e, messages.OutcomeCreated, ""),
				op(id("x"), "deactivate", status(e), messages.OutcomeDeactivated, ""),
			}, ledger.StateInactive}
		default: // an activation before the creation fails
			l = userLife{e, []lifeStep{
				op(id("a"), "activate", status(e), messages.OutcomeFailed, messages.ReasonNotFound),
				create(id("c"), "ssoCreate", e, messages.OutcomeCreated, ""),
			}, ledger.StateActive}
		}
		lives = append(lives, l)
	}
	return lives
}

// publishLives publishes every step, the users' steps interleaved, each
// user's in order.
func publishLives(t *testing.T, js jetstream.JetStream, lives []userLife) {
	t.Helper()
	topo := topology.Default()
	for step := 0; ; step++ {
		any := false
		for _, l := range lives {
			if step >= len(l.steps) {
				continue
			}
			any = true
			s := l.steps[step]
			m := nats.NewMsg(topo.RequestSubject(s.action))
			m.Data = []byte(s.body)
			if _, err := js.PublishMsg(context.Background(), m, jetstream.WithMsgID(s.id)); err != nil {
				t.Fatalf("publish %s: %v", s.id, err)
			}
		}
		if !any {
			return
		}
	}
}

// ledgerCaughtUp waits until the ledger's consumer has applied every
// result.
func ledgerCaughtUp(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	topo := topology.Default()
	eventually(t, 30*time.Second, func() (bool, string) {
		c, err := js.Consumer(context.Background(), topo.ResultStream, topo.ConsumerName(topology.LedgerConsumer))
		if err != nil {
			return false, err.Error()
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return false, err.Error()
		}
		return info.NumPending == 0 && info.NumAckPending == 0, fmt.Sprintf("ledger consumer: %d pending, %d not acknowledged", info.NumPending, info.NumAckPending)
	})
}

// showJSON runs `user show EMAIL --json` and decodes it.
func showJSON(t *testing.T, env map[string]string, email string) ledger.View {
	t.Helper()
	res := runCLI(t, 10*time.Second, env, "", "user", "show", email, "--json")
	if res.code != 0 {
		t.Fatalf("user show %s --json = %d, stderr %q", email, res.code, res.stderr)
	}
	var v ledger.View
	dec := json.NewDecoder(strings.NewReader(res.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("user show %s --json printed %q: %v", email, res.stdout, err)
	}
	return v
}

// checkLives compares `user show --json` of every user with what the test
// planned and what the result stream holds.
func checkLives(t *testing.T, env map[string]string, js jetstream.JetStream, lives []userLife) {
	t.Helper()
	events := resultEvents(t, js)
	for i, l := range lives {
		asked := l.email
		if i == 39 {
			asked = "U39@LIVES.example.com"
		}
		v := showJSON(t, env, asked)
		if v.State != l.state {
			t.Errorf("%s: state %q; want %q", l.email, v.State, l.state)
		}
		if len(v.Requests) != len(l.steps) {
			t.Errorf("%s: %d requests %+v; want %d", l.email, len(v.Requests), v.Requests, len(l.steps))
			continue
		}
		wantID := ""
		for j, s := range l.steps {
			q := v.Requests[j]
			evs := terminalEvents(events[s.id])
			if len(evs) != 1 {
				t.Fatalf("%s: %d terminal results; want 1", s.id, len(evs))
			}
			ev := evs[0]
			at, _ := time.Parse(time.RFC3339Nano, ev.Time)
			if q.RequestID != s.id || q.Action != s.action || q.Outcome != s.outcome || q.Reason != s.reason ||
				q.StreamSequence != ev.Data.StreamSequence || !q.Time.Equal(at) {
				t.Errorf("%s: request %d = %+v; want %s %s %s %q at stream sequence %d, %s", l.email, j, q, s.id, s.action, s.outcome, s.reason, ev.Data.StreamSequence, ev.Time)
			}
			if j > 0 && q.StreamSequence <= v.Requests[j-1].StreamSequence {
				t.Errorf("%s: requests not in stream order: %+v", l.email, v.Requests)
			}
			if ev.Data.ZoomUserID != "" {
				wantID = ev.Data.ZoomUserID
			}
		}
		if v.ZoomUserID != wantID {
			t.Errorf("%s: zoom_user_id %q; want %q", l.email, v.ZoomUserID, wantID)
		}
	}
}

// Ensure `user show` of each of 40 users with mixed lives, run by the real
// service, equals what the test recorded: state, Zoom id, every request in
// stream order with its outcome and reason; that an unknown user is exit 0,
// unknown, no requests (one line in text); that the text form is a header
// and a table; and that `user reindex` rebuilds the ledger after its bucket
// was deleted.
func TestUserShowMatchesLives(t *testing.T) {
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{})
	lives := plannedLives(sim)
	svc := startRun(t, serviceEnv(ns, sim))
	addr := svc.healthAddr(t)
	eventually(t, 15*time.Second, func() (bool, string) {
		code, _, why := getReady(addr)
		return code == 200, why
	})
	_, js := connectJS(t, ns.URL())
	publishLives(t, js, lives)
	eventually(t, 60*time.Second, func() (bool, string) {
		evs := resultEvents(t, js)
		for _, l := range lives {
			for _, s := range l.steps {
				if len(terminalEvents(evs[s.id])) == 0 {
					return false, s.id + " has no terminal result yet"
				}
			}
		}
		return true, ""
	})
	ledgerCaughtUp(t, js)
	env := map[string]string{"NATS_URL": ns.URL()}
	checkLives(t, env, js, lives)

	// Text: a header and a table.
	res := runCLI(t, 10*time.Second, env, "", "user", "show", "u0@lives.example.com")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.code != 0 || len(lines) != 11 || lines[0] != "email:    u0@lives.example.com" || lines[1] != "state:    deleted" ||
		!strings.HasPrefix(lines[2], "zoom id:  ") || !strings.HasPrefix(lines[4], "SEQ") || !strings.Contains(lines[9], "life-0-d") || lines[10] != "5 requests" {
		t.Errorf("user show u0 = %d:\n%s\nwant a header, a table of 5 requests and a count", res.code, res.stdout)
	}
	// Unknown.
	res = runCLI(t, 10*time.Second, env, "", "user", "show", "--nats-url", ns.URL(), "nobody@lives.example.com")
	if res.code != 0 || strings.Count(res.stdout, "\n") != 1 || !strings.Contains(res.stdout, "nobody@lives.example.com: unknown") {
		t.Errorf("user show of an unknown user = %d, %q; want exit 0 and one line saying unknown", res.code, res.stdout)
	}
	if v := showJSON(t, env, "nobody@lives.example.com"); v.State != ledger.StateUnknown || v.Requests == nil || len(v.Requests) != 0 {
		t.Errorf("user show --json of an unknown user = %+v; want unknown and []", v)
	}

	// The bucket deleted: show says so; once made again, reindex rebuilds
	// it while the service runs.
	if err := js.DeleteKeyValue(context.Background(), topology.Default().LedgerBucket); err != nil {
		t.Fatal(err)
	}
	res = runCLI(t, 10*time.Second, env, "", "user", "show", "u1@lives.example.com")
	if res.code != 1 {
		t.Errorf("user show without the bucket = %d; want 1", res.code)
	}
	wantOneLine(t, res, "zoom_ledger does not exist")
	provisionStreams(t, js, 30*time.Second)
	res = runCLI(t, 60*time.Second, env, "", "user", "reindex")
	if res.code != 0 || !strings.Contains(res.stdout, "wrote 40 entries") {
		t.Errorf("user reindex = %d, %q (stderr %q); want exit 0 and 40 entries written", res.code, res.stdout, res.stderr)
	}
	checkLives(t, env, js, lives)
}

// Ensure the usage mistakes of `consumer user` are one line and exit 2,
// before connecting.
func TestUserBadInput(t *testing.T) {
	pit := newTarpit(t)
	env := map[string]string{"NATS_URL": pit.url()}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "show"}, "give the person's address"},
		{[]string{"user", "show", "not an address"}, "want an address"},
		{[]string{"user", "show", "nobody"}, "want an address"},
		{[]string{"user", "forget", "bob@example.com"}, "--reason is required"},
		{[]string{"user", "forget", "bob@example.com", "--reason", "x", "--actor", " "}, "--actor"},
		{[]string{"user", "reindex", "extra"}, "unexpected argument"},
		{[]string{"user", "bogus"}, "unknown command"},
		{[]string{"user", "show", "--bogus", "bob@example.com"}, "bogus"},
	} {
		res := runCLI(t, 10*time.Second, env, "", tc.args...)
		if res.code != 2 {
			t.Errorf("consumer %q = %d; want 2", tc.args, res.code)
		}
		wantOneLine(t, res, tc.want)
	}
	if pit.connected(t) {
		t.Errorf("a usage mistake connected to NATS")
	}
	if res := runCLI(t, 10*time.Second, env, "", "user"); res.code != 2 || !strings.Contains(res.stderr, "usage: consumer user") {
		t.Errorf("consumer user = %d, %q; want 2 and the usage", res.code, res.stderr)
	}
}

// Ensure `dlq replay` refuses a dead letter whose user has a newer request
// that succeeded (one line naming it, exit 1, the dead letter kept), lists
// it with --dry-run, and replays it with --force; and that `user forget`
// erases the person, with an audit event.
func TestReplayRefusalAndForget(t *testing.T) {
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{})
	sim.FailEmail("gone@example.com", 1, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: sales."})
	sim.FailEmail("late@example.com", 1, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: sales."})
	svc := startRun(t, serviceEnv(ns, sim))
	addr := svc.healthAddr(t)
	eventually(t, 15*time.Second, func() (bool, string) {
		code, _, why := getReady(addr)
		return code == 200, why
	})
	_, js := connectJS(t, ns.URL())
	topo := topology.Default()
	publish := func(id, action, body string) {
		t.Helper()
		m := nats.NewMsg(topo.RequestSubject(action))
		m.Data = []byte(body)
		if _, err := js.PublishMsg(context.Background(), m, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	// gone@: the creation fails, the person is deleted later: a replay of
	// the creation would bring back someone who left. late@: the creation
	// fails and nothing newer happened.
	publish("gone-create", "ssoCreate", `{"action":"ssoCreate","user_info":{"email":"gone@example.com","type":1}}`)
	publish("gone-delete", "delete", `{"email":"Gone@example.com"}`)
	publish("late-create", "ssoCreate", `{"action":"ssoCreate","user_info":{"email":"late@example.com","type":1}}`)
	eventually(t, 30*time.Second, func() (bool, string) {
		evs := resultEvents(t, js)
		return len(terminalEvents(evs["gone-delete"])) == 1 && len(terminalEvents(evs["late-create"])) == 1, "results not in yet"
	})
	ledgerCaughtUp(t, js)
	env := map[string]string{"NATS_URL": ns.URL()}
	seqOf := func(id string) string {
		t.Helper()
		res := runCLI(t, 10*time.Second, env, "", "dlq", "ls", "--json")
		var ls []struct {
			Seq       uint64 `json:"seq"`
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal([]byte(res.stdout), &ls); err != nil {
			t.Fatalf("dlq ls --json = %q: %v", res.stdout, err)
		}
		for _, e := range ls {
			if e.RequestID == id {
				return strconv.FormatUint(e.Seq, 10)
			}
		}
		return ""
	}
	gone := seqOf("gone-create")
	if gone == "" || seqOf("late-create") == "" {
		t.Fatalf("dead letters missing")
	}

	res := runCLI(t, 10*time.Second, env, "", "dlq", "replay", "--dry-run")
	if res.code != 0 || !strings.Contains(res.stdout, "would replay 1 dead letter") || !strings.Contains(res.stdout, "would refuse 1, a newer request about the same user succeeded") ||
		!strings.Contains(res.stdout, gone+" (request gone-create): a newer request about the same user succeeded: gone-delete (delete, deleted") {
		t.Errorf("dlq replay --dry-run = %d:\n%s\nwant late-create to replay and gone-create refused for gone-delete", res.code, res.stdout)
	}
	res = runCLI(t, 10*time.Second, env, "", "dlq", "replay")
	if res.code != 1 || !strings.Contains(res.stdout, "refused "+gone+" (request gone-create): a newer request about the same user succeeded: gone-delete") ||
		!strings.Contains(res.stdout, "replayed 1,") {
		t.Errorf("dlq replay = %d:\n%s\nwant late-create replayed, one line refusing gone-create, exit 1", res.code, res.stdout)
	}
	wantOneLine(t, res, "1 dead letter refused: a newer request about the same user succeeded")
	if seqOf("gone-create") != gone || seqOf("late-create") != "" {
		t.Errorf("after the replay: want gone-create still dead-lettered and late-create gone")
	}
	res = runCLI(t, 10*time.Second, env, "", "dlq", "replay", "--force")
	if res.code != 0 || !strings.Contains(res.stdout, "replayed "+gone+" (request gone-create) although a newer request") {
		t.Errorf("dlq replay --force = %d:\n%s\nwant gone-create replayed", res.code, res.stdout)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		v := showJSON(t, env, "gone@example.com")
		return v.State == ledger.StateActive && len(v.Requests) == 3, fmt.Sprintf("gone@ = %+v; want active with the replay as a third request", v)
	})

	// An invalid request about the person: a dead letter to erase too.
	publish("gone-bad", "update", `{"email":"gone@example.com","user":{}}`)
	eventually(t, 30*time.Second, func() (bool, string) {
		return streamMsgCount(t, js, topo.DeadLetterStream) == 1, "no dead letter for gone-bad yet"
	})
	ledgerCaughtUp(t, js)

	// Forget: the person erased; an audit event.
	res = runCLI(t, 10*time.Second, env, "", "user", "forget", "GONE@example.com", "--reason", "erasure request HR-1", "--actor", "helpdesk")
	if res.code != 0 || !strings.Contains(res.stdout, "forgot GONE@example.com (ledger key "+ledger.Key("gone@example.com")+")") ||
		!strings.Contains(res.stdout, "4 result events and 1 dead letter") || !strings.Contains(res.stdout, "recorded as helpdesk's action") {
		t.Errorf("user forget = %d, %q (stderr %q); want the erasure reported", res.code, res.stdout, res.stderr)
	}
	if v := showJSON(t, env, "gone@example.com"); v.State != ledger.StateUnknown || len(v.Requests) != 0 {
		t.Errorf("gone@ after forget = %+v; want unknown", v)
	}
	// Nothing about gone@ is left in the result stream but the audit
	// event, which names the person by key.
	ctx := context.Background()
	rs, err := js.Stream(ctx, topo.ResultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := rs.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var audits []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := rs.GetMsg(ctx, seq)
		if err != nil {
			continue // erased
		}
		if strings.Contains(strings.ToLower(string(m.Data)), "gone@") {
			t.Errorf("result %d about gone@ survived forget: %s", seq, m.Data)
		}
		if m.Subject == topo.ResultPrefix+".user" {
			audits = append(audits, string(m.Data))
		}
	}
	if len(audits) != 1 || !strings.Contains(audits[0], `"type":"zoom.user.provisioning.user.forgotten"`) ||
		!strings.Contains(audits[0], `"subject":"`+ledger.Key("gone@example.com")+`"`) || !strings.Contains(audits[0], `"actor":"helpdesk"`) ||
		!strings.Contains(audits[0], `"reason":"erasure request HR-1"`) {
		t.Errorf("audit events %v; want one user.forgotten with the key, actor and reason", audits)
	}
	if n := streamMsgCount(t, js, topo.DeadLetterStream); n != 0 {
		t.Errorf("%d dead letters left; want none", n)
	}
}

// Ensure the service writes the ledger, and an operator runs `user show`,
// `user reindex`, `user forget` and a `dlq replay` that reads the ledger,
// under the permissions of deploy/k8s/nats-accounts.conf on a nats-server
// process, without one permissions violation.
func TestUserCommandsAsOperator(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a nats-server process")
	}
	srv := startAccountsServer(t)
	url := srv.URL()
	sim := startSim(t, testenv.SimConfig{})
	sim.FailEmail("ops-gone@example.com", 1, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: sales."})
	svc := startRun(t, userEnv(url, "zoom-provisioner", map[string]string{
		"ZOOM_ACCOUNT_ID":    testenv.DefaultSimAccountID,
		"ZOOM_CLIENT_ID":     testenv.DefaultSimClientID,
		"ZOOM_CLIENT_SECRET": testenv.DefaultSimClientSecret,
		"ZOOM_API_URL":       sim.APIURL(),
		"ZOOM_TOKEN_URL":     sim.TokenURL(),
		"HTTP_ADDR":          "127.0.0.1:0",
	}))
	addr := svc.healthAddr(t)
	eventually(t, 30*time.Second, func() (bool, string) {
		code, _, why := getReady(addr)
		return code == 200, why
	})
	operator := userEnv(url, "operator", map[string]string{"NATS_INBOX_PREFIX": "_INBOX_operator"})
	ok := func(args ...string) cliResult {
		t.Helper()
		res := runCLI(t, 60*time.Second, operator, "", args...)
		if res.code != 0 {
			t.Fatalf("consumer %s as operator: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
		}
		return res
	}
	ok("publish", "--action", "ssoCreate", "--email", "ops-user@example.com", "--msg-id", "ops-user", "--wait", "30s")
	ok("publish", "--op", "update", "--email", "ops-user@example.com", "--first-name", "Ops", "--msg-id", "ops-user-2", "--wait", "30s")
	ok("publish", "--action", "ssoCreate", "--email", "ops-gone@example.com", "--msg-id", "ops-gone", "--wait", "30s")
	ok("publish", "--op", "delete", "--email", "ops-gone@example.com", "--msg-id", "ops-gone-2", "--wait", "30s")
	eventually(t, 30*time.Second, func() (bool, string) {
		res := ok("user", "show", "ops-user@example.com", "--json")
		return strings.Contains(res.stdout, `"ops-user-2"`) && strings.Contains(res.stdout, `"state": "active"`), res.stdout
	})
	eventually(t, 30*time.Second, func() (bool, string) {
		res := ok("user", "show", "ops-gone@example.com")
		return strings.Contains(res.stdout, "state:    deleted"), res.stdout
	})
	ok("user", "show", "nobody@example.com")
	if res := runCLI(t, 60*time.Second, operator, "", "dlq", "replay"); res.code != 1 || !strings.Contains(res.stdout, "ops-gone-2") {
		t.Errorf("dlq replay as operator = %d, %q (stderr %q); want the creation refused for ops-gone-2", res.code, res.stdout, res.stderr)
	}
	ok("user", "reindex")
	ok("user", "forget", "ops-gone@example.com", "--reason", "test erasure")
	if res := ok("user", "show", "ops-user@example.com", "--json"); !strings.Contains(res.stdout, `"ops-user-2"`) {
		t.Errorf("ops-user after reindex and forget: %s", res.stdout)
	}
	if err := svc.stop(t); err != nil {
		t.Fatalf("run as zoom-provisioner: %v", err)
	}
	if log := strings.ToLower(svc.stderr.String()); strings.Contains(log, "permission") || strings.Contains(log, "authorization") {
		t.Errorf("run as zoom-provisioner hit a permission error:\n%s", svc.stderr.String())
	}
	if seen, _ := srv.violations(t, 0); len(seen) > 0 {
		t.Errorf("permissions violations; want none:\n%s", strings.Join(flatten(seen), "\n"))
	}
}
