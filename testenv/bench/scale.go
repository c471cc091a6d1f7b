package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/testenv"
	"github.com/zoomprov/consumer/testenv/bench/internal/peer"
)

// scaleFileStore is the JetStream file store the scale scenario's broker
// may use. testenv's 1 GiB is too little for a million requests: their
// results (about 0.8 KB each, kept 30 days) and the per-user ledger the
// service projects from them (one entry per user) come to more than that,
// and the broker would refuse the results long before the last request.
// The contract's streams have no limits of their own (deploy/nats: max_msgs
// and max_bytes -1), so only the server's is raised.
const scaleFileStore = 16 << 30

// benchGCPercent is this process's GOGC during part one (the default is
// 100). Its live heap is the simulator's million users by the end; the
// machine's memory, not the bench's, is plentiful.
const benchGCPercent = 400

// chainOps are the requests of one user's chain in the order scenario, in
// stream order, with the outcome of each and its subject.
var chainOps = []struct {
	op, subject, outcome, method string
}{
	{"create", requestPrefix + ".ssoCreate", "created", http.MethodPost},
	{"update", "zoom.users.update", "updated", http.MethodPatch},
	{"deactivate", "zoom.users.deactivate", "deactivated", http.MethodPut},
}

// scaleResult is the scale scenario's measurement: its two parts, each
// nil when not run.
type scaleResult struct {
	Queue *scaleQueue
	Order *scaleOrder
}

// scaleQueue is part one: N ssoCreate requests queued, the service
// (`consumer run`) alone, Zoom at zero latency and without a limit.
type scaleQueue struct {
	N    int
	Load string
	// QuietWait and Quiet: see measurement.
	QuietWait time.Duration
	Quiet     bool
	// Preload is how long publishing the N requests took, every one
	// acknowledged; RequestBytes what the request stream then held.
	Preload      time.Duration
	RequestBytes uint64
	// FirstCall is from the service's start to the first POST /v2/users
	// at the simulator; FirstResult to the first result; Elapsed to the
	// N-th.
	FirstCall, FirstResult, Elapsed time.Duration
	// CPU seconds from the service's start to the N-th result: the
	// service's, the broker's, the bench's own (the simulator and the
	// counting of results), everything else's.
	CPUService, CPUBroker, CPUBench, CPUOthers float64
	// RSS is the service's peak resident set (VmHWM); BrokerRSS the
	// broker's.
	RSS, BrokerRSS int64
	// Start is the state at the service's start, Tenths when each tenth
	// of the results was in (the last: when the last result was).
	Start  mark
	Tenths [10]mark
	// Rates are results per second over each tenth (tenthRates).
	Rates []float64
	// LongestGap is the longest time between two results, and GapAfter
	// the results before it.
	LongestGap time.Duration
	GapAfter   int
	// StoreBytes is the broker's file store in use after the run
	// (results, the ledger, what is left of the requests).
	StoreBytes uint64
	Problems   []string
	Err        error
}

// Rate is results per second from the service's start to the N-th.
func (q *scaleQueue) Rate() float64 {
	if q.Elapsed <= 0 {
		return 0
	}
	return float64(q.N) / q.Elapsed.Seconds()
}

// Ratio is the rate over the last tenth over that over the first.
func (q *scaleQueue) Ratio() float64 {
	if q.FirstRate() <= 0 {
		return 0
	}
	return q.LastRate() / q.FirstRate()
}

