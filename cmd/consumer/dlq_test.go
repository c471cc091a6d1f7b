package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/deadletter"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/testenv"
)

// deadLetter is a dead letter the CLI tests store directly, as the
// consumer would have.
type deadLetter struct {
	id, action, body string
	reason           messages.Reason
	status, code     int
	message          string
}

// seedDLQ stores dead letters in the dead-letter stream, in order, so the
// first gets the next sequence.
func seedDLQ(t testing.TB, js jetstream.JetStream, dls ...deadLetter) {
	t.Helper()
	for i, d := range dls {
		dl := deadletter.Header{
			Reason: d.reason, HTTPStatus: d.status, ZoomCode: d.code, ZoomMessage: d.message,
			OriginalSubject: "zoom.users.create." + d.action, OriginalSequence: uint64(i + 1),
			RequestID: d.id, Deliveries: 1, DeadLetteredAt: time.Now(),
		}
		m := nats.NewMsg("zoom.users.dlq." + d.action)
		m.Data = []byte(d.body)
		for k, v := range dl.Headers() {
			m.Header.Set(k, v)
		}
		if _, err := js.PublishMsg(context.Background(), m, jetstream.WithMsgID(deadletter.MsgID(d.id))); err != nil {
			t.Fatalf("store dead letter %s: %v", d.id, err)
		}
	}
}

func groupMissing(id, action, email string) deadLetter {
	return deadLetter{id: id, action: action, body: fmt.Sprintf(`{"action":%q,"user_info":{"email":%q,"type":1}}`, action, email),
		reason: messages.ReasonNotFound, status: 404, code: 4130, message: "Group does not exist: sales."}
}

const dlqPassword = "Zx9-secret-pw"

// threeDeadLetters are one of each kind that matters to ls and show.
var threeDeadLetters = []deadLetter{
	groupMissing("hris-1", "ssoCreate", "carol@example.com"),
	{id: "hris-2", action: "autoCreate", body: `{"action":"autoCreate","user_info":{"email":"dan@example.com","type":1,"password":"` + dlqPassword + `"}}`,
		reason: messages.ReasonZoomRejected, status: 400, code: 300, message: "Invalid parameter: password"},
	{id: "hris-3", action: "custCreate", body: `{"action":"custCreate","user_info":{"email":"not-an-email","type":2}}`,
		reason: messages.ReasonInvalidRequest, message: "messages: invalid request: user_info.email: must be a bare email address"},
}

// wantOneLine fails the test unless stderr is one "consumer: " line
// holding every want.
func wantOneLine(t testing.TB, res cliResult, want ...string) {
	t.Helper()
	if !strings.HasPrefix(res.stderr, "consumer: ") || strings.Count(res.stderr, "\n") != 1 || !strings.HasSuffix(res.stderr, "\n") {
		t.Errorf("stderr = %q; want one line starting with \"consumer: \"", res.stderr)
	}
	for _, w := range want {
		if !strings.Contains(res.stderr, w) {
			t.Errorf("stderr = %q; want it to contain %q", res.stderr, w)
		}
	}
}

