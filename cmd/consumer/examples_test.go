package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/messages"
)

// requireExamplesEnv, set to 1 (as .ci/run does), makes TestExamples fail
// instead of skipping when an example's runtime is missing.
const requireExamplesEnv = "CI_REQUIRE_EXAMPLES"

// startSandbox runs `consumer sandbox --nats-port 0` in-process until the
// end of the test and returns the URL of its NATS server once its samples
// are done and it keeps serving.
func startSandbox(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"sandbox", "--nats-port", "0"}, mapEnv(nil), strings.NewReader(""), &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("sandbox returned %v after cancellation; want nil", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("sandbox did not return within 30s of cancellation")
		}
		if t.Failed() {
			t.Logf("sandbox stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
	})
	urlLine := regexp.MustCompile(`NATS JetStream \(embedded\): (nats://\S+)`)
	var url string
	eventually(t, 30*time.Second, func() (bool, string) {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("sandbox returned %v before it served", err)
		default:
		}
		out := stdout.String()
		// Once its own samples and demonstrations are done: they use the
		// guard's two slots (GUARD_LIMIT is 2 there), and release it.
		if m := urlLine.FindStringSubmatch(out); m != nil && strings.Contains(out, "The service keeps running.") {
			url = m[1]
			return true, ""
		}
		return false, "the sandbox has not printed its NATS URL and finished its samples"
	})
	return url
}

// exampleRun is one run of an example program.
type exampleRun struct {
	code           int
	stdout, stderr string
}

func runExample(t *testing.T, dir, natsURL, stdin string, name string, args ...string) exampleRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // against a hung example only
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NATS_URL="+natsURL, "WAIT_SECONDS=30")
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s %q: %v", name, args, err)
	}
	return exampleRun{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// Ensure the integrators' examples work against the real service: each
// publishes a creation request with its Nats-Msg-Id, waits for the
// stream's acknowledgement, and prints the request's result event from the
// result stream; publishing it again is a duplicate whose result is found
// all the same; a lifecycle request read from stdin gets its result too.
// An example whose runtime is missing is skipped, naming what to install,
// unless CI_REQUIRE_EXAMPLES=1.
func TestExamples(t *testing.T) {
	require := os.Getenv(requireExamplesEnv) == "1"
	examples := []struct {
		name string
		dir  string
		// missing says what is not installed, "" if nothing.
		missing func() string
		command []string
	}{
		{
			name: "node",
			dir:  filepath.Join("..", "..", "examples", "node"),
			missing: func() string {
				if _, err := exec.LookPath("node"); err != nil {
					return "node is not installed: install Node.js 18 or later and npm (Debian: apt-get install nodejs npm), then run npm ci in examples/node"
				}
				if _, err := os.Stat(filepath.Join("..", "..", "examples", "node", "node_modules", "@nats-io", "jetstream")); err != nil {
					return "examples/node has no node_modules: run npm ci in examples/node"
				}
				return ""
			},
			command: []string{"node", "publish.mjs"},
		},
		{
			name: "shell",
			dir:  filepath.Join("..", "..", "examples", "shell"),
			missing: func() string {
				if _, err := exec.LookPath("nats"); err != nil {
					return "the nats CLI is not installed: go install github.com/nats-io/natscli/nats@v0.5.0 (and put $(go env GOPATH)/bin in PATH)"
				}
				if _, err := exec.LookPath("sh"); err != nil {
					return "sh is not installed"
				}
				return ""
			},
			command: []string{"sh", "publish.sh"},
		},
	}
	missing := make([]string, len(examples))
	runnable := 0
	for i, ex := range examples {
		if missing[i] = ex.missing(); missing[i] == "" {
			runnable++
		}
	}
	var natsURL string
	if runnable > 0 {
		natsURL = startSandbox(t)
	}
	for i, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			switch {
			case missing[i] != "" && require:
				t.Fatalf("%s (%s=1)", missing[i], requireExamplesEnv)
			case missing[i] != "":
				t.Skip(missing[i])
			}
			email := ex.name + "-example@example.com"
			body := filepath.Join(t.TempDir(), "request.json")
			if err := os.WriteFile(body, []byte(`{"action":"ssoCreate","user_info":{"email":"`+email+`","type":1,"first_name":"Ex"}}`), 0o600); err != nil {
				t.Fatal(err)
			}
			id := "example-" + ex.name + "-1"
			args := slices.Concat(ex.command[1:], []string{"zoom.users.create.ssoCreate", body, id})
			for _, attempt := range []string{"first", "duplicate"} {
				res := runExample(t, ex.dir, natsURL, "", ex.command[0], args...)
				ev := wantResult(t, ex.name+" "+attempt, res, id)
				if ev.Data.Outcome != messages.OutcomeCreated || ev.Data.Email != email || ev.Data.Action != "ssoCreate" {
					t.Errorf("%s %s: result %+v; want created for %s by ssoCreate", ex.name, attempt, ev.Data, email)
				}
				if want := "duplicate"; attempt == want && !strings.Contains(res.stderr, want) {
					t.Errorf("%s %s: stderr %q; want it to say the request was a duplicate", ex.name, attempt, res.stderr)
				}
			}

			// A lifecycle request from stdin, with an id of the example's
			// choosing.
			res := runExample(t, ex.dir, natsURL, `{"email":"`+email+`"}`, ex.command[0], slices.Concat(ex.command[1:], []string{"zoom.users.deactivate", "-"})...)
			m := regexp.MustCompile(`request (\S+) on`).FindStringSubmatch(res.stderr)
			if m == nil {
				t.Fatalf("%s deactivate: stderr %q names no request id", ex.name, res.stderr)
			}
			if ev := wantResult(t, ex.name+" deactivate", res, m[1]); ev.Data.Outcome != messages.OutcomeDeactivated {
				t.Errorf("%s deactivate: outcome %s; want deactivated", ex.name, ev.Data.Outcome)
			}

			// A usage mistake exits 2.
			if res := runExample(t, ex.dir, natsURL, "", ex.command[0], ex.command[1:]...); res.code != 2 {
				t.Errorf("%s without arguments: exit code %d; want 2 (stderr %q)", ex.name, res.code, res.stderr)
			}
		})
	}
}

// wantResult checks that an example run exited 0 and printed the result
// event of request id last, and returns it.
func wantResult(t *testing.T, what string, res exampleRun, id string) messages.Event {
	t.Helper()
	if res.code != 0 {
		t.Fatalf("%s: exit code %d; want 0\nstdout: %s\nstderr: %s", what, res.code, res.stdout, res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	ev, err := messages.DecodeEvent([]byte(lines[len(lines)-1]))
	if err != nil {
		t.Fatalf("%s: last line of stdout %q: %v; want a result event", what, lines[len(lines)-1], err)
	}
	if ev.Data.RequestID != id || ev.ID != id+":result" || !ev.Data.Outcome.Terminal() || ev.DataSchema != messages.DataSchema {
		t.Fatalf("%s: printed event %+v; want the terminal result of request %s, dataschema %s", what, ev, id, messages.DataSchema)
	}
	return ev
}
