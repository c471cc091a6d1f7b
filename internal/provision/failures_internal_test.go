package provision

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/retry"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

func failuresService(t *testing.T) *Service {
	t.Helper()
	js := testenv.StartJetStream(t)
	kv, err := js.CreateKeyValue(context.Background(), topology.Default().AttemptsConfig())
	if err != nil {
		t.Fatalf("bucket: %v", err)
	}
	s, err := New(js, nil, Config{Logger: zerolog.New(testWriter{t})})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.failures = kv
	s.current.Store(&streamState{incarnation: "test"})
	return s
}

// Ensure concurrent deliveries of one request never lose a failure count:
// each increment is a compare-and-set on the revision. Before the fix the
// count was read, then written with a plain Put, and two deliveries could
// both write the same number.
func TestCountFailureConcurrent(t *testing.T) {
	s := failuresService(t)
	d := &delivery{seq: 42}
	const workers, each = 4, 25
	var wg sync.WaitGroup
	seen := make(chan int, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				seen <- s.countFailure(context.Background(), d)
			}
		})
	}
	wg.Wait()
	close(seen)
	// Every earlier count is returned exactly once: 0, 1, …, 99.
	got := map[int]bool{}
	for n := range seen {
		if got[n] {
			t.Errorf("countFailure returned %d twice: a count was lost", n)
		}
		got[n] = true
	}
	e, err := s.failures.Get(context.Background(), s.failuresKey(d))
	if err != nil {
		t.Fatalf("get count: %v", err)
	}
	if n, _ := strconv.Atoi(string(e.Value())); n != workers*each {
		t.Errorf("stored count = %d; want %d", n, workers*each)
	}
}

// Ensure a delivery whose own time ran out still reads and adds to the
// count. Before the fix it read with the expired context, got an error,
// took the count for 0 and overwrote it with 1.
func TestCountFailureAfterTheDeliveryExpired(t *testing.T) {
	s := failuresService(t)
	d := &delivery{seq: 7}
	for range 5 {
		s.countFailure(context.Background(), d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if got := s.countFailure(ctx, d); got != 5 {
		t.Errorf("countFailure(expired ctx) = %d; want the 5 earlier failures", got)
	}
	e, err := s.failures.Get(context.Background(), s.failuresKey(d))
	if err != nil {
		t.Fatalf("get count: %v", err)
	}
	if string(e.Value()) != "6" {
		t.Errorf("stored count = %s; want 6", e.Value())
	}
}

// Ensure a request whose failures cannot be counted (the bucket is gone)
// is not retried for ever: once delivered unknownCountFactor × MaxAttempts
// times, its deliveries stand in for the count. Before the fix the count
// read as 0 every time.
func TestCountFailureUnknownIsBounded(t *testing.T) {
	s := failuresService(t)
	if err := s.js.DeleteKeyValue(context.Background(), s.failures.Bucket()); err != nil {
		t.Fatal(err)
	}
	max := s.cfg.Policy.MaxAttempts
	for _, tc := range []struct {
		delivered uint64
		want      int
	}{{1, 0}, {uint64(unknownCountFactor*max - 1), 0}, {uint64(unknownCountFactor * max), max}} {
		d := &delivery{seq: 9, delivered: tc.delivered}
		if got := s.countFailure(context.Background(), d); got != tc.want {
			t.Errorf("countFailure(delivered %d, bucket gone) = %d; want %d", tc.delivered, got, tc.want)
		}
	}
	if dec := s.decide(attempt{kind: retry.Transient, try: 3, failedDeliveries: max}); dec.Verdict != retry.DeadLetter || !dec.Exhausted {
		t.Errorf("decision at the bound = %+v; want an exhausted dead letter", dec)
	}
}

// Ensure a dead-lettering begun by one delivery is found by the next: a
// redelivery after a crash between the dead letter and the termination
// ends the same way, without a Zoom call.
func TestDeadLetteredFoundOnRedelivery(t *testing.T) {
	s := failuresService(t)
	d := &delivery{seq: 11, delivered: 1}
	if _, ok := s.deadLettered(context.Background(), d); ok {
		t.Fatal("deadLettered before any dead-lettering = true")
	}
	s.markDeadLettered(context.Background(), d, attempt{kind: retry.NotFound, reason: messages.ReasonNotFound, httpStatus: 404, zoomCode: 4130, detail: "group missing"})
	a, ok := s.deadLettered(context.Background(), &delivery{seq: 11, delivered: 2})
	if !ok || a.reason != messages.ReasonNotFound || a.httpStatus != 404 || a.zoomCode != 4130 || a.detail != "group missing" {
		t.Fatalf("deadLettered = %+v, %v; want the not_found verdict recorded", a, ok)
	}
	if dec := s.decide(a); dec.Verdict != retry.DeadLetter {
		t.Errorf("decision = %+v; want a dead letter", dec)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
