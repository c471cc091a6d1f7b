package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

type scenarioResult struct {
	sc   scenario
	rows []result
}

type report struct {
	machine   string
	opts      options
	scenarios []scenarioResult
}

func describeMachine(o options) string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	broker := fmt.Sprintf("nats-server %s embedded in the benchmark's parent process", server.VERSION)
	if o.natsURL != "" {
		broker = "an external NATS server (-nats-url); its CPU is not counted"
	}
	return fmt.Sprintf("%d CPUs (`nproc`), %s, %s %s/%s, %s, nats.go %s",
		runtime.NumCPU(), cpu, runtime.Version(), runtime.GOOS, runtime.GOARCH, broker, nats.Version)
}

// find returns the row of kind in sr, if measured without error.
func (sr scenarioResult) find(kind string) (result, bool) {
	for _, r := range sr.rows {
		if r.sub.kind == kind && r.err == nil {
			return r, true
		}
	}
	return result{}, false
}

// findAny returns the row of kind in any scenario (the broker ceilings run
// once).
func (rp *report) findAny(kind string) (result, bool) {
	for _, sr := range rp.scenarios {
		if r, ok := sr.find(kind); ok {
			return r, true
		}
	}
	return result{}, false
}

func (rp *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s with `go run ./testenv/cmd/bench` on %s.\n\n", time.Now().UTC().Format("2006-01-02"), rp.machine)
	b.WriteString("Each row is its own child process; *client* CPU and RSS are that process alone (the consumer, or the bare client of a ceiling). " +
		"*Rest* is the CPU of everything else (the JetStream server, the Zoom simulator, the publisher of the requests and the reader of the results), " +
		"measured in the parent over the same interval. The backlog is queued before the consumer starts; requests/s is that backlog divided by " +
		"the time from the consumer being ready to its last result. Latency is from publishing a request to reading its result event back from the " +
		"result stream, one request at a time after the backlog (for the ceilings: each operation's own time under load).\n\n")
	for _, sr := range rp.scenarios {
		fmt.Fprintf(&b, "**%s**\n\n", sr.sc.title())
		b.WriteString("| run | N | requests/s | p50 | p99 | client CPU s / 1,000 | rest CPU s / 1,000 | client peak RSS | 429s | notes |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
		if sr.sc.Rate > 0 {
			fmt.Fprintf(&b, "| ceiling: the account's quota | | %d | | | | | | | by definition |\n", sr.sc.Rate)
		}
		for _, r := range sr.rows {
			if r.err != nil {
				fmt.Fprintf(&b, "| %s | %s | failed | | | | | | | %s |\n", r.sub.label, thousands(r.n), mdEscape(r.err.Error()))
				continue
			}
			s429 := fmt.Sprint(r.status429)
			if r.sub.kind != "naive" && r.sub.kind != "naive-small" && r.sub.kind != "service" && r.sub.kind != "http" {
				s429 = ""
			}
			note := r.note
			if r.deferred > 0 {
				note = joinNote(note, fmt.Sprintf("%d deferred events", r.deferred))
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.3f | %.3f | %.1f MiB | %s | %s |\n",
				r.sub.label, thousands(r.n), thousands(int(r.rate+0.5)), fmtDur(r.p50), fmtDur(r.p99), r.cpuClient, r.cpuEnv,
				float64(r.rss)/(1<<20), s429, mdEscape(note))
		}
		b.WriteString("\n")
		if ratios := rp.ratios(sr); ratios != "" {
			b.WriteString(ratios + "\n\n")
		}
	}
	b.WriteString(rp.targets())
	return b.String()
}

// ratios is the service's throughput over each other row's.
func (rp *report) ratios(sr scenarioResult) string {
	svc, ok := sr.find("service")
	if !ok {
		return ""
	}
	var parts []string
	for _, k := range []struct{ kind, name string }{
		{"consume", "consume + ack"}, {"publish-sync", "sync publish, one at a time"},
		{"publish-sync-conc", fmt.Sprintf("sync publish, %d at a time", rp.opts.maxInFlight)},
		{"publish-async", "async publish"}, {"http", "bare HTTP"}, {"naive", "naive"},
		{"naive-small", fmt.Sprintf("naive on %s queued", thousands(smallBacklog))},
	} {
		var r result
		var found bool
		if k.kind == "http" || k.kind == "naive" || k.kind == "naive-small" {
			r, found = sr.find(k.kind)
		} else if sr.sc.Rate == 0 && sr.sc.Latency == 0 {
			// The broker ceilings bound the service only when Zoom
			// answers at once.
			r, found = rp.findAny(k.kind)
		}
		if found && r.rate > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f", k.name, svc.rate/r.rate))
		}
	}
	if sr.sc.Rate > 0 {
		parts = append(parts, fmt.Sprintf("quota %.3f", svc.rate/float64(sr.sc.Rate)))
	}
	if len(parts) == 0 {
		return ""
	}
	return "Service ÷ " + strings.Join(parts, "; ") + "."
}

