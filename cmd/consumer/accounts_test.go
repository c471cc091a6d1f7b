package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/testenv"
)

// accountsServer is a nats-server process configured with
// deploy/k8s/nats-accounts.conf.
type accountsServer struct {
	*testenv.NATSProcess
	log string // the server's log file
}

// accountsPassword is the plain password the test gives user.
func accountsPassword(user string) string { return "pw-" + user }

// startAccountsServer starts a nats-server process (not the embedded
// server: the binary operators run) with the accounts and permissions of
// deploy/k8s/nats-accounts.conf, each placeholder bcrypt hash replaced by
// the plain password accountsPassword(user), plus an unrestricted user
// "admin" in the same account for what the test itself does. The server
// logs to a file, where every permissions violation shows with the
// account and user that caused it. edits change the file first (to turn
// on a commented block).
func startAccountsServer(t *testing.T, edits ...func(conf string) string) *accountsServer {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(k8sDir, "nats-accounts.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(data)
	for _, edit := range edits {
		conf = edit(conf)
	}
	pwRE := regexp.MustCompile(`(user:\s*([A-Za-z0-9_-]+)\s*\n\s*password:\s*)"\$2a\$11\$REPLACE[^"]*"`)
	if n := len(pwRE.FindAllString(conf, -1)); n < 4 {
		t.Fatalf("nats-accounts.conf: %d users with a placeholder password; want hris, zoom-provisioner, operator and audit", n)
	}
	conf = pwRE.ReplaceAllStringFunc(conf, func(m string) string {
		sub := pwRE.FindStringSubmatch(m)
		return sub[1] + strconv.Quote(accountsPassword(sub[2]))
	})
	const users = "users: ["
	if strings.Count(conf, users) != 1 {
		t.Fatalf("nats-accounts.conf: want one %q list", users)
	}
	conf = strings.Replace(conf, users, users+"\n      { user: admin, password: "+strconv.Quote(accountsPassword("admin"))+" }", 1)

	bin, err := testenv.NATSServerBinary()
	if err != nil {
		t.Fatalf("nats-server binary: %v", err)
	}
	dir := t.TempDir()
	logFile := filepath.Join(dir, "nats.log")
	p, err := testenv.StartNATSProcessWithConfig(bin, dir, fmt.Sprintf("log_file: %q\n%s", logFile, conf))
	if err != nil {
		t.Fatalf("start nats-server with nats-accounts.conf: %v", err)
	}
	t.Cleanup(p.Shutdown)
	return &accountsServer{NATSProcess: p, log: logFile}
}

// violations returns the permissions violations the server logged after
// byte offset from, by user ("operator", "hris", ...), and the log's
// current size.
func (s *accountsServer) violations(t *testing.T, from int64) (map[string][]string, int64) {
	t.Helper()
	data, err := os.ReadFile(s.log)
	if err != nil {
		t.Fatalf("server log: %v", err)
	}
	out := map[string][]string{}
	userRE := regexp.MustCompile(`"ZOOM/user:([A-Za-z0-9_-]+)"`)
	for _, line := range strings.Split(string(data[min(from, int64(len(data))):]), "\n") {
		if !strings.Contains(line, "Violation") {
			continue
		}
		user := "?"
		if m := userRE.FindStringSubmatch(line); m != nil {
			user = m[1]
		}
		out[user] = append(out[user], line)
	}
	return out, int64(len(data))
}

// userEnv is the environment of a command logged in as user.
func userEnv(url, user string, extra map[string]string) map[string]string {
	return merge(map[string]string{"NATS_URL": url, "NATS_USER": user, "NATS_PASSWORD": accountsPassword(user)}, extra)
}

// Ensure the users of deploy/k8s/nats-accounts.conf can do their jobs on
// a real nats-server process, and no more: the service (`run`) works as
// zoom-provisioner, every command an operator runs (`publish`, `quota`,
// `dlq ls/show/replay/purge`, `version`) works as operator with its own
// inbox prefix, without one permissions violation in the server's log;
// commands outside a user's permissions fail with one line saying that
// NATS refused the user a permission; and the operator can neither read
// the request stream (passwords in clear) nor the service's inboxes.
//
// consumer reconcile (and --apply) runs as operator too. The commands
// still to come (guard, user, quota open) have their permissions in the
// file already; their tests belong with them.
func TestNATSAccountsProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a nats-server process")
	}
	srv := startAccountsServer(t)
	url := srv.URL()

	sim := startSim(t, testenv.SimConfig{})
	sim.FailEmail("gone@example.com", 1, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: sales."})
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

	admin, err := nats.Connect(url, nats.UserInfo("admin", accountsPassword("admin")))
	if err != nil {
		t.Fatalf("connect as admin: %v", err)
	}
	t.Cleanup(admin.Close)
	ajs, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	dlqCount := func() uint64 {
		s, err := ajs.Stream(context.Background(), "ZOOM_USERS_DLQ")
		if err != nil {
			t.Fatalf("dead-letter stream: %v", err)
		}
		info, err := s.Info(context.Background())
		if err != nil {
			t.Fatalf("dead-letter stream info: %v", err)
		}
		return info.State.Msgs
	}

	// The operator's commands, each expected to succeed.
	operator := userEnv(url, "operator", map[string]string{"NATS_INBOX_PREFIX": "_INBOX_operator"})
	ok := func(stdin string, args ...string) cliResult {
		t.Helper()
		res := runCLI(t, 60*time.Second, operator, stdin, args...)
		if res.code != 0 {
			t.Fatalf("consumer %s as operator: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
		}
		return res
	}
	ok("", "version")
	if res := ok("", "publish", "--action", "ssoCreate", "--email", "ops-ok@example.com", "--msg-id", "ops-ok", "--wait", "30s"); !strings.Contains(res.stdout, "created") {
		t.Errorf("publish --wait as operator printed %q; want the created result", res.stdout)
	}
	ok("", "publish", "--action", "ssoCreate", "--email", "gone@example.com", "--msg-id", "ops-gone", "--wait", "30s")
	ok("", "publish", "--action", "custCreate", "--email", "not-an-address", "--type", "2", "--msg-id", "ops-invalid", "--force", "--wait", "30s")
	ok("", "publish", "--op", "update", "--email", "ops-ok@example.com", "--first-name", "Ops", "--msg-id", "ops-update", "--wait", "30s")
	eventually(t, 30*time.Second, func() (bool, string) {
		n := dlqCount()
		return n == 2, fmt.Sprintf("%d dead letters; want 2", n)
	})
	if res := ok("", "quota"); !regexp.MustCompile(`(?m)^update +0 +0 +active`).MatchString(res.stdout) {
		t.Errorf("quota as operator printed\n%s\nwant the backlog of every action, update's among them", res.stdout)
	}
	ok("", "quota", "--json")
	var entries []struct {
		Seq       uint64 `json:"seq"`
		RequestID string `json:"request_id"`
	}
	res := ok("", "dlq", "ls", "--json")
	if err := json.Unmarshal([]byte(res.stdout), &entries); err != nil || len(entries) != 2 {
		t.Fatalf("dlq ls --json as operator = %q (%v); want two dead letters", res.stdout, err)
	}
	ok("", "dlq", "ls")
	for _, e := range entries {
		ok("", "dlq", "show", strconv.FormatUint(e.Seq, 10))
	}
	ok("", "dlq", "replay", "--reason", "not_found", "--dry-run")
	ok("", "dlq", "replay", "--reason", "not_found", "--yes")
	ok("", "dlq", "purge", "--reason", "invalid_request", "--yes")
	eventually(t, 30*time.Second, func() (bool, string) {
		evs := resultEvents(t, ajs)
		return len(terminalEvents(evs["ops-gone/replay/"+strconv.FormatUint(entries[0].Seq, 10)]))+len(terminalEvents(evs["ops-gone/replay/"+strconv.FormatUint(entries[1].Seq, 10)])) == 1,
			"the replayed request has no result yet"
	})
	if n := dlqCount(); n != 0 {
		t.Errorf("%d dead letters after replay and purge; want 0", n)
	}
	// consumer reconcile: a lease among the replicas' while it lists
	// Zoom's users, and --apply's corrective request and audit event.
	ledgerCaughtUp(t, ajs)
	if err := sim.AdminUpdate("ops-ok@example.com", func(u *testenv.SimUser) { u.FirstName = "ByHand" }); err != nil {
		t.Fatal(err)
	}
	withZoom := merge(operator, map[string]string{
		"ZOOM_ACCOUNT_ID": testenv.DefaultSimAccountID, "ZOOM_CLIENT_ID": testenv.DefaultSimClientID,
		"ZOOM_CLIENT_SECRET": testenv.DefaultSimClientSecret, "ZOOM_API_URL": sim.APIURL(), "ZOOM_TOKEN_URL": sim.TokenURL(),
	})
	for _, args := range [][]string{{"reconcile"}, {"reconcile", "--apply", "--json"}} {
		res := runCLI(t, 60*time.Second, withZoom, "", args...)
		if res.code != 0 {
			t.Fatalf("consumer %s as operator: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
		}
		if args[len(args)-1] == "--json" && !strings.Contains(res.stdout, `"reconcile-`) {
			t.Errorf("consumer reconcile --apply --json as operator printed %s; want a corrective request published", res.stdout)
		}
	}

	// The service, stopped: it ran without a permission error.
	if err := svc.stop(t); err != nil {
		t.Fatalf("run as zoom-provisioner: %v", err)
	}
	if log := strings.ToLower(svc.stderr.String()); strings.Contains(log, "permission") || strings.Contains(log, "authorization") {
		t.Errorf("run as zoom-provisioner hit a permission error:\n%s", svc.stderr.String())
	}
	seen, offset := srv.violations(t, 0)
	if len(seen) > 0 {
		t.Errorf("permissions violations while the service and the operator's commands ran; want none:\n%s", strings.Join(flatten(seen), "\n"))
	}

	// Outside a user's permissions: one line saying NATS refused it.
	for _, tc := range []struct {
		user string
		env  map[string]string
		args []string
	}{
		{"hris", map[string]string{"NATS_INBOX_PREFIX": "_INBOX_hris"}, []string{"dlq", "ls"}},
		{"audit", map[string]string{"NATS_INBOX_PREFIX": "_INBOX_audit"}, []string{"quota"}},
		{"operator", nil, []string{"quota"}}, // no NATS_INBOX_PREFIX: replies on the refused _INBOX.>
	} {
		res := runCLI(t, 60*time.Second, userEnv(url, tc.user, tc.env), "", tc.args...)
		if res.code != 1 {
			t.Errorf("consumer %s as %s: exit %d (stdout %q); want 1", strings.Join(tc.args, " "), tc.user, res.code, res.stdout)
		}
		wantOneLine(t, res, "refused this user a permission")
		if tc.env == nil {
			wantOneLine(t, res, "NATS_INBOX_PREFIX")
		}
	}

	// The operator may not read requests (autoCreate passwords in clear)
	// nor the service's replies (pulled requests).
	oc, err := nats.Connect(url, nats.UserInfo("operator", accountsPassword("operator")), nats.CustomInboxPrefix("_INBOX_operator"))
	if err != nil {
		t.Fatalf("connect as operator: %v", err)
	}
	t.Cleanup(oc.Close)
	ojs, err := jetstream.New(oc, jetstream.WithDefaultTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ojs.Stream(context.Background(), "ZOOM_USERS"); err == nil {
		t.Errorf("operator read ZOOM_USERS's stream info; want it refused")
	}
	if _, err := oc.SubscribeSync("_INBOX.>"); err != nil {
		t.Fatal(err)
	}
	if err := oc.Flush(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		return errors.Is(oc.LastError(), nats.ErrPermissionViolation), fmt.Sprintf("operator subscribed to _INBOX.> (last error %v); want it refused", oc.LastError())
	})
	seen, _ = srv.violations(t, offset)
	for _, user := range []string{"hris", "audit", "operator"} {
		if len(seen[user]) == 0 {
			t.Errorf("no permissions violation logged for %s after its refused command", user)
		}
	}
	if len(seen["zoom-provisioner"]) > 0 || len(seen["admin"]) > 0 {
		t.Errorf("unexpected violations: %v", seen)
	}
}

// flatten lists the values of m.
func flatten(m map[string][]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v...)
	}
	return out
}
