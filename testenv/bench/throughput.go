package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/testenv"
	"github.com/zoomprov/consumer/testenv/bench/internal/peer"
)

// measurement is one consumer's run.
type measurement struct {
	Consumer string
	Run      int // 1-based
	Load     string
	N        int
	// Elapsed is from the consumer's start to its N-th distinct result
	// published (and then checked to be stored); FirstResult from its
	// start to the first.
	Elapsed, FirstResult time.Duration
	// CPUConsumer and CPUBroker are CPU seconds over Elapsed.
	CPUConsumer, CPUBroker float64
	// CPUOthers is the CPU seconds of every other process on the machine
	// (not the bench, which hosts the simulator) over the same interval:
	// other people's work disturbing the run.
	CPUOthers float64
	// QuietWait is how long the bench waited for a quiet machine before
	// the run, and Quiet whether it got one.
	QuietWait time.Duration
	Quiet     bool
	// RSS is the consumer's peak resident set.
	RSS int64
	// TokenPOSTs is how many tokens the consumer fetched.
	TokenPOSTs int
	// Problems are what verification found wrong (empty: exactly one
	// correct result per request, nothing dead-lettered, nothing left).
	Problems []string
	Err      error
}

// Rate is results per second.
func (m measurement) Rate() float64 {
	if m.Elapsed <= 0 {
		return 0
	}
	return float64(m.N) / m.Elapsed.Seconds()
}

// Disturbed reports whether other processes used more than quietShare
// of a core during the run.
func (m measurement) Disturbed() bool {
	return m.CPUOthers > quietShare*m.Elapsed.Seconds()
}

// cpuPer1000 is CPU seconds per 1,000 results.
func (m measurement) cpuPer1000(cpu float64) float64 { return cpu / float64(m.N) * 1000 }

// env is the environment every consumer gets: the service's variables,
// pointing at this run's broker and simulator.
func env(natsURL string, sim *testenv.Simulator) []string {
	return []string{
		"PATH=/usr/bin:/bin",
		"NATS_URL=" + natsURL,
		"ZOOM_API_URL=" + sim.APIURL(),
		"ZOOM_TOKEN_URL=" + sim.TokenURL(),
		"ZOOM_ACCOUNT_ID=" + testenv.DefaultSimAccountID,
		"ZOOM_CLIENT_ID=" + testenv.DefaultSimClientID,
		"ZOOM_CLIENT_SECRET=" + testenv.DefaultSimClientSecret,
	}
}

// measureThroughput runs c on n preloaded ssoCreate requests in a fresh
// world with a simulator that answers at once and without limit.
func measureThroughput(ctx context.Context, o options, c consumer, run, n int) (m measurement) {
	m = measurement{Consumer: c.Name, Run: run, N: n, Load: loadAvg()}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	w, err := startWorld(ctx, o.natsBin, o.deployDir)
	if err != nil {
		m.Err = err
		return m
	}
	defer w.close()
	if err := w.preload(ctx, "ssoCreate", n); err != nil {
		m.Err = err
		return m
	}
	// Keep no request log: it would be the bench's memory and CPU.
	sim := testenv.NewSimulator(testenv.SimConfig{MaxRecordedRequests: 1})
	defer sim.Close()

	rc, err := w.countResults(n)
	if err != nil {
		m.Err = err
		return m
	}
	defer rc.stop()
	meter, err := startCPUMeter(w.brokerPID)
	if err != nil {
		m.Err = err
		return m
	}
	p, err := startProcess(c, env(w.broker.URL(), sim), o.keepLogs)
	if err != nil {
		m.Err = err
		return m
	}
	defer p.cleanup()
	select {
	case <-rc.done:
	case <-p.exited:
		_, _, got := rc.times()
		m.Err = fmt.Errorf("%s exited after %d of %d results: %v: %s", c.Name, got, n, p.waitErr, p.tail())
		return m
	case <-ctx.Done():
		_, _, got := rc.times()
		m.Err = fmt.Errorf("%d of %d results within %v", got, n, o.timeout)
		return m
	}
	cpuC, cpuB, cpuO, err1 := meter.stop(p.pid)
	rss, err2 := peakRSS(p.pid)
	if err := errors.Join(err1, err2); err != nil {
		m.Err = err
		return m
	}
	first, last, _ := rc.times()
	m.FirstResult, m.Elapsed = first.Sub(p.started), last.Sub(p.started)
	m.CPUConsumer, m.CPUBroker, m.CPUOthers, m.RSS = cpuC, cpuB, cpuO, rss

	// Not measured from here on.
	if err := w.waitStored(ctx, resultStream, uint64(n), 10*time.Second); err != nil {
		m.Problems = append(m.Problems, err.Error())
	}
	problems, _ := verify(ctx, w, sim, p, "ssoCreate", n, false)
	m.Problems = append(m.Problems, problems...)
	m.TokenPOSTs = sim.Stats().TokensIssued
	return m
}

