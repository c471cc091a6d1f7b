package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/zoomprov/consumer/testenv"
)

// checkLines splits config check's stdout into its lines, failing unless
// each is one check: "ok", "FAIL" or "skip", a name, a colon.
func checkLines(t *testing.T, stdout string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		status, rest, ok := strings.Cut(line, " ")
		name, _, ok2 := strings.Cut(strings.TrimSpace(rest), ":")
		if !ok || !ok2 || (status != "ok" && status != "FAIL" && status != "skip") {
			t.Errorf("config check line %q; want \"ok|FAIL|skip  <check>: <detail>\"", line)
			continue
		}
		out[name] = status
	}
	return out
}

// Ensure `consumer config check` checks the settings, NATS, JetStream,
// every stream, bucket and consumer, and Zoom's token, one line each, and
// exits 0 only when all pass, 1 when one fails, 2 on a usage mistake,
// never printing a secret and connecting nowhere with bad settings.
func TestConfigCheck(t *testing.T) {
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{})
	_, js := connectJS(t, ns.URL())
	provisionStreams(t, js, 30*time.Second) // the creation consumers only
	empty := startNATS(t)
	good := serviceEnv(ns, sim)

	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		want     map[string]string // check name -> status
		// wantOneLine: a usage mistake, one line on stderr and no checks.
		wantOneLine bool
		wantConnect bool // to the tarpit
	}{
		{
			name: "all pass", env: good, wantCode: 0,
			want: map[string]string{"settings": "ok", "zoom credentials": "ok", "nats": "ok", "jetstream": "ok",
				"stream ZOOM_USERS": "ok", "stream ZOOM_USERS_RESULTS": "ok", "stream ZOOM_USERS_DLQ": "ok",
				"bucket zoom_attempts": "ok", "bucket zoom_quota": "ok", "consumer zoom-provisioner-ssoCreate": "ok",
				// Missing, but run would create it.
				"consumer zoom-provisioner-update": "ok", "zoom token": "ok"},
		},
		{
			name: "missing consumers without provisioning", env: good, args: []string{"--no-provision"}, wantCode: 1,
			want: map[string]string{"stream ZOOM_USERS": "ok", "consumer zoom-provisioner-create": "ok",
				"consumer zoom-provisioner-update": "FAIL", "consumer zoom-provisioner-delete": "FAIL", "zoom token": "ok"},
		},
		{
			name: "empty server, to be provisioned", env: merge(good, map[string]string{"NATS_URL": empty.URL()}), wantCode: 0,
			want: map[string]string{"stream ZOOM_USERS": "ok", "bucket zoom_quota": "ok", "consumer zoom-provisioner-create": "ok"},
		},
		{
			name: "empty server, PROVISION_STREAMS=false", env: merge(good, map[string]string{"NATS_URL": empty.URL(), "PROVISION_STREAMS": "false"}), wantCode: 1,
			want: map[string]string{"stream ZOOM_USERS": "FAIL", "bucket zoom_quota": "FAIL", "consumer zoom-provisioner-create": "FAIL", "zoom token": "ok"},
		},
		{
			name: "credentials rejected", env: merge(good, map[string]string{"ZOOM_CLIENT_SECRET": secretValue}), wantCode: 1,
			want: map[string]string{"zoom credentials": "ok", "nats": "ok", "zoom token": "FAIL"},
		},
		{
			name: "no credentials", env: merge(good, map[string]string{"ZOOM_ACCOUNT_ID": ""}), wantCode: 1,
			want: map[string]string{"settings": "ok", "zoom credentials": "FAIL", "nats": "ok", "zoom token": "skip"},
		},
		{
			name: "a bad setting", env: map[string]string{"MAX_IN_FLIGHT": "many"}, wantCode: 1,
			want: map[string]string{"settings": "FAIL", "nats": "skip"},
		},
		{
			name: "a bad flag value", args: []string{"--ack-wait", "soon"}, wantCode: 1,
			want: map[string]string{"settings": "FAIL", "nats": "skip"},
		},
		{
			name: "NATS unreachable", env: merge(good, map[string]string{"NATS_URL": "nats://127.0.0.1:1"}), wantCode: 1,
			want: map[string]string{"settings": "ok", "nats": "FAIL", "jetstream": "skip", "zoom token": "ok"},
		},
		{
			name: "NATS that never answers (control)", env: map[string]string{"ZOOM_ACCOUNT_ID": "a", "ZOOM_CLIENT_ID": "b"}, args: []string{"--timeout", "1s"},
			wantCode: 1, want: map[string]string{"nats": "FAIL"}, wantConnect: true,
		},
		{name: "an unknown flag", args: []string{"--bogus"}, wantCode: 2, wantOneLine: true},
		{name: "an argument", args: []string{"extra"}, wantCode: 2, wantOneLine: true},
		{name: "a bad timeout", args: []string{"--timeout", "0s"}, wantCode: 2, wantOneLine: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pit := newTarpit(t)
			env := merge(map[string]string{"NATS_URL": pit.url(), "ZOOM_CLIENT_SECRET": secretValue}, tc.env)
			res := runCLI(t, 30*time.Second, env, "", append([]string{"config", "check"}, tc.args...)...)
			if res.code != tc.wantCode {
				t.Errorf("config check %q exit code = %d; want %d (stdout %q, stderr %q)", tc.args, res.code, tc.wantCode, res.stdout, res.stderr)
			}
			if strings.Contains(res.stdout+res.stderr, secretValue) {
				t.Errorf("config check %q printed the secret: %q %q", tc.args, res.stdout, res.stderr)
			}
			if got := pit.connected(t); got != tc.wantConnect {
				t.Errorf("config check %q connected to the tarpit = %t; want %t", tc.args, got, tc.wantConnect)
			}
			if tc.wantOneLine {
				if res.stdout != "" || !strings.HasPrefix(res.stderr, "consumer: ") || strings.Count(res.stderr, "\n") != 1 {
					t.Errorf("config check %q = stdout %q, stderr %q; want one line on stderr only", tc.args, res.stdout, res.stderr)
				}
				return
			}
			got := checkLines(t, res.stdout)
			for name, status := range tc.want {
				if got[name] != status {
					t.Errorf("config check %q: %s = %q; want %q\n%s", tc.args, name, got[name], status, res.stdout)
				}
			}
			switch {
			case tc.wantCode == 0 && res.stderr != "":
				t.Errorf("config check %q stderr = %q; want nothing", tc.args, res.stderr)
			case tc.wantCode == 1 && (!strings.Contains(res.stderr, "checks failed") || strings.Count(res.stderr, "\n") != 1):
				t.Errorf("config check %q stderr = %q; want one line counting the failed checks", tc.args, res.stderr)
			}
		})
	}
}

