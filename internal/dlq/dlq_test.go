package dlq_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/zoomprov/consumer/internal/dlq"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/provision"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/internal/retry"
	"github.com/zoomprov/consumer/internal/seal"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/internal/zoom"
	"github.com/zoomprov/consumer/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env is an embedded JetStream server, the Zoom simulator and the real
// provisioning service between them, which fills the dead-letter stream.
type env struct {
	t    testing.TB
	ns   *testenv.NATS
	sim  *testenv.Simulator
	js   jetstream.JetStream
	topo topology.Topology
	// offset shifts the service's clock, so that dead letters can be dated
	// in the past.
	offset atomic.Int64
	// keys seal the passwords of the service's dead letters (nil: none, so
	// they are redacted) and open them on replay.
	keys     *seal.Keyring
	storeDir string
	// passwords are those of every request published, never to be found
	// in the dead-letter stream.
	mu        sync.Mutex
	passwords []string
}

// newKeyring is a keyring with one fresh random key.
func newKeyring(t testing.TB) *seal.Keyring {
	t.Helper()
	k := make([]byte, seal.KeySize)
	rand.Read(k)
	keys, err := seal.New(k)
	if err != nil {
		t.Fatal(err)
	}
	testKeysMu.Lock()
	testKeys[keys.ID()] = k
	testKeysMu.Unlock()
	return keys
}

// testKeys are the keys newKeyring made, by id, for rotation tests.
var (
	testKeysMu sync.Mutex
	testKeys   = map[string][]byte{}
)

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWith(t, newKeyring(t))
}

// newEnvWith is newEnv with the service sealing with keys (nil: none).
func newEnvWith(t testing.TB, keys *seal.Keyring) *env {
	t.Helper()
	storeDir := t.TempDir()
	ns, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: storeDir})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(ns.Shutdown)
	sim := testenv.NewSimulator(testenv.SimConfig{})
	t.Cleanup(sim.Close)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	e := &env{t: t, ns: ns, sim: sim, js: js, topo: topology.Default(), keys: keys, storeDir: storeDir}
	if err := topologyReconcile(js, e.topo); err != nil {
		t.Fatalf("provision: %v", err)
	}
	t.Cleanup(e.checkNoPasswordAtRest)
	e.startService()
	return e
}

func (e *env) now() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }

// startService runs the provisioning service, with retry delays cut to
// milliseconds, until the end of the test.
func (e *env) startService() {
	t := e.t
	t.Helper()
	nc, err := nats.Connect(e.ns.URL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	pacer := quota.NewPacer(0, quota.NewGates(e.now))
	zc, err := zoom.New(zoom.Config{
		AccountID: testenv.DefaultSimAccountID, ClientID: testenv.DefaultSimClientID, ClientSecret: testenv.DefaultSimClientSecret,
		BaseURL: e.sim.APIURL(), TokenURL: e.sim.TokenURL(), Timeout: 2 * time.Second, Limiter: pacer,
	})
	if err != nil {
		t.Fatalf("zoom client: %v", err)
	}
	const maxAttempts = 2
	p := retry.DefaultPolicy(maxAttempts)
	p.InProcess = retry.Schedule{Initial: time.Millisecond, Max: 5 * time.Millisecond}
	p.Redelivery = retry.Schedule{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	p.Pause = retry.Schedule{Initial: 100 * time.Millisecond, Max: 300 * time.Millisecond}
	p.RateLimitFallback = 50 * time.Millisecond
	svc, err := provision.New(js, zc, provision.Config{
		MaxAttempts: maxAttempts, Policy: p, AckWait: 2 * time.Second, ShutdownTimeout: 2 * time.Second,
		Provision: true, Pacer: pacer, Logger: zerolog.Nop(), Now: e.now, Seal: e.keys,
	})
	if err != nil {
		t.Fatalf("provision.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("service did not stop within 30s")
		}
		nc.Drain()
		eventually(t, 10*time.Second, func() (bool, string) { return nc.IsClosed(), "service connection not closed" })
		zc.CloseIdleConnections()
	})
	eventually(t, 10*time.Second, func() (bool, string) {
		select {
		case err := <-done:
			t.Fatalf("service stopped: %v", err)
		default:
		}
		return svc.Status().Bound, "service not bound"
	})
}

// publish publishes a request with id as its Nats-Msg-Id.
func (e *env) publish(id, action, body string) {
	e.t.Helper()
	m := nats.NewMsg(e.topo.RequestSubject(action))
	m.Data = []byte(body)
	e.mu.Lock()
	for _, pw := range passwordPattern.FindAllStringSubmatch(body, -1) {
		e.passwords = append(e.passwords, pw[1])
	}
	e.mu.Unlock()
	if _, err := e.js.PublishMsg(context.Background(), m, jetstream.WithMsgID(id)); err != nil {
		e.t.Fatalf("publish %s: %v", id, err)
	}
}

func userBody(action, email string) string {
	return fmt.Sprintf(`{"action":%q,"user_info":{"email":%q,"type":1,"first_name":"Test"}}`, action, email)
}

// streamState returns a stream's state.
func (e *env) streamState(name string) jetstream.StreamState {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), name)
	if err != nil {
		e.t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		e.t.Fatalf("stream info %s: %v", name, err)
	}
	return info.State
}

