package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zoomprov/consumer/testenv"
)

// secretValue is set as ZOOM_CLIENT_SECRET in every CLI test; no output may
// ever contain it.
const secretValue = "s3cr3t-VALUE"

// cliResult is what one `consumer ...` invocation did.
type cliResult struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// runCLI runs `consumer args...` as main would, with env as the whole
// environment, and fails the test if it does not return within limit.
func runCLI(t testing.TB, limit time.Duration, env map[string]string, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	start := time.Now()
	go func() {
		err := run(ctx, args, mapEnv(env), strings.NewReader(stdin), &stdout, &stderr)
		done <- exitCode(&stderr, err)
	}()
	select {
	case code := <-done:
		return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	case <-time.After(limit):
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second): // it ignores cancellation too
		}
		t.Fatalf("consumer %q did not return within %v (stderr %q)", args, limit, stderr.String())
		return cliResult{}
	}
}

// tarpit is a TCP listener that records whether anything connected to it:
// pointed at by NATS_URL, it proves a command failed before connecting.
type tarpit struct {
	ln *net.TCPListener
}

func newTarpit(t testing.TB) *tarpit {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return &tarpit{ln: ln}
}

func (p *tarpit) url() string { return "nats://" + p.ln.Addr().String() }

// connected reports whether a connection is waiting in the backlog. The
// kernel completes the handshake without Accept, so a finished command's
// connection attempt is already there.
func (p *tarpit) connected(t testing.TB) bool {
	t.Helper()
	if err := p.ln.SetDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatalf("set deadline: %v", err)
	}
	c, err := p.ln.Accept()
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Ensure every command's error path exits with the right code and a
// single line, connects nowhere it should not, and never prints a secret.
func TestCLI(t *testing.T) {
	dir := t.TempDir()
	invalidBody := filepath.Join(dir, "invalid.json")
	if err := os.WriteFile(invalidBody, []byte(`{"action":"custCreate","user_info":{"email":"not-an-email","type":2}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	noAction := filepath.Join(dir, "noaction.json")
	if err := os.WriteFile(noAction, []byte(`{"user_info":{"email":"a@example.com","type":1}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(secretValue+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	creds := map[string]string{"ZOOM_ACCOUNT_ID": "acct", "ZOOM_CLIENT_ID": "client", "ZOOM_CLIENT_SECRET": secretValue}

	tests := []struct {
		name string
		args []string
		env  map[string]string // added to ZOOM_CLIENT_SECRET and NATS_URL (the tarpit)
		// unreachable uses a refused NATS URL instead of the tarpit.
		unreachable string
		stdin       string
		wantCode    int
		// wantOneLine: stderr is exactly one "consumer: ..." line.
		wantOneLine bool
		wantStderr  []string
		wantStdout  []string
		// wantConnect marks the control case: the tarpit must see it.
		wantConnect bool
	}{
		{name: "no arguments", args: nil, wantCode: 2, wantStderr: []string{"usage: consumer <command>", "run", "publish"}},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantOneLine: true, wantStderr: []string{`unknown command "frobnicate"`}},
		{name: "help", args: []string{"help"}, wantCode: 0, wantStdout: []string{"usage: consumer"}},
		{name: "version", args: []string{"version"}, wantCode: 0, wantStdout: []string{"consumer "}},

		{name: "run with a bad setting", args: []string{"run"}, env: merge(creds, map[string]string{"ZOOM_TIMEOUT": "abc"}),
			wantCode: 2, wantOneLine: true, wantStderr: []string{"ZOOM_TIMEOUT", `"abc"`}},
		{name: "run with a bad flag value", args: []string{"run", "--max-in-flight", "0"}, env: creds,
			wantCode: 2, wantOneLine: true, wantStderr: []string{"--max-in-flight"}},
		{name: "run with a bad setting, secret from a file", args: []string{"run", "--zoom-client-secret-file", secretFile},
			env:      map[string]string{"ZOOM_ACCOUNT_ID": "a", "ZOOM_CLIENT_ID": "c", "LOG_FORMAT": "xml"},
			wantCode: 2, wantOneLine: true, wantStderr: []string{"LOG_FORMAT"}},
		{name: "run without zoom credentials", args: []string{"run"},
			env:      map[string]string{"ZOOM_CLIENT_SECRET": ""},
			wantCode: 2, wantOneLine: true, wantStderr: []string{"ZOOM_ACCOUNT_ID"}},
		{name: "run with only the secret", args: []string{"run"},
			wantCode: 2, wantOneLine: true, wantStderr: []string{"ZOOM_ACCOUNT_ID"}},
		{name: "run without client id", args: []string{"run"}, env: map[string]string{"ZOOM_ACCOUNT_ID": "a"},
			wantCode: 2, wantOneLine: true, wantStderr: []string{"ZOOM_CLIENT_ID"}},
		{name: "run with a missing secret file", args: []string{"run"},
			env:      map[string]string{"ZOOM_ACCOUNT_ID": "a", "ZOOM_CLIENT_ID": "c", "ZOOM_CLIENT_SECRET": "", "ZOOM_CLIENT_SECRET_FILE": filepath.Join(dir, "missing")},
			wantCode: 2, wantOneLine: true, wantStderr: []string{"ZOOM_CLIENT_SECRET_FILE"}},
		{name: "run with a secret as a flag value", args: []string{"run", "--zoom-client-secret", secretValue}, env: creds,
			wantCode: 2, wantOneLine: true, wantStderr: []string{"zoom-client-secret"}},
		{name: "run with an unknown flag", args: []string{"run", "--bogus-flag"}, env: creds,
			wantCode: 2, wantOneLine: true, wantStderr: []string{"bogus-flag"}},
		{name: "run with an argument", args: []string{"run", "extra"}, env: creds,
			wantCode: 2, wantOneLine: true, wantStderr: []string{`"extra"`}},
		{name: "run help", args: []string{"run", "-h"}, env: creds,
			wantCode: 0, wantStderr: []string{"-zoom-client-secret-file", "-nats-url", "ZOOM_RATE_LIMIT"}},
		{name: "run with NATS unreachable", args: []string{"run"}, env: creds, unreachable: "nats://127.0.0.1:1",
			wantCode: 1, wantOneLine: true, wantStderr: []string{"nats://127.0.0.1:1"}},
		{name: "run with a password in an unreachable NATS URL", args: []string{"run"}, env: creds, unreachable: "nats://zoomprov:" + secretValue + "@127.0.0.1:1",
			wantCode: 1, wantOneLine: true, wantStderr: []string{"[redacted]@127.0.0.1:1"}},

		{name: "sandbox with an unknown flag", args: []string{"sandbox", "--bogus-flag"},
			wantCode: 2, wantOneLine: true, wantStderr: []string{"bogus-flag"}},
		{name: "sandbox with an argument", args: []string{"sandbox", "extra"},
			wantCode: 2, wantOneLine: true, wantStderr: []string{`"extra"`}},

		{name: "publish with neither --file nor --email", args: []string{"publish"},
			wantCode: 2, wantOneLine: true, wantStderr: []string{"--file", "--email"}},
		{name: "publish with both --file and --email", args: []string{"publish", "--file", invalidBody, "--email", "a@example.com"},
			wantCode: 2, wantOneLine: true, wantStderr: []string{"not both"}},
		{name: "publish --email without --action", args: []string{"publish", "--email", "a@example.com"},
			wantCode: 2, wantOneLine: true, wantStderr: []string{"--action"}},
		{name: "publish a body without action", args: []string{"publish", "--file", noAction},
			wantCode: 2, wantOneLine: true, wantStderr: []string{"--action"}},
		{name: "publish an invalid body", args: []string{"publish", "--file", invalidBody},
			wantCode: 1, wantOneLine: true, wantStderr: []string{"invalid request", "user_info.email", "--force"}},
		{name: "publish an invalid body from stdin", args: []string{"publish", "--file", "-"}, stdin: `{"action":"create","user_info":{"email":"x@example.com","type":3}}`,
			wantCode: 1, wantOneLine: true, wantStderr: []string{"invalid request", "user_info.type", "--force"}},
		{name: "publish invalid --email", args: []string{"publish", "--email", "nope", "--action", "create"},
			wantCode: 1, wantOneLine: true, wantStderr: []string{"invalid request", "user_info.email"}},
		{name: "publish a missing file", args: []string{"publish", "--file", filepath.Join(dir, "missing.json")},
			wantCode: 1, wantOneLine: true, wantStderr: []string{"missing.json"}},
		{name: "publish with an unknown flag", args: []string{"publish", "--bogus-flag"},
			wantCode: 2, wantOneLine: true, wantStderr: []string{"bogus-flag"}},
		{name: "publish with a bad setting", args: []string{"publish", "--email", "a@example.com", "--action", "create"}, env: map[string]string{"REQUEST_SUBJECT_PREFIX": "a.*"},
			wantCode: 2, wantOneLine: true, wantStderr: []string{"REQUEST_SUBJECT_PREFIX"}},
		{name: "publish with NATS unreachable", args: []string{"publish", "--email", "a@example.com", "--action", "create"}, unreachable: "nats://127.0.0.1:1",
			wantCode: 1, wantOneLine: true, wantStderr: []string{"nats://127.0.0.1:1"}},
		{name: "publish with a password in an unreachable NATS URL", args: []string{"publish", "--email", "a@example.com", "--action", "create"},
			unreachable: "nats://zoomprov:" + secretValue + "@127.0.0.1:1",
			wantCode:    1, wantOneLine: true, wantStderr: []string{"[redacted]@127.0.0.1:1"}},
		{name: "publish to a server that never answers (control)", args: []string{"publish", "--email", "a@example.com", "--action", "create"},
			wantCode: 1, wantOneLine: true, wantStderr: []string{"connect to nats"}, wantConnect: true},
		{name: "publish help", args: []string{"publish", "-h"},
			wantCode: 0, wantStderr: []string{"-file", "-msg-id", "-wait"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pit := newTarpit(t)
			env := merge(map[string]string{"ZOOM_CLIENT_SECRET": secretValue, "NATS_URL": pit.url()}, tc.env)
			if tc.unreachable != "" {
				env["NATS_URL"] = tc.unreachable
			}
			res := runCLI(t, 10*time.Second, env, tc.stdin, tc.args...)
			if res.code != tc.wantCode {
				t.Errorf("consumer %q exit code = %d; want %d (stderr %q)", tc.args, res.code, tc.wantCode, res.stderr)
			}
			for _, want := range tc.wantStderr {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("consumer %q stderr = %q; want it to contain %q", tc.args, res.stderr, want)
				}
			}
			for _, want := range tc.wantStdout {
				if !strings.Contains(res.stdout, want) {
					t.Errorf("consumer %q stdout = %q; want it to contain %q", tc.args, res.stdout, want)
				}
			}
			if tc.wantOneLine {
				if !strings.HasPrefix(res.stderr, "consumer") || strings.Count(res.stderr, "\n") != 1 || !strings.HasSuffix(res.stderr, "\n") {
					t.Errorf("consumer %q stderr = %q; want one line starting with \"consumer\"", tc.args, res.stderr)
				}
			}
			if tc.wantCode != 0 && res.stdout != "" {
				t.Errorf("consumer %q stdout = %q; want nothing on failure", tc.args, res.stdout)
			}
			if tc.wantCode != 0 && res.took > 5*time.Second {
				t.Errorf("consumer %q took %v to fail; want it quick", tc.args, res.took)
			}
			if strings.Contains(res.stderr, secretValue) || strings.Contains(res.stdout, secretValue) {
				t.Errorf("consumer %q printed the secret: stdout %q, stderr %q", tc.args, res.stdout, res.stderr)
			}
			if got := pit.connected(t); got != tc.wantConnect {
				t.Errorf("consumer %q connected to NATS = %v; want %v", tc.args, got, tc.wantConnect)
			}
		})
	}
}

// Ensure a health port that is taken fails start-up with one line naming
// HTTP_ADDR, instead of running without probes.
func TestRunHTTPAddrInUse(t *testing.T) {
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{})
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer taken.Close()
	env := merge(serviceEnv(ns, sim), map[string]string{"HTTP_ADDR": taken.Addr().String(), "ZOOM_CLIENT_SECRET": secretValue})
	res := runCLI(t, 20*time.Second, env, "", "run")
	if res.code == 0 {
		t.Errorf("consumer run with HTTP_ADDR in use exit code = 0; want non-zero")
	}
	if !strings.Contains(res.stderr, "HTTP_ADDR") || strings.Count(res.stderr, "\n") != 1 {
		t.Errorf("consumer run with HTTP_ADDR in use stderr = %q; want one line naming HTTP_ADDR", res.stderr)
	}
	if strings.Contains(res.stderr, secretValue) {
		t.Errorf("consumer run stderr = %q; want no secret in it", res.stderr)
	}
}