// Ensure `config check --json` prints the same checks as a JSON array,
// with the same exit codes.
func TestConfigCheckJSON(t *testing.T) {
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{})
	for _, tc := range []struct {
		env      map[string]string
		wantCode int
		want     map[string]string
	}{
		{serviceEnv(ns, sim), 0, map[string]string{"settings": "ok", "nats": "ok", "stream ZOOM_USERS": "ok", "zoom token": "ok"}},
		{merge(serviceEnv(ns, sim), map[string]string{"LOG_LEVEL": "loud"}), 1, map[string]string{"settings": "fail", "nats": "skip"}},
	} {
		res := runCLI(t, 30*time.Second, tc.env, "", "config", "check", "--json")
		var checks []struct{ Check, Status, Detail string }
		if err := json.Unmarshal([]byte(res.stdout), &checks); err != nil || res.code != tc.wantCode {
			t.Fatalf("config check --json = %d, %q (%v); want %d and a JSON array", res.code, res.stdout, err, tc.wantCode)
		}
		got := map[string]string{}
		for _, c := range checks {
			got[c.Check] = c.Status
			if c.Detail == "" {
				t.Errorf("config check --json: %s has no detail", c.Check)
			}
		}
		for name, status := range tc.want {
			if got[name] != status {
				t.Errorf("config check --json: %s = %q; want %q (%s)", name, got[name], status, res.stdout)
			}
		}
	}
}
