// Command bench measures the provisioning consumer side by side with the
// limits that bound it, in one run, and prints a Markdown table.
//
//	go run ./testenv/cmd/bench [-n 20000] [-scenarios 0ms,200ms,0ms-80rps,200ms-80rps] [-out FILE]
//
// For every scenario (Zoom latency and rate limit) it measures:
//
//   - ceilings: a bare JetStream pull consume + ack, a bare publish with
//     ack (synchronous one at a time, synchronous from MAX_IN_FLIGHT
//     goroutines, asynchronous), and a bare HTTP client hammering the
//     simulator's POST /v2/users at MAX_IN_FLIGHT concurrency (no NATS);
//   - a naive baseline: the simplest correct loop by hand (fetch one, POST
//     to Zoom, publish the result and wait for the stream's ack, ack; one
//     at a time);
//   - the service: provision.Service wired as `consumer run` wires it.
//
// Each row runs in its own child process (this binary re-executed with the
// hidden -child flag), so its CPU time and memory are its own: the parent
// is the rest of the world (the embedded JetStream server, the Zoom
// simulator, the publisher of the requests and the reader of the results),
// and the child is only the thing measured. The child reports its CPU time
// (getrusage: user + system) at the start and end of the measured phase and
// its peak RSS (VmHWM); the parent measures its own CPU time over the same
// interval. (The ru_maxrss that wait4 reports for a child is useless here:
// Go starts children with CLONE_VM, and Linux counts the parent's memory,
// which exec replaced, into the child's maximum.)
//
// For the consumers (the naive loop and the service) the requests are
// queued before the child starts; requests/s is their number divided by
// the time from the child being ready to the last result, and latency is
// measured afterwards, one request at a time (publish to result event
// received). The ceilings time their own operations.
//
// -cpuprofile and -memprofile profile the service's measured phase;
// -envprofile profiles the parent (server and simulator); -only and
// -scenarios pick rows; -nats-url measures against an external server.
// BENCH_KEEP_LOGS=1 keeps each child's stderr (the service's log lines) and
// prints where.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