// scaleOrder is part two: two replicas, Users users each with a chain
// create → update → deactivate, published Batch users at a time.
type scaleOrder struct {
	Users, Batch, Requests int
	Load                   string
	QuietWait              time.Duration
	Quiet                  bool
	Preload                time.Duration
	// Elapsed is from the replicas' start to the last result.
	Elapsed time.Duration
	// Per replica, from its /metrics at the end: order reads
	// (zoomprov_order_reads_total), and deliveries handed back to wait
	// for an earlier request about the user, parked, or superseded
	// (zoomprov_requests_total by outcome).
	Reads                       []uint64
	Waiting, Parked, Superseded []uint64
	// Tapped are the same reads as the broker received them (readTap).
	Tapped readCounts
	// LongestGap is the longest time between two results, GapAfter the
	// results before it, and GapAt when it began, from the start.
	LongestGap, GapAt              time.Duration
	GapAfter                       int
	Calls                          int // Zoom calls the simulator answered
	CPUReplicas                    []float64
	CPUBroker, CPUBench, CPUOthers float64
	RSS                            []int64
	Problems                       []string
	Err                            error
}

// ReadsPerRequest is the replicas' order reads over the requests.
func (r *scaleOrder) ReadsPerRequest() float64 {
	var sum uint64
	for _, n := range r.Reads {
		sum += n
	}
	return float64(sum) / float64(max(r.Requests, 1))
}

// Rate is results per second from the replicas' start to the last.
func (r *scaleOrder) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// measureScaleQueue runs part one.
func measureScaleQueue(ctx context.Context, o options) (q scaleQueue) {
	n := o.scaleN
	q = scaleQueue{N: n, Load: loadAvg()}
	// At least 1,000 results a second, or the run is a failure anyway.
	ctx, cancel := context.WithTimeout(ctx, max(o.timeout, time.Duration(n)*time.Millisecond))
	defer cancel()
	w, err := startWorldStore(ctx, o.natsBin, o.deployDir, scaleFileStore)
	if err != nil {
		q.Err = err
		return q
	}
	defer w.close()
	start := time.Now()
	if err := w.publishAll(ctx, n, func(i int) (*nats.Msg, string) {
		m := nats.NewMsg(requestPrefix + ".ssoCreate")
		m.Data = requestBody("ssoCreate", i)
		return m, requestID(i)
	}); err != nil {
		q.Err = fmt.Errorf("preload: %w", err)
		return q
	}
	q.Preload = time.Since(start)
	if q.RequestBytes, err = w.checkHolds(ctx, requestStream, uint64(n)); err != nil {
		q.Err = err
		return q
	}
	// Keep no request log: a million entries would be the bench's memory.
	// The simulator's users are its live heap, growing to a million: size
	// their tables up front and collect this process's garbage less often,
	// or its own growth and marking take CPU from the service on the same
	// cores as the run goes on.
	sim := testenv.NewSimulator(testenv.SimConfig{MaxRecordedRequests: 1, Users: n})
	defer sim.Close()
	defer debug.SetGCPercent(debug.SetGCPercent(benchGCPercent))

	arr, err := w.countArrivals(resultCreated, n, benchIndex(n))
	if err != nil {
		q.Err = err
		return q
	}
	defer arr.stop()
	meter, err := startCPUMeter(w.brokerPID)
	if err != nil {
		q.Err = err
		return q
	}
	q.Start = mark{Time: time.Now(), Broker: meter.broker, Bench: meter.self, Machine: meter.machine, BenchGCs: gcCycles()}
	p, err := startProcess(o.service(), env(w.broker.URL(), sim), o.keepLogs)
	if err != nil {
		q.Err = err
		return q
	}
	defer p.cleanup()
	marks := startMarks(p.pid, w.brokerPID, arr, n)
	if err := arr.wait(ctx, p); err != nil {
		marks.stop()
		q.Err = err
		return q
	}
	cpu, cpuB, cpuSelf, cpuO, err1 := meter.stopAll(p.pid)
	peak, err2 := peakRSS(p.pid)
	brokerPeak, err3 := peakRSS(w.brokerPID)
	q.Tenths = marks.stop()
	if err := errors.Join(err1, err2, err3); err != nil {
		q.Err = err
		return q
	}
	q.CPUService, q.CPUBroker, q.CPUBench, q.CPUOthers = cpu[0], cpuB, cpuSelf, cpuO
	q.RSS, q.BrokerRSS = peak, brokerPeak
	at := arr.times()
	q.FirstResult, q.Elapsed = arr.base.Add(at[0]).Sub(p.started), arr.base.Add(at[len(at)-1]).Sub(p.started)
	q.Rates = tenthRates(at)
	q.LongestGap, q.GapAfter = longestGap(at)
	if first, ok := sim.FirstArrival(testenv.RouteCreateUser); ok {
		q.FirstCall = first.Sub(p.started)
	} else {
		q.Problems = append(q.Problems, "the simulator saw no POST /v2/users")
	}

	// Not measured from here on.
	if err := w.waitStored(ctx, resultStream, uint64(n), 30*time.Second); err != nil {
		q.Problems = append(q.Problems, err.Error())
	}
	problems, _ := verify(ctx, w, sim, p, "ssoCreate", n, false)
	q.Problems = append(q.Problems, problems...)
	if info, err := w.js.AccountInfo(ctx); err == nil {
		q.StoreBytes = info.Store
	}
	return q
}

