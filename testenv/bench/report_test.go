package main

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/zoomprov/consumer/testenv/bench/internal/peer"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name string
		stat string
		want float64
		ok   bool
	}{
		{"plain", "4242 (consumer) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 0 0 20 0 9 0 1000 1 1", 3.25, true},
		{"name with spaces and parentheses", "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 1 1", 0.03, true},
		{"truncated", "7 (x) R 1 2 3", 0, false},
		{"no name", "garbage", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.stat))
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseStatCPU(%q) = %v, %v; want %v, ok %v", tt.stat, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestParseVmHWM(t *testing.T) {
	tests := []struct {
		status string
		want   int64
		ok     bool
	}{
		{"Name:\tconsumer\nVmPeak:\t  900 kB\nVmHWM:\t   41984 kB\nVmRSS:\t 40000 kB\n", 41984 << 10, true},
		{"Name:\tconsumer\n", 0, false},
		{"VmHWM:\t lots kB\n", 0, false},
	}
	for _, tt := range tests {
		got, err := parseVmHWM([]byte(tt.status))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseVmHWM(%q) = %v, %v; want %v, ok %v", tt.status, got, err, tt.want, tt.ok)
		}
	}
}

// evenly returns n times spaced every gap, starting at start.
func evenly(start time.Time, n int, gap time.Duration) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = start.Add(time.Duration(i) * gap)
	}
	return out
}

func TestTimeToWindow(t *testing.T) {
	reset := time.Date(2026, 12, 1, 0, 0, 10, 0, time.UTC)
	tests := []struct {
		name string
		ts   []time.Time
		want int
		out  time.Duration
	}{
		// 80 calls 12.5 ms apart fit into one second: the 80th, at
		// 987.5 ms, ends the first full window.
		{"even 80/s from the reset", evenly(reset, 200, 12500*time.Microsecond), 80, 987500 * time.Microsecond},
		{"starts late", evenly(reset.Add(700*time.Millisecond), 200, 12500*time.Microsecond), 80, 1687500 * time.Microsecond},
		// 20 ms apart is 50/s: 80 in a second never happens.
		{"too slow", evenly(reset, 500, 20*time.Millisecond), 80, -1},
		{"95% of 80 at 80/s", evenly(reset, 200, 12500*time.Microsecond), 76, 937500 * time.Microsecond},
		{"none", nil, 80, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := timeToWindow(tt.ts, reset, tt.want); got != tt.out {
				t.Errorf("timeToWindow(%d times, %d) = %v; want %v", len(tt.ts), tt.want, got, tt.out)
			}
		})
	}
}

func TestPerSecond(t *testing.T) {
	from := time.Date(2026, 12, 1, 0, 0, 12, 0, time.UTC)
	// 80 a second for 3 s, then 40 in the fourth.
	ts := append(evenly(from, 240, 12500*time.Microsecond), evenly(from.Add(3*time.Second), 40, 25*time.Millisecond)...)
	lo, hi := perSecond(ts, from, ts[len(ts)-1])
	if lo != 80 || hi != 80 {
		// The fourth second ends after the last arrival, so it is not a
		// whole second of the span.
		t.Errorf("perSecond(80/s for 3 s, then 40) = %d, %d; want 80, 80", lo, hi)
	}
	lo, hi = perSecond(ts, from, from.Add(4*time.Second))
	if lo != 40 || hi != 80 {
		t.Errorf("perSecond(80/s for 3 s, then 40, to 4 s) = %d, %d; want 40, 80", lo, hi)
	}
}

// goodResult is request i's created event as the contract shapes it.
func goodResult(t *testing.T, i int) resultMsg {
	t.Helper()
	id := requestID(i)
	req, err := peer.ParseRequest(requestBody("ssoCreate", i))
	if err != nil {
		t.Fatal(err)
	}
	body, err := peer.CreatedEvent(id, req, "KDcuGIm1QgePTO8WbOqwIQ", uint64(i+1), 1)
	if err != nil {
		t.Fatal(err)
	}
	return resultMsg{Subject: resultCreated, MsgID: peer.ResultID(id), ContentType: peer.ContentType, Data: body}
}

