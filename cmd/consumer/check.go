package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/app"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/internal/zoom"
)

const configUsage = `usage: consumer config <command> [flags]

commands:
  check    check the settings, NATS, the streams, consumers and buckets, and Zoom's token,
           without starting the service (exit 0: all pass, 1: one fails, 2: usage mistake)

Run 'consumer config check -h' for its flags.`

// configCommand dispatches consumer config's subcommands.
func configCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, configUsage)
		return &exitError{code: 2}
	}
	switch args[0] {
	case "check":
		return configCheck(ctx, args[1:], getenv, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, configUsage)
		return nil
	default:
		return usageError("config: unknown command %q (want check)", args[0])
	}
}

// checker prints one line per check, or collects them for --json, and
// counts the failures.
type checker struct {
	w      io.Writer
	asJSON bool
	checks []checkJSON
	failed int
	total  int
}

// checkJSON is one check in `config check --json`.
type checkJSON struct {
	Check  string `json:"check"`
	Status string `json:"status"` // ok, fail or skip
	Detail string `json:"detail"`
}

func (c *checker) report(status, name, format string, args ...any) {
	detail := fmt.Sprintf(format, args...)
	if c.asJSON {
		c.checks = append(c.checks, checkJSON{Check: name, Status: status, Detail: detail})
		return
	}
	fmt.Fprintf(c.w, "%-4s  %s: %s\n", map[string]string{"ok": "ok", "fail": "FAIL", "skip": "skip"}[status], name, detail)
}

func (c *checker) ok(name, format string, args ...any) {
	c.total++
	c.report("ok", name, format, args...)
}

func (c *checker) fail(name, format string, args ...any) {
	c.total++
	c.failed++
	c.report("fail", name, format, args...)
}

func (c *checker) skip(name, format string, args ...any) {
	c.report("skip", name, format, args...)
}

// configCheck checks what `consumer run` would start with, without
// starting it, like nats-server -t: the settings (parsed as run parses
// them), the NATS connection and JetStream, the streams, buckets and
// consumers (present, or to be created when PROVISION_STREAMS is on), and
// Zoom's token endpoint with the credentials. It prints one line per check
// and fails (exit 1) if any check fails; a flag it does not know, or an
// argument, is a usage mistake (exit 2).
func configCheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("config check")
	timeout := fs.Duration("timeout", 10*time.Second, "limit of each network check (NATS, JetStream, Zoom)")
	asJSON := fs.Bool("json", false, "print the checks as a JSON array of {check, status (ok, fail, skip), detail}")
	cfg, err := parseConfig(fs, args, getenv)
	var es *errSetting
	switch {
	case errors.Is(err, flag.ErrHelp):
		return flagError(fs, stderr, err)
	case errors.As(err, &es):
		// A bad value is what this command is for: a failed check, not a
		// usage mistake.
	case err != nil:
		return flagError(fs, stderr, err)
	}
	if *timeout <= 0 {
		return usageError("config check: --timeout: want a positive duration, got %v", *timeout)
	}
	c := &checker{w: stdout, asJSON: *asJSON}
	done := func() error {
		if c.asJSON {
			if err := writeJSON(stdout, c.checks); err != nil {
				return err
			}
		}
		if c.failed > 0 {
			return &exitError{code: 1, msg: fmt.Sprintf("config check: %d of %d checks failed", c.failed, c.total)}
		}
		return nil
	}

	if err != nil {
		c.fail("settings", "%v", err)
		c.skip("nats", "the settings are not valid")
		return done()
	}
	if err := natsTLSPair(cfg); err != nil {
		c.fail("settings", "%v", err)
	} else {
		c.ok("settings", "%d actions (%s), NATS %s, Zoom %s", len(cfg.Actions), strings.Join(cfg.Actions, ", "), app.RedactURL(cfg.NATSURL), cfg.ZoomAPIURL)
	}
	if cfg.ConsoleTokens != nil {
		if cfg.HTTPAddr == "" {
			c.fail("console", "%s is set but HTTP_ADDR is off: the console is served on HTTP_ADDR", consoleTokenSetting)
		} else {
			c.ok("console", "under /console/ on %s, %s", cfg.HTTPAddr, cfg.ConsoleTokens)
		}
	}
	creds := zoomCredentials(cfg)
	if creds == nil {
		c.ok("zoom credentials", "account id, client id and client secret set")
	} else {
		c.fail("zoom credentials", "%v", creds)
	}

	checkNATS(ctx, c, cfg, *timeout)

	if creds != nil {
		c.skip("zoom token", "no credentials to ask %s with", cfg.ZoomTokenURL)
		return done()
	}
	tctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	zc, err := zoom.New(zoom.Config{
		AccountID: cfg.ZoomAccountID, ClientID: cfg.ZoomClientID, ClientSecret: cfg.ZoomClientSecret,
		BaseURL: cfg.ZoomAPIURL, TokenURL: cfg.ZoomTokenURL, Timeout: cfg.ZoomTimeout,
		HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	})
	if err == nil {
		err = zc.TokenValid(tctx)
	}
	if err != nil {
		c.fail("zoom token", "%s: %v", cfg.ZoomTokenURL, err)
	} else {
		c.ok("zoom token", "%s issued an access token", cfg.ZoomTokenURL)
	}
	return done()
}

