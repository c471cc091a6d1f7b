package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/testenv"
)

// The contract's names (docs/contract.md, deploy/nats/).
const (
	requestStream   = "ZOOM_USERS"
	resultStream    = "ZOOM_USERS_RESULTS"
	deadStream      = "ZOOM_USERS_DLQ"
	requestPrefix   = "zoom.users.create"
	resultCreated   = "zoom.users.result.created"
	resultAllPrefix = "zoom.users.result"
)

// streamFiles are the stream definitions an operator applies with
// deploy/nats/apply.sh, which the service's own provisioning matches
// (internal/provision/deploy_test.go).
var streamFiles = []string{"stream-zoom-users.json", "stream-zoom-users-results.json", "stream-zoom-users-dlq.json"}

// world is what one consumer is measured in: a fresh nats-server process
// with the contract's streams, and the bench's own connection to it.
type world struct {
	broker    *testenv.NATSProcess
	brokerPID int
	nc        *nats.Conn
	js        jetstream.JetStream
	storeDir  string // removed by close, when the world made it
}

// startWorld starts a broker and creates the streams from deployDir.
func startWorld(ctx context.Context, natsBin, deployDir string) (*world, error) {
	return startWorldStore(ctx, natsBin, deployDir, 0)
}

// startWorldStore is startWorld with the broker's JetStream file store
// allowed fileStore bytes in all instead of testenv's 1 GiB (0: testenv's).
// The streams' own limits stay the contract's.
func startWorldStore(ctx context.Context, natsBin, deployDir string, fileStore int64) (*world, error) {
	var (
		p   *testenv.NATSProcess
		dir string
		err error
	)
	if fileStore > 0 {
		if dir, err = os.MkdirTemp("", "bench-nats-"); err != nil {
			return nil, err
		}
		// testenv writes the limits into the server's configuration file
		// before what it is given to append; the server's parser keeps
		// the last value of a key, so this whole block replaces testenv's.
		extra := fmt.Sprintf("jetstream {\n  store_dir: %q\n  max_memory_store: 268435456\n  max_file_store: %d\n}\n", dir, fileStore)
		p, err = testenv.StartNATSProcessWithConfig(natsBin, dir, extra)
	} else {
		p, err = testenv.StartNATSProcess(natsBin, "")
	}
	if err != nil {
		if dir != "" {
			os.RemoveAll(dir)
		}
		return nil, err
	}
	w := &world{broker: p, storeDir: dir}
	if w.brokerPID, err = pidWithArg(filepath.Join(p.StoreDir(), "server.conf")); err != nil {
		w.close()
		return nil, fmt.Errorf("find the broker's process: %w", err)
	}
	if w.nc, err = nats.Connect(p.URL(), nats.Name("bench-driver")); err != nil {
		w.close()
		return nil, err
	}
	if w.js, err = jetstream.New(w.nc); err != nil {
		w.close()
		return nil, err
	}
	for _, f := range streamFiles {
		b, err := os.ReadFile(filepath.Join(deployDir, f))
		if err != nil {
			w.close()
			return nil, err
		}
		var sc jetstream.StreamConfig
		if err := json.Unmarshal(b, &sc); err != nil {
			w.close()
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		// The files are for a three-node cluster; the bench's broker is
		// one server.
		sc.Replicas = 1
		if _, err := w.js.CreateStream(ctx, sc); err != nil {
			w.close()
			return nil, fmt.Errorf("create stream %s: %w", sc.Name, err)
		}
	}
	return w, nil
}

func (w *world) close() {
	if w.nc != nil {
		w.nc.Close()
	}
	w.broker.Shutdown()
	if w.storeDir != "" {
		os.RemoveAll(w.storeDir)
	}
}

// requestBody is request i for action: the body of Zoom's POST /v2/users
// with a distinct e-mail address.
func requestBody(action string, i int) []byte {
	n := strconv.Itoa(i)
	return []byte(`{"action":"` + action + `","user_info":{"email":"u` + n + `@bench.example.com","type":1,"first_name":"Bench","last_name":"User ` + n + `"}}`)
}

// requestID is request i's Nats-Msg-Id.
func requestID(i int) string { return "bench-" + strconv.Itoa(i) }

// preload publishes n requests for action with a Nats-Msg-Id each
// (asynchronously, every ack awaited) and checks the stream holds them.
func (w *world) preload(ctx context.Context, action string, n int) error {
	subject := requestPrefix + "." + action
	for i := range n {
		m := nats.NewMsg(subject)
		m.Data = requestBody(action, i)
		if _, err := w.js.PublishMsgAsync(m, jetstream.WithMsgID(requestID(i))); err != nil {
			return fmt.Errorf("preload request %d: %w", i, err)
		}
	}
	select {
	case <-w.js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		return errors.New("preload: acks did not arrive within 2 minutes")
	case <-ctx.Done():
		return ctx.Err()
	}
	got, err := w.streamMsgs(ctx, requestStream)
	if err != nil {
		return err
	}
	if got != uint64(n) {
		return fmt.Errorf("preload: %s holds %d messages; want %d", requestStream, got, n)
	}
	return nil
}

// publishAll publishes n messages, msg(i) with Nats-Msg-Id id, in order,
// asynchronously with at most the client's default of 4,000 waiting for
// their acknowledgement (a publish waits for room), and waits for every
// acknowledgement. Whether each was stored is for the caller to check.
func (w *world) publishAll(ctx context.Context, n int, msg func(i int) (m *nats.Msg, id string)) error {
	for i := range n {
		m, id := msg(i)
		if _, err := w.js.PublishMsgAsync(m, jetstream.WithMsgID(id), jetstream.WithStallWait(time.Minute)); err != nil {
			return fmt.Errorf("publish message %d of %d: %w", i, n, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	select {
	case <-w.js.PublishAsyncComplete():
		return nil
	case <-time.After(2 * time.Minute):
		return errors.New("publish: acks did not arrive within 2 minutes")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// streamMsgs is the number of messages stream holds.
func (w *world) streamMsgs(ctx context.Context, stream string) (uint64, error) {
	s, err := w.js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// subjectMsgs is the number of messages stream holds on subject.
func (w *world) subjectMsgs(ctx context.Context, stream, subject string) (uint64, error) {
	s, err := w.js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, err
	}
	return info.State.Subjects[subject], nil
}

// resultCounter counts the distinct results (by Nats-Msg-Id) published
// on the created-result subject, through a plain core subscription: for
// the broker that is one more delivery per result, some 1 ms of CPU per
// 1,000 here, where polling the stream's state every 10 ms cost it some
// 40 ms per second of run. Whether each result was also stored is checked
// afterwards.
type resultCounter struct {
	sub  *nats.Subscription
	want int
	done chan struct{} // closed at the want-th distinct result

	mu          sync.Mutex
	seen        map[string]struct{}
	first, last time.Time
}

// countResults subscribes to the created-result subject and waits until
// the server has the subscription.
func (w *world) countResults(want int) (*resultCounter, error) {
	c := &resultCounter{want: want, done: make(chan struct{}), seen: make(map[string]struct{}, want)}
	sub, err := w.nc.Subscribe(resultCreated, c.onMsg)
	if err != nil {
		return nil, err
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	if err := w.nc.Flush(); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	c.sub = sub
	return c, nil
}

func (c *resultCounter) onMsg(m *nats.Msg) {
	now := time.Now()
	id := m.Header.Get(jetstream.MsgIDHeader)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.seen[id]; dup || len(c.seen) >= c.want {
		return
	}
	c.seen[id] = struct{}{}
	if c.first.IsZero() {
		c.first = now
	}
	if len(c.seen) == c.want {
		c.last = now
		close(c.done)
	}
}

// times returns when the first and the want-th result arrived, and how
// many distinct results arrived.
func (c *resultCounter) times() (first, last time.Time, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first, c.last, len(c.seen)
}

func (c *resultCounter) stop() { _ = c.sub.Unsubscribe() }

// waitStored waits until stream holds at least n messages.
func (w *world) waitStored(ctx context.Context, stream string, n uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got, err := w.streamMsgs(ctx, stream)
		if err != nil {
			return err
		}
		if got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s holds %d messages %v after the last result was published; want %d", stream, got, timeout, n)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}
