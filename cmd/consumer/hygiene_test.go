package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/testenv"
)

// Ensure `consumer run` at debug level, whose client secret Zoom refuses
// (a rotated secret), says so without printing the secret, its Basic
// credentials or a request's password in its log, /readyz or /metrics.
func TestRunCredentialsRejectedLeaksNothing(t *testing.T) {
	const (
		staleSecret = "HYG-run-STALE-secret-4b7e2f90"
		password    = "HygRun-Password-31x"
	)
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{ClientSecret: "sim-side-ROTATED-secret"})
	_, js := connectJS(t, ns.URL())
	env := merge(serviceEnv(ns, sim), map[string]string{"ZOOM_CLIENT_SECRET": staleSecret, "LOG_LEVEL": "debug"})
	svc := startRun(t, env)
	addr := svc.healthAddr(t)

	m := nats.NewMsg("zoom.users.create.autoCreate")
	m.Data = []byte(`{"action":"autoCreate","user_info":{"email":"run.hygiene@example.com","type":1,"password":"` + password + `"}}`)
	if _, err := js.PublishMsg(context.Background(), m, jetstream.WithMsgID("run-hygiene-1")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	var readyBody string
	eventually(t, 15*time.Second, func() (bool, string) {
		code, body, err := httpGet("http://" + addr + "/readyz")
		readyBody = string(body)
		var r readiness
		if err == nil {
			_ = json.Unmarshal(body, &r)
		}
		// The request has been handled once the service is paused ("paused
		// for ..."); 503 alone comes earlier, from the start-up check.
		return err == nil && code == 503 && strings.Contains(r.Reason, "paused for"), fmt.Sprintf("GET /readyz = %d %s %v; want 503 paused for ...", code, body, err)
	})
	code, scrape, err := httpGet("http://" + addr + "/metrics")
	switch {
	case err != nil:
		t.Errorf("GET /metrics: %v", err)
	case code == 404:
		t.Logf("no /metrics endpoint; nothing to scrape")
	case code != 200:
		t.Errorf("GET /metrics = %d; want 200", code)
	default:
		t.Logf("scraped /metrics: %d bytes", len(scrape))
	}
	if err := svc.stop(t); err != nil {
		t.Errorf("run = %v; want nil after cancellation", err)
	}
	if n := streamMsgCount(t, js, "ZOOM_USERS_DLQ"); n != 0 {
		t.Errorf("dead letters = %d; want 0 while the credentials are refused", n)
	}

	stderr := svc.stderr.String()
	if !strings.Contains(stderr, `"level":"error"`) || !strings.Contains(stderr, "pausing all work") {
		t.Errorf("log has no error line about the pause; want one:\n%s", stderr)
	}
	if !strings.Contains(stderr, `"level":"debug"`) && !strings.Contains(stderr, `"level":"info"`) {
		t.Errorf("log has no debug or info lines:\n%s", stderr)
	}
	basic := base64.StdEncoding.EncodeToString([]byte(testenv.DefaultSimClientID + ":" + staleSecret))
	needles := []string{staleSecret, basic, "Basic ", "Bearer ", base64.StdEncoding.EncodeToString([]byte(staleSecret)), password, "run.hygiene@example.com"}
	for what, hay := range map[string]string{"log": stderr, "/readyz": readyBody, "/metrics": string(scrape)} {
		for _, needle := range needles {
			if i := strings.Index(hay, needle); i >= 0 {
				t.Errorf("%s contains %q: ...%s...", what, needle, hay[max(0, i-200):min(len(hay), i+len(needle)+200)])
			}
		}
	}
	// The token endpoint did get the stale credentials: the needles were
	// really sent.
	seen := false
	for _, r := range sim.Requests() {
		seen = seen || r.Authorization == "Basic "+basic
	}
	if !seen {
		t.Errorf("the simulator never saw the Basic credentials; want the service to have tried them")
	}
}
