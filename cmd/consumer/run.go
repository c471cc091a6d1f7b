package main

import (
	"context"
	"io"
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
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("service", app.ServiceName).Logger()
}

// nopLogger is for the commands that connect to NATS without running the
// service: their errors are returned, not logged.
func nopLogger() zerolog.Logger { return zerolog.Nop() }