// measureScaleOrder runs part two.
func measureScaleOrder(ctx context.Context, o options) (r scaleOrder) {
	users, batch := o.scaleUsers, o.scaleBatch
	n := len(chainOps) * users
	r = scaleOrder{Users: users, Batch: batch, Requests: n, Load: loadAvg()}
	ctx, cancel := context.WithTimeout(ctx, max(o.timeout, time.Duration(n)*time.Millisecond))
	defer cancel()
	w, err := startWorldStore(ctx, o.natsBin, o.deployDir, scaleFileStore)
	if err != nil {
		r.Err = err
		return r
	}
	defer w.close()
	start := time.Now()
	if err := w.publishAll(ctx, n, func(k int) (*nats.Msg, string) {
		u, op := chainAt(k, users, batch)
		m := nats.NewMsg(chainOps[op].subject)
		m.Data = chainBody(u, op)
		return m, chainID(u, op)
	}); err != nil {
		r.Err = fmt.Errorf("preload: %w", err)
		return r
	}
	r.Preload = time.Since(start)
	if _, err := w.checkHolds(ctx, requestStream, uint64(n)); err != nil {
		r.Err = err
		return r
	}
	sim := testenv.NewSimulator(testenv.SimConfig{MaxRecordedRequests: 1})
	defer sim.Close()
	arr, err := w.countArrivals(resultAllPrefix+".>", n, chainIndex(users))
	if err != nil {
		r.Err = err
		return r
	}
	defer arr.stop()

	tap, err := w.tapReads(n, users, batch)
	if err != nil {
		r.Err = err
		return r
	}
	defer tap.stop()
	meter, err := startCPUMeter(w.brokerPID)
	if err != nil {
		r.Err = err
		return r
	}
	var ps []*process
	var addrs []string
	defer func() {
		for _, p := range ps {
			p.cleanup()
		}
	}()
	for i := range 2 {
		// A free port now: the service logs the one it got from
		// 127.0.0.1:0 only at level info.
		port, err := freePort()
		if err != nil {
			r.Err = err
			return r
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		svc := o.service()
		svc.Name = "service-" + strconv.Itoa(i+1)
		// No guard: it would hold every deactivation after the 50th.
		svc.Env = []string{"ZOOM_RATE_LIMIT=0", "HTTP_ADDR=" + addr, "LOG_LEVEL=warn", "GUARD_LIMIT=0"}
		p, err := startProcess(svc, env(w.broker.URL(), sim), o.keepLogs)
		if err != nil {
			r.Err = err
			return r
		}
		ps, addrs = append(ps, p), append(addrs, addr)
	}
	if err := arr.wait(ctx, ps...); err != nil {
		r.Err = err
		return r
	}
	cpu, cpuB, cpuSelf, cpuO, err := meter.stopAll(ps[0].pid, ps[1].pid)
	if err != nil {
		r.Err = err
		return r
	}
	r.CPUReplicas, r.CPUBroker, r.CPUBench, r.CPUOthers = cpu, cpuB, cpuSelf, cpuO
	r.Tapped = tap.counts()
	at := arr.times()
	r.Elapsed = arr.base.Add(at[len(at)-1]).Sub(ps[0].started)
	r.LongestGap, r.GapAfter = longestGap(at)
	if r.GapAfter > 0 {
		r.GapAt = arr.base.Add(at[r.GapAfter-1]).Sub(ps[0].started)
	}
	for i, p := range ps {
		peak, err := peakRSS(p.pid)
		if err != nil {
			r.Err = err
			return r
		}
		m, err := scrapeMetrics(addrs[i])
		if err != nil {
			r.Err = fmt.Errorf("replica %d: %w", i+1, err)
			return r
		}
		r.RSS = append(r.RSS, peak)
		r.Reads = append(r.Reads, uint64(metricSum(m, "zoomprov_order_reads_total", nil)))
		r.Waiting = append(r.Waiting, uint64(metricSum(m, "zoomprov_requests_total", map[string]string{"outcome": "waiting"})))
		r.Parked = append(r.Parked, uint64(metricSum(m, "zoomprov_requests_total", map[string]string{"outcome": "parked"})))
		r.Superseded = append(r.Superseded, uint64(metricSum(m, "zoomprov_requests_total", map[string]string{"outcome": "superseded"})))
	}

	// Not measured from here on.
	r.Problems = verifyChains(ctx, w, sim, ps, users)
	for _, c := range sim.Stats().Requests {
		for _, k := range c {
			r.Calls += k
		}
	}
	return r
}

// chainAt is the k-th request published in the order scenario: user u's
// request op. Users are published batch at a time: the batch's creations,
// then its updates, then its deactivations, so that a user's three
// requests are about batch requests apart in the stream and the three
// consumers deliver them side by side, as an HR feed that sends the day's
// joiners, then the day's changes, would.
func chainAt(k, users, batch int) (u, op int) {
	b := k / (len(chainOps) * batch) * batch // the batch's first user
	size := min(batch, users-b)
	within := k - b*len(chainOps)
	return b + within%size, within / size
}

// chainID is the Nats-Msg-Id of user u's request op.
func chainID(u, op int) string { return "life-" + strconv.Itoa(u) + "-" + chainOps[op].op }

// chainBody is the body of user u's request op.
func chainBody(u, op int) []byte {
	email := `"u` + strconv.Itoa(u) + `@bench.example.com"`
	switch chainOps[op].op {
	case "create":
		return requestBody("ssoCreate", u)
	case "update":
		return []byte(`{"email":` + email + `,"user":{"job_title":"Engineer","dept":"Bench"}}`)
	default:
		return []byte(`{"email":` + email + `}`)
	}
}

// benchIndex maps a result's Nats-Msg-Id to its request in part one
// (bench-<i>:result).
func benchIndex(n int) func(string) (int, bool) {
	return func(id string) (int, bool) {
		s, ok := strings.CutPrefix(id, "bench-")
		if !ok {
			return 0, false
		}
		s, ok = strings.CutSuffix(s, ":result")
		i, err := strconv.Atoi(s)
		if !ok || err != nil || i < 0 || i >= n {
			return 0, false
		}
		return i, true
	}
}

// chainIndex maps a result's Nats-Msg-Id to its request in part two
// (life-<u>-<op>:result): 3u + op.
func chainIndex(users int) func(string) (int, bool) {
	return func(id string) (int, bool) {
		s, ok := strings.CutPrefix(id, "life-")
		if !ok {
			return 0, false
		}
		s, ok = strings.CutSuffix(s, ":result")
		us, op, ok2 := strings.Cut(s, "-")
		u, err := strconv.Atoi(us)
		if !ok || !ok2 || err != nil || u < 0 || u >= users {
			return 0, false
		}
		for k, c := range chainOps {
			if c.op == op {
				return len(chainOps)*u + k, true
			}
		}
		return 0, false
	}
}

// readCounts are the reads of the request stream the broker received,
// by kind.
type readCounts struct {
	// Forward are reads of the next stored message from a sequence on
	// (order.Index.scanTo, next_by_subj ">"): learning what is stored.
	Forward uint64
	// Check are reads of one sequence (order.Index.Stored: is this
	// request still stored?), by the operation of the request read
	// (chainOps), and last for a parked copy.
	Check [4]uint64
	// Other are any other reads of the stream (the guard's).
	Other uint64
}

// Total is every read counted.
func (c readCounts) Total() uint64 {
	t := c.Forward + c.Other
	for _, k := range c.Check {
		t += k
	}
	return t
}

// readTap counts the reads of the request stream as the broker receives
// them: the JetStream API's message gets on it (package leader), seen by a
// core subscription (one more delivery per read for the broker). Their
// total is a check on the replicas' own count; their kinds say what the
// order spends its reads on.
type readTap struct {
	sub     *nats.Subscription
	direct  *nats.Subscription
	n       int
	opAtSeq func(seq uint64) int

	mu sync.Mutex
	c  readCounts
}

// tapReads starts counting the reads of the request stream, which holds
// the n requests of users' chains published batch users at a time from
// sequence 1 on.
func (w *world) tapReads(n, users, batch int) (*readTap, error) {
	t := &readTap{n: n, opAtSeq: func(seq uint64) int {
		if seq == 0 || seq > uint64(n) {
			return len(chainOps) // a parked copy, stored after the requests
		}
		_, op := chainAt(int(seq-1), users, batch)
		return op
	}}
	sub, err := w.nc.Subscribe("$JS.API.STREAM.MSG.GET."+requestStream, t.onMsg)
	if err != nil {
		return nil, err
	}
	// Direct gets too (a stream with allow_direct), in batches or not:
	// one request is one read, as the service counts.
	direct, err := w.nc.Subscribe("$JS.API.DIRECT.GET."+requestStream, t.onMsg)
	if err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	t.direct = direct
	t.sub = sub
	for _, s := range []*nats.Subscription{sub, direct} {
		if err := s.SetPendingLimits(-1, -1); err != nil {
			t.stop()
			return nil, err
		}
	}
	if err := w.nc.Flush(); err != nil {
		t.stop()
		return nil, err
	}
	return t, nil
}

func (t *readTap) onMsg(m *nats.Msg) {
	var q struct {
		Seq           uint64 `json:"seq"`
		NextBySubject string `json:"next_by_subj"`
		LastBySubject string `json:"last_by_subj"`
	}
	err := json.Unmarshal(m.Data, &q)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case err != nil || q.LastBySubject != "" || (q.NextBySubject != "" && q.NextBySubject != ">"):
		t.c.Other++
	case q.NextBySubject == ">":
		t.c.Forward++
	default:
		t.c.Check[t.opAtSeq(q.Seq)]++
	}
}

