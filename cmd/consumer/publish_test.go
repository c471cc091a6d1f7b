package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/testenv"
)

// lastRequest returns the last message stored on subject in ZOOM_USERS.
func lastRequest(t testing.TB, js jetstream.JetStream, subject string) *jetstream.RawStreamMsg {
	t.Helper()
	s, err := js.Stream(context.Background(), "ZOOM_USERS")
	if err != nil {
		t.Fatalf("stream ZOOM_USERS: %v", err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), subject)
	if err != nil {
		t.Fatalf("last message on %s: %v", subject, err)
	}
	return m
}

// Ensure `consumer publish` stores exactly the request it was given, on
// the action's subject, under the given or a fresh Nats-Msg-Id, and that a
// repeated id stores nothing new.
func TestPublish(t *testing.T) {
	ns := startNATS(t)
	_, js := connectJS(t, ns.URL())
	provisionStreams(t, js, 30*time.Second)
	env := map[string]string{"NATS_URL": ns.URL()}

	ssoBody := `{"action":"ssoCreate","user_info":{"email":"file@example.com","type":1,"first_name":"File"}}`
	bodyFile := writeFile(t, "request.json", ssoBody)
	stdinBody := "{\"action\":\"custCreate\",\n \"user_info\":{\"email\":\"stdin@example.com\",\"type\":2}}\n"
	invalidBody := `{"action":"custCreate","user_info":{"email":"not-an-email","type":2}}`
	invalidFile := writeFile(t, "invalid.json", invalidBody)
	updateBody := `{"email":"file-update@example.com","user":{"job_title":"Lead"}}`
	updateFile := writeFile(t, "update.json", updateBody)

	tests := []struct {
		name    string
		args    []string
		stdin   string
		subject string
		msgID   string // "" means a generated "publish-" id
		// body is the exact stored body; check is used instead when set.
		body  string
		check func(t *testing.T, req messages.Request)
	}{
		{name: "from --file", args: []string{"--file", bodyFile, "--msg-id", "pub-file"},
			subject: "zoom.users.create.ssoCreate", msgID: "pub-file", body: ssoBody},
		{name: "from stdin", args: []string{"--file", "-", "--msg-id", "pub-stdin"}, stdin: stdinBody,
			subject: "zoom.users.create.custCreate", msgID: "pub-stdin", body: stdinBody},
		{name: "from flags", args: []string{"--email", "flags@example.com", "--action", "custCreate", "--type", "2", "--first-name", "Flag", "--msg-id", "pub-flags"},
			subject: "zoom.users.create.custCreate", msgID: "pub-flags",
			check: func(t *testing.T, req messages.Request) {
				if req.Action != messages.ActionCustCreate || req.UserInfo.Email != "flags@example.com" || req.UserInfo.Type != 2 || req.UserInfo.FirstName != "Flag" {
					t.Errorf("stored request = %#v; want custCreate flags@example.com type 2 first name Flag", req)
				}
			}},
		{name: "default type from flags", args: []string{"--email", "basic@example.com", "--action", "create", "--msg-id", "pub-basic"},
			subject: "zoom.users.create.create", msgID: "pub-basic",
			check: func(t *testing.T, req messages.Request) {
				if req.Action != messages.ActionCreate || req.UserInfo.Email != "basic@example.com" || req.UserInfo.Type != 1 {
					t.Errorf("stored request = %#v; want create basic@example.com type 1", req)
				}
			}},
		{name: "generated msg id", args: []string{"--email", "gen@example.com", "--action", "ssoCreate"},
			subject: "zoom.users.create.ssoCreate",
			check: func(t *testing.T, req messages.Request) {
				if req.Action != messages.ActionSSOCreate || req.UserInfo.Email != "gen@example.com" {
					t.Errorf("stored request = %#v; want ssoCreate gen@example.com", req)
				}
			}},
		{name: "invalid body with --force", args: []string{"--file", invalidFile, "--force", "--msg-id", "pub-forced"},
			subject: "zoom.users.create.custCreate", msgID: "pub-forced", body: invalidBody},
		{name: "update from flags", args: []string{"--op", "update", "--email", "u@example.com", "--last-name", "Renamed", "--type", "2", "--msg-id", "pub-update"},
			subject: "zoom.users.update", msgID: "pub-update", body: `{"email":"u@example.com","user":{"last_name":"Renamed","type":2}}`},
		{name: "update from --file", args: []string{"--op", "update", "--file", updateFile, "--msg-id", "pub-update-file"},
			subject: "zoom.users.update", msgID: "pub-update-file", body: updateBody},
		{name: "deactivate", args: []string{"--op", "deactivate", "--email", "leaver@example.com", "--msg-id", "pub-deactivate"},
			subject: "zoom.users.deactivate", msgID: "pub-deactivate", body: `{"email":"leaver@example.com"}`},
		{name: "activate", args: []string{"--op", "activate", "--email", "back@example.com", "--msg-id", "pub-activate"},
			subject: "zoom.users.activate", msgID: "pub-activate", body: `{"email":"back@example.com"}`},
		{name: "delete", args: []string{"--op", "delete", "--email", "gone@example.com", "--delete-action", "delete", "--msg-id", "pub-delete"},
			subject: "zoom.users.delete", msgID: "pub-delete", body: `{"action":"delete","email":"gone@example.com"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := streamMsgCount(t, js, "ZOOM_USERS")
			res := runCLI(t, 10*time.Second, env, tc.stdin, append([]string{"publish"}, tc.args...)...)
			if res.code != 0 {
				t.Fatalf("consumer publish %q exit code = %d; want 0 (stderr %q)", tc.args, res.code, res.stderr)
			}
			if !strings.HasPrefix(res.stdout, "published request ") || !strings.Contains(res.stdout, tc.subject) {
				t.Errorf("consumer publish %q stdout = %q; want \"published request ... %s ...\"", tc.args, res.stdout, tc.subject)
			}
			if got := streamMsgCount(t, js, "ZOOM_USERS"); got != before+1 {
				t.Errorf("ZOOM_USERS holds %d messages after publish; want %d", got, before+1)
			}
			m := lastRequest(t, js, tc.subject)
			id := m.Header.Get(jetstream.MsgIDHeader)
			switch {
			case tc.msgID != "" && id != tc.msgID:
				t.Errorf("stored Nats-Msg-Id = %q; want %q", id, tc.msgID)
			case tc.msgID == "" && (!strings.HasPrefix(id, "publish-") || len(id) <= len("publish-")):
				t.Errorf("stored Nats-Msg-Id = %q; want a generated \"publish-...\" id", id)
			}
			if !strings.Contains(res.stdout, id) {
				t.Errorf("consumer publish %q stdout = %q; want it to name request %s", tc.args, res.stdout, id)
			}
			if tc.check == nil {
				if string(m.Data) != tc.body {
					t.Errorf("stored body = %q; want %q", m.Data, tc.body)
				}
				return
			}
			req, err := messages.Decode(m.Data)
			if err != nil {
				t.Fatalf("messages.Decode(stored body %q) = %v; want nil", m.Data, err)
			}
			tc.check(t, req)
		})
	}

	t.Run("duplicate msg id", func(t *testing.T) {
		args := []string{"publish", "--email", "dup@example.com", "--action", "ssoCreate", "--msg-id", "pub-dup"}
		first := runCLI(t, 10*time.Second, env, "", args...)
		if first.code != 0 || !strings.HasPrefix(first.stdout, "published request pub-dup") {
			t.Fatalf("first consumer %q = exit %d, stdout %q, stderr %q; want exit 0 and \"published request pub-dup\"", args, first.code, first.stdout, first.stderr)
		}
		before := streamMsgCount(t, js, "ZOOM_USERS")
		// A different body under the same id is still a duplicate: the id
		// is the request's identity.
		args2 := []string{"publish", "--email", "other@example.com", "--action", "ssoCreate", "--msg-id", "pub-dup"}
		second := runCLI(t, 10*time.Second, env, "", args2...)
		if second.code != 0 {
			t.Errorf("second consumer %q exit code = %d; want 0 (stderr %q)", args2, second.code, second.stderr)
		}
		if !strings.HasPrefix(second.stdout, "duplicate") || !strings.Contains(second.stdout, "pub-dup") {
			t.Errorf("second consumer %q stdout = %q; want \"duplicate: request pub-dup ...\"", args2, second.stdout)
		}
		if got := streamMsgCount(t, js, "ZOOM_USERS"); got != before {
			t.Errorf("ZOOM_USERS holds %d messages after the duplicate; want %d", got, before)
		}
		req, err := messages.Decode(lastRequest(t, js, "zoom.users.create.ssoCreate").Data)
		if err != nil || req.UserInfo.Email != "dup@example.com" {
			t.Errorf("stored request = %#v, %v; want the first one (dup@example.com)", req, err)
		}
	})
}

// Ensure a lifecycle request is checked as the consumer will check it, and
// flag mistakes get one line and a non-zero exit.
func TestPublishOperationMistakes(t *testing.T) {
	ns := startNATS(t)
	_, js := connectJS(t, ns.URL())
	provisionStreams(t, js, 30*time.Second)
	env := map[string]string{"NATS_URL": ns.URL()}
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{name: "unknown op", args: []string{"--op", "suspend", "--email", "a@example.com"}, want: `--op: want update, deactivate, activate or delete, got "suspend"`},
		{name: "op and action", args: []string{"--op", "update", "--action", "create", "--email", "a@example.com"}, want: "either --action or --op"},
		{name: "update without fields", args: []string{"--op", "update", "--email", "a@example.com"}, want: "needs a field to change"},
		{name: "delete-action on deactivate", args: []string{"--op", "deactivate", "--email", "a@example.com", "--delete-action", "delete"}, want: "--delete-action is for --op delete"},
		{name: "invalid delete action", args: []string{"--op", "delete", "--email", "a@example.com", "--delete-action", "erase"}, want: "action"},
		{name: "invalid email", args: []string{"--op", "deactivate", "--email", "not-an-email"}, want: "email"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := streamMsgCount(t, js, "ZOOM_USERS")
			res := runCLI(t, 10*time.Second, env, "", append([]string{"publish"}, tc.args...)...)
			if res.code == 0 || !strings.Contains(res.stderr, tc.want) || strings.Count(strings.TrimSpace(res.stderr), "\n") > 0 {
				t.Errorf("consumer publish %q = exit %d, stderr %q; want non-zero and one line saying %q", tc.args, res.code, res.stderr, tc.want)
			}
			if got := streamMsgCount(t, js, "ZOOM_USERS"); got != before {
				t.Errorf("ZOOM_USERS holds %d messages; want %d (nothing published)", got, before)
			}
		})
	}
}

// Ensure `publish --wait` against the real service, started through run()
// with only environment variables, prints the request's terminal result.
func TestPublishWaitForResult(t *testing.T) {
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{})
	_, js := connectJS(t, ns.URL())
	// The service provisions too; creating the streams first lets publish
	// watch the result stream without waiting for the service.
	provisionStreams(t, js, 30*time.Second)
	svc := startRun(t, serviceEnv(ns, sim))

	args := []string{"publish", "--email", "wait@example.com", "--action", "custCreate", "--type", "2", "--msg-id", "pub-wait", "--wait", "20s"}
	res := runCLI(t, 30*time.Second, map[string]string{"NATS_URL": ns.URL()}, "", args...)
	if res.code != 0 {
		t.Fatalf("consumer %q exit code = %d; want 0 (stdout %q, stderr %q)", args, res.code, res.stdout, res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	last := lines[len(lines)-1]
	if len(lines) < 2 || !strings.HasPrefix(last, "created") || !strings.Contains(last, "pub-wait") || !strings.Contains(last, "wait@example.com") || !strings.Contains(last, "zoom_user_id=") {
		t.Errorf("consumer %q stdout = %q; want a last line \"created pub-wait wait@example.com zoom_user_id=...\"", args, res.stdout)
	}
	if n := sim.Creations("wait@example.com"); n != 1 {
		t.Errorf("sim.Creations(%q) = %d; want 1", "wait@example.com", n)
	}
	if err := svc.stop(t); err != nil {
		t.Errorf("run = %v; want nil after cancellation", err)
	}
}
