package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/ledger"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/testenv"
)

// reconcilePoint is one run of `consumer reconcile --json` against a
// Zoom account of Users users.
type reconcilePoint struct {
	// Size is the users of the run, Users those in Zoom (all but the
	// missing ones), LedgerEntries those the ledger holds (all but the
	// unmanaged ones).
	Size, Users, LedgerEntries int
	// Populate is how long the simulator and the ledger took to fill.
	Populate time.Duration
	// Took is the command's wall time (process start to exit); Listing
	// the listing calls Zoom answered; RSS its peak resident set (VmHWM,
	// read every 50 ms until it exits); CPU its user and system CPU
	// seconds.
	Took    time.Duration
	Listing int
	RSS     int64
	CPU     float64
	// What it printed.
	Scanned, Managed, InSync int
	Counts                   map[string]int
	OutputBytes              int
}

// reconcileResult is the reconcile scenario's measurement.
type reconcileResult struct {
	Points    []reconcilePoint
	Rate      int
	Load      string
	QuietWait time.Duration
	Quiet     bool
	Problems  []string
	Err       error
}

// reconcileDrift is how one user in a hundred drifts, by the user's
// number modulo 100: the rest are in sync.
var reconcileDrift = map[int]string{0: "missing", 1: "status", 2: "present", 3: "fields", 4: "unmanaged"}

// measureReconcile runs the reconcile scenario: for each size, a fresh
// broker with the service running (idle: it shares ZOOM_RATE_LIMIT with
// the command, as in production), a simulator holding that many users
// (Medium limit o.reconcileRate per second) and a ledger of as many
// entries, one user in a hundred of each kind of drift; then `consumer
// reconcile --json`, the real binary, timed, its calls, peak RSS and
// CPU measured and its report checked.
func measureReconcile(ctx context.Context, o options) (r reconcileResult) {
	r = reconcileResult{Rate: o.reconcileRate, Load: loadAvg()}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	for _, n := range o.reconcileSizes {
		p, problems, err := reconcileOnce(ctx, o, n)
		r.Problems = append(r.Problems, problems...)
		if err != nil {
			r.Err = fmt.Errorf("%d users: %w", n, err)
			return r
		}
		r.Points = append(r.Points, p)
	}
	return r
}