func (t *readTap) counts() readCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.c
}

func (t *readTap) stop() {
	_ = t.sub.Unsubscribe()
	if t.direct != nil {
		_ = t.direct.Unsubscribe()
	}
}

// checkHolds checks that stream holds n messages and returns their bytes.
func (w *world) checkHolds(ctx context.Context, stream string, n uint64) (uint64, error) {
	s, err := w.js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	if info.State.Msgs != n {
		return 0, fmt.Errorf("preload: %s holds %d messages; want %d", stream, info.State.Msgs, n)
	}
	return info.State.Bytes, nil
}

// arrivals records the first arrival of each request's result, through a
// core subscription (as resultCounter does): a flag per request and the
// arrival times in order. For a million results that is 9 MB, where a
// map of their ids would take some 100 MB of the bench's memory, beside
// the simulator's.
type arrivals struct {
	sub   *nats.Subscription
	index func(msgID string) (int, bool)
	want  int
	base  time.Time     // at is relative to it
	done  chan struct{} // closed at the want-th distinct result

	mu   sync.Mutex
	seen []bool
	at   []time.Duration
}

// countArrivals subscribes to subject and waits until the server has the
// subscription. index maps a result's Nats-Msg-Id to its request, 0 to
// want-1; results it does not know are left out.
func (w *world) countArrivals(subject string, want int, index func(string) (int, bool)) (*arrivals, error) {
	a := &arrivals{index: index, want: want, base: time.Now(), done: make(chan struct{}),
		seen: make([]bool, want), at: make([]time.Duration, 0, want)}
	sub, err := w.nc.Subscribe(subject, a.onMsg)
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
	a.sub = sub
	return a, nil
}

