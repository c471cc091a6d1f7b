package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/zoomprov/consumer/internal/metrics"
	"github.com/zoomprov/consumer/internal/provision"
	"github.com/zoomprov/consumer/internal/zoom"
)

// drainTimeout bounds the final flush of the NATS connection.
const drainTimeout = 10 * time.Second

func runCommand(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlagSet("run")
	cfg, err := parseConfig(fs, args, getenv)
	if err != nil {
		return flagError(fs, stderr, err)
	}
	if err := cfg.requireZoom(); err != nil {
		return flagError(fs, stderr, err)
	}
	log := newLogger(cfg, stderr)
	return serve(ctx, cfg, log, nil)
}

// newLogger builds the process logger: JSON by default, console for
// humans.
func newLogger(cfg Config, w io.Writer) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	zerolog.DurationFieldUnit = time.Millisecond
	zerolog.DurationFieldInteger = false
	if cfg.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("service", serviceName).Logger()
}

// gcPercent is the garbage collector's target (GOGC) while serving, unless
// the GOGC environment variable sets one. The service keeps a small live
// heap (about 10 MiB with 64 requests in flight) and allocates some 20 KiB
// per request, so at Go's default of 100 it collected garbage a dozen
// times a second at full speed; 400 cut its CPU per request by about a
// sixth for some 10 MiB more memory (testenv/cmd/bench). GOMEMLIMIT, which
// the Kubernetes manifest sets to the container's limit, still makes it
// collect sooner when memory runs short.
const gcPercent = 400

// setGCPercent applies gcPercent unless GOGC is set (the runtime read it
// at start-up). getenv is the real environment's: GOGC belongs to the
// process, not to the service's configuration.
func setGCPercent(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// tracerShutdownTimeout bounds the flush of the last spans on shutdown.
const tracerShutdownTimeout = 5 * time.Second

// serve runs the service until ctx is cancelled: connect, provision,
// consume, then shut down in order (stop fetching, finish or hand back
// in-flight work, drain the connection, flush the last spans). ready, if
// not nil, is called once the service consumes.
func serve(ctx context.Context, cfg Config, log zerolog.Logger, ready func()) error {
	setGCPercent(os.Getenv)
	tp, err := newTracerProvider(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tracerShutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			log.Warn().Err(err).Msg("flush traces")
		}
	}()
	m := metrics.New()

	nc, err := connectNATS(cfg, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	// Zoom calls are measured by the transport, outside the zoom package,
	// which knows nothing of Prometheus.
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 256
	zcfg := zoom.Config{
		AccountID:    cfg.ZoomAccountID,
		ClientID:     cfg.ZoomClientID,
		ClientSecret: cfg.ZoomClientSecret,
		BaseURL:      cfg.ZoomAPIURL,
		TokenURL:     cfg.ZoomTokenURL,
		Timeout:      cfg.ZoomTimeout,
		HTTPClient:   &http.Client{Transport: m.ZoomTransport(base, cfg.ZoomTokenURL)},
	}
	// The pacer spaces calls at this replica's share of ZOOM_RATE_LIMIT
	// and holds create calls while the shared daily-quota gate is closed.
	pacer := provision.NewPacer(cfg.ZoomRateLimit)
	zcfg.Limiter = pacer
	zc, err := zoom.New(zcfg)
	if err != nil {
		return err
	}
	defer zc.CloseIdleConnections()

	topo := topologyOf(cfg)

	svc, err := provision.New(js, zc, provision.Config{
		Topology:        topo,
		Actions:         cfg.Actions,
		MaxInFlight:     cfg.MaxInFlight,
		MaxAttempts:     cfg.MaxAttempts,
		AckWait:         cfg.AckWait,
		MaxAckPending:   cfg.MaxAckPending,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Provision:       cfg.Provision,
		Pacer:           pacer,
		Logger:          log,
		LogEmails:       cfg.LogEmails,
		Metrics:         m,
		TracerProvider:  tp,
		Credentials:     zc,
	})
	if err != nil {
		return err
	}
	m.ObserveNATS(nc.IsConnected, func() uint64 { return nc.Stats().Reconnects })
	m.ObserveReady(func() bool { ok, _ := readyState(nc, svc.Status()); return ok })

	stopHTTP, err := serveHTTP(cfg.HTTPAddr, nc, svc, m, log)
	if err != nil {
		return err
	}
	defer stopHTTP()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(runCtx) }()
	if ready != nil {
		waitBound(runCtx, svc, errc, ready)
	}
	runErr := <-errc
	if runErr != nil && ctx.Err() == nil {
		log.Error().Err(runErr).Msg("service stopped")
	}

	// Flush the last acks and naks before closing.
	drained := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(drained) })
	if err := nc.Drain(); err == nil {
		select {
		case <-drained:
		case <-time.After(drainTimeout):
			log.Warn().Msg("nats drain timed out")
		}
	}
	if ctx.Err() != nil && runErr == nil {
		log.Info().Msg("shut down cleanly")
	}
	return runErr
}

