// Package app wires the provisioning service together from its
// configuration: the NATS connection, the Zoom client with its pacer, the
// service, metrics, tracing and the health endpoints. `consumer run` and
// `consumer sandbox` both start the service through it, so there is one
// wiring.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/zoomprov/consumer/internal/console"
	"github.com/zoomprov/consumer/internal/ledger"
	"github.com/zoomprov/consumer/internal/metrics"
	"github.com/zoomprov/consumer/internal/password"
	"github.com/zoomprov/consumer/internal/provision"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/internal/seal"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/internal/zoom"
)

// Config is the whole configuration of the service. cmd/consumer fills it
// from environment variables and flags.
type Config struct {
	NATSURL      string
	NATSCreds    string
	NATSNKey     string
	NATSUser     string
	NATSPassword string
	NATSToken    string
	NATSTLSCA    string
	NATSTLSCert  string
	NATSTLSKey   string
	// NATSInboxPrefix replaces _INBOX in reply subjects (empty: _INBOX),
	// for users allowed to subscribe only to their own inboxes.
	NATSInboxPrefix string

	ZoomAccountID    string
	ZoomClientID     string
	ZoomClientSecret string
	ZoomAPIURL       string
	ZoomTokenURL     string
	ZoomRateLimit    float64
	ZoomTimeout      time.Duration

	MaxInFlight     int
	MaxAttempts     int
	MaxAckPending   int
	AckWait         time.Duration
	ShutdownTimeout time.Duration
	Actions         []string
	Provision       bool
	// GuardLimit and GuardWindow: the guard against mass deprovisioning
	// (GuardLimit 0: off).
	GuardLimit  int
	GuardWindow time.Duration
	// ReconcileInterval is how often one replica compares Zoom with the
	// ledger (zero: never); ReconcileApply publishes the corrections too.
	ReconcileInterval time.Duration
	ReconcileApply    bool
	// StreamReplicas is topology.AutoReplicas (zero) or an explicit count.
	StreamReplicas int

	RequestStream, RequestPrefix string
	// OperationPrefix is the prefix of the lifecycle subjects.
	OperationPrefix                    string
	ResultStream, ResultPrefix         string
	DeadLetterStream, DeadLetterPrefix string
	ConsumerPrefix                     string
	ResultMaxAge                       time.Duration
	// DeadLetterKeys seals passwords in dead letters; nil redacts them.
	DeadLetterKeys *seal.Keyring
	// DeadLetterKeysOptional lets key files be missing
	// (DLQ_SEAL_KEY_OPTIONAL, for a Secret mounted with optional: true);
	// DeadLetterKeysMissing are the ones that were, which Run warns about.
	DeadLetterKeysOptional bool
	DeadLetterKeysMissing  []string
	// PasswordKeys open the passwords publishers sealed for the service
	// (PASSWORD_KEY_FILE); nil: a sealed password cannot be opened, and
	// its request fails as invalid.
	PasswordKeys *password.Keyring

	HTTPAddr string
	// ConsoleTokens are the logins of the operator console, served under
	// /console/ on HTTPAddr (CONSOLE_TOKEN_FILE); nil: no console.
	ConsoleTokens *console.Tokens
	LogLevel      string
	LogFormat     string
	LogEmails     bool

	// OTLPEndpoint is the OTLP/HTTP collector base URL; empty exports no
	// spans.
	OTLPEndpoint string
}

// SettingError is a configuration error: one line naming the setting.
type SettingError struct {
	Name string
	Err  error
}

func (e *SettingError) Error() string { return fmt.Sprintf("configuration: %s: %v", e.Name, e.Err) }

func (e *SettingError) Unwrap() error { return e.Err }

// Topology maps the configured names onto the service's topology.
func (c Config) Topology() topology.Topology {
	topo := topology.Default()
	topo.RequestStream, topo.RequestPrefix = c.RequestStream, c.RequestPrefix
	if c.OperationPrefix != "" {
		topo.OperationPrefix = c.OperationPrefix
	}
	topo.ResultStream, topo.ResultPrefix = c.ResultStream, c.ResultPrefix
	topo.DeadLetterStream, topo.DeadLetterPrefix = c.DeadLetterStream, c.DeadLetterPrefix
	topo.ConsumerPrefix = c.ConsumerPrefix
	topo.ResultMaxAge = c.ResultMaxAge
	return topo
}

