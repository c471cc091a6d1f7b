package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/zoomprov/consumer/testenv"
)

// backlogResult is the backlog scenario's measurement. Durations marked
// "after the reset" are from the quota reset (the simulator's new quota
// day) on the simulator's clock, which is this process's.
type backlogResult struct {
	N, Rate         int
	Latency, Window time.Duration
	Load            string
	// GateClosed is from the service's start to the first daily-limit
	// 429; Reset from its start to the reset.
	GateClosed, Reset time.Duration
	// CreatedBefore, Daily429Before and QPS429Before count answers to
	// POST /v2/users before the reset; SentClosed counts POSTs that
	// arrived between the first daily 429 and the reset.
	CreatedBefore, Daily429Before, QPS429Before, SentClosed int
	// FirstPOST is the first POST after the reset; To80 and To95 the end
	// of the first rolling one-second window after the reset with at
	// least Rate (95% of Rate) created users; -1 if none.
	FirstPOST, To80, To95 time.Duration
	// Steady is created users per second from 2 s after the reset to the
	// last one; SteadyMin and SteadyMax the fewest and most in one whole
	// second of that span.
	Steady               float64
	SteadyMin, SteadyMax int
	// Drain is from the reset to the last user created.
	Drain time.Duration
	// QPS429After counts 429s after the reset (all per-second: the
	// daily limit is off by then).
	QPS429After int
	// Deferred is the number of deferred result events.
	Deferred int
	// CPUService and CPUBroker are CPU seconds from the service's start
	// to the last result; RSS is the service's peak resident set.
	CPUService, CPUBroker float64
	// CPUOthers is the CPU seconds of all other processes meanwhile.
	CPUOthers float64
	// QuietWait and Quiet: see measurement.
	QuietWait time.Duration
	Quiet     bool
	RSS       int64
	Problems  []string
	Err       error
}

// measureBacklog runs the backlog scenario with the service.
func measureBacklog(ctx context.Context, o options) (b backlogResult) {
	b = backlogResult{N: o.backlogN, Rate: o.backlogRate, Latency: o.backlogLat, Window: o.backlogWindow, Load: loadAvg()}
	expected := o.backlogWindow + time.Duration(float64(o.backlogN)/float64(o.backlogRate)*float64(time.Second))
	ctx, cancel := context.WithTimeout(ctx, max(o.timeout, 2*expected))
	defer cancel()
	w, err := startWorld(ctx, o.natsBin, o.deployDir)
	if err != nil {
		b.Err = err
		return b
	}
	defer w.close()
	if err := w.preload(ctx, "create", o.backlogN); err != nil {
		b.Err = err
		return b
	}
	// The quota allows one create per day; the second request's daily
	// 429 closes the gate until the day ends, Window after it began.
	sim := testenv.NewSimulator(testenv.SimConfig{
		RatePerSecond: o.backlogRate, Latency: o.backlogLat,
		DailyCreateLimit: 1, DailyWindow: o.backlogWindow, MaxRecordedRequests: -1,
	})
	defer sim.Close()

	// Quota days are aligned like the simulator's (time.Truncate), so
	// start just after one begins: the reset then comes Window into the
	// run.
	dayStart := time.Now().Truncate(o.backlogWindow).Add(o.backlogWindow)
	select {
	case <-time.After(time.Until(dayStart) + 100*time.Millisecond):
	case <-ctx.Done():
		b.Err = ctx.Err()
		return b
	}
	rc, err := w.countResults(o.backlogN)
	if err != nil {
		b.Err = err
		return b
	}
	defer rc.stop()
	meter, err := startCPUMeter(w.brokerPID)
	if err != nil {
		b.Err = err
		return b
	}
	svc := o.service()
	svc.Env = []string{"ZOOM_RATE_LIMIT=" + strconv.Itoa(o.backlogRate), "HTTP_ADDR=off", "LOG_LEVEL=warn"}
	p, err := startProcess(svc, env(w.broker.URL(), sim), o.keepLogs)
	if err != nil {
		b.Err = err
		return b
	}
	defer p.cleanup()

	// Once the gate is closed the rest of the day is unlimited, so that
	// the 20,000 fit into the next one; a POST before the reset would now
	// succeed and show as sent behind the closed gate.
	lifted := false
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		if !lifted && sim.Stats().RateLimited[testenv.RateLimitDaily] > 0 {
			sim.SetDailyCreateLimit(0)
			lifted = true
			tick.Stop()
		}
		select {
		case <-tick.C:
		case <-rc.done:
			done = true
		case <-p.exited:
			b.Err = fmt.Errorf("the service exited: %v: %s", p.waitErr, p.tail())
			return b
		case <-ctx.Done():
			_, _, got := rc.times()
			b.Err = fmt.Errorf("%d of %d results within %v (gate closed: %v)", got, o.backlogN, max(o.timeout, 2*expected), lifted)
			return b
		}
	}
	cpuS, cpuB, cpuO, err1 := meter.stop(p.pid)
	rss, err2 := peakRSS(p.pid)
	if err := errors.Join(err1, err2); err != nil {
		b.Err = err
		return b
	}
	b.CPUService, b.CPUBroker, b.CPUOthers, b.RSS = cpuS, cpuB, cpuO, rss

	if err := w.waitStored(ctx, resultStream, uint64(o.backlogN), 10*time.Second); err != nil {
		b.Problems = append(b.Problems, err.Error())
	}
	problems, deferred := verify(ctx, w, sim, p, "create", o.backlogN, true)
	b.Problems, b.Deferred = append(b.Problems, problems...), deferred
	if err := b.analyse(sim.Requests(), sim.Stats(), p.started); err != nil {
		b.Err = err
	}
	return b
}

