package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/testenv"
)

// childSpecT tells a child what to measure.
type childSpecT struct {
	// Kind is consume, publish-sync, publish-sync-conc, publish-async,
	// http, naive or service.
	Kind                      string
	NATSURL, APIURL, TokenURL string
	N, Concurrency            int
	Rate                      int  // service: ZOOM_RATE_LIMIT
	PullBatch                 int  // service: Config.PullBatch
	DefaultGC                 bool // service: leave GOGC at Go's default
	CPUProfile, MemProfile    string
}

// childMsg is one line a child writes on stdout.
type childMsg struct {
	Event string `json:"event"` // ready, mark, done
	// CPU is the child's user plus system CPU seconds so far.
	CPU float64 `json:"cpu"`
	// Ops, Elapsed (seconds), P50 and P99 (seconds) and Errors are the
	// measurement of a ceiling, reported with done.
	Ops     int     `json:"ops,omitempty"`
	Elapsed float64 `json:"elapsed,omitempty"`
	P50     float64 `json:"p50,omitempty"`
	P99     float64 `json:"p99,omitempty"`
	Errors  int     `json:"errors,omitempty"`
	Note    string  `json:"note,omitempty"`
	// RSS is the child's peak resident set so far (VmHWM), in bytes.
	RSS int64 `json:"rss"`
	// Error is set when the child failed.
	Error string `json:"error,omitempty"`
}

var stdoutMu sync.Mutex

func say(m childMsg) {
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	if m.CPU == 0 {
		m.CPU = selfCPU()
	}
	m.RSS = peakRSS()
	b, _ := json.Marshal(m)
	os.Stdout.Write(append(b, '\n'))
}

func runChild(spec childSpecT) error {
	var err error
	switch spec.Kind {
	case "consume":
		err = childConsume(spec)
	case "publish-sync", "publish-sync-conc":
		err = childPublishSync(spec)
	case "publish-async":
		err = childPublishAsync(spec)
	case "http":
		err = childHTTP(spec)
	case "naive":
		err = childNaive(spec)
	case "service":
		err = childService(spec)
	default:
		err = fmt.Errorf("unknown kind %q", spec.Kind)
	}
	if err != nil {
		say(childMsg{Event: "error", Error: err.Error()})
	}
	return err
}

// peakRSS is this process's peak resident set size (VmHWM in
// /proc/self/status). The parent cannot use the ru_maxrss that wait4
// reports: Go starts children with CLONE_VM, and Linux counts the memory of
// the process that exec replaced, which is the parent's, into the child's
// maximum.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// timings collects per-operation latencies from many goroutines.
type timings struct {
	mu sync.Mutex
	d  []time.Duration
}

func (t *timings) add(d time.Duration) {
	t.mu.Lock()
	t.d = append(t.d, d)
	t.mu.Unlock()
}

func (t *timings) done(ops, errs int, elapsed time.Duration, note string) {
	say(childMsg{Event: "done", Ops: ops, Errors: errs, Elapsed: elapsed.Seconds(),
		P50: percentile(t.d, 0.5).Seconds(), P99: percentile(t.d, 0.99).Seconds(), Note: note})
}