// verify checks, after a run, that every request got exactly one correct
// result: the request stream empties (every request acked), the consumer
// stops cleanly, nothing was dead-lettered, the result stream holds one
// created event of the contract's shape per request, and Zoom created
// each user once and answered nothing but 201 (a request handled twice
// would have met a 409). With quota, deferred events and 429s are
// allowed, and the deferred events are counted.
func verify(ctx context.Context, w *world, sim *testenv.Simulator, p *process, action string, n int, quota bool) (problems []string, deferred int) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		left, err := w.streamMsgs(ctx, requestStream)
		if err != nil {
			problems = append(problems, "request stream: "+err.Error())
			break
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			problems = append(problems, fmt.Sprintf("%d requests still in %s 30 s after the last result", left, requestStream))
			break
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	if err := p.stop(30 * time.Second); err != nil {
		problems = append(problems, "stop: "+err.Error())
	}
	if dl, err := w.streamMsgs(ctx, deadStream); err != nil || dl != 0 {
		problems = append(problems, fmt.Sprintf("%d dead letters (%v)", dl, err))
	}
	// A result at a time: a million of them would not fit in memory
	// comfortably.
	check := newResultCheck(action, n)
	others := map[string]int{}
	if err := w.eachMsg(ctx, resultStream, func(m resultMsg) {
		if m.Subject == resultCreated {
			check.add(m)
		} else {
			others[m.Subject]++
		}
	}); err != nil {
		problems = append(problems, "read results: "+err.Error())
	} else {
		if quota {
			deferred = others[resultAllPrefix+".deferred"]
			delete(others, resultAllPrefix+".deferred")
		}
		for subj, k := range others {
			problems = append(problems, fmt.Sprintf("%d results on %s", k, subj))
		}
		problems = append(problems, check.problems()...)
	}
	st := sim.Stats()
	for status, k := range st.Requests[testenv.RouteCreateUser] {
		if status != http.StatusCreated && !(quota && status == http.StatusTooManyRequests) {
			problems = append(problems, fmt.Sprintf("Zoom answered %d to %d POST /v2/users", status, k))
		}
	}
	if got := sim.TotalCreations(); got != n {
		problems = append(problems, fmt.Sprintf("Zoom created %d users for %d requests", got, n))
	}
	twice := 0
	for i := range n {
		if sim.Creations("u"+strconv.Itoa(i)+"@bench.example.com") != 1 {
			twice++
		}
	}
	if twice > 0 {
		problems = append(problems, fmt.Sprintf("%d users not created exactly once", twice))
	}
	return problems, deferred
}

// resultMsg is what checkResults needs of a stored result.
type resultMsg struct {
	Subject, MsgID, ContentType string
	Data                        []byte
}

// eachMsg calls f with every message stream holds now, in stream order,
// read with an ordered consumer.
func (w *world) eachMsg(ctx context.Context, stream string, f func(resultMsg)) error {
	total, err := w.streamMsgs(ctx, stream)
	if err != nil {
		return err
	}
	cons, err := w.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	for read := uint64(0); read < total; {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			f(resultMsg{Subject: m.Subject(), MsgID: m.Headers().Get(jetstream.MsgIDHeader),
				ContentType: m.Headers().Get("Content-Type"), Data: m.Data()})
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if got == 0 {
			return fmt.Errorf("read %d of %d messages", read, total)
		}
		read += uint64(got)
	}
	return nil
}

// checkResults checks that msgs are exactly one created event per request
// 0..n-1, each shaped as docs/contract.md says. Problems of one kind
// are counted, not listed one by one.
func checkResults(msgs []resultMsg, action string, n int) []string {
	c := newResultCheck(action, n)
	for _, m := range msgs {
		c.add(m)
	}
	return c.problems()
}

// resultCheck is checkResults one result at a time.
type resultCheck struct {
	action string
	n      int
	seen   []bool
	bad    map[string]int
}

func newResultCheck(action string, n int) *resultCheck {
	return &resultCheck{action: action, n: n, seen: make([]bool, n), bad: map[string]int{}}
}

func (c *resultCheck) add(m resultMsg) {
	var ev peer.Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		c.bad["results that are not JSON"]++
		return
	}
	reqID, ok := strings.CutSuffix(ev.ID, ":result")
	i, err := strconv.Atoi(strings.TrimPrefix(reqID, "bench-"))
	switch {
	case !ok || err != nil || !strings.HasPrefix(reqID, "bench-") || i < 0 || i >= c.n:
		c.bad["results with an unexpected id"]++
		return
	case c.seen[i]:
		c.bad["requests with more than one result"]++
		return
	}
	c.seen[i] = true
	d := ev.Data
	for what, wrong := range map[string]bool{
		"results whose Nats-Msg-Id is not their id":    m.MsgID != ev.ID,
		"results without the CloudEvents content type": m.ContentType != peer.ContentType,
		"results with wrong CloudEvents attributes": ev.SpecVersion != "1.0" || ev.Type != "zoom.user.provisioning.created" ||
			ev.Subject != reqID || ev.Source != "zoom-provisioner" || ev.DataContentType != "application/json" || ev.Time == "",
		"results with wrong data": d.RequestID != reqID || d.Action != c.action || d.Email != "u"+strconv.Itoa(i)+"@bench.example.com" ||
			d.Outcome != "created" || d.ZoomUserID == "" || d.HTTPStatus != http.StatusCreated || d.Attempt < 1 || d.StreamSequence == 0,
	} {
		if wrong {
			c.bad[what]++
		}
	}
}

// problems are what the results added so far show wrong.
func (c *resultCheck) problems() []string {
	var out []string
	for what, k := range c.bad {
		out = append(out, fmt.Sprintf("%d %s", k, what))
	}
	sort.Strings(out)
	results := 0
	for _, ok := range c.seen {
		if ok {
			results++
		}
	}
	if results != c.n {
		out = append(out, fmt.Sprintf("%d of %d requests have a result", results, c.n))
	}
	return out
}