// analyse computes the timings from the simulator's request log.
func (b *backlogResult) analyse(log []testenv.RecordedRequest, st testenv.SimStats, started time.Time) error {
	var posts []testenv.RecordedRequest
	for _, r := range log {
		if r.Route == testenv.RouteCreateUser {
			posts = append(posts, r)
		}
	}
	slices.SortFunc(posts, func(a, b testenv.RecordedRequest) int { return a.Time.Compare(b.Time) })
	var first429 time.Time
	for _, r := range posts {
		if r.Status == http.StatusTooManyRequests && first429.IsZero() {
			first429 = r.Time
		}
	}
	if first429.IsZero() {
		return errors.New("no daily-limit 429: the gate never closed")
	}
	reset := first429.Truncate(b.Window).Add(b.Window)
	b.GateClosed, b.Reset = first429.Sub(started), reset.Sub(started)
	var created []time.Time
	for _, r := range posts {
		before := r.Time.Before(reset)
		if before && r.Time.After(first429) {
			b.SentClosed++
		}
		switch {
		case r.Status == http.StatusCreated && before:
			b.CreatedBefore++
		case r.Status == http.StatusCreated:
			created = append(created, r.Time)
		case r.Status == http.StatusTooManyRequests && !before:
			// The daily limit is lifted before the reset, so this is
			// the per-second limit.
			b.QPS429After++
		}
	}
	b.Daily429Before = st.RateLimited[testenv.RateLimitDaily]
	b.QPS429Before = st.RateLimited[testenv.RateLimitQPS] - b.QPS429After
	if len(created) == 0 {
		return errors.New("no user created after the reset")
	}
	b.FirstPOST = created[0].Sub(reset)
	b.To80 = timeToWindow(created, reset, b.Rate)
	b.To95 = timeToWindow(created, reset, (b.Rate*95+99)/100)
	last := created[len(created)-1]
	b.Drain = last.Sub(reset)
	from := reset.Add(2 * time.Second)
	n := 0
	for _, t := range created {
		if !t.Before(from) {
			n++
		}
	}
	if span := last.Sub(from); span > 0 {
		b.Steady = float64(n) / span.Seconds()
	}
	b.SteadyMin, b.SteadyMax = perSecond(created, from, last)
	return nil
}

// timeToWindow is the time from reset to the end of the first rolling
// one-second window (ending at an arrival) that holds at least want
// arrivals; -1 if none does. ts is sorted.
func timeToWindow(ts []time.Time, reset time.Time, want int) time.Duration {
	lo := 0
	for hi, t := range ts {
		for ts[lo].Add(time.Second).Compare(t) <= 0 {
			lo++
		}
		if hi-lo+1 >= want {
			return t.Sub(reset)
		}
	}
	return -1
}

// perSecond is the fewest and most arrivals in one whole second
// [from+k s, from+(k+1) s) that ends by last.
func perSecond(ts []time.Time, from, last time.Time) (lo, hi int) {
	lo = -1
	for s := from; !s.Add(time.Second).After(last); s = s.Add(time.Second) {
		n := 0
		for _, t := range ts {
			if !t.Before(s) && t.Before(s.Add(time.Second)) {
				n++
			}
		}
		if lo < 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	return max(lo, 0), hi
}
