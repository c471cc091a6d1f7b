package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zoomprov/consumer/testenv"
)

// result is one row of the table.
type result struct {
	sub       subject
	n         int
	rate      float64 // operations (requests) per second
	p50, p99  time.Duration
	cpuClient float64 // CPU seconds of the child per 1,000 operations
	cpuEnv    float64 // CPU seconds of the parent (server, simulator, driver) per 1,000
	rss       int64   // the child's peak RSS in bytes
	status429 int
	deferred  int
	note      string
	err       error
}

// runSubject runs one row in a fresh environment.
func runSubject(ctx context.Context, o options, sc scenario, sub subject) (r result) {
	r = result{sub: sub, n: sub.n, note: sub.note}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	e, err := startEnv(ctx, sc, o.natsURL)
	if err != nil {
		r.err = err
		return r
	}
	defer e.close()
	if err := e.setup(ctx, strings.TrimSuffix(sub.kind, "-small")); err != nil {
		r.err = fmt.Errorf("setup: %w", err)
		return r
	}
	t := benchTopology()
	kind := sub.kind
	if kind == "naive-small" {
		kind = "naive"
	}
	spec := childSpecT{
		Kind: kind, NATSURL: e.url, APIURL: e.sim.APIURL(), TokenURL: e.sim.TokenURL(),
		N: sub.n, Concurrency: sub.conc, Rate: sc.Rate, PullBatch: o.pullBatch, DefaultGC: o.defaultGC,
	}
	if sub.kind == "service" {
		spec.CPUProfile = profileName(o.cpuProfile, sc.Name)
		spec.MemProfile = profileName(o.memProfile, sc.Name)
	}
	switch kind {
	case "consume":
		if err := e.queue(ctx, ceilPrefix, sub.n); err != nil {
			r.err = err
			return r
		}
	case "naive", "service":
		if err := e.queue(ctx, t.RequestPrefix, sub.n); err != nil {
			r.err = err
			return r
		}
	}
	if o.envProfile != "" {
		envProfile = profileName(o.envProfile, sc.Name+"-"+sub.kind)
	}
	switch kind {
	case "naive", "service":
		r = runConsumer(ctx, e, spec, sub, r)
	default:
		r = runCeiling(ctx, e, spec, r)
	}
	if r.err == nil {
		st := e.sim.Stats()
		r.status429 = st.RateLimited[testenv.RateLimitQPS] + st.RateLimited[testenv.RateLimitDaily]
	}
	return r
}

func profileName(base, scenario string) string {
	if base == "" {
		return ""
	}
	ext := filepath.Ext(base)
	return strings.TrimSuffix(base, ext) + "-" + scenario + ext
}

// runCeiling runs a child that does its own work and reports it.
func runCeiling(ctx context.Context, e *env, spec childSpecT, r result) result {
	ch, err := startChild(spec)
	if err != nil {
		r.err = err
		return r
	}
	defer ch.kill()
	ready, err := ch.expect(ctx, "ready")
	if err != nil {
		r.err = err
		return r
	}
	env0, stopProf := selfCPU(), startEnvProfile()
	done, err := ch.expect(ctx, "done")
	stopProf()
	if err != nil {
		r.err = err
		return r
	}
	env1 := selfCPU()
	if err := ch.wait(); err != nil {
		r.err = err
		return r
	}
	if done.Ops == 0 || done.Elapsed <= 0 {
		r.err = errors.New("the child did nothing")
		return r
	}
	r.n = done.Ops
	r.rate = float64(done.Ops) / done.Elapsed
	r.p50, r.p99 = secs(done.P50), secs(done.P99)
	r.cpuClient = (done.CPU - ready.CPU) / float64(done.Ops) * 1000
	r.cpuEnv = (env1 - env0) / float64(done.Ops) * 1000
	r.rss = done.RSS
	if done.Errors > 0 {
		r.note = joinNote(r.note, fmt.Sprintf("%d failed operations", done.Errors))
	}
	r.note = joinNote(r.note, done.Note)
	return r
}

