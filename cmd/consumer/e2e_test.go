package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

// Ensure `consumer sandbox --exit-when-idle` (what CI runs) brings every
// sample to its expected outcome and exits cleanly.
func TestSandboxExitWhenIdle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var stdout, stderr syncBuffer
	args := []string{"sandbox", "--exit-when-idle", "--nats-port", "0"}
	start := time.Now()
	err := run(ctx, args, mapEnv(nil), strings.NewReader(""), &stdout, &stderr)
	t.Logf("sandbox took %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Errorf("run(%q) = %v; want nil", args, err)
	}
	if want := "17 samples, 17 as expected"; !strings.Contains(stdout.String(), want) {
		t.Errorf("run(%q) stdout does not contain %q", args, want)
	}
	// It ends with `consumer user show` of the user whose life it plays.
	// It serves the operator console, prints its URL and a login, and
	// checks that the console answers.
	for _, want := range []string{"consumer user show alice@example.com):\nemail:    alice@example.com\nstate:    deleted\n", "sandbox-life-5-deleted", "6 requests\n",
		"Operator console:          http://127.0.0.1:", "log in with the token ", "The operator console answered GET "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("run(%q) stdout does not contain %q", args, want)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
}

// Ensure `consumer run` serves /healthz and /readyz, reports a hold for
// rejected credentials as not ready, recovers by itself, and shuts down
// cleanly on cancellation.
func TestRunServesHealth(t *testing.T) {
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{})
	_, js := connectJS(t, ns.URL())
	svc := startRun(t, serviceEnv(ns, sim))
	addr := svc.healthAddr(t)

	eventually(t, 10*time.Second, func() (bool, string) {
		code, body, err := httpGet("http://" + addr + "/healthz")
		if err != nil {
			return false, fmt.Sprintf("GET /healthz: %v", err)
		}
		return code == 200 && strings.Contains(string(body), "alive"), fmt.Sprintf("GET /healthz = %d %s", code, body)
	})
	eventually(t, 15*time.Second, func() (bool, string) {
		code, r, why := getReady(addr)
		return code == 200 && r.Ready && r.Reason == "consuming", why
	})

	// Zoom starts rejecting the app's credentials: the first request finds
	// out, and the service holds all work and says so.
	sim.RejectCredentials(true)
	const id, email = "health-1", "health@example.com"
	m := nats.NewMsg("zoom.users.create.ssoCreate")
	m.Data = []byte(`{"action":"ssoCreate","user_info":{"email":"` + email + `","type":1}}`)
	if _, err := js.PublishMsg(context.Background(), m, jetstream.WithMsgID(id)); err != nil {
		t.Fatalf("publish %s: %v", id, err)
	}
	eventually(t, 15*time.Second, func() (bool, string) {
		code, r, why := getReady(addr)
		return code == 503 && !r.Ready && strings.Contains(r.Reason, "paused"), why
	})
	if code, _, err := httpGet("http://" + addr + "/healthz"); err != nil || code != 200 {
		t.Errorf("GET /healthz while held = %d, %v; want 200 (held is not dead)", code, err)
	}
	if n := streamMsgCount(t, js, "ZOOM_USERS_DLQ"); n != 0 {
		t.Errorf("dead letters while held = %d; want 0", n)
	}
	if n := streamMsgCount(t, js, "ZOOM_USERS"); n != 1 {
		t.Errorf("requests stored while held = %d; want 1", n)
	}

	// The credentials work again: the hold ends by itself (the default
	// hold is about 5 s) and the request gets its result.
	sim.RejectCredentials(false)
	eventually(t, 30*time.Second, func() (bool, string) {
		code, r, why := getReady(addr)
		return code == 200 && r.Ready, why
	})
	var term []messages.Event
	eventually(t, 30*time.Second, func() (bool, string) {
		term = terminalEvents(resultEvents(t, js)[id])
		return len(term) > 0, "no terminal result for " + id
	})
	if len(term) != 1 || term[0].Data.Outcome != messages.OutcomeCreated {
		t.Errorf("terminal results for %s = %+v; want one created", id, term)
	}
	if n := sim.Creations(email); n != 1 {
		t.Errorf("sim.Creations(%q) = %d; want 1", email, n)
	}

	start := time.Now()
	if err := svc.stop(t); err != nil {
		t.Errorf("run = %v; want nil after cancellation", err)
	}
	t.Logf("run returned %v after cancellation", time.Since(start).Round(time.Millisecond))
	if _, _, err := httpGet("http://" + addr + "/healthz"); err == nil {
		t.Errorf("GET /healthz after run returned succeeded; want the endpoint closed")
	}
}