// Ensure `dlq ls` prints the table (e-mails masked) and JSON, filters, and
// `dlq show` prints everything about one dead letter but the password.
func TestDLQListAndShow(t *testing.T) {
	ns := startNATS(t)
	_, js := connectJS(t, ns.URL())
	provisionStreams(t, js, 30*time.Second)
	seedDLQ(t, js, threeDeadLetters...)
	env := map[string]string{"NATS_URL": ns.URL()}

	res := runCLI(t, 10*time.Second, env, "", "dlq", "ls")
	if res.code != 0 {
		t.Fatalf("dlq ls exit code = %d; want 0 (stderr %q)", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 5 {
		t.Fatalf("dlq ls printed %d lines; want a header, 3 rows and a count:\n%s", len(lines), res.stdout)
	}
	for _, col := range []string{"SEQ", "DEAD-LETTERED AT", "ACTION", "REASON", "HTTP", "CODE", "MESSAGE", "REQUEST ID", "EMAIL"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("dlq ls header %q lacks column %q", lines[0], col)
		}
	}
	for i, want := range [][]string{
		{"1 ", "ssoCreate", "not_found", "404", "4130", "Group does not exist: sales.", "hris-1", "c***@example.com"},
		{"2 ", "autoCreate", "zoom_rejected", "400", "300", "Invalid parameter: password", "hris-2", "d***@example.com"},
		{"3 ", "custCreate", "invalid_request", " - ", "user_info.email: must be a bare", "hris-3", "***"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("dlq ls row %d = %q; want it to contain %q", i+1, lines[i+1], w)
			}
		}
	}
	if lines[4] != "3 dead letters" {
		t.Errorf("dlq ls last line = %q; want \"3 dead letters\"", lines[4])
	}
	if strings.Contains(res.stdout, "carol@") || strings.Contains(res.stdout, "messages: invalid request") {
		t.Errorf("dlq ls shows a full e-mail or the error prefix:\n%s", res.stdout)
	}

	res = runCLI(t, 10*time.Second, env, "", "dlq", "ls", "--json", "--reason", "not_found,zoom_rejected")
	var got []map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil || res.code != 0 {
		t.Fatalf("dlq ls --json = %d, %q: %v", res.code, res.stdout, err)
	}
	if len(got) != 2 || got[0]["seq"] != 1.0 || got[1]["seq"] != 2.0 || got[0]["reason"] != "not_found" || got[0]["email"] != "c***@example.com" ||
		got[0]["zoom_code"] != 4130.0 || got[1]["request_id"] != "hris-2" || got[1]["replayable"] != true {
		t.Errorf("dlq ls --json --reason not_found,zoom_rejected = %s; want sequences 1 and 2 with their fields", res.stdout)
	}

	res = runCLI(t, 10*time.Second, env, "", "dlq", "ls", "--reason", "not_found", "--reason", "invalid_request", "--status", "0")
	if res.code != 0 || !strings.Contains(res.stdout, "hris-3") || strings.Contains(res.stdout, "hris-1") || !strings.Contains(res.stdout, "1 of 3 dead letters match") {
		t.Errorf("dlq ls --reason ... --status 0 = %d:\n%s\nwant only hris-3", res.code, res.stdout)
	}
	res = runCLI(t, 10*time.Second, env, "", "dlq", "ls", "--email", "@nowhere.org")
	if res.code != 0 || strings.TrimSpace(res.stdout) != "no dead letters match (ZOOM_USERS_DLQ holds 3)" {
		t.Errorf("dlq ls --email @nowhere.org = %d, %q; want exit 0 and \"no dead letters match\"", res.code, res.stdout)
	}
	res = runCLI(t, 10*time.Second, env, "", "dlq", "ls", "--json", "--seq", "7-9")
	if res.code != 0 || strings.TrimSpace(res.stdout) != "[]" {
		t.Errorf("dlq ls --json --seq 7-9 = %d, %q; want []", res.code, res.stdout)
	}

	res = runCLI(t, 10*time.Second, env, "", "dlq", "show", "2")
	if res.code != 0 {
		t.Fatalf("dlq show 2 exit code = %d (stderr %q)", res.code, res.stderr)
	}
	for _, w := range []string{"Zoom-Provisioning-Reason: zoom_rejected", "Request-Id:", "hris-2", `"password": "********"`, `"email": "dan@example.com"`, "replay it with: consumer dlq replay --seq 2"} {
		if !strings.Contains(res.stdout, w) {
			t.Errorf("dlq show 2 = %q; want it to contain %q", res.stdout, w)
		}
	}
	res3 := runCLI(t, 10*time.Second, env, "", "dlq", "show", "3")
	if !strings.Contains(res3.stdout, "not replayable, still invalid: user_info.email") {
		t.Errorf("dlq show 3 = %q; want it to say why it cannot be replayed", res3.stdout)
	}
	// The sequence may follow the flags.
	res = runCLI(t, 10*time.Second, env, "", "dlq", "show", "--json", "--nats-url", ns.URL(), "2")
	var shown struct {
		Seq     uint64              `json:"seq"`
		Reason  string              `json:"reason"`
		Headers map[string][]string `json:"headers"`
		Body    struct {
			UserInfo struct {
				Email    string `json:"email"`
				Password string `json:"password"`
			} `json:"user_info"`
		} `json:"body"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &shown); err != nil || res.code != 0 {
		t.Fatalf("dlq show --json 2 = %d, %q: %v", res.code, res.stdout, err)
	}
	if shown.Seq != 2 || shown.Reason != "zoom_rejected" || shown.Body.UserInfo.Password != "********" || shown.Body.UserInfo.Email != "dan@example.com" ||
		shown.Headers[deadletter.HeaderRequestID][0] != "hris-2" {
		t.Errorf("dlq show --json 2 = %+v; want sequence 2, its headers, the body with the password masked", shown)
	}
	for _, out := range []string{res.stdout, res.stderr} {
		if strings.Contains(out, dlqPassword) {
			t.Errorf("dlq show printed the password: %q", out)
		}
	}

	res = runCLI(t, 10*time.Second, env, "", "dlq", "show", "99")
	if res.code != 1 || res.stdout != "" {
		t.Errorf("dlq show 99 = %d, stdout %q; want exit 1 and no output", res.code, res.stdout)
	}
	wantOneLine(t, res, "no dead letter with sequence 99")
}

// Ensure bad input gives one line and a non-zero exit, before connecting
// when the input alone is wrong.
func TestDLQBadInput(t *testing.T) {
	empty := startNATS(t) // provisioned: an empty dead-letter stream
	_, js := connectJS(t, empty.URL())
	provisionStreams(t, js, 30*time.Second)
	bare := startNATS(t) // nothing provisioned

	tests := []struct {
		name     string
		args     []string
		server   *testenv.NATS // nil: a tarpit that must see no connection
		wantCode int
		want     []string
	}{
		{"no dlq command", []string{"dlq"}, nil, 2, nil},
		{"unknown dlq command", []string{"dlq", "rm"}, nil, 2, []string{`unknown command "rm"`}},
		{"malformed --seq", []string{"dlq", "ls", "--seq", "10-x"}, nil, 2, []string{"--seq", `"10-x"`}},
		{"backwards --seq", []string{"dlq", "replay", "--seq", "9-3"}, nil, 2, []string{"--seq", "ends before it starts"}},
		{"malformed --since", []string{"dlq", "ls", "--since", "yesterday"}, nil, 2, []string{"--since", `"yesterday"`, "RFC 3339"}},
		{"negative --until", []string{"dlq", "ls", "--until", "-5m"}, nil, 2, []string{"--until"}},
		{"--since after --until", []string{"dlq", "ls", "--since", "1h", "--until", "2h"}, nil, 2, []string{"is not before --until"}},
		{"malformed --status", []string{"dlq", "ls", "--status", "4o4"}, nil, 2, []string{"--status", `"4o4"`}},
		{"out of range --status", []string{"dlq", "purge", "--yes", "--status", "999"}, nil, 2, []string{"--status", `"999"`}},
		{"malformed --code", []string{"dlq", "ls", "--code", "x"}, nil, 2, []string{"--code"}},
		{"unknown --reason", []string{"dlq", "replay", "--reason", "notfound"}, nil, 2, []string{`unknown reason "notfound"`}},
		{"malformed --email", []string{"dlq", "ls", "--email", "@"}, nil, 2, []string{"--email"}},
		{"negative --rate", []string{"dlq", "replay", "--rate", "-1"}, nil, 2, []string{"--rate"}},
		{"unknown flag", []string{"dlq", "ls", "--bogus"}, nil, 2, []string{"bogus"}},
		{"show without a sequence", []string{"dlq", "show"}, nil, 2, []string{"give the sequence"}},
		{"show with a malformed sequence", []string{"dlq", "show", "abc"}, nil, 2, []string{`"abc"`}},
		{"show with a zero sequence", []string{"dlq", "show", "0"}, nil, 2, []string{`"0"`}},
		{"purge without --yes", []string{"dlq", "purge", "--reason", "not_found"}, nil, 2, []string{"--yes"}},
		{"show on an empty stream", []string{"dlq", "show", "1"}, empty, 1, []string{"no dead letter with sequence 1"}},
		{"replay on an empty stream", []string{"dlq", "replay", "--yes"}, empty, 1, []string{"ZOOM_USERS_DLQ is empty"}},
		{"purge on an empty stream", []string{"dlq", "purge", "--yes", "--reason", "not_found"}, empty, 1, []string{"ZOOM_USERS_DLQ is empty"}},
		{"ls without the stream", []string{"dlq", "ls"}, bare, 1, []string{"stream ZOOM_USERS_DLQ does not exist"}},
		{"replay without the stream", []string{"dlq", "replay", "--dry-run"}, bare, 1, []string{"stream ZOOM_USERS_DLQ does not exist"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pit := newTarpit(t)
			env := map[string]string{"NATS_URL": pit.url()}
			if tc.server != nil {
				env["NATS_URL"] = tc.server.URL()
			}
			res := runCLI(t, 10*time.Second, env, "", tc.args...)
			if res.code != tc.wantCode {
				t.Errorf("consumer %q exit code = %d; want %d (stderr %q)", tc.args, res.code, tc.wantCode, res.stderr)
			}
			if res.stdout != "" {
				t.Errorf("consumer %q stdout = %q; want nothing", tc.args, res.stdout)
			}
			if tc.want != nil {
				wantOneLine(t, res, tc.want...)
			} else if !strings.Contains(res.stderr, "usage: consumer dlq") {
				t.Errorf("consumer %q stderr = %q; want the dlq usage", tc.args, res.stderr)
			}
			if tc.server == nil && pit.connected(t) {
				t.Errorf("consumer %q connected to NATS; want it to fail before", tc.args)
			}
		})
	}

	res := runCLI(t, 10*time.Second, map[string]string{"NATS_URL": empty.URL()}, "", "dlq", "ls")
	if res.code != 0 || strings.TrimSpace(res.stdout) != "no dead letters: ZOOM_USERS_DLQ is empty" {
		t.Errorf("dlq ls on an empty stream = %d, %q; want exit 0 and that it is empty", res.code, res.stdout)
	}
}

// Ensure a dry run says what would happen and changes nothing, a replay of
// more than 10 needs --yes when nobody can be asked, and a closed create
// gate stops a replay of create requests with the time it opens.
func TestDLQReplayDryRunAndGuards(t *testing.T) {
	ns := startNATS(t)
	_, js := connectJS(t, ns.URL())
	provisionStreams(t, js, 30*time.Second)
	var dls []deadLetter
	for i := range 12 {
		dls = append(dls, groupMissing(fmt.Sprintf("sso-%d", i), "ssoCreate", fmt.Sprintf("u%d@example.com", i)))
	}
	dls = append(dls, groupMissing("invite-1", "create", "erin@example.com"), threeDeadLetters[2])
	seedDLQ(t, js, dls...)
	env := map[string]string{"NATS_URL": ns.URL()}
	unchanged := func(what string) {
		t.Helper()
		if n := streamMsgCount(t, js, "ZOOM_USERS_DLQ"); n != 14 {
			t.Errorf("after %s: %d dead letters; want all 14", what, n)
		}
		if n := streamMsgCount(t, js, "ZOOM_USERS"); n != 0 {
			t.Errorf("after %s: %d requests; want none published", what, n)
		}
	}

	res := runCLI(t, 10*time.Second, env, "", "dlq", "replay", "--dry-run")
	if res.code != 0 {
		t.Fatalf("dlq replay --dry-run exit code = %d (stderr %q)", res.code, res.stderr)
	}
	for _, w := range []string{"would replay 13 dead letters", "sso-11", "invite-1", "would skip 1, still invalid:", "14 (request hris-3): user_info.email",
		"needs 1 invitation ", "1,500 a day", "dry run: nothing changed"} {
		if !strings.Contains(res.stdout, w) {
			t.Errorf("dlq replay --dry-run = %q; want it to contain %q", res.stdout, w)
		}
	}
	unchanged("a dry run")

	res = runCLI(t, 10*time.Second, env, "", "dlq", "replay")
	if res.code != 2 || res.stdout != "" {
		t.Errorf("dlq replay of 13 without --yes, stdin not a terminal = %d, stdout %q; want exit 2 and no output", res.code, res.stdout)
	}
	wantOneLine(t, res, "13 dead letters", "--yes")
	unchanged("a replay without --yes")

	kv, err := js.KeyValue(context.Background(), "zoom_quota")
	if err != nil {
		t.Fatalf("quota bucket: %v", err)
	}
	until := time.Now().Add(3 * time.Hour).UTC().Truncate(time.Second)
	gate, _ := json.Marshal(quota.Gate{Scope: "create", Until: until, Reason: "Daily user invite limit reached", ClosedAt: time.Now(), ClosedBy: "replica-1"})
	if _, err := kv.Put(context.Background(), quota.GateKey("create"), gate); err != nil {
		t.Fatalf("close the create gate: %v", err)
	}
	res = runCLI(t, 10*time.Second, env, "", "dlq", "replay", "--action", "create")
	if res.code != 1 || res.stdout != "" {
		t.Errorf("dlq replay --action create with the gate closed = %d, stdout %q; want exit 1 and no output", res.code, res.stdout)
	}
	wantOneLine(t, res, "create quota gate is closed until "+until.Format(time.RFC3339), "--force")
	res = runCLI(t, 10*time.Second, env, "", "dlq", "replay", "--dry-run", "--action", "create")
	if !strings.Contains(res.stdout, "quota gate: create closed until "+until.Format(time.RFC3339)) {
		t.Errorf("dlq replay --dry-run --action create = %q; want it to report the closed gate", res.stdout)
	}
	unchanged("a replay refused by the gate")
}

// Ensure a replay through the command line ends with the users created by
// the real service, result events naming the original request, the dead
// letters gone and the summary line; and purge prints progress and a
// count.
func TestDLQReplayAndPurge(t *testing.T) {
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{})
	_, js := connectJS(t, ns.URL())
	provisionStreams(t, js, 30*time.Second)
	var dls []deadLetter
	for i := range 12 {
		dls = append(dls, groupMissing(fmt.Sprintf("hr-%d", i), "ssoCreate", fmt.Sprintf("u%d@example.com", i)))
	}
	dls = append(dls, threeDeadLetters[2])
	seedDLQ(t, js, dls...)
	startRun(t, serviceEnv(ns, sim))
	env := map[string]string{"NATS_URL": ns.URL()}

	res := runCLI(t, 20*time.Second, env, "", "dlq", "replay", "--yes", "--rate", "0", "--reason", "not_found,invalid_request")
	if res.code != 0 {
		t.Fatalf("dlq replay --yes exit code = %d (stderr %q, stdout %q)", res.code, res.stderr, res.stdout)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if last := lines[len(lines)-1]; last != "replayed 12, duplicates 0, skipped 1 (invalid), deleted 12, failed 0" {
		t.Errorf("dlq replay last line = %q; want the summary", last)
	}
	if !strings.Contains(res.stdout, "skipped 13 (request hris-3): still invalid: user_info.email") {
		t.Errorf("dlq replay = %q; want the skipped dead letter and why", res.stdout)
	}
	eventually(t, 20*time.Second, func() (bool, string) {
		evs := resultEvents(t, js)
		for i := range 12 {
			id := fmt.Sprintf("hr-%d/replay/%d", i, i+1)
			term := terminalEvents(evs[id])
			if len(term) == 0 {
				return false, "no result for " + id
			}
			if len(term) != 1 || term[0].Data.Outcome != messages.OutcomeCreated || term[0].Data.ReplayOf != fmt.Sprintf("hr-%d", i) {
				t.Fatalf("results of %s = %+v; want one created with replay_of hr-%d", id, term, i)
			}
		}
		return true, ""
	})
	for i := range 12 {
		if n := sim.Creations(fmt.Sprintf("u%d@example.com", i)); n != 1 {
			t.Errorf("Creations(u%d@example.com) = %d; want 1", i, n)
		}
	}
	if n := streamMsgCount(t, js, "ZOOM_USERS_DLQ"); n != 1 {
		t.Errorf("dead letters after the replay = %d; want only the invalid one", n)
	}

	// Purge: a line every 100 when stdout is not a terminal, then a count.
	var many []deadLetter
	for i := range 150 {
		many = append(many, threeDeadLetters[2])
		many[i].id = fmt.Sprintf("bad-%d", i)
	}
	seedDLQ(t, js, many...)
	res = runCLI(t, 20*time.Second, env, "", "dlq", "purge", "--yes", "--reason", "invalid_request")
	if res.code != 0 || res.stdout != "deleting 100/151\ndeleted 151 dead letters\n" {
		t.Errorf("dlq purge --yes = %d, %q; want progress at 100 and \"deleted 151 dead letters\"", res.code, res.stdout)
	}
	if n := streamMsgCount(t, js, "ZOOM_USERS_DLQ"); n != 0 {
		t.Errorf("dead letters after the purge = %d; want 0", n)
	}
}

// Ensure a dead letter's password is sealed with DLQ_SEAL_KEY_FILE, never
// shown by `dlq show`, and opened by `dlq replay` only with the key: without
// it, or with another, replay refuses that dead letter with one line and
// exits non-zero, and replays the others.
func TestDLQReplaySealed(t *testing.T) {
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{})
	_, js := connectJS(t, ns.URL())
	provisionStreams(t, js, 30*time.Second)
	key := writeFile(t, "seal.key", strings.Repeat("ab", 32)+"\n")
	other := writeFile(t, "other.key", strings.Repeat("cd", 32)+"\n")
	svcEnv := serviceEnv(ns, sim)
	svcEnv["DLQ_SEAL_KEY_FILE"] = key
	startRun(t, svcEnv)

	const password = "Zx9!sealed-pw"
	for _, email := range []string{"pat@example.com", "sam@example.com"} {
		sim.FailEmail(email, 1, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: x."})
	}
	publishRequest(t, js, "seal-1", "autoCreate", `{"action":"autoCreate","user_info":{"email":"pat@example.com","type":1,"password":"`+password+`"}}`, nil)
	publishRequest(t, js, "seal-2", "ssoCreate", `{"action":"ssoCreate","user_info":{"email":"sam@example.com","type":1}}`, nil)
	eventually(t, 20*time.Second, func() (bool, string) {
		n := streamMsgCount(t, js, "ZOOM_USERS_DLQ")
		return n == 2, fmt.Sprintf("%d dead letters", n)
	})
	env := map[string]string{"NATS_URL": ns.URL()}

	seq := ""
	s, err := js.Stream(context.Background(), "ZOOM_USERS_DLQ")
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 2; i++ {
		if m, err := s.GetMsg(context.Background(), i); err == nil && m.Header.Get(deadletter.HeaderRequestID) == "seal-1" {
			seq = strconv.FormatUint(i, 10)
		}
	}
	show := runCLI(t, 10*time.Second, env, "", "dlq", "show", seq)
	if show.code != 0 || strings.Contains(show.stdout, password) || strings.Contains(show.stdout, "sealed:v") || !strings.Contains(show.stdout, "Zoom-Password:") {
		t.Errorf("dlq show %s = %d, %q; want the headers (Zoom-Password among them) and no password, sealed or not", seq, show.code, show.stdout)
	}

	for name, extra := range map[string]map[string]string{"no key": nil, "another key": {"DLQ_SEAL_KEY_FILE": other}} {
		e := maps.Clone(env)
		maps.Copy(e, extra)
		res := runCLI(t, 20*time.Second, e, "", "dlq", "replay", "--yes", "--rate", "0", "--email", "pat@example.com")
		if res.code == 0 || !strings.Contains(res.stdout, "refused "+seq+" (request seal-1): the password is sealed with key ") {
			t.Errorf("%s: dlq replay = %d, stdout %q; want a non-zero exit and one line refusing seal-1", name, res.code, res.stdout)
		}
		wantOneLine(t, res, "refused")
	}
	if n := sim.Creations("pat@example.com"); n != 0 {
		t.Fatalf("Creations(pat) = %d after refused replays; want 0", n)
	}

	bad := runCLI(t, 10*time.Second, map[string]string{"NATS_URL": ns.URL(), "DLQ_SEAL_KEY_FILE": "/nonexistent/seal.key"}, "", "dlq", "replay", "--yes")
	if bad.code == 0 {
		t.Errorf("dlq replay with a missing key file exit code 0; want non-zero")
	}
	wantOneLine(t, bad, "DLQ_SEAL_KEY_FILE", "/nonexistent/seal.key")

	e := maps.Clone(env)
	e["DLQ_SEAL_KEY_FILE"] = other + "," + key // a rotation: the old key still opens
	res := runCLI(t, 20*time.Second, e, "", "dlq", "replay", "--yes", "--rate", "0")
	if res.code != 0 || !strings.HasSuffix(res.stdout, "replayed 2, duplicates 0, skipped 0 (invalid), deleted 2, failed 0\n") {
		t.Fatalf("dlq replay with the keys = %d, stdout %q, stderr %q; want both replayed", res.code, res.stdout, res.stderr)
	}
	eventually(t, 20*time.Second, func() (bool, string) {
		return sim.Creations("pat@example.com") == 1 && sim.Creations("sam@example.com") == 1, "replayed users not created"
	})
	sent := false
	for _, r := range sim.Requests() {
		if r.Route == testenv.RouteCreateUser && r.Status == 201 && strings.Contains(string(r.Body), "pat@example.com") {
			sent = strings.Contains(string(r.Body), `"password":"`+password+`"`)
		}
	}
	if !sent {
		t.Errorf("Zoom's creation of pat@example.com did not carry the original password")
	}
}
