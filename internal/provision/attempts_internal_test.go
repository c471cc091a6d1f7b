package provision

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

func attemptsService(t *testing.T) *Service {
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
	s.attempts = kv
	return s
}

// Ensure concurrent deliveries of one request never lose a failure count:
// each increment is a compare-and-set on the revision. Before the fix the
// count was read, then written with a plain Put, and two deliveries could
// both write the same number.
func TestCountFailureConcurrent(t *testing.T) {
	s := attemptsService(t)
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
	e, err := s.attempts.Get(context.Background(), attemptsKey(42))
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
	s := attemptsService(t)
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
	e, err := s.attempts.Get(context.Background(), attemptsKey(7))
	if err != nil {
		t.Fatalf("get count: %v", err)
	}
	if string(e.Value()) != "6" {
		t.Errorf("stored count = %s; want 6", e.Value())
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
