package provision_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/deadletter"
	"github.com/zoomprov/consumer/internal/seal"
	"github.com/zoomprov/consumer/testenv"
)

// Ensure a password the service cannot seal (its keyring holds no key) is
// redacted in the dead letter, as without a key, and that the service
// says so in one warning line about that request, which holds no
// password.
func TestSealFailureLogged(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	cfg := testConfig(3)
	cfg.Seal = &seal.Keyring{} // not nil, but no key to seal with
	h.start(cfg)
	const password = "Seal-Fail-Pw-19"
	// An invalid e-mail address: dead-lettered without calling Zoom.
	h.publish("seal-fail-1", "autoCreate", `{"action":"autoCreate","user_info":{"email":"not an address","type":1,"password":"`+password+`"}}`)
	h.waitTerminal(10*time.Second, "seal-fail-1")

	msgs := h.storedMsgs("ZOOM_USERS_DLQ")
	if len(msgs) != 1 {
		t.Fatalf("dead letters = %d; want 1", len(msgs))
	}
	if m := msgs[0]; !strings.Contains(string(m.Data), `"password":"`+deadletter.PasswordRedacted+`"`) || m.Header.Get(deadletter.HeaderPassword) != deadletter.PasswordRedacted || m.Header.Get(deadletter.HeaderSealKey) != "" {
		t.Errorf("dead letter %s with %s %q; want the password redacted, and said so", m.Data, deadletter.HeaderPassword, m.Header.Get(deadletter.HeaderPassword))
	}

	log := h.log.String()
	if strings.Contains(log, password) {
		t.Errorf("the log holds the password:\n%s", log)
	}
	var warnings []map[string]any
	for _, line := range strings.Split(log, "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) != nil || !strings.Contains(line, "could not seal") {
			continue
		}
		warnings = append(warnings, l)
	}
	if len(warnings) != 1 || warnings[0]["level"] != "warn" || warnings[0]["request_id"] != "seal-fail-1" || warnings[0]["error"] == nil {
		t.Errorf("log lines about sealing = %v; want one warning with the request id and the error", warnings)
	}
}
