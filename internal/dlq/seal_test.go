package dlq_test

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zoomprov/consumer/internal/deadletter"
	"github.com/zoomprov/consumer/internal/dlq"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/seal"
	"github.com/zoomprov/consumer/testenv"
)

const (
	sealedPassword = "Zx9!kq2Lm"
	sealedBody     = `{"action":"autoCreate","user_info":{"email":"pat@example.com","type":1,"password":"Zx9!kq2Lm","first_name":"Pat"}}`
	// stringBody sends user_info as a string holding JSON.
	stringBody = `{"action":"autoCreate", "user_info":"{\"email\":\"sam@example.com\",\"type\":1,\"password\":\"Qw3#rtYu9\"}"}`
)

var tokenPattern = regexp.MustCompile(`sealed:v2:[0-9a-f]{8}:[A-Za-z0-9_-]+`)

// deadLetter publishes body, makes Zoom refuse it once with a 404 (the
// group is missing), and returns its dead letter.
func (e *env) deadLetter(id, email, body string) dlq.Entry {
	e.t.Helper()
	e.sim.FailEmail(email, 1, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: x."})
	e.publish(id, "autoCreate", body)
	e.waitTerminal(id)
	for _, en := range e.list(dlq.Filter{}) {
		if en.RequestID(e.topo) == id {
			return en
		}
	}
	e.t.Fatalf("no dead letter for %s", id)
	return dlq.Entry{}
}

// Ensure the dead letter of an autoCreate request holds its password only
// sealed, differs from the request only there, opens again for a replay
// that creates the user with the original password, and refuses to open
// without the key, with another key, or tampered with; and that a second
// key in front (a rotation) still opens it.
func TestSealedDeadLetters(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ id, email, body, password string }{
		{"seal-object", "pat@example.com", sealedBody, sealedPassword},
		{"seal-string", "sam@example.com", stringBody, "Qw3#rtYu9"},
	} {
		t.Run(tc.id, func(t *testing.T) {
			en := e.deadLetter(tc.id, tc.email, tc.body)
			if en.DeadLetter.Password != deadletter.PasswordSealed || en.DeadLetter.SealKey != e.keys.ID() {
				t.Errorf("dead letter Zoom-Password %q, Zoom-Seal-Key %q; want sealed, %s", en.DeadLetter.Password, en.DeadLetter.SealKey, e.keys.ID())
			}
			tokens := tokenPattern.FindAllString(string(en.Body), -1)
			if len(tokens) != 1 || bytes.Contains(en.Body, []byte(tc.password)) {
				t.Fatalf("dead letter body %s; want one sealed token and no password", en.Body)
			}
			// Only the value differs: the token, put back as the original
			// value, gives the request byte for byte.
			orig := strings.Replace(tc.body, tc.password, tokens[0], 1)
			if string(en.Body) != orig {
				t.Errorf("dead letter body\n%s\nwant the request with only the password replaced:\n%s", en.Body, orig)
			}
			// The files on disk hold the token (so they are current) and
			// not the password.
			eventually(t, 10*time.Second, func() (bool, string) {
				files, err := testenv.StreamFiles(e.storeDir, e.topo.DeadLetterStream)
				return err == nil && bytes.Contains(files, []byte(tokens[0])), "the dead letter is not in the stream's files yet"
			})

			for _, keys := range []*seal.Keyring{nil, newKeyring(t)} {
				_, err := en.Open(keys)
				if keys == nil && !errors.Is(err, dlq.ErrNoKey) || keys != nil && !errors.Is(err, seal.ErrUnknownKey) {
					t.Errorf("Open with keys %v = %v; want ErrNoKey without keys, ErrUnknownKey with another", keys.ID(), err)
				}
				sum, err := dlq.Replay(context.Background(), e.js, e.topo, []dlq.Entry{en}, dlq.Options{Actor: "tester", Keys: keys})
				if err != nil || len(sum.Refused) != 1 || sum.Replayed != 0 {
					t.Errorf("Replay with keys %v = %+v, %v; want it refused", keys.ID(), sum, err)
				}
			}
			tampered := en
			tampered.Body = []byte(strings.Replace(string(en.Body), tokens[0], tokens[0][:len(tokens[0])-2]+"AA", 1))
			if _, err := tampered.Open(e.keys); !errors.Is(err, seal.ErrTampered) {
				t.Errorf("Open(tampered) = %v; want ErrTampered", err)
			}

			rotated, err := seal.New(bytes.Repeat([]byte{9}, seal.KeySize), keyBytes(t, e))
			if err != nil {
				t.Fatal(err)
			}
			opened, err := en.Open(rotated)
			if err != nil || string(opened.Body) != tc.body {
				t.Fatalf("Open after a rotation = %s, %v; want the request as published", opened.Body, err)
			}
			sum, err := dlq.Replay(context.Background(), e.js, e.topo, []dlq.Entry{en}, dlq.Options{Actor: "tester", Keys: rotated})
			if err != nil || sum.Replayed != 1 {
				t.Fatalf("Replay = %+v, %v; want it replayed", sum, err)
			}
			eventually(t, 10*time.Second, func() (bool, string) { return e.sim.Creations(tc.email) == 1, "user not created by the replay" })
			seen := false
			for _, r := range e.sim.Requests() {
				if r.Route == testenv.RouteCreateUser && r.Status == 201 && bytes.Contains(r.Body, []byte(tc.email)) {
					seen = bytes.Contains(r.Body, []byte(`"password":"`+tc.password+`"`))
				}
			}
			if !seen {
				t.Errorf("Zoom's creation of %s did not carry the original password", tc.email)
			}
		})
	}
}