func TestCheckResults(t *testing.T) {
	good := func() []resultMsg {
		return []resultMsg{goodResult(t, 0), goodResult(t, 1), goodResult(t, 2)}
	}
	tests := []struct {
		name   string
		change func([]resultMsg) []resultMsg
		want   string // a problem that must be reported; empty: none at all
	}{
		{"all good", func(m []resultMsg) []resultMsg { return m }, ""},
		{"one missing", func(m []resultMsg) []resultMsg { return m[:2] }, "2 of 3 requests have a result"},
		{"duplicate", func(m []resultMsg) []resultMsg { return append(m, m[1]) }, "1 requests with more than one result"},
		{"wrong msg id", func(m []resultMsg) []resultMsg { m[0].MsgID = "x"; return m }, "1 results whose Nats-Msg-Id is not their id"},
		{"no content type", func(m []resultMsg) []resultMsg { m[2].ContentType = ""; return m }, "1 results without the CloudEvents content type"},
		{"not JSON", func(m []resultMsg) []resultMsg { m[0].Data = []byte("{"); return m }, "1 results that are not JSON"},
		{"unknown request", func(m []resultMsg) []resultMsg { m[0] = goodResult(t, 7); return m }, "1 results with an unexpected id"},
		{"wrong e-mail", func(m []resultMsg) []resultMsg {
			m[1].Data = []byte(strings.Replace(string(m[1].Data), "u1@", "u9@", 1))
			return m
		}, "1 results with wrong data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkResults(tt.change(good()), "ssoCreate", 3)
			if tt.want == "" {
				if len(got) != 0 {
					t.Errorf("checkResults(good) = %q; want none", got)
				}
				return
			}
			found := false
			for _, p := range got {
				found = found || p == tt.want
			}
			if !found {
				t.Errorf("checkResults(%s) = %q; want it to include %q", tt.name, got, tt.want)
			}
		})
	}
}

func TestMedianAndThousands(t *testing.T) {
	for _, tt := range []struct {
		xs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{4, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tt.xs); got != tt.want {
			t.Errorf("median(%v) = %v; want %v", tt.xs, got, tt.want)
		}
	}
	for _, tt := range []struct {
		n    int
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {1234567, "1,234,567"}, {-5, "-5"}} {
		if got := thousands(tt.n); got != tt.want {
			t.Errorf("thousands(%d) = %q; want %q", tt.n, got, tt.want)
		}
	}
}

// TestThroughputMarkdown checks the side-by-side table: the per-run
// rates, the medians, the ratios of runs measured together, and that a
// failed or unverified run is shown as such rather than counted.
func TestThroughputMarkdown(t *testing.T) {
	o := options{n: 1000, runs: 2, only: map[string]bool{"service": true, "watermill": true, "naive": true}}
	m := func(c string, run int, secs float64) measurement {
		return measurement{Consumer: c, Run: run, N: 1000, Elapsed: time.Duration(secs * float64(time.Second)),
			CPUConsumer: 0.5, CPUBroker: 0.25, RSS: 40 << 20, Load: "0.1 0.2 0.3"}
	}
	bad := m("naive", 2, 1)
	bad.Problems = []string{"3 users not created exactly once"}
	busy := m("service", 2, 0.4)
	busy.CPUOthers = 0.5 // more than 5% of a core over 0.4 s
	failed := m("watermill", 2, 0)
	failed.Err = errors.New("boom")
	rp := &report{opts: o, throughput: []measurement{
		m("service", 1, 0.5), m("watermill", 1, 0.25), m("naive", 1, 1),
		busy, failed, bad,
	}}
	var b strings.Builder
	rp.throughputMarkdown(&b)
	md := b.String()
	for _, want := range []string{
		"| this service (`consumer run`) | 2,000 | 2,500 † | 2,250 | 0.500 (0.500–0.500) | 0.250 (0.250–0.250) | 40.0 MiB |",
		"| Watermill v1.5.1 + watermill-nats v2.1.3 | 4,000 | failed | 4,000 | 0.500 | 0.250 | 40.0 MiB |",
		"| naive loop, one message at a time | 1,000 | 1,000 (!) | 1,000 |",
		"| service ÷ Watermill | 0.50 |  | 0.50 (not met) | ≥ 1.5 |",
		"| service ÷ naive loop | 2.00 | 2.50 | 2.25 (not met) | ≥ 3.0 |",
		"**3 users not created exactly once**",
		"| 2 | watermill | 0.1 0.2 0.3 | failed |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("throughputMarkdown() lacks %q; got:\n%s", want, md)
		}
	}
}

func TestBacklogMarkdownTargets(t *testing.T) {
	for _, tt := range []struct {
		to80   time.Duration
		after  int
		rss    int64
		checks []string
	}{
		{990 * time.Millisecond, 0, 40 << 20, []string{"| ≤ 2 s (met) |", "| 0 (met) |", "≤ 64 MiB (met)"}},
		{2500 * time.Millisecond, 3, 70 << 20, []string{"| ≤ 2 s (not met) |", "| 0 (not met) |", "≤ 64 MiB (not met)"}},
		{-1, 0, 40 << 20, []string{"| never | ≤ 2 s (not met) |"}},
	} {
		rp := &report{backlog: &backlogResult{N: 20000, Rate: 80, Latency: 200 * time.Millisecond, Window: 10 * time.Second,
			Reset: 9 * time.Second, To80: tt.to80, To95: tt.to80, QPS429After: tt.after, RSS: tt.rss}}
		var b strings.Builder
		rp.backlogMarkdown(&b)
		for _, want := range tt.checks {
			if !strings.Contains(b.String(), want) {
				t.Errorf("backlogMarkdown(to80 %v, %d 429s, RSS %d) lacks %q; got:\n%s", tt.to80, tt.after, tt.rss, want, b.String())
			}
		}
	}
}

