package app

import (
	"context"
	"net/url"
	"strings"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// ServiceName is the OpenTelemetry service.name unless OTEL_SERVICE_NAME
// says otherwise, and the "service" field of every log line.
const ServiceName = "zoom-provisioner"

// newTracerProvider returns the tracer provider of the service. It is
// always the SDK's, so that every request gets a trace id (for its log
// lines, result event and dead letter) even when it arrived without a
// traceparent; spans leave the process only when OTEL_EXPORTER_OTLP_ENDPOINT
// names a collector, over OTLP/HTTP with a batching processor. The caller
// must call Shutdown, which flushes the batch and stops its goroutine.
func newTracerProvider(ctx context.Context, cfg Config, version string, log zerolog.Logger) (*sdktrace.TracerProvider, error) {
	// Later options win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// override the defaults here.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", ServiceName), attribute.String("service.version", version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		// Telemetry must not keep the service from starting: use what
		// could be read (a malformed OTEL_RESOURCE_ATTRIBUTES yields a
		// partial resource) and say so.
		log.Warn().Err(err).Msg("opentelemetry resource")
		if res == nil {
			res = resource.Default()
		}
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if cfg.OTLPEndpoint != "" {
		// The endpoint is a base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is by
		// the specification: the signal's path is appended. Headers,
		// time-out, compression and TLS still come from the standard
		// OTEL_EXPORTER_OTLP_* variables, read by the exporter.
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(strings.TrimRight(cfg.OTLPEndpoint, "/")+"/v1/traces"))
		if err != nil {
			return nil, &SettingError{"OTEL_EXPORTER_OTLP_ENDPOINT", err}
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
		// Export failures would otherwise go to the standard logger.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			log.Warn().Err(err).Msg("opentelemetry")
		}))
		host := ""
		if u, err := url.Parse(cfg.OTLPEndpoint); err == nil {
			host = u.Host // not the whole URL: it may carry credentials
		}
		log.Info().Str("host", host).Msg("exporting traces over otlp/http")
	}
	return sdktrace.NewTracerProvider(opts...), nil
}