func connect(spec childSpecT, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(spec.NATSURL, nats.Name(name))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// childConsume is the consume + ack ceiling: one pull consumer with the
// client's default buffering, every message acked.
func childConsume(spec childSpecT) error {
	ctx := context.Background()
	nc, js, err := connect(spec, "bench-consume")
	if err != nil {
		return err
	}
	defer nc.Close()
	cons, err := js.Consumer(ctx, ceilStream, ceilConsumer)
	if err != nil {
		return err
	}
	var opts []jetstream.PullMessagesOpt
	if spec.PullBatch > 0 {
		opts = append(opts, jetstream.PullMaxMessages(spec.PullBatch))
	}
	it, err := cons.Messages(opts...)
	if err != nil {
		return err
	}
	defer it.Stop()
	var t timings
	t.d = make([]time.Duration, 0, spec.N)
	say(childMsg{Event: "ready"})
	start := time.Now()
	errs := 0
	for range spec.N {
		t0 := time.Now()
		m, err := it.Next()
		if err != nil {
			return err
		}
		if m.Ack() != nil {
			errs++
		}
		t.d = append(t.d, time.Since(t0))
	}
	if err := nc.Flush(); err != nil { // every ack has reached the server
		return err
	}
	t.done(spec.N, errs, time.Since(start), "per-op latency: Next() + Ack()")
	return nil
}

// resultLike is a result event of a typical size (the service's are about
// 450 bytes).
func resultLike(i int) *nats.Msg {
	m := nats.NewMsg(ceilResultPrefix + ".created")
	m.Header.Set("Content-Type", "application/cloudevents+json")
	m.Data = []byte(`{"specversion":"1.0","id":"b-` + strconv.Itoa(i) + `:result","source":"zoom-provisioner","type":"zoom.user.provisioning.created",` +
		`"subject":"b-` + strconv.Itoa(i) + `","time":"2026-11-28T12:12:20.512345678Z","datacontenttype":"application/json",` +
		`"data":{"request_id":"b-` + strconv.Itoa(i) + `","action":"ssoCreate","email":"b` + strconv.Itoa(i) + `@bench.example.com","outcome":"created",` +
		`"zoom_user_id":"KDcuGIm1QgePTO8WbOqwIQ","http_status":201,"zoom_code":0,"zoom_message":"","reason":"","retry_at":"","attempt":1,"stream_sequence":` +
		strconv.Itoa(i+1) + `}}`)
	return m
}

// childPublishSync publishes N events, each waiting for the stream's ack,
// from Concurrency goroutines (1 if zero).
func childPublishSync(spec childSpecT) error {
	ctx := context.Background()
	nc, js, err := connect(spec, "bench-publish")
	if err != nil {
		return err
	}
	defer nc.Close()
	conc := max(spec.Concurrency, 1)
	var t timings
	var next, errs atomic.Int64
	say(childMsg{Event: "ready"})
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= spec.N {
					return
				}
				m := resultLike(i)
				t0 := time.Now()
				_, err := js.PublishMsg(ctx, m, jetstream.WithMsgID("b-"+strconv.Itoa(i)+":result"), jetstream.WithExpectStream(ceilResultStream))
				if err != nil {
					errs.Add(1)
					continue
				}
				t.add(time.Since(t0))
			}
		})
	}
	wg.Wait()
	t.done(spec.N, int(errs.Load()), time.Since(start), "per-op latency: publish to ack")
	return nil
}

// childPublishAsync publishes N events without waiting between them, then
// waits for every ack.
func childPublishAsync(spec childSpecT) error {
	nc, js, err := connect(spec, "bench-publish-async")
	if err != nil {
		return err
	}
	defer nc.Close()
	var t timings
	type sent struct {
		at time.Time
		f  jetstream.PubAckFuture
	}
	futures := make(chan sent, 8192)
	var errs int
	say(childMsg{Event: "ready"})
	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() {
		for s := range futures {
			select {
			case <-s.f.Ok():
				t.add(time.Since(s.at))
			case <-s.f.Err():
				errs++
			}
		}
	})
	for i := range spec.N {
		m := resultLike(i)
		at := time.Now()
		f, err := js.PublishMsgAsync(m, jetstream.WithMsgID("b-"+strconv.Itoa(i)+":result"), jetstream.WithExpectStream(ceilResultStream))
		if err != nil {
			return err
		}
		futures <- sent{at, f}
	}
	close(futures)
	wg.Wait()
	t.done(spec.N, errs, time.Since(start), "per-op latency: publish to ack, pipelined")
	return nil
}

// fetchToken gets a Server-to-Server OAuth token the plain way.
func fetchToken(c *http.Client, tokenURL string) (string, error) {
	form := url.Values{"grant_type": {"account_credentials"}, "account_id": {testenv.DefaultSimAccountID}}
	req, err := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(testenv.DefaultSimClientID, testenv.DefaultSimClientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("token: status %d", res.StatusCode)
	}
	return tok.AccessToken, nil
}

// plainClient is net/http with a connection pool as large as the
// concurrency (the default keeps 2 idle connections per host, which would
// make a concurrent client open and close connections all the time).
func plainClient(conc int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(conc, 2)
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// childHTTP is the HTTP ceiling: POST /v2/users from Concurrency
// goroutines, no NATS at all.
func childHTTP(spec childSpecT) error {
	c := plainClient(spec.Concurrency)
	tok, err := fetchToken(c, spec.TokenURL)
	if err != nil {
		return err
	}
	var t timings
	var next, errs atomic.Int64
	say(childMsg{Event: "ready"})
	start := time.Now()
	var wg sync.WaitGroup
	for range max(spec.Concurrency, 1) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= spec.N {
					return
				}
				_, body := requestBody("h", i)
				t0 := time.Now()
				status, err := postUser(c, spec.APIURL, tok, body)
				if err != nil || status != http.StatusCreated {
					errs.Add(1)
					continue
				}
				t.add(time.Since(t0))
			}
		})
	}
	wg.Wait()
	t.done(spec.N, int(errs.Load()), time.Since(start), "")
	return nil
}

