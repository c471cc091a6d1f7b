package guard

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/testenv"
)

// Ensure the window slides: a call leaves it exactly one window after it
// was made, and the limit counts what is inside.
func TestWindowArithmetic(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	s := State{Limit: 3, Window: time.Hour}
	for i, at := range []time.Duration{0, 10 * time.Minute, 20 * time.Minute} {
		if !s.take(t0.Add(at), "r", slotName("i", uint64(i+1))) {
			t.Fatalf("take %d refused; want a slot", i)
		}
	}
	if got := s.Used(t0.Add(59 * time.Minute)); got != 3 {
		t.Errorf("Used at 0:59 = %d; want 3", got)
	}
	if s.take(t0.Add(59*time.Minute), "r", slotName("i", 4)) || !s.Tripped || !s.TrippedAt.Equal(t0.Add(59*time.Minute)) {
		t.Fatalf("fourth call in the window: tripped %v at %v; want refused and tripped at 0:59", s.Tripped, s.TrippedAt)
	}
	// Tripped: nothing goes, not even once the window frees up.
	// The three went on; the fourth, held, took none.
	for pos, want := range map[uint64]bool{1: true, 2: true, 3: true, 4: false} {
		if got := s.TookSlot("i", pos); got != want {
			t.Errorf("TookSlot(i, %d) = %v; want %v", pos, got, want)
		}
	}
	if s.TookSlot("other", 1) {
		t.Error("TookSlot counts a position of another incarnation of the stream")
	}
	if s.take(t0.Add(3*time.Hour), "r", slotName("i", 5)) {
		t.Error("a call went while tripped, with the window empty")
	}
	if got := s.Used(t0.Add(60*time.Minute + time.Millisecond)); got != 2 {
		t.Errorf("Used just after the first call left = %d; want 2", got)
	}
	open := State{Limit: 3, Window: time.Hour, Calls: []int64{t0.UnixMilli(), t0.Add(10 * time.Minute).UnixMilli(), t0.Add(20 * time.Minute).UnixMilli()}}
	// A state from before Took: the slots' requests are unknown, the new
	// one is named, and the one that left the window left Took too.
	if !open.take(t0.Add(time.Hour+time.Millisecond), "r", slotName("i", 9)) || len(open.Calls) != 3 {
		t.Errorf("a call when the first left the window: calls %v; want a slot, 3 in the window", open.Calls)
	}
	if len(open.Took) != 3 || !open.TookSlot("i", 9) {
		t.Errorf("took %q; want two unknown and i:9", open.Took)
	}
	open.prune(t0.Add(time.Hour + 10*time.Minute + time.Millisecond))
	if len(open.Took) != len(open.Calls) || len(open.Calls) != 2 || !open.TookSlot("i", 9) {
		t.Errorf("after the second call left: calls %v took %q; want two of each, i:9 kept", open.Calls, open.Took)
	}
	if off := (State{Limit: 0, Window: time.Hour}); !off.take(t0, "r", slotName("i", 1)) {
		t.Error("limit 0 (the guard off) refused a call")
	}
}

// Ensure a decision covers what it reaches, and a later one the rest.
func TestCheck(t *testing.T) {
	tests := []struct {
		name         string
		s            State
		pos          uint64
		want         Verdict
		wantApproved bool
	}{
		{"open", State{}, 5, Go, false},
		{"tripped", State{Tripped: true}, 5, Held, false},
		{"approved", State{Incarnation: "i", ApprovedUpTo: 10, Tripped: true}, 5, Go, true},
		{"after the approval, tripped", State{Incarnation: "i", ApprovedUpTo: 10, Tripped: true}, 11, Held, false},
		{"rejected", State{Incarnation: "i", RejectedUpTo: 10}, 10, Rejected, false},
		{"approved, then rejected later ones", State{Incarnation: "i", ApprovedUpTo: 10, RejectedUpTo: 20}, 5, Go, true},
		{"rejected after an approval", State{Incarnation: "i", ApprovedUpTo: 10, RejectedUpTo: 20}, 15, Rejected, false},
		{"rejected, then approved later ones", State{Incarnation: "i", RejectedUpTo: 10, ApprovedUpTo: 20}, 5, Rejected, false},
		{"approved after a rejection", State{Incarnation: "i", RejectedUpTo: 10, ApprovedUpTo: 20}, 15, Go, true},
		{"another incarnation", State{Incarnation: "old", RejectedUpTo: 10}, 5, Go, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if v, a := tc.s.Check("i", tc.pos); v != tc.want || a != tc.wantApproved {
				t.Errorf("Check(%d) = %v, %v; want %v, %v", tc.pos, v, a, tc.want, tc.wantApproved)
			}
		})
	}
}

// Ensure replicas racing for the last slots through the bucket never take
// more than the limit, and exactly one of them trips the guard.
func TestTakeRace(t *testing.T) {
	js := testenv.StartJetStream(t)
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "guard_test", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	const limit, racers, each = 25, 8, 10
	var took, trips atomic.Int64
	var wg sync.WaitGroup
	for r := range racers {
		wg.Go(func() {
			st := Store{KV: kv}
			for range each {
				v, tripped, _, _, err := st.Take(context.Background(), limit, time.Hour, time.Now(), fmt.Sprint("r", r), "i", 1)
				if err != nil {
					t.Error(err)
					return
				}
				if v == Go {
					took.Add(1)
				}
				if tripped {
					trips.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if took.Load() != limit || trips.Load() != 1 {
		t.Errorf("slots taken %d, trips %d; want %d and 1", took.Load(), trips.Load(), limit)
	}
	st := Store{KV: kv}
	s, _, err := st.Read(context.Background())
	if err != nil || !s.Tripped || len(s.Calls) != limit {
		t.Fatalf("stored state %+v, %v; want tripped with %d calls", s, err, limit)
	}
	before, err := st.Decide(context.Background(), true, "i", 40, Decision{Verb: "released", Actor: "op", Reason: "checked"})
	if err != nil || !before.Tripped {
		t.Fatalf("Decide = %+v, %v; want the tripped state before", before, err)
	}
	s, _, _ = st.Read(context.Background())
	if s.Tripped || len(s.Calls) != 0 || s.ApprovedUpTo != 40 || s.Decision == nil || s.Decision.Actor != "op" {
		t.Errorf("after a release: %+v; want open, an empty window, approved up to 40", s)
	}
	if _, err := st.Decide(context.Background(), false, "i", 50, Decision{}); err != ErrOpen {
		t.Errorf("Decide of an open guard = %v; want ErrOpen", err)
	}
	// The approval is read from the bucket: an approved request takes no
	// slot, whatever the caller knew; a later one does.
	if v, _, _, _, _ := st.Take(context.Background(), limit, time.Hour, time.Now(), "r", "i", 40); v != Go {
		t.Errorf("Take of an approved request = %v; want Go", v)
	}
	if s, _, _ := st.Read(context.Background()); len(s.Calls) != 0 {
		t.Errorf("an approved request took a slot: %v", s.Calls)
	}
	if v, _, _, _, _ := st.Take(context.Background(), limit, time.Hour, time.Now(), "r", "i", 41); v != Go {
		t.Errorf("Take of a later request = %v; want Go", v)
	}
	if s, _, _ := st.Read(context.Background()); len(s.Calls) != 1 {
		t.Errorf("a later request took %d slots; want 1", len(s.Calls))
	}
}
