package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/dlq"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

// Ensure the console's block of deploy/k8s/nats-accounts.conf ("#console:"
// lines, commented out) is what the console needs: with it turned on, the
// service, as zoom-provisioner, serves every console page and does every
// dead-letter action and an erasure without one permissions violation.
func TestNATSAccountsConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a nats-server process")
	}
	srv := startAccountsServer(t, func(conf string) string {
		if strings.Count(conf, "\n#console: ") < 5 {
			t.Fatalf("nats-accounts.conf has no #console: block")
		}
		return strings.ReplaceAll(conf, "\n#console: ", "\n")
	})
	url0 := srv.URL()
	sim := startSim(t, testenv.SimConfig{})
	sim.FailEmail("gone@example.com", 1, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: sales."})
	tokens := filepath.Join(t.TempDir(), "tokens")
	const secret = "ops-console-secret-0123456789"
	if err := os.WriteFile(tokens, []byte("ops:"+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	svc := startRun(t, userEnv(url0, "zoom-provisioner", map[string]string{
		"ZOOM_ACCOUNT_ID": testenv.DefaultSimAccountID, "ZOOM_CLIENT_ID": testenv.DefaultSimClientID, "ZOOM_CLIENT_SECRET": testenv.DefaultSimClientSecret,
		"ZOOM_API_URL": sim.APIURL(), "ZOOM_TOKEN_URL": sim.TokenURL(), "HTTP_ADDR": "127.0.0.1:0", "CONSOLE_TOKEN_FILE": tokens,
	}))
	base := "http://" + svc.healthAddr(t) + "/console/"

	// Requests, as the admin user: one created, two dead-lettered.
	nc, err := nats.Connect(url0, nats.UserInfo("admin", accountsPassword("admin")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	topo := topology.Default()
	ctx := context.Background()
	eventually(t, 20*time.Second, func() (bool, string) {
		_, err := js.Stream(ctx, topo.RequestStream)
		return err == nil, fmt.Sprintf("no request stream yet: %v", err)
	})
	for id, body := range map[string]string{
		"c-ok":      `{"action":"ssoCreate","user_info":{"email":"ok@example.com","type":1}}`,
		"c-gone":    `{"action":"ssoCreate","user_info":{"email":"gone@example.com","type":1}}`,
		"c-invalid": `{"action":"custCreate","user_info":{"email":"not-an-email","type":1}}`,
	} {
		action := regexp.MustCompile(`"action":"([a-zA-Z]+)"`).FindStringSubmatch(body)[1]
		if _, err := js.Publish(ctx, topo.RequestSubject(action), []byte(body), jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	seqs := map[string]uint64{}
	eventually(t, 20*time.Second, func() (bool, string) {
		entries, err := dlq.List(ctx, js, topo, dlq.Filter{})
		for _, e := range entries {
			seqs[e.RequestID(topo)] = e.Seq
		}
		return len(entries) == 2, fmt.Sprintf("%d dead letters (%v); want 2", len(entries), err)
	})

	auth := "Bearer " + secret
	send := func(method, path string, form url.Values) (int, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, base+path, body)
		req.Header.Set("Authorization", auth)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var csrf string
	for _, p := range []string{"", "dlq", fmt.Sprintf("dlq/%d", seqs["c-gone"]), "guard", "quota", "user?email=ok%40example.com"} {
		code, body := send(http.MethodGet, p, nil)
		if code != http.StatusOK || strings.Contains(body, `class="problem"`) {
			t.Errorf("GET /console/%s as zoom-provisioner = %d, or shows a problem:\n%s", p, code, body)
		}
		if m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body); m != nil {
			csrf = m[1]
		}
	}
	if code, body := send(http.MethodPost, "dlq/replay", url.Values{"csrf": {csrf}, "seq": {fmt.Sprint(seqs["c-gone"])}}); code != http.StatusOK || !strings.Contains(body, `data-replayed="1"`) {
		t.Errorf("POST dlq/replay = %d; want 200, one replayed:\n%s", code, body)
	}
	inv := fmt.Sprint(seqs["c-invalid"])
	if code, body := send(http.MethodPost, "dlq/purge", url.Values{"csrf": {csrf}, "seq": {inv}, "confirm": {"1"}, "upto": {inv}}); code != http.StatusOK || !strings.Contains(body, `data-deleted="1"`) {
		t.Errorf("POST dlq/purge = %d; want 200, one deleted:\n%s", code, body)
	}
	if code, body := send(http.MethodPost, "user/forget", url.Values{"csrf": {csrf}, "email": {"ok@example.com"}, "confirm": {"ok@example.com"}, "reason": {"test"}}); code != http.StatusOK {
		t.Errorf("POST user/forget = %d; want 200:\n%s", code, body)
	}
	if err := svc.stop(t); err != nil {
		t.Fatalf("run as zoom-provisioner: %v", err)
	}
	if seen, _ := srv.violations(t, 0); len(seen) > 0 {
		t.Errorf("permissions violations while the console worked; want none:\n%s", strings.Join(flatten(seen), "\n"))
	}
}