// waitDeadLetters waits until the dead-letter stream holds n messages.
func (e *env) waitDeadLetters(n uint64) {
	e.t.Helper()
	eventually(e.t, 20*time.Second, func() (bool, string) {
		got := e.streamState(e.topo.DeadLetterStream).Msgs
		return got == n, fmt.Sprintf("%d dead letters; want %d", got, n)
	})
}

// events returns the stored result events by request id.
func (e *env) events() map[string][]messages.Event {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, e.topo.ResultStream)
	if err != nil {
		e.t.Fatalf("result stream: %v", err)
	}
	st := e.streamState(e.topo.ResultStream)
	out := map[string][]messages.Event{}
	for seq := st.FirstSeq; st.Msgs > 0 && seq <= st.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			e.t.Fatalf("get result %d: %v", seq, err)
		}
		ev, err := messages.DecodeEvent(m.Data)
		if err != nil {
			e.t.Fatalf("result %d: %v", seq, err)
		}
		out[ev.Data.RequestID] = append(out[ev.Data.RequestID], ev)
	}
	return out
}

// waitTerminal waits for a terminal result of every id and returns them.
func (e *env) waitTerminal(ids ...string) map[string][]messages.Event {
	e.t.Helper()
	var evs map[string][]messages.Event
	eventually(e.t, 20*time.Second, func() (bool, string) {
		evs = e.events()
		for _, id := range ids {
			if len(terminal(evs[id])) == 0 {
				return false, "no terminal result for " + id
			}
		}
		return true, ""
	})
	out := map[string][]messages.Event{}
	for _, id := range ids {
		out[id] = terminal(evs[id])
	}
	return out
}

func terminal(evs []messages.Event) []messages.Event {
	var out []messages.Event
	for _, ev := range evs {
		if ev.Data.Outcome.Terminal() {
			out = append(out, ev)
		}
	}
	return out
}

// list lists the dead letters f selects, failing the test on error.
func (e *env) list(f dlq.Filter) []dlq.Entry {
	e.t.Helper()
	entries, err := dlq.List(context.Background(), e.js, e.topo, f)
	if err != nil {
		e.t.Fatalf("List(%+v) = %v", f, err)
	}
	return entries
}

// seqsByID maps request ids to dead-letter sequences.
func (e *env) seqsByID() map[string]uint64 {
	out := map[string]uint64{}
	for _, en := range e.list(dlq.Filter{}) {
		out[en.RequestID(e.topo)] = en.Seq
	}
	return out
}

func seqsOf(entries []dlq.Entry) []uint64 {
	out := make([]uint64, 0, len(entries))
	for _, en := range entries {
		out = append(out, en.Seq)
	}
	return out
}

// passwordPattern finds a password in a body, also inside a string.
var passwordPattern = regexp.MustCompile(`\\?"password\\?"\s*:\s*\\?"([^"\\]+)`)