func postUser(c *http.Client, apiURL, tok string, body []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, apiURL+"/users", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, nil
}

// commands reads the parent's commands from stdin: "mark" answers with
// the CPU time so far (after calling onMark), "stop" or the end of stdin
// closes the returned channel.
func commands(onMark func()) <-chan struct{} {
	stop := make(chan struct{})
	go func() {
		defer close(stop)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			switch sc.Text() {
			case "mark":
				if onMark != nil {
					onMark()
				}
				say(childMsg{Event: "mark"})
			case "stop":
				return
			}
		}
	}()
	return stop
}

// childNaive is the simplest correct consumer by hand: fetch one request,
// POST it to Zoom, publish the result and wait for the stream's ack, ack
// the request; one at a time, until told to stop. A 429 waits for
// Retry-After and tries again. Its decoding is encoding/json, its events
// are a few fields.
func childNaive(spec childSpecT) error {
	ctx := context.Background()
	nc, js, err := connect(spec, "bench-naive")
	if err != nil {
		return err
	}
	defer nc.Close()
	t := benchTopology()
	cons, err := js.Consumer(ctx, t.RequestStream, naiveConsumerName)
	if err != nil {
		return err
	}
	c := plainClient(1)
	tok, err := fetchToken(c, spec.TokenURL)
	if err != nil {
		return err
	}
	stop := commands(nil)
	say(childMsg{Event: "ready"})
	for {
		select {
		case <-stop:
			say(childMsg{Event: "done"})
			return nil
		default:
		}
		msg, err := cons.Next(jetstream.FetchMaxWait(200 * time.Millisecond))
		if err != nil {
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			return err
		}
		if err := naiveHandle(ctx, c, js, spec, tok, msg); err != nil {
			return err
		}
	}
}

func naiveHandle(ctx context.Context, c *http.Client, js jetstream.JetStream, spec childSpecT, tok string, msg jetstream.Msg) error {
	t := benchTopology()
	var req struct {
		Action   string          `json:"action"`
		UserInfo json.RawMessage `json:"user_info"`
	}
	if err := json.Unmarshal(msg.Data(), &req); err != nil {
		return err
	}
	id := msg.Headers().Get(jetstream.MsgIDHeader)
	var user struct {
		ID string `json:"id"`
	}
	for {
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, spec.APIURL+"/users", bytes.NewReader(msg.Data()))
		if err != nil {
			return err
		}
		hr.Header.Set("Authorization", "Bearer "+tok)
		hr.Header.Set("Content-Type", "application/json")
		res, err := c.Do(hr)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusTooManyRequests {
			wait := time.Second
			if at, err := time.Parse(time.RFC3339, res.Header.Get("Retry-After")); err == nil {
				wait = time.Until(at)
			}
			time.Sleep(max(wait, 10*time.Millisecond))
			continue
		}
		if res.StatusCode != http.StatusCreated {
			return fmt.Errorf("zoom answered %d", res.StatusCode)
		}
		if err := json.Unmarshal(body, &user); err != nil {
			return err
		}
		break
	}
	ev, err := json.Marshal(map[string]any{
		"id": id + ":result", "type": "zoom.user.provisioning.created",
		"data": map[string]any{"request_id": id, "action": req.Action, "outcome": "created", "zoom_user_id": user.ID},
	})
	if err != nil {
		return err
	}
	m := nats.NewMsg(t.ResultPrefix + ".created")
	m.Data = ev
	if _, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(id+":result")); err != nil {
		return err
	}
	return msg.Ack()
}

// startProfiles starts the CPU profile, if asked for, and returns the
// function that stops it and writes the allocation profile.
func startProfiles(spec childSpecT) (func() error, error) {
	var cpu *os.File
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		cpu = f
	}
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			if cpu != nil {
				pprof.StopCPUProfile()
				err = cpu.Close()
			}
			if spec.MemProfile != "" {
				f, ferr := os.Create(spec.MemProfile)
				if ferr != nil {
					err = ferr
					return
				}
				defer f.Close()
				err = pprof.Lookup("allocs").WriteTo(f, 0)
			}
		})
		return err
	}, nil
}
