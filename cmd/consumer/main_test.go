package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

// childArgsEnv, when set, turns the test binary into the consumer: TestMain
// runs `consumer <args>` instead of the tests. TestKilledConsumerLosesNothing
// re-executes the test binary this way so that it can kill a real process.
const childArgsEnv = "ZOOMPROV_CHILD_ARGS"

// childNATSEnv, when set to "<port> <store dir>", turns the test binary into
// a NATS JetStream server on that port and store until SIGTERM: the chaos
// test stops, kills and restarts the broker as a real process.
const childNATSEnv = "ZOOMPROV_CHILD_NATS"

func TestMain(m *testing.M) {
	if args := os.Getenv(childArgsEnv); args != "" {
		os.Exit(childMain(strings.Fields(args)))
	}
	if spec := os.Getenv(childNATSEnv); spec != "" {
		os.Exit(childNATS(spec))
	}
	goleak.VerifyTestMain(m)
}

// childNATS is main() of a re-executed NATS server.
func childNATS(spec string) int {
	var port int
	var dir string
	if _, err := fmt.Sscanf(spec, "%d %s", &port, &dir); err != nil {
		fmt.Fprintln(os.Stderr, "bad "+childNATSEnv+":", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ns, err := testenv.StartNATS(testenv.NATSOptions{Port: port, StoreDir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	<-ctx.Done()
	ns.Stop()
	return 0
}

// childMain is main() of the re-executed consumer.
func childMain(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return exitCode(os.Stderr, run(ctx, args, os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

// mapEnv is a getenv that reads only m.
func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// merge returns a new map with the entries of every map, later ones
// winning.
func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
var eventually = testenv.Eventually

// syncBuffer collects output written from many goroutines.
type syncBuffer = testenv.SyncBuffer

var _ io.Writer = (*syncBuffer)(nil)

// startNATS starts an embedded JetStream server for the test.
func startNATS(t testing.TB) *testenv.NATS {
	t.Helper()
	ns, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// startSim starts a Zoom simulator for the test.
func startSim(t testing.TB, cfg testenv.SimConfig) *testenv.Simulator {
	t.Helper()
	sim := testenv.NewSimulator(cfg)
	t.Cleanup(sim.Close)
	return sim
}

// connectJS opens a client connection for the test's own reads and
// publishes.
func connectJS(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// provisionStreams creates the contract's streams and consumers, with the
// ack wait the service under test will use (so its own provisioning
// changes nothing).
func provisionStreams(t testing.TB, js jetstream.JetStream, ackWait time.Duration) {
	t.Helper()
	if err := reconcileTopology(js, ackWait); err != nil {
		t.Fatalf("provision: %v", err)
	}
}

// serviceEnv is the environment of `consumer run` against ns and sim.
func serviceEnv(ns *testenv.NATS, sim *testenv.Simulator) map[string]string {
	return map[string]string{
		"NATS_URL":           ns.URL(),
		"ZOOM_ACCOUNT_ID":    testenv.DefaultSimAccountID,
		"ZOOM_CLIENT_ID":     testenv.DefaultSimClientID,
		"ZOOM_CLIENT_SECRET": testenv.DefaultSimClientSecret,
		"ZOOM_API_URL":       sim.APIURL(),
		"ZOOM_TOKEN_URL":     sim.TokenURL(),
		"HTTP_ADDR":          "127.0.0.1:0",
	}
}

// streamMsgCount is the number of messages stored in a stream.
func streamMsgCount(t testing.TB, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatalf("stream info %s: %v", stream, err)
	}
	return info.State.Msgs
}

// resultEvents reads every stored result event, by request id, in stream
// order.
func resultEvents(t testing.TB, js jetstream.JetStream) map[string][]messages.Event {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, "ZOOM_USERS_RESULTS")
	if err != nil {
		t.Fatalf("result stream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("result stream info: %v", err)
	}
	out := map[string][]messages.Event{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("get result %d: %v", seq, err)
		}
		if !slices.ContainsFunc(messages.Outcomes, func(o messages.Outcome) bool { return m.Subject == "zoom.users.result."+string(o) }) {
			continue // an audit event
		}
		ev, err := messages.DecodeEvent(m.Data)
		if err != nil {
			t.Fatalf("result %d: DecodeEvent = %v; want a valid event", seq, err)
		}
		if want := "zoom.users.result." + string(ev.Data.Outcome); m.Subject != want {
			t.Errorf("result %d (%s) on subject %s; want %s", seq, ev.ID, m.Subject, want)
		}
		out[ev.Data.RequestID] = append(out[ev.Data.RequestID], ev)
	}
	return out
}

// terminalEvents returns the terminal events among evs.
func terminalEvents(evs []messages.Event) []messages.Event {
	var out []messages.Event
	for _, e := range evs {
		if e.Data.Outcome.Terminal() {
			out = append(out, e)
		}
	}
	return out
}

// runInstance is `consumer run` started in-process with its own context.
type runInstance struct {
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// startRun runs `consumer run` with env (and nothing else) as its
// environment until stop or the end of the test.
func startRun(t testing.TB, env map[string]string) *runInstance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runInstance{stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- run(ctx, []string{"run"}, mapEnv(env), strings.NewReader(""), io.Discard, r.stderr)
	}()
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("consumer run log:\n%s", r.stderr.String())
		}
	})
	return r
}

// stop cancels run's context and returns what run returned; it fails the
// test if run takes more than 25 s to return.
func (r *runInstance) stop(t testing.TB) error {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(25 * time.Second):
			r.err = errors.New("run did not return within 25s of cancellation")
			t.Errorf("%v", r.err)
		}
	})
	return r.err
}

// healthAddr waits for the "health endpoint listening" log line and returns
// its address, so tests can use HTTP_ADDR=127.0.0.1:0 without a port race.
func (r *runInstance) healthAddr(t testing.TB) string {
	t.Helper()
	var addr string
	eventually(t, 15*time.Second, func() (bool, string) {
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("run returned %v before the health endpoint listened", err)
		default:
		}
		sc := bufio.NewScanner(strings.NewReader(r.stderr.String()))
		for sc.Scan() {
			var line struct {
				Message string `json:"message"`
				Addr    string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "health endpoint listening" && line.Addr != "" {
				addr = line.Addr
				return true, ""
			}
		}
		return false, "no \"health endpoint listening\" log line yet"
	})
	return addr
}

// httpGet fetches url without keeping connections alive (no goroutine
// outlives the call) and returns the status and body.
func httpGet(url string) (int, []byte, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, body, nil
}

// readiness is the body of /readyz.
type readiness struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason"`
}

// getReady fetches /readyz; why says what went wrong for eventually.
func getReady(addr string) (int, readiness, string) {
	code, body, err := httpGet("http://" + addr + "/readyz")
	if err != nil {
		return 0, readiness{}, fmt.Sprintf("GET /readyz: %v", err)
	}
	var r readiness
	if err := json.Unmarshal(body, &r); err != nil {
		return code, r, fmt.Sprintf("GET /readyz body %q: %v", body, err)
	}
	return code, r, fmt.Sprintf("GET /readyz = %d %s", code, strings.TrimSpace(string(body)))
}

// reconcileTopology creates the contract's streams, buckets and consumers
// as the service would, with the given ack wait.
func reconcileTopology(js jetstream.JetStream, ackWait time.Duration) error {
	var actions []string
	for _, a := range messages.Actions {
		actions = append(actions, string(a))
	}
	_, err := topology.Reconcile(context.Background(), js, topology.Default(), topology.Options{Actions: actions, AckWait: ackWait, MaxAckPending: 1000})
	return err
}