func main() {
	if err := mainErr(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the parent's flags.
type options struct {
	n           int
	rateN       int
	slowNaiveN  int
	probes      int
	maxInFlight int
	scenarios   []scenario
	subjects    map[string]bool // nil: all
	out         string
	natsURL     string
	cpuProfile  string
	memProfile  string
	timeout     time.Duration
	pullBatch   int
	envProfile  string
	defaultGC   bool
}

func mainErr(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.IntVar(&o.n, "n", 20000, "requests (or messages) per run")
	fs.IntVar(&o.rateN, "rate-n", 80*40, "requests per run in the rate-limited scenarios (40 s at 80/s)")
	fs.IntVar(&o.slowNaiveN, "slow-naive-n", 300, "requests for the naive loop when Zoom answers in 200 ms (one at a time: 60 s)")
	fs.IntVar(&o.probes, "probes", 200, "latency probes (one request at a time) after each consumer run; a quarter of that when Zoom is slow")
	fs.IntVar(&o.maxInFlight, "max-in-flight", 64, "MAX_IN_FLIGHT of the service, and the concurrency of the HTTP and sync publish ceilings")
	scen := fs.String("scenarios", "0ms,200ms,0ms-80rps,200ms-80rps", "scenarios: <latency>[-<rate>rps], comma separated")
	only := fs.String("only", "", "run only these rows: consume,publish-sync,publish-sync-conc,publish-async,http,naive,naive-small,service (comma separated)")
	fs.StringVar(&o.out, "out", "", "also write the Markdown table to this file")
	fs.StringVar(&o.natsURL, "nats-url", "", "use this NATS server instead of an embedded one (streams named BENCH_* are deleted and recreated)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the service's measured phase to this file (the scenario name is added before the extension)")
	fs.StringVar(&o.memProfile, "memprofile", "", "write an allocation profile of the service to this file (likewise)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up on one run after this long")
	fs.IntVar(&o.pullBatch, "pull-batch", 0, "service: Config.PullBatch; consume ceiling: PullMaxMessages (0 = their defaults)")
	fs.BoolVar(&o.defaultGC, "default-gc", false, "service: keep Go's default GOGC=100 instead of the service's 400 (for comparison)")
	fs.StringVar(&o.envProfile, "envprofile", "", "write a CPU profile of the parent (server, simulator, driver) during each measured phase to this file (scenario and row added before the extension)")
	childSpec := fs.String("child", "", "internal: run one measurement as a child process")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *childSpec != "" {
		var spec childSpecT
		if err := json.Unmarshal([]byte(*childSpec), &spec); err != nil {
			return fmt.Errorf("child spec: %w", err)
		}
		return runChild(spec)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, name := range strings.Split(*scen, ",") {
		sc, err := parseScenario(strings.TrimSpace(name))
		if err != nil {
			return err
		}
		o.scenarios = append(o.scenarios, sc)
	}
	if *only != "" {
		o.subjects = map[string]bool{}
		for _, s := range strings.Split(*only, ",") {
			o.subjects[strings.TrimSpace(s)] = true
		}
	}
	if o.n <= 0 || o.rateN <= 0 || o.slowNaiveN <= 0 || o.maxInFlight <= 0 || o.probes < 0 {
		return errors.New("-n, -rate-n, -slow-naive-n and -max-in-flight must be positive, -probes not negative")
	}

	ctx := context.Background()
	rep := &report{machine: describeMachine(o), opts: o}
	for _, sc := range o.scenarios {
		sr := scenarioResult{sc: sc}
		for _, sub := range subjectsOf(sc, o, sc == o.scenarios[0]) {
			fmt.Fprintf(stderr, "bench: %s: %s (N=%d)...\n", sc.Name, sub.label, sub.n)
			r := runSubject(ctx, o, sc, sub)
			if r.err != nil {
				fmt.Fprintf(stderr, "bench: %s: %s: %v\n", sc.Name, sub.label, r.err)
			} else {
				fmt.Fprintf(stderr, "bench: %s: %s: %.0f/s, p50 %s, p99 %s, client CPU %.3f s/1k, rest %.3f s/1k, RSS %.1f MiB\n",
					sc.Name, sub.label, r.rate, fmtDur(r.p50), fmtDur(r.p99), r.cpuClient, r.cpuEnv, float64(r.rss)/(1<<20))
			}
			sr.rows = append(sr.rows, r)
		}
		rep.scenarios = append(rep.scenarios, sr)
	}
	md := rep.markdown()
	fmt.Fprint(stdout, md)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// scenario is one setting of the Zoom simulator (and of the service's
// client-side rate limit, which is set to the same value).
type scenario struct {
	Name    string
	Latency time.Duration
	Rate    int // requests per second; 0 = no limit
}

func parseScenario(name string) (scenario, error) {
	lat, rate, hasRate := strings.Cut(name, "-")
	d, err := time.ParseDuration(lat)
	if err != nil || d < 0 {
		return scenario{}, fmt.Errorf("scenario %q: want <latency>[-<rate>rps], e.g. 200ms-80rps", name)
	}
	sc := scenario{Name: name, Latency: d}
	if hasRate {
		r, ok := strings.CutSuffix(rate, "rps")
		if !ok {
			return scenario{}, fmt.Errorf("scenario %q: want <latency>[-<rate>rps], e.g. 200ms-80rps", name)
		}
		if _, err := fmt.Sscanf(r, "%d", &sc.Rate); err != nil || sc.Rate <= 0 {
			return scenario{}, fmt.Errorf("scenario %q: bad rate", name)
		}
	}
	return sc, nil
}

func (sc scenario) title() string {
	lim := "no rate limit"
	if sc.Rate > 0 {
		lim = fmt.Sprintf("rate limit %d/s (simulator's per-second limit and ZOOM_RATE_LIMIT)", sc.Rate)
	}
	return fmt.Sprintf("Zoom latency %s, %s", fmtLatency(sc.Latency), lim)
}

// smallBacklog is the backlog of the naive loop's second row.
const smallBacklog = 2000

// subject is one row: what runs in the child and on how many requests.
type subject struct {
	kind   string // see childSpecT.Kind
	label  string
	n      int
	conc   int
	probes int
	note   string
}

// subjectsOf lists the rows of a scenario. The broker ceilings do not
// depend on Zoom, so they run once, in the first scenario.
func subjectsOf(sc scenario, o options, first bool) []subject {
	var out []subject
	add := func(s subject) {
		if o.subjects == nil || o.subjects[s.kind] {
			out = append(out, s)
		}
	}
	slow := sc.Latency >= 50*time.Millisecond
	probes := o.probes
	if slow {
		probes = max(1, o.probes/4)
	}
	if first && sc.Rate == 0 {
		add(subject{kind: "consume", label: "ceiling: JetStream pull consume + ack", n: o.n,
			note: "one consumer, Messages() with default buffering (500), Ack() each"})
		add(subject{kind: "publish-sync", label: "ceiling: JetStream publish + wait for ack, one at a time", n: o.n,
			note: "result-sized events with Nats-Msg-Id"})
		add(subject{kind: "publish-sync-conc", label: fmt.Sprintf("ceiling: JetStream publish + wait for ack, %d at a time", o.maxInFlight), n: o.n, conc: o.maxInFlight,
			note: fmt.Sprintf("%d goroutines, as the service's workers publish", o.maxInFlight)})
		add(subject{kind: "publish-async", label: "ceiling: JetStream async publish, all acks awaited", n: o.n,
			note: "up to 4,000 unacknowledged"})
	}
	if sc.Rate == 0 {
		n := o.n
		note := fmt.Sprintf("plain net/http client, %d goroutines, token fetched once", o.maxInFlight)
		if slow {
			n = min(o.n, o.maxInFlight*50)
			note += fmt.Sprintf("; N capped at %s (its rate does not depend on N)", thousands(n))
		}
		add(subject{kind: "http", label: fmt.Sprintf("ceiling: bare HTTP POST /v2/users, %d at a time", o.maxInFlight), n: n, conc: o.maxInFlight, note: note})
	}
	naiveN, naiveNote := o.n, ""
	switch {
	case slow:
		naiveN = min(o.n, o.slowNaiveN)
		naiveNote = fmt.Sprintf("N capped at %s: one at a time, %s requests would take %.0f minutes", thousands(naiveN), thousands(o.n), float64(o.n)*sc.Latency.Seconds()/60)
	case sc.Rate > 0:
		naiveN = min(o.n, o.rateN)
		naiveNote = fmt.Sprintf("N = %s (%d s at %d/s)", thousands(naiveN), naiveN/sc.Rate, sc.Rate)
	}
	if sc.Rate > 0 {
		naiveNote = joinNote(naiveNote, "waits for Retry-After on a 429")
	}
	add(subject{kind: "naive", label: "naive loop (fetch one, POST, publish + wait, ack)", n: naiveN, probes: probes, note: naiveNote})
	if sc.Latency == 0 && sc.Rate == 0 && o.n > smallBacklog {
		// One ack at a time on a large work-queue backlog is slow in the
		// server itself (see the README), so the naive loop is also
		// measured on a small backlog, where that cost is small.
		add(subject{kind: "naive-small", label: fmt.Sprintf("naive loop, %s queued", thousands(smallBacklog)), n: smallBacklog, probes: probes,
			note: "the same loop on a small backlog"})
	}
	svcN, svcNote := o.n, ""
	if sc.Rate > 0 {
		svcN = min(o.n, o.rateN)
		svcNote = fmt.Sprintf("N = %s (%d s at %d/s); ZOOM_RATE_LIMIT=%d", thousands(svcN), svcN/sc.Rate, sc.Rate, sc.Rate)
	}
	add(subject{kind: "service", label: "service (`consumer run` wiring)", n: svcN, conc: o.maxInFlight, probes: probes,
		note: joinNote(fmt.Sprintf("MAX_IN_FLIGHT=%d", o.maxInFlight), svcNote)})
	return out
}

// short names the scenario in a few words, e.g. "200 ms, 80/s".
func (sc scenario) short() string {
	if sc.Rate > 0 {
		return fmt.Sprintf("%s, %d/s", fmtLatency(sc.Latency), sc.Rate)
	}
	return fmtLatency(sc.Latency) + ", no limit"
}

// fmtLatency prints 0 as "0 ms" rather than "0s".
func fmtLatency(d time.Duration) string {
	if d%time.Millisecond == 0 {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return d.String()
}

func joinNote(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}