// waitBound calls ready once the service is bound, or returns when Run
// ends first.
func waitBound(ctx context.Context, svc *provision.Service, errc chan error, ready func()) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if svc.Status().Bound {
			ready()
			return
		}
		select {
		case <-ctx.Done():
			return
		case err := <-errc:
			errc <- err // give it back to the caller
			return
		case <-t.C:
		}
	}
}

// connectNATS connects with the configured authentication. The first
// connection must succeed (start-up fails with a clear line otherwise);
// after that it reconnects forever: a NATS outage pauses the service, it
// does not end it.
func connectNATS(cfg Config, log zerolog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("zoom-provisioner"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil means a deliberate close
				log.Warn().AnErr("error", err).Msg("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("nats reconnected")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn().Err(err).Msg("nats error")
		}),
	}
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	if cfg.NATSNKey != "" {
		o, err := nats.NkeyOptionFromSeed(cfg.NATSNKey)
		if err != nil {
			return nil, &errSetting{"NATS_NKEY", fmt.Errorf("cannot load the seed file %s", cfg.NATSNKey)}
		}
		opts = append(opts, o)
	}
	if cfg.NATSUser != "" {
		opts = append(opts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
	}
	if cfg.NATSToken != "" {
		opts = append(opts, nats.Token(cfg.NATSToken))
	}
	if cfg.NATSTLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.NATSTLSCA))
	}
	if cfg.NATSTLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.NATSTLSCert, cfg.NATSTLSKey))
	}
	nc, err := nats.Connect(cfg.NATSURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats at %s: %w", redactURL(cfg.NATSURL), err)
	}
	return nc, nil
}

// redactURL hides passwords in nats://user:pass@host URLs.
func redactURL(u string) string {
	parts := strings.Split(u, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if scheme := strings.Index(p, "://"); scheme >= 0 && scheme < at {
				parts[i] = p[:scheme+3] + "[redacted]" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// readyState says whether the service should count as ready, and why (or
// why not): connected to NATS, consumers bound, not held for an
// account-level problem, and Zoom's token endpoint accepted the
// credentials (checked at start-up and while held, never per probe).
func readyState(nc *nats.Conn, st provision.Status) (bool, string) {
	switch {
	case !nc.IsConnected():
		return false, "not connected to nats"
	case !st.Bound:
		return false, "consumers not bound"
	case st.Held:
		return false, "held for an account-level problem: " + st.HeldReason
	case st.ZoomCredentials == provision.CredentialsRejected:
		return false, "zoom rejects the credentials: " + st.ZoomCredentialsError
	case st.ZoomCredentials == provision.CredentialsUnverified:
		why := "zoom credentials not verified yet"
		if st.ZoomCredentialsError != "" {
			why += ": " + st.ZoomCredentialsError
		}
		return false, why
	}
	return true, "consuming"
}

// serveHTTP starts the health and metrics endpoints on addr (nothing if
// addr is empty). It listens synchronously so a taken port fails start-up.
func serveHTTP(addr string, nc *nats.Conn, svc *provision.Service, m *metrics.Metrics, log zerolog.Logger) (func(), error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &errSetting{"HTTP_ADDR", fmt.Errorf("cannot listen on %s: %v", addr, err)}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "alive"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		st := svc.Status()
		ready, why := readyState(nc, st)
		code := http.StatusOK
		if !ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]any{"ready": ready, "reason": why, "nats": nc.Status().String(), "service": st})
	})
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("http server")
		}
	}()
	log.Info().Str("addr", ln.Addr().String()).Msg("health endpoint listening")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
