package provision_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/password"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

// Ensure a password sealed for the service reaches Zoom opened, and one
// sealed for another key fails as invalid_request, naming the key id,
// with its dead letter keeping the sealed password as it came; the
// plain password appears nowhere at rest.
func TestSealedPasswordOpenedForZoom(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	k := make([]byte, 32)
	rand.Read(k)
	keys, _ := password.New(k)
	other := make([]byte, 32)
	rand.Read(other)
	otherKeys, _ := password.New(other)
	cfg := testConfig(3)
	cfg.PasswordKeys = keys
	h.start(cfg)
	const plain = "Opened-4-Zoom!"
	good, _ := password.Seal(keys.PublicKey(), plain)
	bad, _ := password.Seal(otherKeys.PublicKey(), plain)
	// Published as a sealing publisher would; the plain password is
	// what must be found nowhere at rest (the sealed one is kept on
	// purpose).
	for id, body := range map[string]string{
		"sealed-ok":  `{"action":"autoCreate","user_info":{"email":"ok@example.com","type":1,"password":"` + good + `"}}`,
		"sealed-bad": `{"action":"autoCreate","user_info":{"email":"bad@example.com","type":1,"password":"` + bad + `"}}`,
	} {
		m := nats.NewMsg(topology.Default().RequestSubject("autoCreate"))
		m.Data = []byte(body)
		m.Header.Set(jetstream.MsgIDHeader, id)
		if _, err := h.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	h.mu.Lock()
	h.passwords = append(h.passwords, plain)
	h.mu.Unlock()
	evs := h.waitTerminal(10*time.Second, "sealed-ok", "sealed-bad")
	if ok := terminal(evs["sealed-ok"]); ok[0].Data.Outcome != messages.OutcomeCreated {
		t.Errorf("sealed-ok = %+v; want created", ok)
	}
	b := terminal(evs["sealed-bad"])
	if b[0].Data.Outcome != messages.OutcomeFailed || b[0].Data.Reason != messages.ReasonInvalidRequest || !strings.Contains(b[0].Data.ZoomMessage, password.KeyID(otherKeys.PublicKey())) {
		t.Errorf("sealed-bad = %+v; want failed, invalid_request, naming the key id", b)
	}
	seen := false
	for _, r := range h.sim.Requests() {
		if r.Route == testenv.RouteCreateUser && bytes.Contains(r.Body, []byte("ok@example.com")) {
			seen = bytes.Contains(r.Body, []byte(`"password":"`+plain+`"`))
		}
	}
	if !seen {
		t.Error("Zoom did not get the opened password")
	}
	dls := h.storedMsgs("ZOOM_USERS_DLQ")
	if len(dls) != 1 || !bytes.Contains(dls[0].Data, []byte(bad)) {
		t.Errorf("dead letters = %d; want one keeping the sealed password", len(dls))
	}
	if strings.Contains(h.log.String(), plain) {
		t.Error("the log holds the password")
	}
}