// checkNATS connects as run would and checks JetStream and everything the
// service keeps in it.
func checkNATS(ctx context.Context, c *checker, cfg Config, timeout time.Duration) {
	nc, js, err := app.Connect(cfg, nopLogger())
	if err != nil {
		c.fail("nats", "%v", err)
		c.skip("jetstream", "not connected")
		return
	}
	defer nc.Close()
	c.ok("nats", "connected to %s (server %s)", nc.ConnectedUrlRedacted(), nc.ConnectedServerVersion())

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		c.fail("jetstream", "%v", err)
		return
	}
	c.ok("jetstream", "enabled for this account")

	topo := cfg.Topology()
	missing := func(what string) {
		if cfg.Provision {
			c.ok(what, "missing; run creates it (PROVISION_STREAMS=true)")
		} else {
			c.fail(what, "missing, and PROVISION_STREAMS=false: create it from deploy/nats (deploy/nats/README.md)")
		}
	}
	streams := map[string]bool{}
	for _, want := range topo.StreamConfigs() {
		what := "stream " + want.Name
		s, err := js.Stream(ctx, want.Name)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			missing(what)
			continue
		case err != nil:
			c.fail(what, "%v", err)
			continue
		}
		streams[want.Name] = true
		info := s.CachedInfo()
		var lacks []string
		for _, subj := range want.Subjects {
			if !slices.Contains(info.Config.Subjects, subj) {
				lacks = append(lacks, subj)
			}
		}
		switch {
		case info.Config.Retention != want.Retention:
			c.fail(what, "retention %s; the service needs %s", info.Config.Retention, want.Retention)
		case len(lacks) > 0 && cfg.Provision:
			c.ok(what, "exists; run adds the subjects %s", strings.Join(lacks, ", "))
		case len(lacks) > 0:
			c.fail(what, "lacks the subjects %s, and PROVISION_STREAMS=false", strings.Join(lacks, ", "))
		default:
			c.ok(what, "exists (%s, %s)", plural(int(info.State.Msgs), "message"), plural(info.Config.Replicas, "replica"))
		}
	}
	for _, want := range topo.BucketConfigs() {
		what := "bucket " + want.Bucket
		_, err := js.KeyValue(ctx, want.Bucket)
		switch {
		case errors.Is(err, jetstream.ErrBucketNotFound):
			missing(what)
		case err != nil:
			c.fail(what, "%v", err)
		default:
			c.ok(what, "exists")
		}
	}
	for _, a := range cfg.Actions {
		name := topo.ConsumerName(a)
		what := "consumer " + name
		if !streams[topo.RequestStream] {
			missing(what)
			continue
		}
		cons, err := js.Consumer(ctx, topo.RequestStream, name)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			missing(what)
		case err != nil:
			c.fail(what, "%v", err)
		case cons.CachedInfo().Config.FilterSubject != topo.RequestSubject(a) && !slices.Contains(cons.CachedInfo().Config.FilterSubjects, topo.RequestSubject(a)):
			c.fail(what, "does not filter on %s", topo.RequestSubject(a))
		default:
			c.ok(what, "exists (%d waiting, %d delivered and not acknowledged)", cons.CachedInfo().NumPending, cons.CachedInfo().NumAckPending)
		}
	}
	// The ledger's consumer of the results (internal/ledger).
	name := topo.ConsumerName(topology.LedgerConsumer)
	what := "consumer " + name
	if !streams[topo.ResultStream] {
		missing(what)
		return
	}
	cons, err := js.Consumer(ctx, topo.ResultStream, name)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		missing(what)
	case err != nil:
		c.fail(what, "%v", err)
	default:
		c.ok(what, "exists (%d results not yet in the ledger)", cons.CachedInfo().NumPending+uint64(cons.CachedInfo().NumAckPending))
	}
}
