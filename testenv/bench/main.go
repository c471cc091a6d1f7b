// Command bench measures the provisioning consumer from the outside, side
// by side with a Watermill consumer and a naive loop, and prints a
// Markdown table.
//
//	cd testenv/bench && go run . [-n 10000] [-runs 4] [-out FILE]
//	cd testenv/bench && go run . -scenario backlog [-backlog-n 20000] [-out FILE]
//	cd testenv/bench && go run . -scenario ledger [-ledger-small 2000] [-ledger-large 200000] [-out FILE]
//	cd testenv/bench && go run . -scenario reconcile [-reconcile-sizes 10000,100000] [-reconcile-rate 20] [-out FILE]
//	cd testenv/bench && go run . -scenario scale [-scale-n 1000000] [-scale-users 50000] [-scale-batch 1000] [-out FILE]
//
// -scenario all runs throughput, backlog, ledger and reconcile; scale, which takes
// some ten minutes at its full size, runs only when asked for.
//
// It builds four binaries first: nats-server (from this module's
// nats-server/v2 dependency), the service (../../cmd/consumer, built in
// the main module so its own dependency versions apply), and the two
// peers in cmd/watermillpeer and cmd/naive.
//
// Scenario throughput: per run, each consumer in turn (the order rotates
// from run to run) gets a fresh nats-server process with file storage and
// the contract's streams (deploy/nats/*.json), N ssoCreate requests
// preloaded, and a Zoom simulator in this process that answers at once
// with no limit. The consumer runs as its own process; the time is from
// its start to its N-th distinct result (seen through a core subscription
// to the result subject, which costs the broker far less than polling the
// stream), and the CPU seconds of the consumer and of the broker over that
// interval and the consumer's peak RSS come from /proc. Afterwards,
// outside the measured interval, every run is checked: every result
// stored, one correct result per request, each user created once, nothing
// dead-lettered or left, a clean stop on SIGTERM.
//
// Scenario backlog: the service alone, with ZOOM_RATE_LIMIT=80, against a
// simulator limited to 80 requests a second with 200 ms latency; 20,000
// create requests are queued, the first daily-limit 429 closes the quota
// gate, and the quota resets a few seconds into the run. From the
// simulator's request log: how long after the reset the service reaches
// 80/s, its steady rate, and the 429s.
//
// Scenario ledger: the service alone on a fresh broker; result events as
// the service publishes them (users' lives: creation, update,
// deactivation, activation, deletion, with data.request) are stored in
// the result stream, 2,000 of them, and the service's projector brings the
// per-user ledger up to date; `consumer user show` (the real binary) of
// one user is timed -ledger-runs times; then results up to 200,000, and
// the same timing again, in the same run. It prints both, their ratio, and
// the ledger bucket's bytes per user.
//
// Scenario reconcile: for each size (10,000 and 100,000 users), the
// service (idle) on a fresh broker, a simulator holding that many users
// with Zoom Pro's Medium limit (20 listing calls a second) and a ledger of
// as many entries, one user in a hundred of each kind of drift and
// unmanaged; `consumer reconcile --json` (the real binary) with
// ZOOM_RATE_LIMIT=20, which it shares with the service: its wall time,
// listing calls, peak RSS and CPU, and its report checked.
// Scenario scale, in two parts, each on a fresh broker whose JetStream
// may use 16 GiB of disk (testenv's 1 GiB holds neither a million results
// nor the ledger built from them; the contract's streams have no limits).
// One: a million ssoCreate requests preloaded (asynchronously, at most
// 4,000 awaiting their acknowledgement), the service alone as throughput
// runs it, the simulator at zero latency with no limit and a log of one
// request. From the service's start: the time to the simulator's first
// POST /v2/users (Simulator.FirstArrival), to the first and the last
// result, results per second over the first and the last tenth of the
// results (their arrival times, kept in the bench) and their ratio, the
// service's peak RSS (and its RSS at a tenth, half and nine tenths of the
// results), CPU of the service, the broker and the bench. Afterwards,
// unmeasured, the checks of throughput, a result at a time. Two: for
// 50,000 users a chain create (ssoCreate), update, deactivate, published
// 1,000 users at a time (the batch's creations, then its updates, then its
// deactivations), two `consumer run` replicas with GUARD_LIMIT=0 (the
// guard would hold every deactivation after the 50th) and their /metrics
// on loopback ports; when every result is in, the replicas'
// zoomprov_order_reads_total over the requests: stream reads per request
// that the per-user order cost. Afterwards: one result per request with
// its outcome, nothing dead-lettered or left, and the simulator's History
// of each user is its creation, update and deactivation, in that order.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	if err := mainErr(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// usage comes before the flags in -h.
const usage = `Usage: go run . [-scenario throughput|backlog|ledger|reconcile|all|scale] [flags]

Measures the provisioning consumer (the real ` + "`consumer run`" + ` binary) from the
outside, each run on a fresh nats-server process with a Zoom simulator that
answers at once, and prints a Markdown report. Scenarios:

  throughput  the service beside Watermill and a naive loop, -n ssoCreate
              requests each, -runs times (about a minute)
  backlog     -backlog-n creates behind a closed quota gate, then the reset
              (about five minutes)
  ledger      consumer user show with -ledger-small and -ledger-large results
              stored (about a minute)
  reconcile   consumer reconcile against -reconcile-sizes Zoom users
              (a few minutes)
  all         the four above
  scale       not part of all (some ten minutes): -scale-n ssoCreates queued
              for the service alone (peak RSS, time to the first Zoom call,
              the first and the last tenth's results/s), then two replicas on
              -scale-users users' create, update, deactivate chains (stream
              reads per request for the per-user order); a quick run:
              -scenario scale -scale-n 20000 -scale-users 2000

Flags:
`