// resultWatch counts result events as they are published (a core NATS
// subscription sees every publish, even those the stream de-duplicates),
// so the test can act the moment a count is reached.
type resultWatch struct {
	mu       sync.Mutex
	terminal map[string]int // request id -> terminal events published
	waiters  []countWaiter
}

type countWaiter struct {
	n  int
	ch chan struct{}
}

func watchResults(t testing.TB, nc *nats.Conn) *resultWatch {
	t.Helper()
	w := &resultWatch{terminal: map[string]int{}}
	sub, err := nc.Subscribe("zoom.users.result.>", w.handle)
	if err != nil {
		t.Fatalf("subscribe to results: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return w
}

func (w *resultWatch) handle(m *nats.Msg) {
	ev, err := messages.DecodeEvent(m.Data)
	if err != nil || !ev.Data.Outcome.Terminal() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.terminal[ev.Data.RequestID]++
	kept := w.waiters[:0]
	for _, cw := range w.waiters {
		if len(w.terminal) >= cw.n {
			close(cw.ch)
			continue
		}
		kept = append(kept, cw)
	}
	w.waiters = kept
}

// reached returns a channel closed once n requests have a terminal result.
func (w *resultWatch) reached(n int) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := make(chan struct{})
	if len(w.terminal) >= n {
		close(ch)
		return ch
	}
	w.waiters = append(w.waiters, countWaiter{n: n, ch: ch})
	return ch
}

// counts returns how many requests have a terminal result and how many
// terminal events were published in all (re-publications after a kill are
// de-duplicated by the stream).
func (w *resultWatch) counts() (requests, published int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.terminal {
		published += n
	}
	return len(w.terminal), published
}

// child is the consumer running as a separate process: the test binary
// re-executed with childArgsEnv set (see TestMain).
type child struct {
	name   string
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error // Wait's result, set before done is closed
}

// startChild starts `consumer run` in a new process with exactly env (plus
// what the Go runtime needs) as its environment.
func startChild(t testing.TB, name string, env map[string]string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = []string{childArgsEnv + "=run"}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GORACE", "GOTRACEBACK", "GOCOVERDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	c := &child{name: name, cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = c.stderr
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("%s (pid %d) output:\n%s", c.name, cmd.Process.Pid, c.stderr.String())
		}
	})
	return c
}

// signal sends sig and waits up to limit for the process to exit.
func (c *child) signal(t testing.TB, sig syscall.Signal, limit time.Duration) error {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, c.name, err)
	}
	select {
	case <-c.done:
		return c.err
	case <-time.After(limit):
		t.Fatalf("%s did not exit within %v of %v", c.name, limit, sig)
		return nil
	}
}

// waitResults waits until n requests have a terminal result; it fails if
// the child exits first.
func waitResults(t testing.TB, w *resultWatch, n int, c *child, limit time.Duration) {
	t.Helper()
	select {
	case <-w.reached(n):
	case <-c.done:
		t.Fatalf("%s exited (%v) before %d requests had a result", c.name, c.err, n)
	case <-time.After(limit):
		got, _ := w.counts()
		t.Fatalf("%d requests have a result after %v; want %d", got, limit, n)
	}
}

// ackPending is how many delivered requests are neither acked nor handed
// back: after a kill, what the dead process held.
func ackPending(t testing.TB, js jetstream.JetStream) int {
	t.Helper()
	topo := topology.Default()
	n := 0
	for _, a := range messages.Actions {
		c, err := js.Consumer(context.Background(), topo.RequestStream, topo.ConsumerName(string(a)))
		if err != nil {
			t.Fatalf("consumer %s: %v", a, err)
		}
		info, err := c.Info(context.Background())
		if err != nil {
			t.Fatalf("consumer info %s: %v", a, err)
		}
		n += info.NumAckPending
	}
	return n
}