// Connect connects to NATS with the configured authentication and returns
// the connection and its JetStream context. The first connection must
// succeed (start-up fails with a clear line otherwise); after that it
// reconnects forever: a NATS outage pauses the service, it does not end it.
func Connect(cfg Config, log zerolog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{
		nats.Name(ServiceName),
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
			return nil, nil, &SettingError{"NATS_NKEY", fmt.Errorf("cannot load the seed file %s", cfg.NATSNKey)}
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
	if cfg.NATSInboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(cfg.NATSInboxPrefix))
	}
	nc, err := nats.Connect(cfg.NATSURL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats at %s: %w", RedactURL(cfg.NATSURL), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// RedactURL hides passwords in nats://user:pass@host URLs.
func RedactURL(u string) string {
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

// Shutdown bounds: the final flush of the NATS connection, and of the last
// spans.
const (
	DrainTimeout          = 10 * time.Second
	TracerShutdownTimeout = 5 * time.Second
)

// gcPercent is the garbage collector's target (GOGC) while serving, unless
// the GOGC environment variable sets one: the service keeps a small live
// heap and allocates per request, so at Go's default it spends a notable
// share of its CPU collecting garbage (docs/benchmarks.md has the figures).
// GOMEMLIMIT, which the Kubernetes manifest sets to the container's limit,
// still makes it collect sooner when memory runs short.
const gcPercent = 400

// App is the service wired from a Config. Run it once.
type App struct {
	cfg     Config
	log     zerolog.Logger
	version string
	ready   chan struct{}
	// httpAddr is the address the HTTP server listens on, set before
	// ready is closed.
	httpAddr string
}

// New returns the service for cfg; version names the build in traces.
func New(cfg Config, log zerolog.Logger, version string) *App {
	return &App{cfg: cfg, log: log, version: version, ready: make(chan struct{})}
}

// Ready is closed once the service consumes.
func (a *App) Ready() <-chan struct{} { return a.ready }

// HTTPAddr is the address the health, metrics and console endpoints
// listen on (HTTP_ADDR with its port chosen, for ":0"), once Ready is
// closed; empty when HTTP_ADDR is off.
func (a *App) HTTPAddr() string { return a.httpAddr }

// Run runs the service until ctx is cancelled: connect, provision, consume
// (and project the results into the per-user ledger), then shut down in
// order (stop fetching, finish or hand back in-flight work, stop the
// ledger's projector, drain the connection, flush the last spans).
func (a *App) Run(ctx context.Context) error {
	cfg, log := a.cfg, a.log
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	tp, err := newTracerProvider(ctx, cfg, a.version, log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), TracerShutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			log.Warn().Err(err).Msg("flush traces")
		}
	}()
	if cfg.ConsoleTokens != nil && cfg.HTTPAddr == "" {
		return &SettingError{"CONSOLE_TOKEN_FILE", errors.New("the console is served on HTTP_ADDR, which is off")}
	}
	m := metrics.New()
	warnMissingSealKeys(cfg, log)

	nc, js, err := Connect(cfg, log)
	if err != nil {
		return err
	}
	defer nc.Close()

	// Zoom calls are measured by the transport, outside the zoom package,
	// which knows nothing of Prometheus.
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 256
	// The pacer spaces calls at this replica's share of ZOOM_RATE_LIMIT
	// and holds calls whose shared quota gate is closed.
	pacer := quota.NewPacer(cfg.ZoomRateLimit, quota.NewGates(nil))
	zc, err := zoom.New(zoom.Config{
		AccountID:    cfg.ZoomAccountID,
		ClientID:     cfg.ZoomClientID,
		ClientSecret: cfg.ZoomClientSecret,
		BaseURL:      cfg.ZoomAPIURL,
		TokenURL:     cfg.ZoomTokenURL,
		Timeout:      cfg.ZoomTimeout,
		HTTPClient:   &http.Client{Transport: m.ZoomTransport(base, cfg.ZoomTokenURL)},
		Limiter:      pacer,
	})
	if err != nil {
		return err
	}
	defer zc.CloseIdleConnections()

	svc, err := provision.New(js, zc, provision.Config{
		Topology:        cfg.Topology(),
		Actions:         cfg.Actions,
		MaxInFlight:     cfg.MaxInFlight,
		MaxAttempts:     cfg.MaxAttempts,
		AckWait:         cfg.AckWait,
		MaxAckPending:   cfg.MaxAckPending,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Provision:       cfg.Provision,
		Replicas:        cfg.StreamReplicas,
		PasswordKeys:    cfg.PasswordKeys,
		GuardLimit:      cfg.GuardLimit,
		GuardWindow:     cfg.GuardWindow,
		Seal:            cfg.DeadLetterKeys,
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
	m.SetVersion(a.version)
	observeBacklog(m, js, cfg)
	m.ObserveNATS(nc.IsConnected, func() uint64 { return nc.Stats().Reconnects })
	m.ObserveReady(func() bool { ok, _ := ReadyState(nc.IsConnected(), svc.Status()); return ok })

	var con http.Handler
	if cfg.ConsoleTokens != nil {
		c, err := console.New(console.Config{JS: js, Topology: cfg.Topology(), Tokens: cfg.ConsoleTokens,
			Keys: cfg.DeadLetterKeys, Actions: cfg.Actions, Logger: log})
		if err != nil {
			return err
		}
		con = c
	}
	addr, stopHTTP, err := serveHTTP(cfg.HTTPAddr, nc, svc, m, con, log)
	if err != nil {
		return err
	}
	defer stopHTTP()
	a.httpAddr = addr

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(runCtx) }()
	// The per-user ledger is projected from the results beside the
	// service, once the service has provisioned (or checked) the bucket
	// and the consumer; it stops with the service, before the drain.
	projector := ledger.NewProjector(js, ledger.ProjectorConfig{Topology: cfg.Topology(), Logger: log})
	projected := make(chan error, 1)
	waitReconcile := func() {}
	var runErr error
	select {
	case <-svc.Bound():
		close(a.ready)
		go func() { projected <- projector.Run(runCtx) }()
		waitReconcile = startReconcile(runCtx, cfg, js, zc, pacer, m, log)
		runErr = <-errc
	case runErr = <-errc:
		projected <- nil
	}
	cancel()
	<-projected
	waitReconcile()
	if runErr != nil && ctx.Err() == nil {
		log.Error().Err(runErr).Msg("service stopped")
		if errors.Is(runErr, topology.ErrPlacement) {
			runErr = &SettingError{"STREAM_REPLICAS", runErr}
		}
	}

	// Flush the last acks and naks before closing.
	drained := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(drained) })
	if err := nc.Drain(); err == nil {
		select {
		case <-drained:
		case <-time.After(DrainTimeout):
			log.Warn().Msg("nats drain timed out")
		}
	}
	if ctx.Err() != nil && runErr == nil {
		log.Info().Msg("shut down cleanly")
	}
	return runErr
}