// runConsumer runs a child that consumes the queued requests until told to
// stop: the parent watches the results, then probes latency one request
// at a time.
func runConsumer(ctx context.Context, e *env, spec childSpecT, sub subject, r result) result {
	t := benchTopology()
	w, err := e.watch(ctx, t.ResultStream, sub.n)
	if err != nil {
		r.err = err
		return r
	}
	defer w.stop()
	ch, err := startChild(spec)
	if err != nil {
		r.err = err
		return r
	}
	defer ch.kill()
	ready, err := ch.expect(ctx, "ready")
	if err != nil {
		r.err = err
		return r
	}
	start, env0, stopProf := time.Now(), selfCPU(), startEnvProfile()
	defer stopProf()
	select {
	case <-w.done:
	case <-ch.exited:
		r.err = fmt.Errorf("child exited early: %s", ch.tail())
		return r
	case <-ctx.Done():
		got, _, _ := w.snapshot()
		r.err = fmt.Errorf("%d of %d results before the time-out", got, sub.n)
		return r
	}
	env1 := selfCPU()
	stopProf()
	_, outcomes, last := w.snapshot()
	w.mu.Lock()
	if w.gap > time.Second {
		r.note = joinNote(r.note, fmt.Sprintf("results stalled for %v before %s", w.gap.Round(time.Millisecond), w.gapID))
	}
	w.mu.Unlock()
	if err := ch.send("mark"); err != nil {
		r.err = err
		return r
	}
	mark, err := ch.expect(ctx, "mark")
	if err != nil {
		r.err = err
		return r
	}
	lat, perr := e.probe(ctx, w, t.RequestPrefix, sub.probes)
	if err := ch.send("stop"); err != nil {
		r.err = err
		return r
	}
	done, err := ch.expect(ctx, "done")
	if err != nil {
		r.err = err
		return r
	}
	if err := ch.wait(); err != nil {
		r.err = err
		return r
	}
	if perr != nil {
		r.err = perr
		return r
	}
	elapsed := last.Sub(start).Seconds()
	r.rate = float64(sub.n) / elapsed
	r.p50, r.p99 = percentile(lat, 0.50), percentile(lat, 0.99)
	r.cpuClient = (mark.CPU - ready.CPU) / float64(sub.n) * 1000
	r.cpuEnv = (env1 - env0) / float64(sub.n) * 1000
	r.rss = done.RSS
	r.deferred = outcomes["deferred"]
	if created := outcomes["created"]; created != sub.n {
		r.note = joinNote(r.note, fmt.Sprintf("outcomes %v (want %d created)", outcomes, sub.n))
	}
	if got := e.sim.TotalCreations(); got != sub.n+len(lat) {
		r.note = joinNote(r.note, fmt.Sprintf("Zoom created %d users for %d requests", got, sub.n+len(lat)))
	}
	return r
}

// child is a running child process and its stdout messages.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	msgs   chan childMsg
	exited chan struct{}
	log    *os.File
}

func startChild(spec childSpecT) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	logf, err := os.CreateTemp("", "bench-child-*.log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-child", string(js))
	cmd.Stderr = logf // the service's log lines go here, as to a container's log
	stdin, err := cmd.StdinPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	c := &child{cmd: cmd, stdin: stdin, msgs: make(chan childMsg, 16), exited: make(chan struct{}), log: logf}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m childMsg
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				c.msgs <- m
			}
		}
		close(c.exited)
	}()
	return c, nil
}

// expect waits for the child's next message, which must be event.
func (c *child) expect(ctx context.Context, event string) (childMsg, error) {
	select {
	case m := <-c.msgs:
		if m.Error != "" {
			return m, fmt.Errorf("child: %s", m.Error)
		}
		if m.Event != event {
			return m, fmt.Errorf("child said %q; want %q", m.Event, event)
		}
		return m, nil
	case <-c.exited:
		select {
		case m := <-c.msgs:
			if m.Error != "" {
				return m, fmt.Errorf("child: %s", m.Error)
			}
			if m.Event == event {
				return m, nil
			}
		default:
		}
		return childMsg{}, fmt.Errorf("child exited before %q: %s", event, c.tail())
	case <-ctx.Done():
		return childMsg{}, fmt.Errorf("waiting for %q: %w", event, ctx.Err())
	}
}

func (c *child) send(cmd string) error {
	_, err := io.WriteString(c.stdin, cmd+"\n")
	return err
}

// wait waits for the child to exit.
func (c *child) wait() error {
	c.stdin.Close()
	<-c.exited
	if err := c.cmd.Wait(); err != nil {
		return fmt.Errorf("child: %w: %s", err, c.tail())
	}
	c.cleanup()
	return nil
}

// kill ends a child that is still running (after a failure).
func (c *child) kill() {
	if c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
	}
	c.cleanup()
}

func (c *child) cleanup() {
	if c.log != nil {
		c.log.Close()
		if os.Getenv("BENCH_KEEP_LOGS") != "" {
			fmt.Fprintln(os.Stderr, "bench: child log kept in", c.log.Name())
		} else {
			os.Remove(c.log.Name())
		}
		c.log = nil
	}
}

// tail is the end of the child's stderr, for error messages.
func (c *child) tail() string {
	if c.log == nil {
		return ""
	}
	b, err := os.ReadFile(c.log.Name())
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// envProfile, if set, names the parent's CPU profile of the current run.
var envProfile string

// startEnvProfile profiles the parent during a measured phase; the
// returned function stops it.
func startEnvProfile() func() {
	if envProfile == "" {
		return func() {}
	}
	f, err := os.Create(envProfile)
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	var once sync.Once
	return func() { once.Do(func() { pprof.StopCPUProfile(); f.Close() }) }
}

// selfCPU is the user plus system CPU time of this process so far.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// percentile of d (sorted in place), nearest rank.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(p*float64(len(d))+0.5) - 1
	return d[min(max(i, 0), len(d)-1)]
}