func reconcileOnce(ctx context.Context, o options, n int) (p reconcilePoint, problems []string, err error) {
	w, err := startWorld(ctx, o.natsBin, o.deployDir)
	if err != nil {
		return p, nil, err
	}
	defer w.close()
	sim := testenv.NewSimulator(testenv.SimConfig{MediumRatePerSecond: o.reconcileRate, MaxRecordedRequests: -1})
	defer sim.Close()
	rate := "ZOOM_RATE_LIMIT=" + strconv.Itoa(o.reconcileRate)
	svc := o.service()
	svc.Env = []string{rate, "HTTP_ADDR=off", "LOG_LEVEL=warn"}
	proc, err := startProcess(svc, env(w.broker.URL(), sim), o.keepLogs)
	if err != nil {
		return p, nil, err
	}
	defer proc.cleanup()
	var kv jetstream.KeyValue
	if err := waitFor(ctx, 30*time.Second, func() (err error) {
		kv, err = w.js.KeyValue(ctx, ledgerBucket)
		return err
	}); err != nil {
		return p, nil, fmt.Errorf("the service did not create %s: %w", ledgerBucket, err)
	}

	start := time.Now()
	p.Size = n
	if p.Users, p.LedgerEntries, err = populateReconcile(ctx, w.js, kv, sim, n); err != nil {
		return p, nil, err
	}
	p.Populate = time.Since(start)

	cmd := exec.CommandContext(ctx, o.bins["service"], "reconcile", "--json")
	cmd.Env = append(env(w.broker.URL(), sim), rate)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	before := len(sim.Requests())
	start = time.Now()
	if err := cmd.Start(); err != nil {
		return p, nil, fmt.Errorf("consumer reconcile: %w", err)
	}
	// The peak RSS is the process's own high-water mark (VmHWM), read
	// until it exits: getrusage's ru_maxrss of a child counts the parent's
	// pages it shared before exec, this process's simulator among them.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(50 * time.Millisecond)
	for waiting := true; waiting; {
		select {
		case err = <-exited:
			waiting = false
		case <-tick.C:
			if hwm, err := peakRSS(cmd.Process.Pid); err == nil {
				p.RSS = max(p.RSS, hwm)
			}
		}
	}
	tick.Stop()
	p.Took = time.Since(start)
	if err != nil {
		return p, nil, fmt.Errorf("consumer reconcile: %w: %s", err, stderr.Bytes())
	}
	p.CPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	out := stdout.Bytes()
	for _, rq := range sim.Requests()[before:] {
		if rq.Route == testenv.RouteListUsers {
			p.Listing++
		} else if rq.Route != testenv.RouteToken {
			problems = append(problems, fmt.Sprintf("the scan called %s %s", rq.Method, rq.Path))
		}
	}
	p.OutputBytes = len(out)
	var rep struct {
		Scanned, Managed int
		InSync           int `json:"in_sync"`
		Drift            []struct {
			Kind string `json:"kind"`
		} `json:"drift"`
		Unmanaged []json.RawMessage `json:"unmanaged"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return p, nil, fmt.Errorf("consumer reconcile --json printed %d bytes: %w", len(out), err)
	}
	p.Scanned, p.Managed, p.InSync = rep.Scanned, rep.Managed, rep.InSync
	p.Counts = map[string]int{"unmanaged": len(rep.Unmanaged)}
	for _, d := range rep.Drift {
		p.Counts[d.Kind]++
	}
	each := n / 100
	for _, kind := range reconcileDrift {
		if p.Counts[kind] != each {
			problems = append(problems, fmt.Sprintf("%d users: %d %s; want %d", n, p.Counts[kind], kind, each))
		}
	}
	if p.Scanned != n-each || p.Managed != n-each || p.InSync != n-5*each {
		problems = append(problems, fmt.Sprintf("%d users: scanned %d, managed %d, in sync %d; want %d, %d, %d", n, p.Scanned, p.Managed, p.InSync, n-each, n-each, n-5*each))
	}
	if err := proc.stop(10 * time.Second); err != nil {
		problems = append(problems, "the service: "+err.Error())
	}
	return p, problems, nil
}

// populateReconcile fills the simulator and the ledger with n users, one
// in a hundred of each kind of drift (reconcileDrift), and returns how
// many Zoom holds and how many entries the ledger does. The ledger's
// entries are written as the projector writes them (ledger.FromResult,
// ledger.Merge), straight into the bucket.
func populateReconcile(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, sim *testenv.Simulator, n int) (zoomUsers, entries int, err error) {
	at := time.Now().Add(-time.Hour)
	for i := range n {
		email := "u" + strconv.Itoa(i) + "@reconcile.example.com"
		kind := reconcileDrift[i%100]
		first, last := "Bench", "User "+strconv.Itoa(i)
		if kind != "unmanaged" {
			created := messages.Result{RequestID: "c" + strconv.Itoa(i), Action: "ssoCreate", Email: email, Outcome: messages.OutcomeCreated,
				StreamSequence: uint64(2*i + 1), ZoomUserID: "z" + strconv.Itoa(i),
				Request: json.RawMessage(`{"action":"ssoCreate","user_info":{"email":"` + email + `","type":1,"first_name":"` + first + `","last_name":"` + last + `"}}`)}
			rec, _ := ledger.FromResult(created, at)
			if kind == "present" {
				del, _ := ledger.FromResult(messages.Result{RequestID: "d" + strconv.Itoa(i), Action: "delete", Email: email, Outcome: messages.OutcomeDeleted,
					StreamSequence: uint64(2*i + 2), Request: json.RawMessage(`{"email":"` + email + `","action":"delete"}`)}, at)
				rec = ledger.Merge(rec, del)
			}
			rec.Updated = at
			data, err := json.Marshal(rec)
			if err != nil {
				return 0, 0, err
			}
			m := nats.NewMsg("$KV." + ledgerBucket + "." + ledger.Key(email))
			m.Data = data
			for {
				_, err := js.PublishMsgAsync(m)
				if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
					select {
					case <-js.PublishAsyncComplete():
					case <-ctx.Done():
						return 0, 0, ctx.Err()
					}
					continue
				}
				if err != nil {
					return 0, 0, fmt.Errorf("ledger entry %d: %w", i, err)
				}
				break
			}
			entries++
		}
		if kind == "missing" {
			continue
		}
		u := testenv.SimUser{Email: email, FirstName: first, LastName: last, Type: 1}
		switch kind {
		case "status":
			u.Status = "inactive"
		case "fields":
			u.FirstName = "Changed"
		}
		if _, err := sim.AdminCreate(u); err != nil {
			return 0, 0, err
		}
		zoomUsers++
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return 0, 0, err
	}
	if st.Values() != uint64(entries) {
		return 0, 0, fmt.Errorf("the ledger holds %d entries; want %d", st.Values(), entries)
	}
	return zoomUsers, entries, nil
}
