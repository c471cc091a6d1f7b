package main

import (
	"bufio"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report is everything measured in one invocation.
type report struct {
	machine           string
	opts              options
	started, finished time.Time
	throughput        []measurement
	backlog           *backlogResult
	ledger            *ledgerResult
	reconcile         *reconcileResult
	scale             *scaleResult
}

// describeMachine names the CPU, the cores, Go and the versions of what
// was built, read from the binaries themselves.
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
	server := "nats-server (version unknown)"
	if out, err := exec.Command(o.natsBin, "--version").Output(); err == nil {
		server = strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("%d CPUs (`nproc`), %s, %s %s/%s, %s as a separate process (file storage), "+
		"the service with nats.go %s, the Watermill peer with %s, %s and nats.go %s",
		runtime.NumCPU(), cpu, runtime.Version(), runtime.GOOS, runtime.GOARCH, server,
		depVersion(o.bins["service"], "github.com/nats-io/nats.go"),
		"watermill "+depVersion(o.bins["watermill"], "github.com/ThreeDotsLabs/watermill"),
		"watermill-nats "+depVersion(o.bins["watermill"], "github.com/ThreeDotsLabs/watermill-nats/v2"),
		depVersion(o.bins["watermill"], "github.com/nats-io/nats.go"))
}

// depVersion is the version of module mod linked into bin.
func depVersion(bin, mod string) string {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "?"
	}
	for _, d := range bi.Deps {
		if d.Path == mod {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return "?"
}

// markdown renders the report.
func (rp *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s with `cd testenv/bench && go run . %s` (%s) on %s.\n\n",
		rp.started.UTC().Format("2006-01-02"), rp.flags(), rp.finished.Sub(rp.started).Round(time.Second), rp.machine)
	if len(rp.throughput) > 0 {
		rp.throughputMarkdown(&b)
	}
	if rp.backlog != nil {
		rp.backlogMarkdown(&b)
	}
	if rp.ledger != nil {
		rp.ledgerMarkdown(&b)
	}
	if rp.reconcile != nil {
		rp.reconcileMarkdown(&b)
	}
	if rp.scale != nil {
		rp.scaleMarkdown(&b)
	}
	return b.String()
}

// flags are the flags that differ from their defaults, for the command
// line in the report.
func (rp *report) flags() string {
	o := rp.opts
	var f []string
	if o.scenario != "throughput" {
		f = append(f, "-scenario "+o.scenario)
	}
	if o.scenario == "throughput" || o.scenario == "all" {
		f = append(f, fmt.Sprintf("-n %d -runs %d", o.n, o.runs))
	}
	if (o.scenario == "ledger" || o.scenario == "all") && (o.ledgerSmall != 2000 || o.ledgerLarge != 200000 || o.ledgerRuns != 21) {
		f = append(f, fmt.Sprintf("-ledger-small %d -ledger-large %d -ledger-runs %d", o.ledgerSmall, o.ledgerLarge, o.ledgerRuns))
	}
	if (o.scenario == "reconcile" || o.scenario == "all") && (fmt.Sprint(o.reconcileSizes) != "[10000 100000]" || o.reconcileRate != 20) {
		var sizes []string
		for _, n := range o.reconcileSizes {
			sizes = append(sizes, fmt.Sprint(n))
		}
		f = append(f, fmt.Sprintf("-reconcile-sizes %s -reconcile-rate %d", strings.Join(sizes, ","), o.reconcileRate))
	}
	if (o.scenario == "backlog" || o.scenario == "all") && o.backlogN != 20000 {
		f = append(f, fmt.Sprintf("-backlog-n %d", o.backlogN))
	}
	if o.scenario == "scale" && (o.scaleN != 1000000 || o.scaleUsers != 50000 || o.scaleBatch != 1000) {
		f = append(f, fmt.Sprintf("-scale-n %d -scale-users %d -scale-batch %d", o.scaleN, o.scaleUsers, o.scaleBatch))
	}
	if o.quietWait != 3*time.Minute {
		f = append(f, fmt.Sprintf("-quiet-wait %v", o.quietWait))
	}
	if len(o.only) != 3 && (o.scenario == "throughput" || o.scenario == "all") {
		var names []string
		for _, c := range o.consumers() {
			names = append(names, c.Name)
		}
		f = append(f, "-consumers "+strings.Join(names, ","))
	}
	return strings.Join(f, " ")
}

// byConsumer groups the throughput measurements by consumer, in run
// order.
func (rp *report) byConsumer() map[string][]measurement {
	out := map[string][]measurement{}
	for _, m := range rp.throughput {
		out[m.Consumer] = append(out[m.Consumer], m)
	}
	for _, ms := range out {
		slices.SortFunc(ms, func(a, b measurement) int { return a.Run - b.Run })
	}
	return out
}

func (rp *report) throughputMarkdown(b *strings.Builder) {
	o := rp.opts
	fmt.Fprintf(b, "**Throughput: %s `ssoCreate` requests preloaded, Zoom simulator at 0 ms and no limit, %d runs**\n\n", thousands(o.n), o.runs)
	b.WriteString("Each consumer is its own process with its defaults (the service: `consumer run` with `ZOOM_RATE_LIMIT=0`), on a fresh " +
		"`nats-server` process with the contract's streams; results/s is N over the time from the consumer's start to its N-th distinct " +
		"result on the result subject (seen by a core subscription; afterwards every result is checked to be stored). CPU is user + system seconds from /proc over that interval, per 1,000 results; peak RSS is VmHWM " +
		"(the highest of the runs). The order of the consumers rotates from run to run.\n\n")
	by := rp.byConsumer()
	b.WriteString("| consumer |")
	for r := 1; r <= o.runs; r++ {
		fmt.Fprintf(b, " run %d |", r)
	}
	b.WriteString(" median results/s | CPU s / 1,000 (consumer) | CPU s / 1,000 (broker) | peak RSS |\n|---|")
	for range o.runs + 4 {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, c := range o.consumers() {
		ms := by[c.Name]
		fmt.Fprintf(b, "| %s |", c.Label)
		var rates, cpuC, cpuB []float64
		var rss int64
		for r := 1; r <= o.runs; r++ {
			m, ok := findRun(ms, r)
			switch {
			case !ok:
				b.WriteString(" |")
			case m.Err != nil:
				b.WriteString(" failed |")
			default:
				mark := ""
				if m.Disturbed() {
					mark += " †"
				}
				if len(m.Problems) > 0 {
					mark += " (!)"
				}
				fmt.Fprintf(b, " %s%s |", thousands(int(m.Rate()+0.5)), mark)
				rates = append(rates, m.Rate())
				cpuC = append(cpuC, m.cpuPer1000(m.CPUConsumer))
				cpuB = append(cpuB, m.cpuPer1000(m.CPUBroker))
				rss = max(rss, m.RSS)
			}
		}
		if len(rates) == 0 {
			b.WriteString(" | | | |\n")
			continue
		}
		fmt.Fprintf(b, " %s | %s | %s | %.1f MiB |\n", thousands(int(median(rates)+0.5)), spread(cpuC), spread(cpuB), mib(rss))
	}
	b.WriteString("\nCPU columns: median (lowest–highest). † marks a run during which other processes used more than 5% of a core " +
		"(other people's work on the shared machine; see *Every run*); (!) a run that failed a check. Both are still counted.\n\n")
	if r := rp.ratios(by); r != "" {
		b.WriteString(r)
	}
	rp.runDetails(b, by)
}

// ratios is the service's results/s over each other consumer's, per run
// (both measured in the same run) and the median of those.
func (rp *report) ratios(by map[string][]measurement) string {
	svc := by["service"]
	if len(svc) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("| ratio | ")
	for r := 1; r <= rp.opts.runs; r++ {
		fmt.Fprintf(&b, "run %d | ", r)
	}
	b.WriteString("median | wanted |\n|---|")
	for range rp.opts.runs + 2 {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	rows := 0
	for _, peer := range []struct {
		name, label string
		want        float64
	}{{"watermill", "service ÷ Watermill", 1.5}, {"naive", "service ÷ naive loop", 3}} {
		if len(by[peer.name]) == 0 {
			continue
		}
		rows++
		fmt.Fprintf(&b, "| %s | ", peer.label)
		var rs []float64
		for r := 1; r <= rp.opts.runs; r++ {
			s, ok1 := findRun(svc, r)
			p, ok2 := findRun(by[peer.name], r)
			if !ok1 || !ok2 || s.Err != nil || p.Err != nil || p.Rate() == 0 {
				b.WriteString(" | ")
				continue
			}
			ratio := s.Rate() / p.Rate()
			rs = append(rs, ratio)
			fmt.Fprintf(&b, "%.2f | ", ratio)
		}
		med := "–"
		if len(rs) > 0 {
			m := median(rs)
			met := "not met"
			if m >= peer.want {
				met = "met"
			}
			med = fmt.Sprintf("%.2f (%s)", m, met)
		}
		fmt.Fprintf(&b, "%s | ≥ %.1f |\n", med, peer.want)
	}
	if rows == 0 {
		return ""
	}
	b.WriteString("\n")
	if s := by["service"]; len(s) > 0 {
		worst := int64(0)
		for _, m := range s {
			worst = max(worst, m.RSS)
		}
		fmt.Fprintf(&b, "The service's peak RSS with %s queued: %.1f MiB (wanted ≤ 64 MiB with 20,000 queued; see the backlog scenario for 20,000).\n\n",
			thousands(rp.opts.n), mib(worst))
	}
	return b.String()
}

// runDetails lists every measurement with its load and checks.
func (rp *report) runDetails(b *strings.Builder, by map[string][]measurement) {
	b.WriteString("<details><summary>Every run</summary>\n\n")
	b.WriteString("The load average includes the bench's own previous runs; *other processes* is the CPU time of everything on the machine " +
		"except the consumer, the broker and the bench (which hosts the simulator) over the measured interval: other people's work.\n\n")
	b.WriteString("| run | consumer | load before (1/5/15 min) | results/s | to N-th result | to first result | CPU s consumer | CPU s broker | CPU s other processes | waited for quiet | peak RSS | token POSTs | checks |\n")
	b.WriteString("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, m := range rp.throughput {
		if m.Err != nil {
			fmt.Fprintf(b, "| %d | %s | %s | failed | | | | | | | | | %s |\n", m.Run, m.Consumer, m.Load, mdEscape(m.Err.Error()))
			continue
		}
		checks := "one correct result per request, each user created once, nothing dead-lettered or left, clean stop"
		if len(m.Problems) > 0 {
			checks = "**" + mdEscape(strings.Join(m.Problems, "; ")) + "**"
		}
		fmt.Fprintf(b, "| %d | %s | %s | %s | %.2f s | %.0f ms | %.2f | %.2f | %.2f | %s | %.1f MiB | %s | %s |\n",
			m.Run, m.Consumer, m.Load, thousands(int(m.Rate()+0.5)), m.Elapsed.Seconds(), float64(m.FirstResult)/float64(time.Millisecond),
			m.CPUConsumer, m.CPUBroker, m.CPUOthers, fmtQuiet(m.QuietWait, m.Quiet), mib(m.RSS), thousands(m.TokenPOSTs), checks)
	}
	b.WriteString("\n</details>\n\n")
}

func (rp *report) backlogMarkdown(b *strings.Builder) {
	r := rp.backlog
	fmt.Fprintf(b, "**Backlog after a quota reset: %s `create` requests queued behind a closed gate, Zoom limit %d/s with %s latency**\n\n",
		thousands(r.N), r.Rate, fmtMs(r.Latency))
	fmt.Fprintf(b, "The service (`consumer run`, `ZOOM_RATE_LIMIT=%d`) starts on a fresh broker with the requests queued; the simulator's daily "+
		"create quota is 1 in a %s quota day, so the second request's daily-limit 429 closes the gate, and the quota resets when the day ends "+
		"(after that the day's quota is unlimited, so that all %s fit). The times come from the simulator's log of POST /v2/users arrivals; "+
		"\"reaches N/s\" is the end of the first rolling one-second window after the reset that holds N created users. Load before: %s.\n\n",
		r.Rate, r.Window, thousands(r.N), r.Load)
	if r.Err != nil {
		fmt.Fprintf(b, "Failed: %s\n\n", mdEscape(r.Err.Error()))
		if r.Reset == 0 {
			return
		}
	}
	b.WriteString("| measure | value | wanted |\n|---|---:|---|\n")
	row := func(k, v, want string) { fmt.Fprintf(b, "| %s | %s | %s |\n", k, v, want) }
	row("gate closed (first daily 429), after the start", fmtMs(r.GateClosed), "")
	row("quota reset, after the start", fmtMs(r.Reset), "")
	row("users created before the reset", fmt.Sprint(r.CreatedBefore), "")
	row("daily-limit 429s before the reset", fmt.Sprint(r.Daily429Before), "")
	row("per-second 429s before the reset", fmt.Sprint(r.QPS429Before), "")
	row("POSTs between the gate closing and the reset", fmt.Sprint(r.SentClosed), "0")
	row("first POST after the reset", fmtMs(r.FirstPOST), "")
	row(fmt.Sprintf("reaches %d/s, after the reset", (r.Rate*95+99)/100), fmtWindow(r.To95), "")
	row(fmt.Sprintf("reaches %d/s, after the reset", r.Rate), fmtWindow(r.To80), "≤ 2 s"+metMark(r.To80 >= 0 && r.To80 <= 2*time.Second))
	row("steady rate (from 2 s after the reset to the last user)", fmt.Sprintf("%.1f/s", r.Steady), fmt.Sprintf("%d/s", r.Rate))
	row("fewest / most users created in one second of that", fmt.Sprintf("%d / %d", r.SteadyMin, r.SteadyMax), "")
	row("reset to the last user created", fmt.Sprintf("%.1f s", r.Drain.Seconds()), fmt.Sprintf("%.1f s at %d/s", float64(r.N-r.CreatedBefore)/float64(r.Rate), r.Rate))
	row("429s after the reset", fmt.Sprint(r.QPS429After), "0"+metMark(r.QPS429After == 0))
	row("deferred result events", fmt.Sprint(r.Deferred), "")
	row("service CPU s / 1,000 (start to last result)", fmt.Sprintf("%.3f", r.CPUService/float64(r.N)*1000), "")
	row("broker CPU s / 1,000", fmt.Sprintf("%.3f", r.CPUBroker/float64(r.N)*1000), "")
	row("CPU s of other processes (start to last result)", fmt.Sprintf("%.2f", r.CPUOthers), "")
	row("waited for a quiet machine before the start", fmtQuiet(r.QuietWait, r.Quiet), "")
	row(fmt.Sprintf("service peak RSS, %s queued", thousands(r.N)), fmt.Sprintf("%.1f MiB", mib(r.RSS)), "≤ 64 MiB"+metMark(r.RSS <= 64<<20))
	checks := "one correct created result per request, each user created once, nothing dead-lettered or left, clean stop"
	if len(r.Problems) > 0 {
		checks = "**" + mdEscape(strings.Join(r.Problems, "; ")) + "**"
	}
	row("checks", checks, "")
	b.WriteString("\n")
}

func (rp *report) ledgerMarkdown(b *strings.Builder) {
	r := rp.ledger
	fmt.Fprintf(b, "**The per-user ledger: `consumer user show` with %s and with %s results stored**\n\n", thousands(r.Small.Results), thousands(r.Large.Results))
	fmt.Fprintf(b, "The service (`consumer run`) on a fresh broker; result events as the service publishes them (lives of five results: "+
		"creation, update, deactivation, activation, deletion, with `data.request`) are stored in the result stream and the service's projector "+
		"brings the ledger (bucket `zoom_ledger`) up to date; then `consumer user show <one user> --json`, the real binary as an operator "+
		"runs it (process start and connection included), is timed %d times; then results up to %s, and the same again. Load before: %s.\n\n",
		r.Runs, thousands(r.Large.Results), r.Load)
	if r.Err != nil {
		fmt.Fprintf(b, "Failed: %s\n\n", mdEscape(r.Err.Error()))
		if len(r.Large.Show) == 0 {
			return
		}
	}
	b.WriteString("| results stored | users | ledger up to date after | `user show`: median | fastest | slowest | bucket bytes | bytes per user | the user's entry |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range []ledgerPoint{r.Small, r.Large} {
		fmt.Fprintf(b, "| %s | %s | %.1f s (%s results/s) | %s | %s | %s | %s | %s | %s B |\n", thousands(p.Results), thousands(p.Users),
			p.Index.Seconds(), thousands(int(float64(p.Results-prevResults(r, p))/p.Index.Seconds())), fmtMs(p.median()), fmtMs(p.Show[0]), fmtMs(p.Show[len(p.Show)-1]),
			thousands(int(p.Bytes)), thousands(int(p.Bytes/max(p.Keys, 1))), thousands(int(p.Sample)))
	}
	ratio := r.ratio()
	fmt.Fprintf(b, "\n| ratio | value | wanted |\n|---|---:|---|\n| `user show` median, %s ÷ %s results | %.2f | ≤ 2%s |\n",
		thousands(r.Large.Results), thousands(r.Small.Results), ratio, metMark(ratio <= 2))
	if r.Reindex > 0 {
		fmt.Fprintf(b, "\n`consumer user reindex` (the whole ledger rebuilt from the %s results, the service running): %.1f s.\n", thousands(r.Large.Results), r.Reindex.Seconds())
	}
	checks := fmt.Sprintf("every run printed the user's 6 requests, deleted (after the reindex too); waited %s for a quiet machine", fmtQuiet(r.QuietWait, r.Quiet))
	if len(r.Problems) > 0 {
		checks = "**" + mdEscape(strings.Join(r.Problems, "; ")) + "**"
	}
	fmt.Fprintf(b, "\nChecks: %s.\n\n", checks)
}

func (rp *report) reconcileMarkdown(b *strings.Builder) {
	r := rp.reconcile
	fmt.Fprintf(b, "**Reconciliation: `consumer reconcile --json` against Zoom accounts of %s users**\n\n", sizesText(r.Points))
	fmt.Fprintf(b, "For each size: the service (`consumer run`, idle) on a fresh broker; the Zoom simulator holding that many users, "+
		"with Zoom Pro's Medium limit (%d listing calls a second); the ledger (bucket `zoom_ledger`) holding an entry for each user the service "+
		"manages; one user in a hundred of each kind of drift (missing, status, present, fields) and one in a hundred unmanaged. "+
		"Then `consumer reconcile --json`, the real binary as an operator runs it, with `ZOOM_RATE_LIMIT=%d`: it takes a share of it "+
		"(half, beside the service) through the quota bucket while it lists, asks for pages of 300 and reads one ledger entry per Zoom user. "+
		"Its time runs from process start to exit; its peak RSS is its high-water mark (`VmHWM`), its CPU from `getrusage`. Load before: %s.\n\n", r.Rate, r.Rate, r.Load)
	if r.Err != nil {
		fmt.Fprintf(b, "Failed: %s\n\n", mdEscape(r.Err.Error()))
	}
	if len(r.Points) > 0 {
		b.WriteString("| users | in Zoom | ledger entries | drift found | unmanaged | listing calls | time | Zoom users/s | peak RSS | CPU s | output |\n")
		b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, p := range r.Points {
			drift := p.Counts["missing"] + p.Counts["status"] + p.Counts["present"] + p.Counts["fields"]
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %.1f s | %s | %.1f MiB | %.2f | %s KiB |\n", thousands(p.Size), thousands(p.Users), thousands(p.LedgerEntries),
				thousands(drift), thousands(p.Counts["unmanaged"]), thousands(p.Listing), p.Took.Seconds(),
				thousands(int(float64(p.Users)/p.Took.Seconds())), mib(p.RSS), p.CPU, thousands(p.OutputBytes/1024))
		}
		if n := len(r.Points); n > 1 {
			a, z := r.Points[0], r.Points[n-1]
			fmt.Fprintf(b, "\nPeak RSS grows %.1f MiB for %s more users (%.0f bytes per user: the set of 16-byte keys seen, and the drift and unmanaged entries kept for the output); time %.1f×.\n",
				mib(z.RSS-a.RSS), thousands(z.Size-a.Size), float64(z.RSS-a.RSS)/float64(max(z.Size-a.Size, 1)), z.Took.Seconds()/a.Took.Seconds())
		}
	}
	checks := fmt.Sprintf("each run found exactly the drift and the unmanaged users made, and called nothing but GET /v2/users; waited %s for a quiet machine", fmtQuiet(r.QuietWait, r.Quiet))
	if len(r.Problems) > 0 {
		checks = "**" + mdEscape(strings.Join(r.Problems, "; ")) + "**"
	}
	fmt.Fprintf(b, "\nChecks: %s.\n\n", checks)
}

// sizesText is "10,000 and 100,000".
func sizesText(ps []reconcilePoint) string {
	var s []string
	for _, p := range ps {
		s = append(s, thousands(p.Size))
	}
	return strings.Join(s, " and ")
}

// The scale scenario's goals.
const (
	scaleMaxRSS        = 96 << 20
	scaleMaxFirstCall  = 2 * time.Second
	scaleMinRatio      = 0.9
	scaleMaxReads      = 1.5
	scaleReadsBefore   = "3.43 before the batched reads (this scenario at commit b307507, 2026-12-07)"
	scaleQueueChecks   = "one correct created result per request, each user created once, nothing dead-lettered or left, clean stop"
	scaleOrderChecks   = "one result per request with its outcome; each user's calls at Zoom were POST, PATCH, PUT deactivate, once each, in that order, never two at once; nothing dead-lettered or left; clean stops"
	scaleQueueHeadline = "**Scale, part one: %s `ssoCreate` requests queued, the service alone, Zoom at 0 ms with no limit**\n\n"
)

func (rp *report) scaleMarkdown(b *strings.Builder) {
	if q := rp.scale.Queue; q != nil {
		scaleQueueMarkdown(b, q)
	}
	if r := rp.scale.Order; r != nil {
		scaleOrderMarkdown(b, r)
	}
}

func scaleQueueMarkdown(b *strings.Builder, q *scaleQueue) {
	fmt.Fprintf(b, scaleQueueHeadline, thousands(q.N))
	fmt.Fprintf(b, "The service (`consumer run` with its defaults, `ZOOM_RATE_LIMIT=0`, `HTTP_ADDR=off`, `LOG_LEVEL=warn`) starts on a fresh "+
		"`nats-server` process with the requests queued in the contract's streams (published with ids, asynchronously, at most 4,000 awaiting "+
		"their acknowledgement; the broker's JetStream may use 16 GiB of disk, as testenv's 1 GiB would not hold the results and the ledger). "+
		"The first Zoom call is the simulator's first POST /v2/users; a tenth's results/s is its results but one over the time from its "+
		"first to its last arrival on the result subject. CPU is over the time from the service's start to the last result. Load before: %s.\n\n", q.Load)
	if q.Err != nil {
		fmt.Fprintf(b, "Failed: %s\n\n", mdEscape(q.Err.Error()))
		return
	}
	row := func(k, v, want string) { fmt.Fprintf(b, "| %s | %s | %s |\n", k, v, want) }
	b.WriteString("| measure | value | wanted |\n|---|---:|---|\n")
	row(fmt.Sprintf("preload: %s published and acknowledged", thousands(q.N)),
		fmt.Sprintf("%.1f s (%s/s), %s MB in the stream", q.Preload.Seconds(), thousands(int(float64(q.N)/q.Preload.Seconds())), thousands(int(q.RequestBytes/1e6))), "")
	row("service start → first POST /v2/users", fmtMs(q.FirstCall), "≤ 2 s"+metMark(q.FirstCall > 0 && q.FirstCall <= scaleMaxFirstCall))
	row("service start → first result", fmtMs(q.FirstResult), "")
	row(fmt.Sprintf("service start → last result (the %sth)", thousands(q.N)), fmt.Sprintf("%.1f s (%s results/s)", q.Elapsed.Seconds(), thousands(int(q.Rate()+0.5))), "")
	row("results/s, first 10%", thousands(int(q.FirstRate()+0.5)), "")
	row("results/s, last 10%", thousands(int(q.LastRate()+0.5)), "")
	disturbed := ""
	m := q.Tenths
	if q.Start.others(m[0]) > quietShare || m[8].others(m[9]) > quietShare {
		disturbed = " † other processes used more than 5% of a core in one of the two tenths (below): the ratio is the machine's as much as the service's"
	}
	row("last 10% ÷ first 10%", fmt.Sprintf("%.2f", q.Ratio()), fmt.Sprintf("≥ %.2f", scaleMinRatio)+metMark(q.Ratio() >= scaleMinRatio)+disturbed)
	row("the same from the line through all ten tenths' results/s (least squares)", fmt.Sprintf("%.2f", trendRatio(q.Rates)),
		"(the ratio above, less at the mercy of one window: see the tenths below)")
	row("service peak RSS (VmHWM)", fmt.Sprintf("%.1f MiB", mib(q.RSS)), "≤ 96 MiB"+metMark(q.RSS > 0 && q.RSS <= scaleMaxRSS))
	row("service RSS at 10% / 50% / 90% of the results", fmt.Sprintf("%.1f / %.1f / %.1f MiB", mib(m[0].RSS), mib(m[4].RSS), mib(m[8].RSS)), "")
	svc, brk, bench := func(k mark) float64 { return k.Service }, func(k mark) float64 { return k.Broker }, func(k mark) float64 { return k.Bench }
	row("CPU s per 1,000 results, start to 10% / 90% to the last: service", fmt.Sprintf("%.3f / %.3f", q.Start.per1000(m[0], svc), m[8].per1000(m[9], svc)), "")
	row("the same: broker", fmt.Sprintf("%.3f / %.3f", q.Start.per1000(m[0], brk), m[8].per1000(m[9], brk)), "")
	row("the same: the bench (simulator, counting)", fmt.Sprintf("%.3f / %.3f", q.Start.per1000(m[0], bench), m[8].per1000(m[9], bench)), "")
	row("cores busy (the whole machine), start to 10% / 90% to the last", fmt.Sprintf("%.2f / %.2f", q.Start.busy(m[0]), m[8].busy(m[9])), "")
	row("cores other processes used, start to 10% / 90% to the last", fmt.Sprintf("%.2f / %.2f", q.Start.others(m[0]), m[8].others(m[9])), "")
	row("longest time between two results", fmt.Sprintf("%s (after %s)", fmtMs(q.LongestGap), thousands(q.GapAfter)), "")
	row("CPU s per 1,000 results: service / broker", fmt.Sprintf("%.3f / %.3f", q.CPUService/float64(q.N)*1000, q.CPUBroker/float64(q.N)*1000), "")
	row("CPU s: service / broker / the bench (simulator, counting) / other processes",
		fmt.Sprintf("%.1f / %.1f / %.1f / %.1f", q.CPUService, q.CPUBroker, q.CPUBench, q.CPUOthers), "")
	row("broker peak RSS; its file store in use after the run", fmt.Sprintf("%.0f MiB; %s MB", mib(q.BrokerRSS), thousands(int(q.StoreBytes/1e6))), "")
	row("waited for a quiet machine before the preload", fmtQuiet(q.QuietWait, q.Quiet), "")
	checks := scaleQueueChecks
	if len(q.Problems) > 0 {
		checks = "**" + mdEscape(strings.Join(q.Problems, "; ")) + "**"
	}
	row("checks (afterwards)", checks, "")
	b.WriteString("\n")
	scaleTenthsMarkdown(b, q)
}

// scaleTenthsMarkdown is part one tenth by tenth: whether the rate falls
// steadily as the broker and the simulator fill, or wanders with the
// machine.
func scaleTenthsMarkdown(b *strings.Builder, q *scaleQueue) {
	if len(q.Rates) != len(q.Tenths) {
		return
	}
	b.WriteString("Tenth by tenth (a tenth's CPU is from the mark before it: the service's start for the first):\n\n")
	b.WriteString("| tenth | results/s | CPU s per 1,000: service / broker / bench | cores busy | the bench's garbage collections |\n|---:|---:|---|---:|---:|\n")
	svc, brk, bench := func(k mark) float64 { return k.Service }, func(k mark) float64 { return k.Broker }, func(k mark) float64 { return k.Bench }
	prev := q.Start
	for i, m := range q.Tenths {
		fmt.Fprintf(b, "| %d | %s | %.3f / %.3f / %.3f | %.2f | %d |\n", i+1, thousands(int(q.Rates[i]+0.5)),
			prev.per1000(m, svc), prev.per1000(m, brk), prev.per1000(m, bench), prev.busy(m), m.BenchGCs-prev.BenchGCs)
		prev = m
	}
	b.WriteString("\n")
}

func scaleOrderMarkdown(b *strings.Builder, r *scaleOrder) {
	fmt.Fprintf(b, "**Scale, part two: two replicas, %s users × create → update → deactivate (%s requests), Zoom at 0 ms with no limit**\n\n",
		thousands(r.Users), thousands(r.Requests))
	fmt.Fprintf(b, "Two `consumer run` replicas (`ZOOM_RATE_LIMIT=0`, `GUARD_LIMIT=0`: the guard would hold every deactivation after the 50th, "+
		"`LOG_LEVEL=warn`, `/metrics` on a loopback port each) start together on a fresh broker with the requests queued, published %s users "+
		"at a time: the batch's creations (`ssoCreate`), then its updates, then its deactivations, so that each user's three requests are "+
		"about %s requests apart and the three consumers deliver them side by side. Order reads are each replica's "+
		"`zoomprov_order_reads_total` once the last result is in. Load before: %s.\n\n", thousands(r.Batch), thousands(r.Batch), r.Load)
	if r.Err != nil {
		fmt.Fprintf(b, "Failed: %s\n\n", mdEscape(r.Err.Error()))
		return
	}
	sum := func(xs []uint64) (t uint64) {
		for _, x := range xs {
			t += x
		}
		return t
	}
	pair := func(xs []uint64) string {
		var p []string
		for _, x := range xs {
			p = append(p, thousands(int(x)))
		}
		return strings.Join(p, " / ")
	}
	row := func(k, v, want string) { fmt.Fprintf(b, "| %s | %s | %s |\n", k, v, want) }
	b.WriteString("| measure | value | wanted |\n|---|---:|---|\n")
	row(fmt.Sprintf("preload: %s published and acknowledged", thousands(r.Requests)),
		fmt.Sprintf("%.1f s (%s/s)", r.Preload.Seconds(), thousands(int(float64(r.Requests)/r.Preload.Seconds()))), "")
	row(fmt.Sprintf("replicas' start → last result (the %sth)", thousands(r.Requests)), fmt.Sprintf("%.1f s (%s results/s)", r.Elapsed.Seconds(), thousands(int(r.Rate()+0.5))), "")
	row("order reads: replica 1 / replica 2", pair(r.Reads), "")
	rpr := r.ReadsPerRequest()
	row("**order reads per request**", fmt.Sprintf("**%.2f**", rpr), fmt.Sprintf("< %.1f", scaleMaxReads)+metMark(rpr < scaleMaxReads)+"; "+scaleReadsBefore)
	t, per := r.Tapped, func(k uint64) string { return fmt.Sprintf("%.2f", float64(k)/float64(max(r.Requests, 1))) }
	row("the reads as the broker received them, per request: reading forward / checking a creation / an update / a deactivation / a parked copy is stored",
		fmt.Sprintf("%s / %s / %s / %s / %s (%s in all)", per(t.Forward), per(t.Check[0]), per(t.Check[1]), per(t.Check[2]), per(t.Check[3]), thousands(int(t.Total()))), "")
	row("deliveries handed back to wait for an earlier request / parked / superseded (both replicas)",
		fmt.Sprintf("%s / %s / %s", thousands(int(sum(r.Waiting))), thousands(int(sum(r.Parked))), thousands(int(sum(r.Superseded)))), "")
	row("longest time between two results", fmt.Sprintf("%s (after %s, %.1f s from the start)", fmtMs(r.LongestGap), thousands(r.GapAfter), r.GapAt.Seconds()), "")
	row("Zoom calls (token included)", thousands(r.Calls), "")
	var rss []string
	for _, x := range r.RSS {
		rss = append(rss, fmt.Sprintf("%.1f", mib(x)))
	}
	row("peak RSS: replica 1 / replica 2", strings.Join(rss, " / ")+" MiB", "")
	var cpu float64
	for _, c := range r.CPUReplicas {
		cpu += c
	}
	row("CPU s per 1,000 requests: both replicas / broker", fmt.Sprintf("%.3f / %.3f", cpu/float64(r.Requests)*1000, r.CPUBroker/float64(r.Requests)*1000), "")
	row("CPU s: the bench (simulator, counting) / other processes", fmt.Sprintf("%.1f / %.1f", r.CPUBench, r.CPUOthers), "")
	row("waited for a quiet machine before the preload", fmtQuiet(r.QuietWait, r.Quiet), "")
	checks := scaleOrderChecks
	if len(r.Problems) > 0 {
		checks = "**" + mdEscape(strings.Join(r.Problems, "; ")) + "**"
	}
	row("checks (afterwards)", checks, "")
	b.WriteString("\n")
}

// prevResults is how many results were stored before point p (its
// indexing time covers the others).
func prevResults(r *ledgerResult, p ledgerPoint) int {
	if p.Results == r.Large.Results {
		return r.Small.Results
	}
	return 0
}

// fmtQuiet says how long the bench waited for a quiet machine.
func fmtQuiet(d time.Duration, ok bool) string {
	s := fmt.Sprintf("%.0f s", d.Seconds())
	if !ok {
		s += " (not quiet)"
	}
	return s
}

func metMark(ok bool) string {
	if ok {
		return " (met)"
	}
	return " (not met)"
}

func fmtWindow(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return fmtMs(d)
}

func fmtMs(d time.Duration) string {
	if d < 10*time.Second && d > -10*time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func findRun(ms []measurement, run int) (measurement, bool) {
	for _, m := range ms {
		if m.Run == run {
			return m, true
		}
	}
	return measurement{}, false
}

// median of xs (not modified); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread is "median (lowest–highest)" with three decimals.
func spread(xs []float64) string {
	if len(xs) == 1 {
		return fmt.Sprintf("%.3f", xs[0])
	}
	return fmt.Sprintf("%.3f (%.3f–%.3f)", median(xs), slices.Min(xs), slices.Max(xs))
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