func (a *arrivals) onMsg(m *nats.Msg) {
	i, ok := a.index(m.Header.Get(jetstream.MsgIDHeader))
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen[i] {
		return
	}
	a.seen[i] = true
	a.at = append(a.at, time.Since(a.base))
	if len(a.at) == a.want {
		close(a.done)
	}
}

// count is how many distinct results have arrived.
func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at)
}

// times are the arrival times since base, sorted.
func (a *arrivals) times() []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := slices.Clone(a.at)
	slices.Sort(out)
	return out
}

// wait waits for the want-th result; a process of ps exiting first, or
// ctx ending, is an error.
func (a *arrivals) wait(ctx context.Context, ps ...*process) error {
	exited := make(chan *process, len(ps))
	for _, p := range ps {
		go func() {
			select {
			case <-p.exited:
				exited <- p
			case <-a.done:
			case <-ctx.Done():
			}
		}()
	}
	progress := time.NewTicker(30 * time.Second)
	defer progress.Stop()
	for {
		select {
		case <-progress.C:
			fmt.Fprintf(os.Stderr, "bench: %s of %s results...\n", thousands(a.count()), thousands(a.want))
			continue
		case <-a.done:
			return nil
		case p := <-exited:
			return fmt.Errorf("%s exited after %d of %d results: %v: %s", p.name, a.count(), a.want, p.waitErr, p.tail())
		case <-ctx.Done():
			return fmt.Errorf("%d of %d results before the time-out", a.count(), a.want)
		}
	}
}