// keyBytes finds the env's key again: the test made it, so it may.
func keyBytes(t *testing.T, e *env) []byte {
	t.Helper()
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	k, ok := testKeys[e.keys.ID()]
	if !ok {
		t.Fatal("key not recorded")
	}
	return k
}

// Ensure a service without a key redacts: the value becomes "redacted",
// a header says so, and replay refuses it with a reason a person can act
// on.
func TestRedactedDeadLetters(t *testing.T) {
	e := newEnvWith(t, nil)
	en := e.deadLetter("redact-1", "pat@example.com", sealedBody)
	want := strings.Replace(sealedBody, sealedPassword, deadletter.PasswordRedacted, 1)
	if string(en.Body) != want || en.DeadLetter.Password != deadletter.PasswordRedacted || en.DeadLetter.SealKey != "" {
		t.Errorf("dead letter body %s, Zoom-Password %q, Zoom-Seal-Key %q; want %s, redacted, none", en.Body, en.DeadLetter.Password, en.DeadLetter.SealKey, want)
	}
	if err := en.Replayable(); !errors.Is(err, dlq.ErrRedacted) {
		t.Errorf("Replayable = %v; want ErrRedacted", err)
	}
	sum, err := dlq.Replay(context.Background(), e.js, e.topo, []dlq.Entry{en}, dlq.Options{Actor: "tester", Keys: newKeyring(t)})
	if err != nil || len(sum.Refused) != 1 || !errors.Is(sum.Refused[0].Err, dlq.ErrRedacted) || !strings.Contains(sum.Refused[0].Err.Error(), "publish the request again") {
		t.Errorf("Replay = %+v, %v; want it refused as redacted", sum, err)
	}
	// The replay headers never carry the markers onto a new request.
	m := dlq.ReplayMessage(e.topo, en)
	for _, h := range []string{deadletter.HeaderPassword, deadletter.HeaderSealKey} {
		if v := (nats.Header(m.Header)).Get(h); v != "" {
			t.Errorf("replayed request has header %s: %s", h, v)
		}
	}
}

// Ensure a lifecycle operation's dead letter is listed with its user,
// validated with the operation's rules and replayed to its subject.
func TestReplayOperation(t *testing.T) {
	e := newEnv(t)
	e.publish("op-1", "update", `{"email":"late@example.com","user":{"job_title":"Lead"}}`)
	e.waitTerminal("op-1")
	entries := e.list(dlq.Filter{Actions: []string{"update"}})
	if len(entries) != 1 || entries[0].Email != "late@example.com" || entries[0].DeadLetter.Reason != messages.ReasonNotFound {
		t.Fatalf("dead letters of update = %+v; want op-1, not_found, its e-mail", entries)
	}
	if err := entries[0].Replayable(); err != nil {
		t.Fatalf("Replayable = %v; want nil", err)
	}
	e.sim.AddUser("late@example.com", 1)
	sum, err := dlq.Replay(context.Background(), e.js, e.topo, entries, dlq.Options{Actor: "tester", Keys: e.keys})
	if err != nil || sum.Replayed != 1 {
		t.Fatalf("Replay = %+v, %v; want it replayed", sum, err)
	}
	id := dlq.ReplayID("op-1", entries[0].Seq)
	term := terminal(e.waitTerminal(id)[id])
	if len(term) != 1 || term[0].Data.Outcome != messages.OutcomeUpdated {
		t.Errorf("replayed update's results = %+v; want one, updated", term)
	}
	if u, ok := e.sim.User("late@example.com"); !ok || u.JobTitle != "Lead" {
		t.Errorf("user after the replay = %+v; want job title Lead", u)
	}
}
