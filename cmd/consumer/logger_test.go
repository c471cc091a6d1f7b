package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"
	"time"
)

// Ensure log lines carry their time in UTC with milliseconds, and
// durations as fractional milliseconds.
func TestLoggerTimeFormat(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(Config{LogLevel: "info", LogFormat: "json"}, &buf)
	log.Info().Dur("latency", 1500*time.Microsecond).Msg("hello")
	var line struct {
		Time    string  `json:"time"`
		Latency float64 `json:"latency"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(line.Time) {
		t.Errorf("time = %q; want RFC 3339 in UTC with milliseconds, such as 2026-12-07T16:35:29.123Z", line.Time)
	}
	if _, err := time.Parse(time.RFC3339Nano, line.Time); err != nil {
		t.Errorf("time %q does not parse as RFC 3339: %v", line.Time, err)
	}
	if line.Latency != 1.5 {
		t.Errorf("latency = %v; want 1.5 (milliseconds)", line.Latency)
	}
}