func (a *arrivals) stop() { _ = a.sub.Unsubscribe() }

// longestGap is the longest time between two consecutive arrivals of
// at (sorted), and how many arrived before it.
func longestGap(at []time.Duration) (gap time.Duration, after int) {
	for i := 1; i < len(at); i++ {
		if d := at[i] - at[i-1]; d > gap {
			gap, after = d, i
		}
	}
	return gap, after
}

// tenthRates are results per second over each tenth of the arrivals, in
// order: a tenth's results but one over the time from its first arrival
// to its last (none with fewer than 20 arrivals).
func tenthRates(at []time.Duration) []float64 {
	n := len(at)
	k := n / 10
	if k < 2 {
		return nil
	}
	rates := make([]float64, 10)
	for i := range rates {
		from, to := at[i*k], at[i*k+k-1]
		if i == 9 {
			from, to = at[n-k], at[n-1]
		}
		if to > from {
			rates[i] = float64(k-1) / (to - from).Seconds()
		}
	}
	return rates
}

// trendRatio is the least-squares line through the ten tenths' rates,
// its value at the last tenth over that at the first: the same question
// as the last tenth over the first, less at the mercy of what one window
// of the machine did (0 without rates).
func trendRatio(rates []float64) float64 {
	n := float64(len(rates))
	if n < 2 {
		return 0
	}
	var mx, my float64
	for i, y := range rates {
		mx += float64(i)
		my += y
	}
	mx, my = mx/n, my/n
	var sxy, sxx float64
	for i, y := range rates {
		sxy += (float64(i) - mx) * (y - my)
		sxx += (float64(i) - mx) * (float64(i) - mx)
	}
	slope := sxy / sxx
	first := my + slope*(0-mx)
	if first <= 0 {
		return 0
	}
	return (my + slope*(n-1-mx)) / first
}

// FirstRate and LastRate are results per second over the first and the
// last tenth of the results (0 without rates).
func (q *scaleQueue) FirstRate() float64 {
	if len(q.Rates) == 0 {
		return 0
	}
	return q.Rates[0]
}