func TestParseProcStatBusy(t *testing.T) {
	tests := []struct {
		stat string
		want float64
		ok   bool
	}{
		// user 100, nice 20, system 30, idle 9999, iowait 50, irq 5, softirq 10, steal 35 (ticks).
		{"cpu  100 20 30 9999 50 5 10 35 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n", 1.85, true},
		{"intr 1 2 3\n", 0, false},
		{"cpu  1 2 x 4 5 6 7 8\n", 0, false},
	}
	for _, tt := range tests {
		got, err := parseProcStatBusy([]byte(tt.stat))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseProcStatBusy(%q) = %v, %v; want %v, ok %v", tt.stat, got, err, tt.want, tt.ok)
		}
	}
}

func TestChainAt(t *testing.T) {
	// 5 users in batches of 2: creations, updates, deactivations of users
	// 0 and 1, then of 2 and 3, then of 4 alone.
	want := [][2]int{
		{0, 0}, {1, 0}, {0, 1}, {1, 1}, {0, 2}, {1, 2},
		{2, 0}, {3, 0}, {2, 1}, {3, 1}, {2, 2}, {3, 2},
		{4, 0}, {4, 1}, {4, 2},
	}
	for k, w := range want {
		if u, op := chainAt(k, 5, 2); u != w[0] || op != w[1] {
			t.Errorf("chainAt(%d, 5, 2) = %d, %d; want %d, %d", k, u, op, w[0], w[1])
		}
	}
	// Batches of one: each user's chain back to back.
	for k := range 9 {
		if u, op := chainAt(k, 3, 1); u != k/3 || op != k%3 {
			t.Errorf("chainAt(%d, 3, 1) = %d, %d; want %d, %d", k, u, op, k/3, k%3)
		}
	}
}

func TestResultIndexes(t *testing.T) {
	for _, tt := range []struct {
		id    string
		index func(string) (int, bool)
		want  int
		ok    bool
	}{
		{"bench-7:result", benchIndex(10), 7, true},
		{"bench-10:result", benchIndex(10), 0, false},
		{"bench-7", benchIndex(10), 0, false},
		{"life-7-create:result", benchIndex(10), 0, false},
		{"life-2-create:result", chainIndex(3), 6, true},
		{"life-2-update:result", chainIndex(3), 7, true},
		{"life-2-deactivate:result", chainIndex(3), 8, true},
		{"life-3-create:result", chainIndex(3), 0, false},
		{"life-2-delete:result", chainIndex(3), 0, false},
		{"bench-2:result", chainIndex(3), 0, false},
	} {
		if got, ok := tt.index(tt.id); got != tt.want || ok != tt.ok {
			t.Errorf("index(%q) = %d, %v; want %d, %v", tt.id, got, ok, tt.want, tt.ok)
		}
	}
	if got := chainID(2, 1); got+":result" != "life-2-update:result" {
		t.Errorf("chainID(2, 1) = %q; want life-2-update", got)
	}
}

func TestDecileRates(t *testing.T) {
	// 100 arrivals: the first 10 every 10 ms (100/s), the last 10 every
	// 20 ms (50/s).
	var at []time.Duration
	for i := range 100 {
		switch {
		case i < 10:
			at = append(at, time.Duration(i)*10*time.Millisecond)
		default:
			at = append(at, time.Second+time.Duration(i)*20*time.Millisecond)
		}
	}
	q := scaleQueue{Rates: tenthRates(at)}
	if first, last := q.FirstRate(), q.LastRate(); math.Abs(first-100) > 1e-9 || math.Abs(last-50) > 1e-9 {
		t.Errorf("first and last tenth (100/s, then 50/s) = %v, %v; want 100, 50", first, last)
	}
	r := tenthRates(at)
	if len(r) != 10 || math.Abs(r[0]-100) > 1e-9 || math.Abs(r[5]-50) > 1e-9 {
		t.Errorf("tenthRates(100/s, then 50/s) = %v; want 100 first, 50 from the second", r)
	}
	if got := trendRatio([]float64{100, 99, 98, 97, 96, 95, 94, 93, 92, 91}); math.Abs(got-0.91) > 1e-9 {
		t.Errorf("trendRatio(100 down to 91) = %v; want 0.91", got)
	}
	if got := trendRatio([]float64{90, 110, 90, 110, 90, 110, 90, 110, 90, 110}); math.Abs(got-1.056) > 0.001 {
		t.Errorf("trendRatio(wandering 90/110) = %v; want 1.056 (the last tenth over the first: 1.22)", got)
	}
	if r := tenthRates(at[:15]); r != nil {
		t.Errorf("tenthRates(15 arrivals) = %v; want none (a tenth of one arrival has no rate)", r)
	}
}

