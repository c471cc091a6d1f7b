package provision

import (
	"fmt"
	"testing"
	"time"
)

func TestServerAtLeast(t *testing.T) {
	tests := []struct {
		version             string
		major, minor, patch int
		want                bool
	}{
		{"2.15.2", 2, 11, 0, true},
		{"2.11.0", 2, 11, 0, true},
		{"2.10.29", 2, 11, 0, false},
		{"2.9.10", 2, 11, 0, false},
		{"2.10.4", 2, 10, 4, true},
		{"2.10.3", 2, 10, 4, false},
		{"2.10.4-beta.1", 2, 10, 4, true},
		{"v2.12.1", 2, 11, 0, true},
		{"3.0.0", 2, 11, 0, true},
		{"1.99.99", 2, 11, 0, false},
		{"2.11", 2, 11, 0, true},
		{"", 2, 11, 0, false},
		{"garbage", 2, 11, 0, false},
		{"2.x.1", 2, 11, 0, false},
	}
	for _, tc := range tests {
		if got := serverAtLeast(tc.version, tc.major, tc.minor, tc.patch); got != tc.want {
			t.Errorf("serverAtLeast(%q, %d, %d, %d) = %v; want %v", tc.version, tc.major, tc.minor, tc.patch, got, tc.want)
		}
	}
}

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
	p := NewPacer(20)
	now := time.Now()
	if _, _, pace := p.current(); pace != 20 {
		t.Fatalf("pace = %v; want 20", pace)
	}
	p.slowDown(now)
	p.slowDown(now.Add(100 * time.Millisecond)) // same burst: one step
	if _, _, pace := p.current(); pace != 15 {
		t.Errorf("pace after a 429 = %v; want 15", pace)
	}
	for i := 2; i < 10; i++ {
		p.slowDown(now.Add(time.Duration(i) * time.Second))
	}
	if _, _, pace := p.current(); pace != 5 {
		t.Errorf("pace after many 429s = %v; want the floor 5 (a quarter)", pace)
	}
	last := now.Add(9 * time.Second)
	p.recover(last.Add(time.Second)) // too soon
	if _, _, pace := p.current(); pace != 5 {
		t.Errorf("pace 1s after the last 429 = %v; want still 5", pace)
	}
	for i := range 20 {
		p.recover(last.Add(slowDownHold + time.Duration(i)*time.Second))
	}
	if _, _, pace := p.current(); pace != 20 {
		t.Errorf("pace after a quiet period = %v; want 20 again", pace)
	}
	if p.limiter.Limit() != 20 {
		t.Errorf("limiter = %v; want 20", p.limiter.Limit())
	}
}