func (q *scaleQueue) LastRate() float64 {
	if len(q.Rates) == 0 {
		return 0
	}
	return q.Rates[len(q.Rates)-1]
}

// mark is the state of a run when a share of the results had arrived.
type mark struct {
	// Results is how many had arrived when it was taken, at Time.
	Results int
	Time    time.Time
	// RSS is the service's resident set (VmRSS) then.
	RSS int64
	// CPU seconds so far of the service, of the broker and of this
	// process (the bench), and of the whole machine (machineBusy).
	Service, Broker, Bench, Machine float64
	// BenchGCs is how many garbage collections this process has finished.
	BenchGCs uint64
}

// gcCycles is how many garbage collections this process has finished.
func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// busy is how many of the machine's cores all processes used from m to n
// (2: both of two): below the core count, the run was not bound by CPU
// alone.
func (m mark) busy(n mark) float64 {
	d := n.Time.Sub(m.Time).Seconds()
	if d <= 0 {
		return 0
	}
	return (n.Machine - m.Machine) / d
}

// others is the share of the machine's cores other processes used from
// m to n (1: one whole core).
func (m mark) others(n mark) float64 {
	d := n.Time.Sub(m.Time).Seconds()
	if d <= 0 {
		return 0
	}
	return max((n.Machine-m.Machine)-(n.Service-m.Service)-(n.Broker-m.Broker)-(n.Bench-m.Bench), 0) / d
}

// per1000 is CPU seconds per 1,000 results from m to n of the process
// cpu picks.
func (m mark) per1000(n mark, cpu func(mark) float64) float64 {
	if n.Results <= m.Results {
		return 0
	}
	return (cpu(n) - cpu(m)) / float64(n.Results-m.Results) * 1000
}

// marker takes a mark each time another tenth of the results has
// arrived (looking every 200 ms), and one when stopped.
type marker struct {
	quit chan struct{}
	out  chan [10]mark
}

func startMarks(pid, brokerPID int, arr *arrivals, n int) *marker {
	m := &marker{quit: make(chan struct{}), out: make(chan [10]mark, 1)}
	take := func() (mark, error) {
		k := mark{Results: arr.count(), Time: time.Now()}
		var err1, err2, err3, err4, err5 error
		k.RSS, err1 = currentRSS(pid)
		k.Service, err2 = cpuSeconds(pid)
		k.Broker, err3 = cpuSeconds(brokerPID)
		k.Bench, err4 = cpuSeconds(os.Getpid())
		k.Machine, err5 = machineBusy()
		k.BenchGCs = gcCycles()
		return k, errors.Join(err1, err2, err3, err4, err5)
	}
	go func() {
		var marks [10]mark
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.quit:
				marks[9], _ = take()
				m.out <- marks
				return
			case <-t.C:
			}
			got := arr.count()
			for i := range 9 {
				if marks[i].Results == 0 && got >= n*(i+1)/10 {
					if k, err := take(); err == nil {
						marks[i] = k
					}
				}
			}
		}
	}()
	return m
}

// stop ends the marking and returns the marks at each tenth of the
// results but the last (zero if not taken), and now.
func (m *marker) stop() [10]mark {
	close(m.quit)
	return <-m.out
}

// freePort is a loopback port free now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// scrapeMetrics fetches a replica's /metrics.
func scrapeMetrics(addr string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return string(b), nil
}

// metricSum is the sum of the samples of metric name in text (the
// Prometheus text format) whose labels include every one of labels.
func metricSum(text, name string, labels map[string]string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		metric, set, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		have := map[string]string{}
		for pair := range strings.SplitSeq(strings.TrimSuffix(set, "}"), ",") {
			if k, v, ok := strings.Cut(pair, "="); ok {
				have[k] = strings.Trim(v, `"`)
			}
		}
		match := true
		for k, v := range labels {
			match = match && have[k] == v
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil && match {
			sum += f
		}
	}
	return sum
}