// options are the flags, plus the binaries built from them.
type options struct {
	scenario      string
	n, runs       int
	only          map[string]bool
	out           string
	repo          string
	deployDir     string
	timeout       time.Duration
	keepLogs      bool
	quietWait     time.Duration
	backlogN      int
	backlogRate   int
	backlogLat    time.Duration
	backlogWindow time.Duration
	ledgerSmall   int
	ledgerLarge   int
	ledgerRuns    int
	// reconcileSizes are the Zoom accounts' sizes of the reconcile
	// scenario; reconcileRate its ZOOM_RATE_LIMIT and Medium limit.
	reconcileSizes []int
	reconcileRate  int
	scaleN         int
	scaleUsers     int
	scaleBatch     int

	natsBin string
	bins    map[string]string // consumer name → binary
}

func mainErr(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.scenario, "scenario", "throughput", "throughput, backlog, ledger, reconcile, all (the four), or scale (not part of all: some 10 minutes)")
	fs.IntVar(&o.n, "n", 10000, "throughput: requests preloaded per consumer and run")
	fs.IntVar(&o.runs, "runs", 4, "throughput: runs")
	only := fs.String("consumers", "service,watermill,naive", "throughput: consumers to measure, comma separated")
	fs.StringVar(&o.out, "out", "", "also write the Markdown report to this file")
	fs.StringVar(&o.repo, "repo", "../..", "the repository root (the service's module, deploy/nats)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up on one consumer's run after this long")
	fs.BoolVar(&o.keepLogs, "keep-logs", false, "keep each consumer's output and print where")
	fs.DurationVar(&o.quietWait, "quiet-wait", 3*time.Minute, "before each measurement wait up to this long for other processes to use under 5% of a core (0: do not wait)")
	fs.IntVar(&o.backlogN, "backlog-n", 20000, "backlog: create requests queued behind the closed gate")
	fs.IntVar(&o.backlogRate, "backlog-rate", 80, "backlog: the simulator's per-second limit and ZOOM_RATE_LIMIT")
	fs.DurationVar(&o.backlogLat, "backlog-latency", 200*time.Millisecond, "backlog: the simulator's latency")
	fs.DurationVar(&o.backlogWindow, "backlog-window", 10*time.Second, "backlog: the simulator's quota day; the reset comes this long after the start")
	fs.IntVar(&o.ledgerSmall, "ledger-small", 2000, "ledger: results stored for the first timing")
	fs.IntVar(&o.ledgerLarge, "ledger-large", 200000, "ledger: results stored for the second timing")
	fs.IntVar(&o.ledgerRuns, "ledger-runs", 21, "ledger: `consumer user show` runs timed at each size")
	sizes := fs.String("reconcile-sizes", "10000,100000", "reconcile: Zoom users listed, one run per size, comma separated (multiples of 100)")
	fs.IntVar(&o.reconcileRate, "reconcile-rate", 20, "reconcile: ZOOM_RATE_LIMIT, and the simulator's Medium limit per second (Zoom Pro's: 20)")
	fs.IntVar(&o.scaleN, "scale-n", 1000000, "scale: ssoCreate requests queued for the service alone (0: skip this part)")
	fs.IntVar(&o.scaleUsers, "scale-users", 50000, "scale: users with a create, update, deactivate chain for two replicas (0: skip this part)")
	fs.IntVar(&o.scaleBatch, "scale-batch", 1000, "scale: users published at a time: their creations, then their updates, then their deactivations")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch o.scenario {
	case "throughput", "backlog", "ledger", "reconcile", "all", "scale":
	default:
		return fmt.Errorf("-scenario %q: want throughput, backlog, ledger, reconcile, all or scale", o.scenario)
	}
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 100 || n%100 != 0 {
			return fmt.Errorf("-reconcile-sizes: %q is not a multiple of 100", f)
		}
		o.reconcileSizes = append(o.reconcileSizes, n)
	}
	if o.reconcileRate <= 0 {
		return errors.New("-reconcile-rate must be positive")
	}
	if o.scaleN < 0 || o.scaleUsers < 0 || o.scaleN+o.scaleUsers == 0 || o.scaleBatch <= 0 {
		return errors.New("-scale-n and -scale-users must not be negative nor both 0, -scale-batch must be positive")
	}
	if o.ledgerSmall <= 0 || o.ledgerLarge <= o.ledgerSmall || o.ledgerRuns <= 0 {
		return errors.New("-ledger-small and -ledger-runs must be positive, -ledger-large above -ledger-small")
	}
	if o.n <= 0 || o.runs <= 0 || o.backlogN <= 0 || o.backlogRate <= 0 || o.backlogWindow < 3*time.Second {
		return errors.New("-n, -runs, -backlog-n and -backlog-rate must be positive, -backlog-window at least 3s")
	}
	o.only = map[string]bool{}
	for _, c := range strings.Split(*only, ",") {
		switch c = strings.TrimSpace(c); c {
		case "service", "watermill", "naive":
			o.only[c] = true
		default:
			return fmt.Errorf("-consumers: unknown consumer %q", c)
		}
	}
	repo, err := filepath.Abs(o.repo)
	if err != nil {
		return err
	}
	o.repo, o.deployDir = repo, filepath.Join(repo, "deploy", "nats")
	if _, err := os.Stat(filepath.Join(o.deployDir, streamFiles[0])); err != nil {
		return fmt.Errorf("-repo %s: %w", o.repo, err)
	}

	binDir, err := os.MkdirTemp("", "bench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	fmt.Fprintln(stderr, "bench: building nats-server, the service and the peers...")
	if err := build(&o, binDir); err != nil {
		return err
	}
	rep := &report{machine: describeMachine(o), opts: o, started: time.Now()}

	ctx := context.Background()
	if o.scenario == "throughput" || o.scenario == "all" {
		consumers := o.consumers()
		for run := 1; run <= o.runs; run++ {
			// Rotate the order so that no consumer always runs first or
			// last in a run.
			for k := range consumers {
				c := consumers[(k+run-1)%len(consumers)]
				waited, quiet := o.waitQuiet()
				fmt.Fprintf(stderr, "bench: run %d/%d: %s (N=%d, load %s, waited %v for quiet: %v)...\n",
					run, o.runs, c.Label, o.n, loadAvg(), waited.Round(time.Second), quiet)
				m := measureThroughput(ctx, o, c, run, o.n)
				m.QuietWait, m.Quiet = waited, quiet
				if m.Err != nil {
					fmt.Fprintf(stderr, "bench: run %d: %s: %v\n", run, c.Name, m.Err)
				} else {
					fmt.Fprintf(stderr, "bench: run %d: %s: %.0f/s in %v, CPU %.3f s/1k consumer, %.3f s/1k broker, RSS %.1f MiB%s\n",
						run, c.Name, m.Rate(), m.Elapsed.Round(time.Millisecond), m.cpuPer1000(m.CPUConsumer), m.cpuPer1000(m.CPUBroker),
						mib(m.RSS), problemsSuffix(m.Problems))
				}
				rep.throughput = append(rep.throughput, m)
			}
		}
	}
	if o.scenario == "backlog" || o.scenario == "all" {
		waited, quiet := o.waitQuiet()
		fmt.Fprintf(stderr, "bench: backlog: %d create requests, %d/s, %v latency (load %s, waited %v for quiet: %v)...\n",
			o.backlogN, o.backlogRate, o.backlogLat, loadAvg(), waited.Round(time.Second), quiet)
		b := measureBacklog(ctx, o)
		b.QuietWait, b.Quiet = waited, quiet
		if b.Err != nil {
			fmt.Fprintf(stderr, "bench: backlog: %v\n", b.Err)
		}
		rep.backlog = &b
	}
	if o.scenario == "ledger" || o.scenario == "all" {
		waited, quiet := o.waitQuiet()
		fmt.Fprintf(stderr, "bench: ledger: %d then %d results, %d runs of consumer user show each (load %s, waited %v for quiet: %v)...\n",
			o.ledgerSmall, o.ledgerLarge, o.ledgerRuns, loadAvg(), waited.Round(time.Second), quiet)
		l := measureLedger(ctx, o)
		l.QuietWait, l.Quiet = waited, quiet
		if l.Err != nil {
			fmt.Fprintf(stderr, "bench: ledger: %v\n", l.Err)
		}
		rep.ledger = &l
	}
	if o.scenario == "reconcile" || o.scenario == "all" {
		waited, quiet := o.waitQuiet()
		fmt.Fprintf(stderr, "bench: reconcile: %v Zoom users, ZOOM_RATE_LIMIT=%d (load %s, waited %v for quiet: %v)...\n",
			o.reconcileSizes, o.reconcileRate, loadAvg(), waited.Round(time.Second), quiet)
		rc := measureReconcile(ctx, o)
		rc.QuietWait, rc.Quiet = waited, quiet
		if rc.Err != nil {
			fmt.Fprintf(stderr, "bench: reconcile: %v\n", rc.Err)
		}
		rep.reconcile = &rc
	}
	if o.scenario == "scale" {
		rep.scale = measureScale(ctx, o, stderr)
	}
	rep.finished = time.Now()
	md := rep.markdown()
	fmt.Fprint(stdout, md)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// measureScale runs the scale scenario's parts that are asked for, each
// after waiting for a quiet machine.
func measureScale(ctx context.Context, o options, stderr io.Writer) *scaleResult {
	var r scaleResult
	if o.scaleN > 0 {
		waited, quiet := o.waitQuiet()
		fmt.Fprintf(stderr, "bench: scale: %d ssoCreate requests queued, one replica (load %s, waited %v for quiet: %v)...\n",
			o.scaleN, loadAvg(), waited.Round(time.Second), quiet)
		q := measureScaleQueue(ctx, o)
		q.QuietWait, q.Quiet = waited, quiet
		if q.Err != nil {
			fmt.Fprintf(stderr, "bench: scale: %v\n", q.Err)
		} else {
			fmt.Fprintf(stderr, "bench: scale: preload %v, first call %v, %d results in %v (%.0f/s; first tenth %.0f/s, last %.0f/s), RSS %.1f MiB%s\n",
				q.Preload.Round(time.Millisecond), q.FirstCall.Round(time.Millisecond), q.N, q.Elapsed.Round(time.Millisecond), q.Rate(),
				q.FirstRate(), q.LastRate(), mib(q.RSS), problemsSuffix(q.Problems))
		}
		r.Queue = &q
	}
	if o.scaleUsers > 0 {
		waited, quiet := o.waitQuiet()
		fmt.Fprintf(stderr, "bench: scale: %d users x create, update, deactivate, two replicas (load %s, waited %v for quiet: %v)...\n",
			o.scaleUsers, loadAvg(), waited.Round(time.Second), quiet)
		c := measureScaleOrder(ctx, o)
		c.QuietWait, c.Quiet = waited, quiet
		if c.Err != nil {
			fmt.Fprintf(stderr, "bench: scale: %v\n", c.Err)
		} else {
			fmt.Fprintf(stderr, "bench: scale: %d requests in %v (%.0f/s), order reads %v (%.2f per request)%s\n",
				c.Requests, c.Elapsed.Round(time.Millisecond), c.Rate(), c.Reads, c.ReadsPerRequest(), problemsSuffix(c.Problems))
		}
		r.Order = &c
	}
	return &r
}

// waitQuiet waits for the machine to be quiet, if asked to.
func (o options) waitQuiet() (time.Duration, bool) {
	if o.quietWait <= 0 {
		return 0, false
	}
	return waitQuiet(o.quietWait)
}

func problemsSuffix(p []string) string {
	if len(p) == 0 {
		return ", verified"
	}
	return ", PROBLEMS: " + strings.Join(p, "; ")
}

// consumers lists the consumers measured, in the table's order.
func (o options) consumers() []consumer {
	all := []consumer{
		o.service(),
		{Name: "watermill", Label: "Watermill v1.5.1 + watermill-nats v2.1.3", Bin: o.bins["watermill"]},
		{Name: "naive", Label: "naive loop, one message at a time", Bin: o.bins["naive"]},
	}
	var out []consumer
	for _, c := range all {
		if o.only[c.Name] {
			out = append(out, c)
		}
	}
	return out
}

// service is the service as the throughput scenario runs it: `consumer
// run` with its defaults, no client-side rate limit, no HTTP endpoint, and
// only warnings logged.
func (o options) service() consumer {
	return consumer{Name: "service", Label: "this service (`consumer run`)", Bin: o.bins["service"], Args: []string{"run"},
		Env: []string{"ZOOM_RATE_LIMIT=0", "HTTP_ADDR=off", "LOG_LEVEL=warn"}}
}

// build builds the binaries into dir. The service is built in its own
// module, so that it is the binary `go build ./cmd/consumer` makes, with
// the main module's dependency versions and not this module's.
func build(o *options, dir string) error {
	o.natsBin = filepath.Join(dir, "nats-server")
	o.bins = map[string]string{
		"service":   filepath.Join(dir, "consumer"),
		"watermill": filepath.Join(dir, "watermillpeer"),
		"naive":     filepath.Join(dir, "naive"),
	}
	here := filepath.Join(o.repo, "testenv", "bench")
	for _, b := range []struct{ dir, out, pkg string }{
		{here, o.natsBin, "github.com/nats-io/nats-server/v2"},
		{o.repo, o.bins["service"], "./cmd/consumer"},
		{here, o.bins["watermill"], "./cmd/watermillpeer"},
		{here, o.bins["naive"], "./cmd/naive"},
	} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Dir = b.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s (in %s): %w\n%s", b.pkg, b.dir, err, out)
		}
	}
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