// Ensure a consumer process killed with SIGKILL (no shutdown, no acks, no
// hand-back), twice in the middle of a batch, loses no request, creates no
// Zoom user twice and dead-letters nothing; the last one stops cleanly on
// SIGTERM.
func TestKilledConsumerLosesNothing(t *testing.T) {
	const total = 300
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{Latency: 20 * time.Millisecond})
	nc, js := connectJS(t, ns.URL())
	// The children provision with ACK_WAIT=1s too; doing it here first
	// lets the batch be published before any child runs.
	provisionStreams(t, js, time.Second)
	watch := watchResults(t, nc)

	ids := make([]string, 0, total)
	emails := map[string]string{}
	for i := range total {
		action := messages.Actions[i%len(messages.Actions)]
		id := fmt.Sprintf("kill-%03d", i)
		email := fmt.Sprintf("kill-%03d@example.com", i)
		body := fmt.Sprintf(`{"action":%q,"user_info":{"email":%q,"type":1,"first_name":"Kill"}}`, action, email)
		if action == messages.ActionAutoCreate {
			body = fmt.Sprintf(`{"action":"autoCreate","user_info":{"email":%q,"type":1,"password":"Zx9!kq2Lm"}}`, email)
		}
		m := nats.NewMsg("zoom.users.create." + string(action))
		m.Data = []byte(body)
		if _, err := js.PublishMsg(context.Background(), m, jetstream.WithMsgID(id)); err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
		ids = append(ids, id)
		emails[id] = email
	}

	env := serviceEnv(ns, sim)
	env["ZOOM_RATE_LIMIT"] = "0"
	env["ACK_WAIT"] = "1s" // the killed children's requests come back soon

	start := time.Now()
	for i, at := range []int{60, 150} {
		c := startChild(t, fmt.Sprintf("consumer %d", i+1), env)
		waitResults(t, watch, at, c, 60*time.Second)
		err := c.signal(t, syscall.SIGKILL, 10*time.Second)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("%s ended with %v; want killed by SIGKILL", c.name, err)
		}
		done, _ := watch.counts()
		t.Logf("killed %s with %d requests done and %d unacknowledged", c.name, done, ackPending(t, js))
	}
	last := startChild(t, "consumer 3", env)
	waitResults(t, watch, total, last, 60*time.Second)
	elapsed := time.Since(start)

	var evs map[string][]messages.Event
	eventually(t, 10*time.Second, func() (bool, string) {
		evs = resultEvents(t, js)
		var missing []string
		for _, id := range ids {
			if len(terminalEvents(evs[id])) == 0 {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0, fmt.Sprintf("%d requests have no stored terminal result, e.g. %v", len(missing), missing[:min(len(missing), 5)])
	})
	created, exists := 0, 0
	for _, id := range ids {
		term := terminalEvents(evs[id])
		if len(term) != 1 {
			t.Errorf("%s: %d stored terminal results; want 1", id, len(term))
			continue
		}
		switch o := term[0].Data.Outcome; o {
		case messages.OutcomeCreated:
			created++
		case messages.OutcomeExists:
			exists++
		default:
			t.Errorf("%s: outcome %s (%s); want created or exists", id, o, term[0].Data.Reason)
		}
		if n := sim.Creations(emails[id]); n != 1 {
			t.Errorf("sim.Creations(%q) = %d; want 1", emails[id], n)
		}
	}
	if n := streamMsgCount(t, js, "ZOOM_USERS_DLQ"); n != 0 {
		t.Errorf("dead letters = %d; want 0", n)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		n := streamMsgCount(t, js, "ZOOM_USERS")
		return n == 0, fmt.Sprintf("ZOOM_USERS still holds %d requests", n)
	})
	requests, published := watch.counts()
	t.Logf("%d requests in %v over two kills: %d created, %d exists; %d terminal events published for %d requests (%d re-published after a kill, de-duplicated by the stream)",
		total, elapsed.Round(time.Millisecond), created, exists, published, requests, published-requests)

	stopStart := time.Now()
	if err := last.signal(t, syscall.SIGTERM, 25*time.Second); err != nil {
		t.Errorf("%s after SIGTERM: %v; want exit status 0", last.name, err)
	}
	t.Logf("%s stopped %v after SIGTERM", last.name, time.Since(stopStart).Round(time.Millisecond))
}
