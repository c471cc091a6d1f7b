package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/metrics"
	"github.com/zoomprov/consumer/internal/provision"
	"github.com/zoomprov/consumer/internal/zoom"
	"github.com/zoomprov/consumer/testenv"
)

// childService runs provision.Service the way `consumer run` does (see
// serve and newTracerProvider in cmd/consumer, which is package main and
// cannot be imported), with every setting at its default except the URLs,
// the credentials and ZOOM_RATE_LIMIT:
//
//   - an OpenTelemetry SDK tracer provider with no exporter
//     (OTEL_EXPORTER_OTLP_ENDPOINT unset), so every request still gets a
//     recorded span and a trace id;
//   - Prometheus metrics, with the instrumented transport under the Zoom
//     client (MaxIdleConnsPerHost 256);
//   - the Pacer as the Zoom client's limiter (ZOOM_RATE_LIMIT);
//   - ZOOM_TIMEOUT 15s, MAX_IN_FLIGHT, MAX_ATTEMPTS 10, ACK_WAIT 30s,
//     MAX_ACK_PENDING 1000, SHUTDOWN_TIMEOUT 20s, PROVISION_STREAMS true;
//   - JSON log lines at info level (one per outcome) written to stderr,
//     which the parent sends to a file;
//   - the NATS connection options of connectNATS;
//   - the garbage collector's target of setGCPercent (GOGC=400 unless
//     GOGC is set).
//
// Left out: the /healthz, /readyz and /metrics HTTP server, which costs
// nothing per request unless scraped.
func childService(spec childSpecT) error {
	ctx := context.Background()
	if os.Getenv("GOGC") == "" && !spec.DefaultGC {
		debug.SetGCPercent(400) // setGCPercent in cmd/consumer
	}
	zerolog.DurationFieldUnit = time.Millisecond
	zerolog.DurationFieldInteger = false
	log := zerolog.New(os.Stderr).Level(zerolog.InfoLevel).With().Timestamp().Str("service", "zoom-provisioner").Logger()

	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "zoom-provisioner"), attribute.String("service.version", "bench")),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res))
	defer tp.Shutdown(context.WithoutCancel(ctx))
	m := metrics.New()

	nc, err := nats.Connect(spec.NATSURL,
		nats.Name("zoom-provisioner"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn().AnErr("error", err).Msg("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("nats reconnected") }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { log.Warn().Err(err).Msg("nats error") }),
	)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}

	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 256
	pacer := provision.NewPacer(float64(spec.Rate))
	zc, err := zoom.New(zoom.Config{
		AccountID:    testenv.DefaultSimAccountID,
		ClientID:     testenv.DefaultSimClientID,
		ClientSecret: testenv.DefaultSimClientSecret,
		BaseURL:      spec.APIURL,
		TokenURL:     spec.TokenURL,
		Timeout:      15 * time.Second,
		HTTPClient:   &http.Client{Transport: m.ZoomTransport(base, spec.TokenURL)},
		Limiter:      pacer,
	})
	if err != nil {
		return err
	}
	defer zc.CloseIdleConnections()

	svc, err := provision.New(js, zc, provision.Config{
		Topology:        benchTopology(),
		Actions:         messages.Actions,
		MaxInFlight:     spec.Concurrency,
		MaxAttempts:     10,
		AckWait:         ackWait,
		MaxAckPending:   maxAckPending,
		ShutdownTimeout: 20 * time.Second,
		PullBatch:       spec.PullBatch,
		Provision:       true,
		Pacer:           pacer,
		Logger:          log,
		Metrics:         m,
		TracerProvider:  tp,
		Credentials:     zc,
	})
	if err != nil {
		return err
	}
	m.ObserveNATS(nc.IsConnected, func() uint64 { return nc.Stats().Reconnects })
	m.ObserveReady(func() bool { st := svc.Status(); return nc.IsConnected() && st.Bound && !st.Held })

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(runCtx) }()
	// Ready once bound, as the readiness probe would say.
	for !svc.Status().Bound {
		select {
		case err := <-errc:
			return fmt.Errorf("service stopped while starting: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	stopProfiles, err := startProfiles(spec)
	if err != nil {
		return err
	}
	stop := commands(func() {
		if err := stopProfiles(); err != nil {
			log.Error().Err(err).Msg("profile")
		}
	})
	say(childMsg{Event: "ready"})
	select {
	case <-stop:
	case err := <-errc:
		return fmt.Errorf("service stopped: %v", err)
	}
	cancel()
	if err := <-errc; err != nil {
		return err
	}
	drained := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(drained) })
	if err := nc.Drain(); err == nil {
		select {
		case <-drained:
		case <-time.After(10 * time.Second):
			return errors.New("nats drain timed out")
		}
	}
	say(childMsg{Event: "done"})
	return nil
}