// checkNoPasswordAtRest searches the dead-letter stream, its messages as
// the server returns them and its files on disk, for the password of any
// request the test published.
func (e *env) checkNoPasswordAtRest() {
	t := e.t
	stored, err := testenv.StreamBytes(context.Background(), e.js, e.topo.DeadLetterStream)
	if err != nil {
		t.Error(err)
	}
	files, err := testenv.StreamFiles(e.storeDir, e.topo.DeadLetterStream)
	if err != nil {
		t.Error(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, pw := range e.passwords {
		if bytes.Contains(stored, []byte(pw)) || bytes.Contains(files, []byte(pw)) {
			t.Errorf("the dead-letter stream holds the password %q in plain text", pw)
		}
	}
}

// seeded requests: the "a-" ones are dead-lettered two days ago (by the
// service's clock), the "b-" ones now.
const (
	aInvalid     = "a-invalid"      // custCreate, bad e-mail: invalid_request
	aWeak        = "a-weak"         // autoCreate, password1: zoom_rejected 400/300
	bGroup       = "b-group"        // ssoCreate, group missing: not_found 404/4130
	bGroupCreate = "b-group-create" // create, group missing: not_found 404/4130
	bPhone       = "b-phone"        // ssoCreate, no phone licence: not_found 404/1102
	bFlaky       = "b-flaky"        // custCreate, 503 every time: retries_exhausted
	bUnknown     = "b-unknown"      // ssoCreate, unknown field: invalid_request
)

var seedEmails = map[string]string{
	aWeak: "dan@example.com", bGroup: "carol@example.com", bGroupCreate: "dave@sales.example.org",
	bPhone: "ivan@example.com", bFlaky: "grace@example.net", bUnknown: "uma@example.com",
}

// seed fills the dead-letter stream with every reason, through the real
// service and the simulator, and returns request id -> sequence.
func (e *env) seed() map[string]uint64 {
	e.t.Helper()
	e.offset.Store(int64(-48 * time.Hour))
	e.publish(aInvalid, "custCreate", `{"action":"custCreate","user_info":{"email":"not-an-email","type":2}}`)
	e.publish(aWeak, "autoCreate", `{"action":"autoCreate","user_info":{"email":"dan@example.com","type":1,"password":"password1"}}`)
	e.waitDeadLetters(2)
	e.offset.Store(0)

	e.sim.FailEmail(seedEmails[bGroup], 0, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: sales."})
	e.sim.FailEmail(seedEmails[bGroupCreate], 0, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: sales."})
	e.sim.FailEmail(seedEmails[bFlaky], 0, testenv.Fault{Status: 503})
	e.publish(bGroup, "ssoCreate", userBody("ssoCreate", seedEmails[bGroup]))
	e.publish(bGroupCreate, "create", userBody("create", seedEmails[bGroupCreate]))
	e.publish(bPhone, "ssoCreate", `{"action":"ssoCreate","user_info":{"email":"ivan@example.com","type":2,"feature":{"zoom_phone":true}}}`)
	e.publish(bFlaky, "custCreate", userBody("custCreate", seedEmails[bFlaky]))
	e.publish(bUnknown, "ssoCreate", `{"action":"ssoCreate","user_info":{"email":"uma@example.com","type":1,"nickname":"u"}}`)
	e.waitDeadLetters(7)
	e.waitTerminal(aInvalid, aWeak, bGroup, bGroupCreate, bPhone, bFlaky, bUnknown)
	seqs := e.seqsByID()
	if len(seqs) != 7 {
		e.t.Fatalf("seeded dead letters by request id = %v; want 7", seqs)
	}
	return seqs
}

// Ensure List reads every kind of dead letter the service writes, and that
// each filter, and combinations of them, select exactly the right ones.
func TestDLQListFilters(t *testing.T) {
	e := newEnv(t)
	seqs := e.seed()
	now := time.Now()

	all := e.list(dlq.Filter{})
	byID := map[string]dlq.Entry{}
	for _, en := range all {
		byID[en.RequestID(e.topo)] = en
	}
	wantEntries := []struct {
		id     string
		action string
		reason messages.Reason
		status int
		code   int
	}{
		{aInvalid, "custCreate", messages.ReasonInvalidRequest, 0, 0},
		{aWeak, "autoCreate", messages.ReasonZoomRejected, 400, 300},
		{bGroup, "ssoCreate", messages.ReasonNotFound, 404, 4130},
		{bGroupCreate, "create", messages.ReasonNotFound, 404, 4130},
		{bPhone, "ssoCreate", messages.ReasonNotFound, 404, 1102},
		{bFlaky, "custCreate", messages.ReasonRetriesExhausted, 503, 503},
		{bUnknown, "ssoCreate", messages.ReasonInvalidRequest, 0, 0},
	}
	for _, w := range wantEntries {
		en := byID[w.id]
		d := en.DeadLetter
		if en.Action != w.action || d.Reason != w.reason || d.HTTPStatus != w.status || d.ZoomCode != w.code || en.HeaderErr != nil {
			t.Errorf("entry %s = action %q reason %q status %d code %d header error %v; want %q %q %d %d nil",
				w.id, en.Action, d.Reason, d.HTTPStatus, d.ZoomCode, en.HeaderErr, w.action, w.reason, w.status, w.code)
		}
		if want := seedEmails[w.id]; want != "" && en.Email != want {
			t.Errorf("entry %s Email = %q; want %q", w.id, en.Email, want)
		}
	}
	if en := byID[aWeak]; en.Time.After(now.Add(-47*time.Hour)) || en.Time.Before(now.Add(-49*time.Hour)) {
		t.Errorf("entry %s Time = %v; want about 48h before %v", aWeak, en.Time, now)
	}

	seqRange := func(s string) []dlq.SeqRange {
		r, err := dlq.ParseSeqRanges(s)
		if err != nil {
			t.Fatalf("ParseSeqRanges(%q) = %v", s, err)
		}
		return r
	}
	tests := []struct {
		name string
		f    dlq.Filter
		want []string
	}{
		{"everything", dlq.Filter{}, []string{aInvalid, aWeak, bGroup, bGroupCreate, bPhone, bFlaky, bUnknown}},
		{"reason invalid_request", dlq.Filter{Reasons: []messages.Reason{messages.ReasonInvalidRequest}}, []string{aInvalid, bUnknown}},
		{"reason zoom_rejected", dlq.Filter{Reasons: []messages.Reason{messages.ReasonZoomRejected}}, []string{aWeak}},
		{"reason not_found", dlq.Filter{Reasons: []messages.Reason{messages.ReasonNotFound}}, []string{bGroup, bGroupCreate, bPhone}},
		{"reason retries_exhausted", dlq.Filter{Reasons: []messages.Reason{messages.ReasonRetriesExhausted}}, []string{bFlaky}},
		{"two reasons", dlq.Filter{Reasons: []messages.Reason{messages.ReasonZoomRejected, messages.ReasonRetriesExhausted}}, []string{aWeak, bFlaky}},
		{"status 404", dlq.Filter{Statuses: []int{404}}, []string{bGroup, bGroupCreate, bPhone}},
		{"status 0 (Zoom not called)", dlq.Filter{Statuses: []int{0}}, []string{aInvalid, bUnknown}},
		{"statuses 400 and 503", dlq.Filter{Statuses: []int{400, 503}}, []string{aWeak, bFlaky}},
		{"code 4130", dlq.Filter{Codes: []int{4130}}, []string{bGroup, bGroupCreate}},
		{"codes 1102 and 300", dlq.Filter{Codes: []int{1102, 300}}, []string{aWeak, bPhone}},
		{"action create", dlq.Filter{Actions: []string{"create"}}, []string{bGroupCreate}},
		{"action ssoCreate", dlq.Filter{Actions: []string{"ssoCreate"}}, []string{bGroup, bPhone, bUnknown}},
		{"actions custCreate and autoCreate", dlq.Filter{Actions: []string{"custCreate", "autoCreate"}}, []string{aInvalid, aWeak, bFlaky}},
		{"since a day ago", dlq.Filter{Since: now.Add(-24 * time.Hour)}, []string{bGroup, bGroupCreate, bPhone, bFlaky, bUnknown}},
		{"until a day ago", dlq.Filter{Until: now.Add(-24 * time.Hour)}, []string{aInvalid, aWeak}},
		{"between three days and one day ago", dlq.Filter{Since: now.Add(-72 * time.Hour), Until: now.Add(-24 * time.Hour)}, []string{aInvalid, aWeak}},
		{"since an hour from now", dlq.Filter{Since: now.Add(time.Hour)}, nil},
		{"exact email", dlq.Filter{Email: "carol@example.com"}, []string{bGroup}},
		{"exact email, other case", dlq.Filter{Email: "Carol@Example.COM"}, []string{bGroup}},
		{"domain with @", dlq.Filter{Email: "@example.com"}, []string{aWeak, bGroup, bPhone, bUnknown}},
		{"domain without @", dlq.Filter{Email: "example.net"}, []string{bFlaky}},
		{"subdomain is its own domain", dlq.Filter{Email: "@sales.example.org"}, []string{bGroupCreate}},
		{"parent domain does not match", dlq.Filter{Email: "@example.org"}, nil},
		{"seq range", dlq.Filter{Seqs: seqRange("1-3")}, idsWithSeqs(seqs, 1, 2, 3)},
		{"seq open range", dlq.Filter{Seqs: seqRange("6-")}, idsWithSeqs(seqs, 6, 7)},
		{"seq list", dlq.Filter{Seqs: seqRange(fmt.Sprintf("%d,%d", seqs[bPhone], seqs[aInvalid]))}, []string{aInvalid, bPhone}},
		{"seq beyond the stream", dlq.Filter{Seqs: seqRange("100-200")}, nil},
		{"reason and action", dlq.Filter{Reasons: []messages.Reason{messages.ReasonNotFound}, Actions: []string{"ssoCreate"}}, []string{bGroup, bPhone}},
		{"reason, since, domain and code", dlq.Filter{Reasons: []messages.Reason{messages.ReasonNotFound}, Since: now.Add(-24 * time.Hour),
			Email: "example.com", Codes: []int{1102}}, []string{bPhone}},
		{"status and seq range", dlq.Filter{Statuses: []int{404}, Seqs: []dlq.SeqRange{{From: seqs[bGroup], To: seqs[bGroup]}, {From: seqs[bPhone], To: seqs[bPhone]}}},
			[]string{bGroup, bPhone}},
		{"reason and until exclude each other", dlq.Filter{Reasons: []messages.Reason{messages.ReasonNotFound}, Until: now.Add(-24 * time.Hour)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want []uint64
			for _, id := range tc.want {
				want = append(want, seqs[id])
			}
			slices.Sort(want)
			got := seqsOf(e.list(tc.f))
			if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Errorf("List(%s) = sequences %v; want %v (%v)", tc.name, got, want, tc.want)
			}
		})
	}

	t.Run("get", func(t *testing.T) {
		en, err := dlq.Get(context.Background(), e.js, e.topo, seqs[bPhone])
		if err != nil || en.RequestID(e.topo) != bPhone || en.DeadLetter.ZoomCode != 1102 {
			t.Errorf("Get(%d) = %s code %d, %v; want %s code 1102", seqs[bPhone], en.RequestID(e.topo), en.DeadLetter.ZoomCode, err, bPhone)
		}
		if _, err := dlq.Get(context.Background(), e.js, e.topo, 999); !errors.Is(err, dlq.ErrNotFound) {
			t.Errorf("Get(999) = %v; want ErrNotFound", err)
		}
	})

	// A dry run validates and reports, and changes nothing.
	t.Run("dry run", func(t *testing.T) {
		reqBefore := e.streamState(e.topo.RequestStream)
		creationsBefore := e.sim.TotalCreations()
		sum, err := dlq.Replay(context.Background(), e.js, e.topo, all, dlq.Options{Actor: "tester", Keys: e.keys, DryRun: true})
		if err != nil {
			t.Fatalf("Replay(dry run) = %v", err)
		}
		if !sum.DryRun || sum.Replayed != 5 || len(sum.Skipped) != 2 || sum.Creates != 1 || sum.Deleted != 0 || sum.Gate != nil {
			t.Errorf("Replay(dry run) = %+v; want DryRun, Replayed 5, 2 skipped, Creates 1, nothing deleted, no gate", sum)
		}
		var skipped []string
		for _, s := range sum.Skipped {
			skipped = append(skipped, s.RequestID)
			if !errors.Is(s.Err, messages.ErrInvalid) {
				t.Errorf("skipped %s: %v; want an error matching messages.ErrInvalid", s.RequestID, s.Err)
			}
		}
		sort.Strings(skipped)
		if want := []string{aInvalid, bUnknown}; !slices.Equal(skipped, want) {
			t.Errorf("Replay(dry run) skipped %v; want %v", skipped, want)
		}
		after := e.list(dlq.Filter{})
		if !sameEntries(after, all) {
			t.Errorf("dead letters after the dry run = %v; want unchanged %v", seqsOf(after), seqsOf(all))
		}
		if got := e.streamState(e.topo.RequestStream); got.LastSeq != reqBefore.LastSeq {
			t.Errorf("request stream last sequence after the dry run = %d; want %d (nothing published)", got.LastSeq, reqBefore.LastSeq)
		}
		if got := e.sim.TotalCreations(); got != creationsBefore {
			t.Errorf("creations after the dry run = %d; want %d", got, creationsBefore)
		}
	})
}

func idsWithSeqs(seqs map[string]uint64, want ...uint64) []string {
	var out []string
	for id, s := range seqs {
		if slices.Contains(want, s) {
			out = append(out, id)
		}
	}
	return out
}

// sameEntries reports whether two listings hold the same dead letters,
// byte for byte.
func sameEntries(a, b []dlq.Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Seq != b[i].Seq || string(a[i].Body) != string(b[i].Body) || a[i].DeadLetter != b[i].DeadLetter {
			return false
		}
	}
	return true
}

// Ensure replaying a filtered subset, once the cause is fixed, creates
// exactly those users, with result events that name the original request,
// deletes exactly those dead letters, skips the still-invalid ones and
// leaves every other dead letter as it was.
func TestDLQReplayFilteredSubset(t *testing.T) {
	e := newEnv(t)
	seqs := e.seed()
	// Someone published junk on a dead-letter subject: listed, never
	// replayed.
	junk := nats.NewMsg(e.topo.DeadLetterSubject("ssoCreate"))
	junk.Data = []byte(userBody("ssoCreate", "junk@example.com"))
	if _, err := e.js.PublishMsg(context.Background(), junk); err != nil {
		t.Fatalf("publish junk: %v", err)
	}
	before := e.list(dlq.Filter{})
	if len(before) != 8 {
		t.Fatalf("List() = %d entries; want 8", len(before))
	}
	junkEntry := before[7]
	if junkEntry.HeaderErr == nil || junkEntry.Replayable() == nil {
		t.Errorf("junk entry: HeaderErr %v, Replayable %v; want both errors", junkEntry.HeaderErr, junkEntry.Replayable())
	}

	// The group gets created and licences bought.
	e.sim.ClearFaults()
	e.sim.SetPhoneLicenses(-1)

	subset := e.list(dlq.Filter{Reasons: []messages.Reason{messages.ReasonNotFound, messages.ReasonInvalidRequest}})
	subset = append(subset, junkEntry)
	var progress []dlq.Progress
	sum, err := dlq.Replay(context.Background(), e.js, e.topo, subset, dlq.Options{Actor: "tester", Keys: e.keys, Rate: 1000, OnProgress: func(p dlq.Progress) { progress = append(progress, p) }})
	if err != nil {
		t.Fatalf("Replay = %v", err)
	}
	if sum.Replayed != 3 || sum.Duplicates != 0 || len(sum.Skipped) != 3 || sum.Deleted != 3 || sum.Failed != 0 || sum.Creates != 1 {
		t.Errorf("Replay = %+v; want 3 replayed, 3 skipped, 3 deleted, 1 create", sum)
	}
	if len(progress) != len(subset) || progress[len(progress)-1].Done != len(subset) {
		t.Errorf("OnProgress called %d times; want %d, the last with Done %d", len(progress), len(subset), len(subset))
	}

	replayed := map[string]string{} // replay request id -> original
	for _, id := range []string{bGroup, bGroupCreate, bPhone} {
		replayed[dlq.ReplayID(id, seqs[id])] = id
	}
	ids := make([]string, 0, len(replayed))
	for id := range replayed {
		ids = append(ids, id)
	}
	evs := e.waitTerminal(ids...)
	for id, orig := range replayed {
		got := evs[id]
		if len(got) != 1 || got[0].Data.Outcome != messages.OutcomeCreated || got[0].Data.ReplayOf != orig {
			t.Errorf("terminal results of %s = %+v; want one created with replay_of %q", id, got, orig)
		}
		if n := e.sim.Creations(seedEmails[orig]); n != 1 {
			t.Errorf("Creations(%s) = %d; want 1", seedEmails[orig], n)
		}
	}
	if n := e.sim.TotalCreations(); n != 3 {
		t.Errorf("TotalCreations = %d; want 3", n)
	}

	after := e.list(dlq.Filter{})
	var want []dlq.Entry
	for _, en := range before {
		if _, gone := replayed[dlq.ReplayID(en.RequestID(e.topo), en.Seq)]; !gone {
			want = append(want, en)
		}
	}
	if !sameEntries(after, want) {
		t.Errorf("dead letters after the replay = %v; want %v, untouched", seqsOf(after), seqsOf(want))
	}

	// Purge what is left of the invalid ones; a second purge of the same
	// (now stale) list finds them gone.
	invalid := e.list(dlq.Filter{Reasons: []messages.Reason{messages.ReasonInvalidRequest}})
	if sum, err := dlq.Purge(context.Background(), e.js, e.topo, invalid, dlq.PurgeOptions{Actor: "tester"}); err != nil || sum.Deleted != 2 || sum.Gone != 0 {
		t.Errorf("Purge(invalid) = %+v, %v; want 2 deleted", sum, err)
	}
	if sum, err := dlq.Purge(context.Background(), e.js, e.topo, invalid, dlq.PurgeOptions{Actor: "tester"}); err != nil || sum.Deleted != 0 || sum.Gone != 2 {
		t.Errorf("Purge(invalid) again = %+v, %v; want 2 gone", sum, err)
	}
	if got, want := seqsOf(e.list(dlq.Filter{})), []uint64{seqs[aWeak], seqs[bFlaky], junkEntry.Seq}; !slices.Equal(got, want) {
		t.Errorf("dead letters after the purge = %v; want %v", got, want)
	}
}

// Ensure a replay interrupted midway, and one that crashed between
// publishing a request and deleting its dead letter, can simply be run
// again: no user is created twice and none is lost.
func TestDLQReplayInterruptedAndRerun(t *testing.T) {
	e := newEnv(t)
	const n = 6
	var ids []string
	emails := map[string]string{} // request id -> e-mail
	for i := range n {
		id, email := fmt.Sprintf("req-%d", i), fmt.Sprintf("user%d@example.com", i)
		e.sim.FailEmail(email, 0, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: sales."})
		ids = append(ids, id)
		emails[id] = email
		e.publish(id, "ssoCreate", userBody("ssoCreate", email))
	}
	e.waitDeadLetters(n)
	e.waitTerminal(ids...)
	e.sim.ClearFaults()
	entries := e.list(dlq.Filter{})
	reqFirst := e.streamState(e.topo.RequestStream).LastSeq

	// Interrupted after two.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sum, err := dlq.Replay(ctx, e.js, e.topo, entries, dlq.Options{Actor: "tester", Keys: e.keys, OnProgress: func(p dlq.Progress) {
		if p.Done == 2 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || sum.Replayed != 2 || sum.Deleted != 2 || sum.Failed != 0 {
		t.Fatalf("interrupted Replay = %+v, %v; want 2 replayed and deleted, context.Canceled", sum, err)
	}
	if got := e.streamState(e.topo.DeadLetterStream).Msgs; got != n-2 {
		t.Errorf("dead letters after the interruption = %d; want %d", got, n-2)
	}

	// A run that crashed after publishing the third and before deleting
	// its dead letter: the request is stored (and handled) but its dead
	// letter is still there.
	third := entries[2]
	ack, err := e.js.PublishMsg(context.Background(), dlq.ReplayMessage(e.topo, third), jetstream.WithExpectStream(e.topo.RequestStream))
	if err != nil || ack.Duplicate {
		t.Fatalf("publish the third replay = %+v, %v; want stored", ack, err)
	}
	e.waitTerminal(dlq.ReplayID(third.RequestID(e.topo), third.Seq))

	// The rerun lists again and finishes the job.
	rest := e.list(dlq.Filter{})
	if len(rest) != n-2 {
		t.Fatalf("List() after the interruption = %d entries; want %d", len(rest), n-2)
	}
	sum, err = dlq.Replay(context.Background(), e.js, e.topo, rest, dlq.Options{Actor: "tester", Keys: e.keys, Rate: 1000})
	if err != nil || sum.Replayed != n-3 || sum.Duplicates != 1 || sum.Deleted != n-2 {
		t.Errorf("rerun Replay = %+v, %v; want %d replayed, 1 duplicate, %d deleted", sum, err, n-3, n-2)
	}

	var replayIDs []string
	for _, en := range entries {
		replayIDs = append(replayIDs, dlq.ReplayID(en.RequestID(e.topo), en.Seq))
	}
	evs := e.waitTerminal(replayIDs...)
	for i, id := range replayIDs {
		orig := entries[i].RequestID(e.topo)
		if got := evs[id]; len(got) != 1 || got[0].Data.Outcome != messages.OutcomeCreated || got[0].Data.ReplayOf != orig {
			t.Errorf("terminal results of %s = %+v; want one created, replay_of %s", id, got, orig)
		}
		if c := e.sim.Creations(emails[orig]); c != 1 {
			t.Errorf("Creations(%s) = %d; want 1", emails[orig], c)
		}
	}
	if got := e.streamState(e.topo.DeadLetterStream).Msgs; got != 0 {
		t.Errorf("dead letters left = %d; want 0", got)
	}
	if got := e.streamState(e.topo.RequestStream).LastSeq - reqFirst; got != n {
		t.Errorf("requests stored by the replays = %d; want %d, one per dead letter", got, n)
	}

	// Replaying the first, stale listing again publishes nothing.
	reqLast := e.streamState(e.topo.RequestStream).LastSeq
	sum, err = dlq.Replay(context.Background(), e.js, e.topo, entries, dlq.Options{Actor: "tester", Keys: e.keys})
	if err != nil || sum.Gone != n || sum.Replayed+sum.Duplicates+sum.Deleted != 0 {
		t.Errorf("Replay of a stale listing = %+v, %v; want %d gone and nothing else", sum, err, n)
	}
	if got := e.streamState(e.topo.RequestStream).LastSeq; got != reqLast {
		t.Errorf("request stream last sequence = %d; want %d (nothing published)", got, reqLast)
	}
	if c := e.sim.TotalCreations(); c != n {
		t.Errorf("TotalCreations = %d; want %d", c, n)
	}
}

// Ensure a closed quota gate keeps the requests it holds from being
// replayed (create by the create gate, everything by the account-wide
// gate) unless forced, that an expired gate holds nothing, and that a dry
// run reports the gate without failing.
func TestDLQReplayQuotaGate(t *testing.T) {
	e := newEnv(t)
	ids := map[string]string{"g-create": "create", "g-sso-1": "ssoCreate", "g-sso-2": "ssoCreate"}
	for id, action := range ids {
		email := id + "@example.com"
		e.sim.FailEmail(email, 0, testenv.Fault{Status: 404, Code: 4130})
		e.publish(id, action, userBody(action, email))
	}
	e.waitDeadLetters(3)
	e.waitTerminal("g-create", "g-sso-1", "g-sso-2")
	e.sim.ClearFaults()

	ctx := context.Background()
	kv, err := e.js.KeyValue(ctx, e.topo.QuotaBucket)
	if err != nil {
		t.Fatalf("quota bucket: %v", err)
	}
	putGate := func(scope string, until time.Time) {
		t.Helper()
		data, _ := json.Marshal(quota.Gate{Scope: scope, Until: until, Reason: "Daily limit reached", ClosedAt: time.Now(), ClosedBy: "test"})
		if _, err := kv.Put(ctx, quota.GateKey(scope), data); err != nil {
			t.Fatalf("put gate %s: %v", scope, err)
		}
	}
	byID := func(id string) []dlq.Entry {
		t.Helper()
		var out []dlq.Entry
		for _, en := range e.list(dlq.Filter{}) {
			if en.RequestID(e.topo) == id {
				out = append(out, en)
			}
		}
		if len(out) != 1 {
			t.Fatalf("dead letters of %s = %d; want 1", id, len(out))
		}
		return out
	}

	// An expired gate holds nothing; a dry run shows none.
	putGate("create", time.Now().Add(-time.Minute))
	if sum, err := dlq.Replay(ctx, e.js, e.topo, e.list(dlq.Filter{}), dlq.Options{Actor: "tester", Keys: e.keys, DryRun: true}); err != nil || sum.Gate != nil {
		t.Errorf("dry run with an expired gate = %+v, %v; want no gate", sum, err)
	}

	until := time.Now().Add(time.Hour).Truncate(time.Second)
	putGate("create", until)
	reqLast := e.streamState(e.topo.RequestStream).LastSeq
	all := e.list(dlq.Filter{})
	sum, err := dlq.Replay(ctx, e.js, e.topo, all, dlq.Options{Actor: "tester", Keys: e.keys})
	var gateErr *dlq.GateClosedError
	if !errors.As(err, &gateErr) || gateErr.Gate.Scope != "create" || !gateErr.Gate.Until.Equal(until) || gateErr.Pending != 1 {
		t.Fatalf("Replay with the create gate closed = %+v, %v; want a GateClosedError for create until %v, 1 pending", sum, err, until)
	}
	if !strings.Contains(err.Error(), until.UTC().Format(time.RFC3339)) {
		t.Errorf("GateClosedError = %q; want it to say until when", err)
	}
	if sum.Replayed+sum.Deleted != 0 || e.streamState(e.topo.RequestStream).LastSeq != reqLast || !sameEntries(e.list(dlq.Filter{}), all) {
		t.Errorf("Replay refused by the gate changed something: %+v", sum)
	}
	if sum, err := dlq.Replay(ctx, e.js, e.topo, all, dlq.Options{Actor: "tester", Keys: e.keys, DryRun: true}); err != nil || sum.Gate == nil || sum.Gate.Scope != "create" || sum.Creates != 1 {
		t.Errorf("dry run with the create gate closed = %+v, %v; want the gate reported, 1 create", sum, err)
	}

	// The create gate does not hold ssoCreate.
	sso1 := byID("g-sso-1")
	if sum, err := dlq.Replay(ctx, e.js, e.topo, sso1, dlq.Options{Actor: "tester", Keys: e.keys}); err != nil || sum.Replayed != 1 {
		t.Errorf("Replay(ssoCreate) with the create gate closed = %+v, %v; want replayed", sum, err)
	}
	replayID := dlq.ReplayID("g-sso-1", sso1[0].Seq)
	if got := e.waitTerminal(replayID)[replayID]; len(got) != 1 || got[0].Data.Outcome != messages.OutcomeCreated {
		t.Errorf("terminal results of %s = %+v; want created", replayID, got)
	}
	// The account-wide gate does.
	putGate(quota.ScopeAll, until)
	if _, err := dlq.Replay(ctx, e.js, e.topo, byID("g-sso-2"), dlq.Options{Actor: "tester", Keys: e.keys}); !errors.As(err, &gateErr) || gateErr.Gate.Scope != quota.ScopeAll {
		t.Errorf("Replay(ssoCreate) with the account-wide gate closed = %v; want a GateClosedError for %s", err, quota.ScopeAll)
	}
	// Forced, it goes (and the consumer defers it until the reset).
	if sum, err := dlq.Replay(ctx, e.js, e.topo, byID("g-create"), dlq.Options{Actor: "tester", Keys: e.keys, Force: true}); err != nil || sum.Replayed != 1 || sum.Deleted != 1 {
		t.Errorf("forced Replay(create) = %+v, %v; want replayed and deleted", sum, err)
	}
	if got, want := seqsOf(e.list(dlq.Filter{})), seqsOf(byID("g-sso-2")); !slices.Equal(got, want) {
		t.Errorf("dead letters left = %v; want only g-sso-2's %v", got, want)
	}
}

// Ensure ParseSeqRanges reads lists and ranges and rejects the rest.
func TestDLQParseSeqRanges(t *testing.T) {
	tests := []struct {
		in   string
		want []dlq.SeqRange
	}{
		{"7", []dlq.SeqRange{{7, 7}}},
		{"10-20,25", []dlq.SeqRange{{10, 20}, {25, 25}}},
		{" 1 - 3 , 5 ", []dlq.SeqRange{{1, 3}, {5, 5}}},
		{"100-", []dlq.SeqRange{{100, ^uint64(0)}}},
		{"4-4", []dlq.SeqRange{{4, 4}}},
	}
	for _, tc := range tests {
		got, err := dlq.ParseSeqRanges(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseSeqRanges(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", ",", "a", "0", "-5", "5-3", "1-2-3", "1;2", "99999999999999999999", "1.5"} {
		if got, err := dlq.ParseSeqRanges(in); err == nil {
			t.Errorf("ParseSeqRanges(%q) = %v, nil; want an error", in, got)
		}
	}
}

// Ensure the zero filter matches everything and e-mail matching handles
// case, domains and entries without an e-mail.
func TestDLQFilterMatchEmail(t *testing.T) {
	en := dlq.Entry{Email: "Alice@Example.com"}
	for f, want := range map[string]bool{
		"alice@example.com": true, "ALICE@EXAMPLE.COM": true, "@example.com": true, "example.com": true,
		"bob@example.com": false, "@other.com": false, "alice@other.com": false, "ample.com": false,
	} {
		if got := (dlq.Filter{Email: f}).Match(en); got != want {
			t.Errorf("Filter{Email: %q}.Match(%q) = %v; want %v", f, en.Email, got, want)
		}
	}
	if (dlq.Filter{Email: "example.com"}).Match(dlq.Entry{}) {
		t.Errorf("Filter{Email}.Match(entry without e-mail) = true; want false")
	}
	if !(dlq.Filter{}).Match(dlq.Entry{}) || !(dlq.Filter{}).IsZero() {
		t.Errorf("the zero Filter does not match everything")
	}
}

// eventually polls cond until it holds or the deadline passes.
var eventually = testenv.Eventually

// topologyReconcile creates topo's streams, buckets and consumers as the
// service would.
func topologyReconcile(js jetstream.JetStream, topo topology.Topology) error {
	var actions []string
	for _, a := range messages.Actions {
		actions = append(actions, string(a))
	}
	_, err := topology.Reconcile(context.Background(), js, topo, topology.Options{Actions: actions, AckWait: 2 * time.Second, MaxAckPending: 1000})
	return err
}
