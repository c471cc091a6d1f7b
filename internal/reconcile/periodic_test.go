package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/reconcile"
	"github.com/zoomprov/consumer/testenv"
)

// reportEvent is a drift report as published.
type reportEvent struct {
	Type string `json:"type"`
	Data struct {
		Actor     string                `json:"actor"`
		Scanned   int                   `json:"scanned"`
		Managed   int                   `json:"managed"`
		InSync    int                   `json:"in_sync"`
		Counts    map[string]int        `json:"counts"`
		Drift     []map[string]any      `json:"drift"`
		Unmanaged []reconcile.Unmanaged `json:"unmanaged"`
		Started   time.Time             `json:"started_at"`
		Finished  time.Time             `json:"finished_at"`
		Published []string              `json:"published"`
	} `json:"data"`
}

// reports reads the drift reports stored in the result stream.
func (w *world) reports() []reportEvent {
	w.t.Helper()
	ctx := context.Background()
	s, err := w.js.Stream(ctx, w.topo.ResultStream)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []reportEvent
	for seq := uint64(1); ; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			return out
		}
		if m.Subject != w.topo.ResultPrefix+"."+reconcile.EventKind {
			continue
		}
		var ev reportEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			w.t.Fatalf("drift report %d: %v", seq, err)
		}
		out = append(out, ev)
	}
}

// observed collects the summaries each replica observes.
type observed struct {
	mu   sync.Mutex
	last map[string]reconcile.Summary
}

func (o *observed) fn(replica string) func(reconcile.Summary) {
	return func(s reconcile.Summary) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.last[replica] = s
	}
}

func (o *observed) get(replica string) (reconcile.Summary, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s, ok := o.last[replica]
	return s, ok
}

// Ensure two replicas scan every interval, one at a time (the lease): the
// reports' scans never overlap and start an interval apart or more; each
// report is the drift event with its counts and entries; both replicas
// observe the same last scan (for their gauges); nothing is corrected
// without Apply.
func TestPeriodicOneReplicaAtATime(t *testing.T) {
	w := newWorld(t, testenv.SimConfig{})
	w.put("off@example.com", life(t, "off@example.com", named("off@example.com", sso)...))
	w.add(testenv.SimUser{Email: "off@example.com", Status: "inactive", Type: 2, FirstName: "Alice", LastName: "Liddell"})
	w.add(testenv.SimUser{Email: "stranger@example.com"})
	const interval = 600 * time.Millisecond
	obs := &observed{last: map[string]reconcile.Summary{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, id := range []string{"a", "b"} {
		p := reconcile.NewPeriodic(w.js, reconcile.PeriodicConfig{Topology: w.topo, Interval: interval, ReplicaID: id, Zoom: w.zc,
			Observe: obs.fn(id), LeaseTTL: 3 * time.Second})
		wg.Go(func() { p.Run(ctx) })
	}
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		n := len(w.reports())
		return n >= 4, fmt.Sprintf("%d drift reports; want 4", n)
	})
	cancel()
	wg.Wait()

	evs := w.reports()
	for i, ev := range evs {
		d := ev.Data
		if ev.Type != audit.Type(reconcile.EventKind, reconcile.EventVerb) || (d.Actor != "zoom-provisioner/a" && d.Actor != "zoom-provisioner/b") {
			t.Errorf("report %d: type %q, actor %q; want %s by a or b", i, ev.Type, d.Actor, audit.Type("drift", "report"))
		}
		// Deactivated by hand, off@ lost the licence too.
		if d.Scanned != 2 || d.Managed != 1 || d.InSync != 0 || d.Counts["status"] != 1 || d.Counts["fields"] != 1 || d.Counts["unmanaged"] != 1 ||
			len(d.Drift) != 2 || d.Drift[0]["kind"] != "status" || d.Drift[1]["kind"] != "fields" || len(d.Unmanaged) != 1 || d.Published != nil {
			t.Errorf("report %d = %+v; want 2 scanned, off@'s status and fields drift, stranger@ unmanaged, nothing published", i, d)
		}
		if i > 0 {
			prev := evs[i-1].Data
			if d.Started.Before(prev.Finished) || d.Started.Sub(prev.Started) < interval-50*time.Millisecond {
				t.Errorf("report %d started %v, %v after the previous one's start, which finished at %v; want after it, an interval apart",
					i, d.Started, d.Started.Sub(prev.Started), prev.Finished)
			}
		}
	}
	last := evs[len(evs)-1].Data
	for _, id := range []string{"a", "b"} {
		s, ok := obs.get(id)
		if !ok || s.Counts["status"] != 1 || s.Counts["unmanaged"] != 1 || s.Scanned != 2 {
			t.Errorf("replica %s observed %v (%t); want the last scan's figures, %v", id, s, ok, last.Counts)
		}
	}
	if u, _ := w.sim.User("off@example.com"); u.Status != "inactive" {
		t.Errorf("off@ is %s; want inactive still: nothing is corrected without Apply", u.Status)
	}
}

// Ensure a lease whose holder stopped renewing it is taken over once it
// has not changed for LeaseTTL, and Apply publishes the corrections with
// the report.
func TestPeriodicTakesOverAndApplies(t *testing.T) {
	w := newWorld(t, testenv.SimConfig{})
	w.put("gone@example.com", life(t, "gone@example.com", named("gone@example.com", sso)...))
	kv, err := w.js.KeyValue(context.Background(), w.topo.QuotaBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), reconcile.LeaseKey, []byte(`{"holder":"dead","started_at":"2020-01-01T00:00:00Z"}`)); err != nil {
		t.Fatal(err)
	}
	const ttl = time.Second
	ctx, cancel := context.WithCancel(context.Background())
	p := reconcile.NewPeriodic(w.js, reconcile.PeriodicConfig{Topology: w.topo, Interval: time.Hour, Apply: true, ReplicaID: "b",
		Zoom: w.zc, LeaseTTL: ttl, Tick: 100 * time.Millisecond})
	start := time.Now()
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	testenv.Eventually(t, 15*time.Second, func() (bool, string) {
		return len(w.reports()) == 1, "no drift report yet"
	})
	took := time.Since(start)
	cancel()
	<-done
	if took < ttl {
		t.Errorf("took the dead holder's lease over after %v; want LeaseTTL (%v) at least", took, ttl)
	}
	ev := w.reports()[0]
	if len(ev.Data.Published) != 1 || !reconcile.IsCorrection(ev.Data.Published[0]) {
		t.Fatalf("report published %v; want one corrective request", ev.Data.Published)
	}
	s, err := w.js.Stream(context.Background(), w.topo.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), w.topo.RequestSubject("ssoCreate"))
	if err != nil || m.Header.Get(jetstream.MsgIDHeader) != ev.Data.Published[0] {
		t.Errorf("the request stream's last ssoCreate = %v, %v; want the correction %s", m, err, ev.Data.Published[0])
	}
	e, err := kv.Get(context.Background(), reconcile.LeaseKey)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	_ = json.Unmarshal(e.Value(), &st)
	if _, held := st["holder"]; held || st["last"] == nil {
		t.Errorf("the lease after the scan = %s; want no holder, and the last scan", e.Value())
	}
}
