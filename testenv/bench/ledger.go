package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/ledger"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/testenv"
)

// The ledger scenario's names (topology.Default()).
const (
	ledgerBucket   = "zoom_ledger"
	ledgerConsumer = "zoom-provisioner-ledger"
	sampleUser     = "sample@bench.example.com"
)

// ledgerPoint is `consumer user show` timed with a given number of
// results stored.
type ledgerPoint struct {
	Results, Users int
	// Index is how long the service took to bring the ledger up to date
	// with the results published for this point.
	Index time.Duration
	// Show are the wall times of the `consumer user show` runs, sorted.
	Show []time.Duration
	// Bytes and Keys are the bucket's stream size and entries; Sample the
	// size of the sample user's entry.
	Bytes, Keys, Sample uint64
}

func (p ledgerPoint) median() time.Duration { return p.Show[len(p.Show)/2] }

// ledgerResult is the ledger scenario's measurement.
type ledgerResult struct {
	Small, Large ledgerPoint
	// Reindex is how long `consumer user reindex` took with the large
	// number of results stored, the service running.
	Reindex   time.Duration
	Runs      int
	Load      string
	QuietWait time.Duration
	Quiet     bool
	Problems  []string
	Err       error
}

// ratio is the median show time with the large number of results over
// that with the small.
func (r ledgerResult) ratio() float64 {
	return float64(r.Large.median()) / float64(r.Small.median())
}

// measureLedger runs the ledger scenario: the service (`consumer run`) on
// a fresh broker, its ledger fed with o.ledgerSmall results, `consumer user
// show` of one user timed o.ledgerRuns times with the real binary; then
// results up to o.ledgerLarge, and the same timing again.
func measureLedger(ctx context.Context, o options) (r ledgerResult) {
	r = ledgerResult{Runs: o.ledgerRuns, Load: loadAvg()}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	w, err := startWorld(ctx, o.natsBin, o.deployDir)
	if err != nil {
		r.Err = err
		return r
	}
	defer w.close()
	sim := testenv.NewSimulator(testenv.SimConfig{})
	defer sim.Close()
	svc := o.service()
	p, err := startProcess(svc, env(w.broker.URL(), sim), o.keepLogs)
	if err != nil {
		r.Err = err
		return r
	}
	defer p.cleanup()
	// The service creates the bucket and the ledger's consumer.
	if err := waitFor(ctx, 30*time.Second, func() error {
		_, err := w.js.Consumer(ctx, resultStream, ledgerConsumer)
		return err
	}); err != nil {
		r.Err = fmt.Errorf("the service did not create %s: %w", ledgerConsumer, err)
		return r
	}

	gen := &resultGen{}
	gen.life(sampleUser, "sample") // the user shown
	for _, point := range []struct {
		n   int
		out *ledgerPoint
	}{{o.ledgerSmall, &r.Small}, {o.ledgerLarge, &r.Large}} {
		for i := 0; gen.count() < point.n; i++ {
			gen.life("u"+strconv.Itoa(gen.users)+"@bench.example.com", "b"+strconv.Itoa(gen.users))
		}
		start := time.Now()
		if err := gen.publish(ctx, w.js, point.n); err != nil {
			r.Err = err
			return r
		}
		if err := waitFor(ctx, o.timeout, func() error { return ledgerCaughtUp(ctx, w.js) }); err != nil {
			r.Err = fmt.Errorf("the ledger did not catch up with %d results: %w", point.n, err)
			return r
		}
		pt := ledgerPoint{Results: point.n, Users: gen.users, Index: time.Since(start)}
		for range o.ledgerRuns {
			d, problem := timeShow(ctx, o.bins["service"], w.broker.URL())
			if problem != "" {
				r.Problems = append(r.Problems, problem)
				break
			}
			pt.Show = append(pt.Show, d)
		}
		if len(pt.Show) == 0 {
			r.Err = errors.New("no `consumer user show` run succeeded")
			return r
		}
		slices.Sort(pt.Show)
		pt.Bytes, pt.Keys, pt.Sample, err = bucketSize(ctx, w.js)
		if err != nil {
			r.Err = err
			return r
		}
		*point.out = pt
	}
	// A rebuild of the whole ledger with the large number of results, the
	// service running; the sample user reads the same afterwards.
	cmd := exec.CommandContext(ctx, o.bins["service"], "user", "reindex")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "NATS_URL=" + w.broker.URL()}
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("consumer user reindex: %v: %s", err, out))
	} else {
		r.Reindex = time.Since(start)
		if _, problem := timeShow(ctx, o.bins["service"], w.broker.URL()); problem != "" {
			r.Problems = append(r.Problems, "after the reindex: "+problem)
		}
	}
	if err := p.stop(10 * time.Second); err != nil {
		r.Problems = append(r.Problems, "the service: "+err.Error())
	}
	return r
}