// targets checks the targets against what was measured.
func (rp *report) targets() string {
	var rows []string
	add := func(target, want, got string, met bool) {
		m := "no"
		if met {
			m = "yes"
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s |", target, want, got, m))
	}
	for _, sr := range rp.scenarios {
		svc, ok := sr.find("service")
		if !ok {
			continue
		}
		switch {
		case sr.sc.Latency == 0 && sr.sc.Rate == 0:
			consume, ok1 := rp.findAny("consume")
			httpR, ok2 := sr.find("http")
			if ok1 && ok2 {
				low := min(consume.rate, httpR.rate)
				add("0 ms, no limit: ≥ 50% of the lower of consume + ack and bare HTTP", fmt.Sprintf("≥ %s/s", thousands(int(low/2))),
					fmt.Sprintf("%s/s (%.0f%%)", thousands(int(svc.rate)), 100*svc.rate/low), svc.rate >= low/2)
			}
			if naive, ok := sr.find("naive"); ok {
				add(fmt.Sprintf("0 ms, no limit: ≥ 3 × naive (both %s queued)", thousands(svc.n)), fmt.Sprintf("≥ %s/s", thousands(int(3*naive.rate))),
					fmt.Sprintf("%s/s (%.1f ×)", thousands(int(svc.rate)), svc.rate/naive.rate), svc.rate >= 3*naive.rate)
			}
			if naive, ok := sr.find("naive-small"); ok {
				add(fmt.Sprintf("0 ms, no limit: ≥ 3 × naive on %s queued", thousands(naive.n)), fmt.Sprintf("≥ %s/s", thousands(int(3*naive.rate))),
					fmt.Sprintf("%s/s (%.1f ×)", thousands(int(svc.rate)), svc.rate/naive.rate), svc.rate >= 3*naive.rate)
			}
			add(fmt.Sprintf("peak RSS with %s queued requests", thousands(svc.n)), "< 100 MiB",
				fmt.Sprintf("%.1f MiB", float64(svc.rss)/(1<<20)), svc.rss < 100<<20)
		case sr.sc.Latency > 0 && sr.sc.Rate == 0:
			want := 0.9 * float64(rp.opts.maxInFlight) / sr.sc.Latency.Seconds()
			add(fmt.Sprintf("%s, no limit: ≥ 0.9 × MAX_IN_FLIGHT / %s", fmtLatency(sr.sc.Latency), fmtLatency(sr.sc.Latency)), fmt.Sprintf("≥ %.0f/s", want),
				fmt.Sprintf("%.0f/s (%.0f%% of %d/s)", svc.rate, 100*svc.rate*sr.sc.Latency.Seconds()/float64(rp.opts.maxInFlight),
					int(float64(rp.opts.maxInFlight)/sr.sc.Latency.Seconds())), svc.rate >= want)
		case sr.sc.Rate > 0:
			want := 0.95 * float64(sr.sc.Rate)
			add(fmt.Sprintf("%s, limit %d/s: ≥ 95%% of the limit, zero 429s", fmtLatency(sr.sc.Latency), sr.sc.Rate),
				fmt.Sprintf("≥ %.0f/s, 0 × 429", want), fmt.Sprintf("%.1f/s, %d × 429", svc.rate, svc.status429),
				svc.rate >= want && svc.status429 == 0)
		}
		add(fmt.Sprintf("CPU per 1,000 requests (%s)", sr.sc.short()), "reported", fmt.Sprintf("%.3f s service, %.3f s rest", svc.cpuClient, svc.cpuEnv), true)
	}
	if len(rows) == 0 {
		return ""
	}
	return "**Targets**\n\n| target | wanted | measured | met |\n| --- | --- | --- | --- |\n" + strings.Join(rows, "\n") + "\n"
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < time.Microsecond:
		return "< 1 µs"
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func mdEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ")
}