func TestMetricSum(t *testing.T) {
	text := `# HELP zoomprov_order_reads_total Reads.
# TYPE zoomprov_order_reads_total counter
zoomprov_order_reads_total 1234
zoomprov_requests_total{action="ssoCreate",outcome="created"} 10
zoomprov_requests_total{action="update",outcome="waiting"} 3
zoomprov_requests_total{action="deactivate",outcome="waiting"} 4.5
zoomprov_requests_total_other{outcome="waiting"} 100
`
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"zoomprov_order_reads_total", nil, 1234},
		{"zoomprov_requests_total", nil, 17.5},
		{"zoomprov_requests_total", map[string]string{"outcome": "waiting"}, 7.5},
		{"zoomprov_requests_total", map[string]string{"outcome": "waiting", "action": "update"}, 3},
		{"zoomprov_requests_total", map[string]string{"outcome": "parked"}, 0},
		{"zoomprov_missing", nil, 0},
	} {
		if got := metricSum(text, tt.name, tt.labels); got != tt.want {
			t.Errorf("metricSum(%s, %v) = %v; want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}

func TestScaleMarkdownGoals(t *testing.T) {
	for _, tt := range []struct {
		q     scaleQueue
		r     scaleOrder
		wants []string
	}{
		{
			scaleQueue{N: 1000, Preload: time.Second, FirstCall: 300 * time.Millisecond, Elapsed: time.Second,
				Rates: []float64{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 950}, RSS: 60 << 20},
			scaleOrder{Users: 10, Batch: 5, Requests: 30, Preload: time.Second, Elapsed: time.Second, Reads: []uint64{10, 11}},
			[]string{"| 300 ms | ≤ 2 s (met) |", "| 0.95 | ≥ 0.90 (met) |", "≤ 96 MiB (met)", "| **0.70** | < 1.5 (met);"},
		},
		{
			scaleQueue{N: 1000, Preload: time.Second, FirstCall: 2500 * time.Millisecond, Elapsed: time.Second,
				Rates: []float64{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 890}, RSS: 97 << 20, Problems: []string{"3 users not created exactly once"}},
			scaleOrder{Users: 10, Batch: 5, Requests: 30, Preload: time.Second, Elapsed: time.Second, Reads: []uint64{20, 25}},
			[]string{"| 2500 ms | ≤ 2 s (not met) |", "| 0.89 | ≥ 0.90 (not met) |", "≤ 96 MiB (not met)", "| **1.50** | < 1.5 (not met);",
				"**3 users not created exactly once**"},
		},
	} {
		rp := &report{scale: &scaleResult{Queue: &tt.q, Order: &tt.r}}
		var b strings.Builder
		rp.scaleMarkdown(&b)
		for _, want := range tt.wants {
			if !strings.Contains(b.String(), want) {
				t.Errorf("scaleMarkdown() lacks %q; got:\n%s", want, b.String())
			}
		}
	}
}

func TestLongestGap(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		var out []time.Duration
		for _, x := range xs {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	for _, tt := range []struct {
		at    []time.Duration
		gap   time.Duration
		after int
	}{
		{ms(0, 1, 2, 900, 901), 898 * time.Millisecond, 3},
		{ms(5, 10), 5 * time.Millisecond, 1},
		{ms(5), 0, 0},
		{nil, 0, 0},
	} {
		if gap, after := longestGap(tt.at); gap != tt.gap || after != tt.after {
			t.Errorf("longestGap(%v) = %v, %d; want %v, %d", tt.at, gap, after, tt.gap, tt.after)
		}
	}
}

// Ensure a mark's busy share is the whole machine's CPU over the wall
// time between two marks, and others what the three measured left.
func TestMarkBusy(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	a := mark{Time: t0, Machine: 10, Service: 4, Broker: 2, Bench: 1}
	b := mark{Time: t0.Add(2 * time.Second), Machine: 13, Service: 5, Broker: 3, Bench: 1.5}
	if got := a.busy(b); got != 1.5 {
		t.Errorf("busy = %v; want 1.5 cores", got)
	}
	if got := a.others(b); got != 0.25 {
		t.Errorf("others = %v; want 0.25 cores", got)
	}
	if got := a.busy(a); got != 0 {
		t.Errorf("busy over no time = %v; want 0", got)
	}
}
