package main

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/zoomprov/consumer/internal/app"
)

// Config is the whole configuration of `consumer run`. Every field comes
// from an environment variable and a flag of the same meaning (the flag
// wins); secrets come only from the environment or from files.
type Config = app.Config

// errSetting is a configuration error: one line naming the setting.
type errSetting = app.SettingError

// Shutdown bounds, for the deploy checks.
const (
	drainTimeout          = app.DrainTimeout
	tracerShutdownTimeout = app.TracerShutdownTimeout
)

func runCommand(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlagSet("run")
	cfg, err := parseConfig(fs, args, getenv)
	if err != nil {
		return flagError(fs, stderr, err)
	}
	if err := requireZoom(cfg); err != nil {
		return flagError(fs, stderr, err)
	}
	return app.New(cfg, newLogger(cfg, stderr), version).Run(ctx)
}

// logTimeFormat is the format of the "time" field: RFC 3339 in UTC with
// milliseconds, so that lines of one second keep their order and line up
// with result events, traces and the metrics' timestamps.
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// setLogFormats sets zerolog's process-wide formats once: durations in
// fractional milliseconds, times with milliseconds. Once, because loggers
// of other services in the same process (tests) read them concurrently.
var setLogFormats = sync.OnceFunc(func() {
	zerolog.DurationFieldUnit = time.Millisecond
	zerolog.DurationFieldInteger = false
	zerolog.TimeFieldFormat = logTimeFormat
	zerolog.TimestampFunc = func() time.Time { return time.Now().UTC() }
})

// newLogger builds the process logger: JSON by default, console for
// humans.
func newLogger(cfg Config, w io.Writer) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	setLogFormats()
	if cfg.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("service", app.ServiceName).Logger()
}

// nopLogger is for the commands that connect to NATS without running the
// service: their errors are returned, not logged.
func nopLogger() zerolog.Logger { return zerolog.Nop() }
