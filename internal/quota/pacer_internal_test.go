package quota

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/zoomprov/consumer/internal/zoom"
)

func TestShares(t *testing.T) {
	l := func(id string, budget float64) lease { return lease{ID: id, Budget: budget} }
	tests := []struct {
		name   string
		leases []lease
		want   string
	}{
		{"alone", []lease{l("a", 20)}, "[{a 20}]"},
		{"whole shares add up in every window", []lease{l("c", 20), l("a", 20), l("b", 20)}, "[{a 7} {b 7} {c 6}]"},
		{"even split", []lease{l("a", 20), l("b", 20)}, "[{a 10} {b 10}]"},
		{"fractional budget", []lease{l("a", 2.5), l("b", 2.5)}, "[{a 1.25} {b 1.25}]"},
		{"more replicas than requests", []lease{l("a", 2), l("b", 2), l("c", 2), l("d", 2)}, "[{a 0.5} {b 0.5} {c 0.5} {d 0.5}]"},
		{"disagreeing settings: the smaller budget", []lease{l("a", 30), l("b", 20)}, "[{a 10} {b 10}]"},
		{"none", nil, "[]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := shares(tc.leases)
			s := "["
			for i, sh := range got {
				if i > 0 {
					s += " "
				}
				s += fmt.Sprintf("{%s %g}", sh.ID, sh.Share)
			}
			s += "]"
			if s != tc.want {
				t.Errorf("shares(%v) = %s; want %s", tc.leases, s, tc.want)
			}
			var total float64
			for _, sh := range got {
				total += sh.Share
			}
			if len(got) > 0 && total > tc.leases[0].Budget+1e-9 && tc.name != "disagreeing settings: the smaller budget" {
				t.Errorf("shares add up to %v; want at most the budget", total)
			}
		})
	}
}

func TestPacerSlowDownAndRecover(t *testing.T) {
	p := NewPacer(20, NewGates(nil))
	now := time.Now()
	if _, _, pace := p.Current(); pace != 20 {
		t.Fatalf("pace = %v; want 20", pace)
	}
	p.SlowDown(now)
	p.SlowDown(now.Add(100 * time.Millisecond)) // same burst: one step
	if _, _, pace := p.Current(); pace != 15 {
		t.Errorf("pace after a 429 = %v; want 15", pace)
	}
	for i := 2; i < 10; i++ {
		p.SlowDown(now.Add(time.Duration(i) * time.Second))
	}
	if _, _, pace := p.Current(); pace != 5 {
		t.Errorf("pace after many 429s = %v; want the floor 5 (a quarter)", pace)
	}
	last := now.Add(9 * time.Second)
	p.recover(last.Add(time.Second)) // too soon
	if _, _, pace := p.Current(); pace != 5 {
		t.Errorf("pace 1s after the last 429 = %v; want still 5", pace)
	}
	for i := range 20 {
		p.recover(last.Add(slowDownHold + time.Duration(i)*time.Second))
	}
	if _, _, pace := p.Current(); pace != 20 {
		t.Errorf("pace after a quiet period = %v; want 20 again", pace)
	}
	if want := rate.Limit(20 * (1 - paceMargin)); p.limiter.Limit() != want {
		t.Errorf("limiter = %v; want %v (the share less the margin)", p.limiter.Limit(), want)
	}
}

// Ensure a replica whose lease is past its bound makes no call until it is
// renewed, whatever its coordinator does: a coordinator stuck in an
// election could otherwise leave it calling at its share after the others
// counted it gone and took that share (a chaos run: 26 calls answered
// 429 in one second).
func TestPacerStopsWhenLeaseRunsOut(t *testing.T) {
	p := NewPacer(1000, NewGates(nil))
	p.setLeaseUntil(time.Now().Add(-time.Millisecond))
	if _, _, pace := p.Current(); pace != 0 {
		t.Errorf("pace with the lease run out = %v; want 0", pace)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Wait(ctx, zoom.Call{Action: "create"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with the lease run out = %v; want it to wait until ctx ends", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Wait(context.Background(), zoom.Call{Action: "create"}) }()
	p.setLeaseUntil(time.Now().Add(time.Minute))
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Wait after renewal = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after the lease was renewed")
	}
}