// timeShow runs `consumer user show sampleUser --json` once and checks
// what it prints: the sample user's life, deleted.
func timeShow(ctx context.Context, bin, natsURL string) (time.Duration, string) {
	cmd := exec.CommandContext(ctx, bin, "user", "show", sampleUser, "--json")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "NATS_URL=" + natsURL}
	start := time.Now()
	out, err := cmd.Output()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Sprintf("consumer user show: %v", err)
	}
	var v ledger.View
	if err := json.Unmarshal(out, &v); err != nil {
		return 0, fmt.Sprintf("consumer user show printed %q: %v", out, err)
	}
	if v.State != ledger.StateDeleted || len(v.Requests) != 6 {
		return 0, fmt.Sprintf("consumer user show of the sample user: state %s, %d requests; want deleted and 6", v.State, len(v.Requests))
	}
	return d, ""
}

// ledgerCaughtUp is nil once the ledger's consumer has every result
// applied.
func ledgerCaughtUp(ctx context.Context, js jetstream.JetStream) error {
	c, err := js.Consumer(ctx, resultStream, ledgerConsumer)
	if err != nil {
		return err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return err
	}
	if info.NumPending > 0 || info.NumAckPending > 0 {
		return fmt.Errorf("%d results waiting, %d not acknowledged", info.NumPending, info.NumAckPending)
	}
	return nil
}

// bucketSize returns the bytes the bucket's stream holds, its entries,
// and the size of the sample user's entry.
func bucketSize(ctx context.Context, js jetstream.JetStream) (bytes, keys, sample uint64, err error) {
	s, err := js.Stream(ctx, "KV_"+ledgerBucket)
	if err != nil {
		return 0, 0, 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	kv, err := js.KeyValue(ctx, ledgerBucket)
	if err != nil {
		return 0, 0, 0, err
	}
	e, err := kv.Get(ctx, ledger.Key(sampleUser))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("the sample user's entry: %w", err)
	}
	return info.State.Bytes, info.State.Msgs, uint64(len(e.Value())), nil
}

// waitFor polls f until it returns nil or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond): // polling interval
		}
	}
}

// resultGen makes result events as the service publishes them: users'
// lives, each a creation, an update, a deactivation, an activation and a
// deletion, with the request as decoded (data.request).
type resultGen struct {
	results   []messages.Result
	published int
	users     int
	seq       uint64
}

func (g *resultGen) count() int { return len(g.results) }

// life adds one user's life; the sample user's has a failed update too.
func (g *resultGen) life(email, id string) {
	add := func(suffix, action string, o messages.Outcome, body string) {
		g.seq++
		r := messages.Result{RequestID: id + "-" + suffix, Action: action, Email: email, Outcome: o,
			StreamSequence: g.seq, Attempt: 1, Request: json.RawMessage(body)}
		switch o {
		case messages.OutcomeCreated:
			r.HTTPStatus, r.ZoomUserID = 201, "zid-"+id
		case messages.OutcomeFailed:
			r.HTTPStatus, r.ZoomCode, r.ZoomMessage, r.Reason = 404, 1001, "User does not exist: "+email, messages.ReasonNotFound
		default:
			r.HTTPStatus = 204
		}
		g.results = append(g.results, r)
	}
	add("c", "ssoCreate", messages.OutcomeCreated, `{"action":"ssoCreate","user_info":{"email":"`+email+`","type":1,"first_name":"Bench","last_name":"User `+id+`"}}`)
	add("u", "update", messages.OutcomeUpdated, `{"email":"`+email+`","user":{"job_title":"Engineer","dept":"Bench"}}`)
	if id == "sample" {
		add("f", "update", messages.OutcomeFailed, `{"email":"`+email+`","user":{"manager":"nobody@bench.example.com"}}`)
	}
	add("x", "deactivate", messages.OutcomeDeactivated, `{"email":"`+email+`"}`)
	add("a", "activate", messages.OutcomeActivated, `{"email":"`+email+`"}`)
	add("d", "delete", messages.OutcomeDeleted, `{"email":"`+email+`","action":"delete","transfer_email":"archive@bench.example.com","transfer_recording":true}`)
	g.users++
}

// publish publishes the results not yet published, up to n in all,
// asynchronously, every acknowledgement awaited.
func (g *resultGen) publish(ctx context.Context, js jetstream.JetStream, n int) error {
	now := time.Now()
	for ; g.published < n && g.published < len(g.results); g.published++ {
		r := g.results[g.published]
		ev := messages.NewEvent(r, now)
		data, err := ev.Marshal()
		if err != nil {
			return err
		}
		m := nats.NewMsg(resultAllPrefix + "." + string(r.Outcome))
		m.Data = data
		m.Header.Set("Content-Type", messages.ContentTypeCloudEvents)
		for {
			_, err := js.PublishMsgAsync(m, jetstream.WithMsgID(ev.ID))
			if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				// Too many unacknowledged: let them drain, then go on.
				select {
				case <-js.PublishAsyncComplete():
				case <-ctx.Done():
					return ctx.Err()
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("publish result %d: %w", g.published, err)
			}
			break
		}
	}
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