// verifyChains checks part two afterwards: the request stream empties
// (parked copies too), both replicas stop cleanly, nothing is
// dead-lettered, each request has exactly one result, with its outcome,
// and Zoom performed for each user its creation, update and deactivation,
// once each and in that order, never two calls for one user at once.
func verifyChains(ctx context.Context, w *world, sim *testenv.Simulator, ps []*process, users int) []string {
	var problems []string
	if err := waitFor(ctx, 30*time.Second, func() error {
		left, err := w.streamMsgs(ctx, requestStream)
		if err == nil && left > 0 {
			err = fmt.Errorf("%d requests still in %s 30 s after the last result", left, requestStream)
		}
		return err
	}); err != nil {
		problems = append(problems, err.Error())
	}
	for i, p := range ps {
		if err := p.stop(30 * time.Second); err != nil {
			problems = append(problems, fmt.Sprintf("stop replica %d: %v", i+1, err))
		}
	}
	if dl, err := w.streamMsgs(ctx, deadStream); err != nil || dl != 0 {
		problems = append(problems, fmt.Sprintf("%d dead letters (%v)", dl, err))
	}
	n := len(chainOps) * users
	index := chainIndex(users)
	seen := make([]int, n)
	bad := map[string]int{}
	if err := w.eachMsg(ctx, resultStream, func(m resultMsg) {
		var ev peer.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			bad["results that are not JSON"]++
			return
		}
		i, ok := index(ev.ID)
		switch {
		case !ok:
			bad["results on "+m.Subject+" with an unexpected id"]++
		case m.MsgID != ev.ID:
			bad["results whose Nats-Msg-Id is not their id"]++
		case ev.Data.Outcome != chainOps[i%len(chainOps)].outcome || m.Subject != resultAllPrefix+"."+ev.Data.Outcome:
			bad[chainOps[i%len(chainOps)].op+" results that are not "+chainOps[i%len(chainOps)].outcome]++
		default:
			seen[i]++
		}
	}); err != nil {
		problems = append(problems, "read results: "+err.Error())
	}
	var kinds []string
	for what, k := range bad {
		kinds = append(kinds, fmt.Sprintf("%d %s", k, what))
	}
	sort.Strings(kinds)
	problems = append(problems, kinds...)
	missing, doubled := 0, 0
	for _, k := range seen {
		switch {
		case k == 0:
			missing++
		case k > 1:
			doubled++
		}
	}
	if missing+doubled > 0 {
		problems = append(problems, fmt.Sprintf("%d requests without a result, %d with more than one", missing, doubled))
	}

	st := sim.Stats()
	if st.Overlaps != 0 {
		problems = append(problems, fmt.Sprintf("%d calls for a user while another for the same user was served", st.Overlaps))
	}
	for route, byStatus := range st.Requests {
		for status, k := range byStatus {
			if status/100 != 2 {
				problems = append(problems, fmt.Sprintf("Zoom answered %d to %d %s", status, k, route))
			}
		}
	}
	outOfOrder, example := 0, ""
	for u := range users {
		email := "u" + strconv.Itoa(u) + "@bench.example.com"
		h := sim.History(email)
		ok := len(h) == len(chainOps) && sim.Creations(email) == 1
		for k := 0; ok && k < len(h); k++ {
			ok = h[k].Method == chainOps[k].method
		}
		ok = ok && strings.Contains(string(h[2].Body), `"deactivate"`)
		if !ok {
			outOfOrder++
			if example == "" {
				var calls []string
				for _, c := range h {
					calls = append(calls, c.Method+" "+string(c.Body))
				}
				example = fmt.Sprintf("%s: %s", email, strings.Join(calls, ", "))
			}
		}
	}
	if outOfOrder > 0 {
		problems = append(problems, fmt.Sprintf("%d users whose calls at Zoom were not POST, PATCH, PUT deactivate, once each (e.g. %s)", outOfOrder, example))
	}
	return problems
}