// ReadyState says whether the service should count as ready, and why (or
// why not): connected to NATS, consumers bound, not paused for an
// account-level problem, and Zoom's token endpoint accepted the
// credentials (checked at start-up and while paused, never per probe).
func ReadyState(connected bool, st provision.Status) (bool, string) {
	switch {
	case !connected:
		return false, "not connected to nats"
	case !st.Bound:
		return false, "consumers not bound"
	case st.Paused:
		return false, "paused for an account-level problem: " + st.PauseReason
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

// serveHTTP starts the health and metrics endpoints, and the console if
// con is not nil, on addr (nothing if addr is empty), and returns the
// address it listens on. It listens synchronously so a taken port fails
// start-up.
func serveHTTP(addr string, nc *nats.Conn, svc *provision.Service, m *metrics.Metrics, con http.Handler, log zerolog.Logger) (string, func(), error) {
	if addr == "" {
		return "", func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, &SettingError{"HTTP_ADDR", fmt.Errorf("cannot listen on %s: %v", addr, err)}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "alive"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		st := svc.Status()
		ready, why := ReadyState(nc.IsConnected(), st)
		code := http.StatusOK
		if !ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]any{"ready": ready, "reason": why, "nats": nc.Status().String(), "service": st})
	})
	mux.Handle("GET /metrics", m.Handler())
	if con != nil {
		// Everything under /console/ (and /console, redirected there).
		mux.Handle("/console/", con)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("http server")
		}
	}()
	log.Info().Str("addr", ln.Addr().String()).Bool("console", con != nil).Msg("health endpoint listening")
	return ln.Addr().String(), func() {
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

// warnMissingSealKeys says, once at start-up, which optional seal key
// files were not found, and whether passwords in dead letters are
// therefore redacted rather than sealed.
func warnMissingSealKeys(cfg Config, log zerolog.Logger) {
	if len(cfg.DeadLetterKeysMissing) == 0 {
		return
	}
	ev := log.Warn().Strs("missing", cfg.DeadLetterKeysMissing)
	if cfg.DeadLetterKeys == nil {
		ev.Msg("no dead-letter seal key found (DLQ_SEAL_KEY_FILE, optional): passwords in dead letters are redacted and those requests cannot be replayed")
		return
	}
	ev.Msg("some dead-letter seal key files were not found (DLQ_SEAL_KEY_FILE, optional): sealing with the first one found")
}
