package app

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/zoomprov/consumer/internal/console"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// runApp runs the service against an embedded server and the Zoom
// simulator until the test ends, and returns its HTTP address.
func runApp(t *testing.T, tokens *console.Tokens) string {
	t.Helper()
	ns, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	sim := testenv.NewSimulator(testenv.SimConfig{})
	t.Cleanup(sim.Close)
	topo := topology.Default()
	cfg := Config{
		NATSURL:       ns.URL(),
		ZoomAccountID: testenv.DefaultSimAccountID, ZoomClientID: testenv.DefaultSimClientID, ZoomClientSecret: testenv.DefaultSimClientSecret,
		ZoomAPIURL: sim.APIURL(), ZoomTokenURL: sim.TokenURL(), ZoomTimeout: 5 * time.Second, Provision: true,
		RequestStream: topo.RequestStream, RequestPrefix: topo.RequestPrefix, OperationPrefix: topo.OperationPrefix,
		ResultStream: topo.ResultStream, ResultPrefix: topo.ResultPrefix, DeadLetterStream: topo.DeadLetterStream,
		DeadLetterPrefix: topo.DeadLetterPrefix, ConsumerPrefix: topo.ConsumerPrefix, ResultMaxAge: topo.ResultMaxAge,
		HTTPAddr: "127.0.0.1:0", ConsoleTokens: tokens, ShutdownTimeout: time.Second,
	}
	a := New(cfg, zerolog.Nop(), "test")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	return a.HTTPAddr()
}

// status is the status of GET url, redirects not followed.
func status(t *testing.T, url string) int {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Ensure the console is served under /console/ beside /metrics when it
// has logins, and not at all (404) without; and that a console with
// HTTP_ADDR off stops start-up with one line naming the setting.
func TestConsoleServed(t *testing.T) {
	t.Run("off", func(t *testing.T) {
		addr := runApp(t, nil)
		for _, p := range []string{"/console/", "/console/login", "/console/static/console.css"} {
			if code := status(t, "http://"+addr+p); code != http.StatusNotFound {
				t.Errorf("GET %s without CONSOLE_TOKEN_FILE = %d; want 404", p, code)
			}
		}
		if code := status(t, "http://"+addr+"/metrics"); code != http.StatusOK {
			t.Errorf("GET /metrics = %d; want 200", code)
		}
	})
	t.Run("on", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tokens")
		if err := os.WriteFile(path, []byte("ops:0123456789abcdef0123\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		tokens, err := console.LoadTokens(path)
		if err != nil {
			t.Fatal(err)
		}
		addr := runApp(t, tokens)
		for p, want := range map[string]int{"/console/": http.StatusSeeOther, "/console": http.StatusTemporaryRedirect, "/console/login": http.StatusOK, "/metrics": http.StatusOK, "/healthz": http.StatusOK} {
			if code := status(t, "http://"+addr+p); code != want {
				t.Errorf("GET %s = %d; want %d", p, code, want)
			}
		}
	})
	t.Run("no HTTP_ADDR", func(t *testing.T) {
		tokens, err := console.ParseTokens(strings.NewReader("ops:0123456789abcdef0123\n"))
		if err != nil {
			t.Fatal(err)
		}
		err = New(Config{ConsoleTokens: tokens}, zerolog.Nop(), "test").Run(context.Background())
		var se *SettingError
		if !errors.As(err, &se) || se.Name != "CONSOLE_TOKEN_FILE" {
			t.Errorf("Run with a console and HTTP_ADDR off = %v; want a SettingError naming CONSOLE_TOKEN_FILE", err)
		}
	})
}
