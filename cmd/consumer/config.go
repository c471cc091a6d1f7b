package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/zoomprov/consumer/internal/console"
	"github.com/zoomprov/consumer/internal/guard"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/password"
	"github.com/zoomprov/consumer/internal/provision"
	"github.com/zoomprov/consumer/internal/seal"
	"github.com/zoomprov/consumer/internal/topology"
)

// setting is one configuration value: its environment variable, its flag,
// its default and how to store it.
type setting struct {
	env, flag, def, usage string
	// secret settings have no value flag (a flag would show in `ps`); they
	// are read from the environment or from a file named by <ENV>_FILE or
	// --<flag>-file.
	secret bool
	// file settings may also be given as <ENV>_FILE.
	file bool
	set  func(c *Config, v string) error
}

func settings() []setting {
	str := func(f func(c *Config) *string) func(*Config, string) error {
		return func(c *Config, v string) error { *f(c) = v; return nil }
	}
	return []setting{
		{env: "NATS_URL", flag: "nats-url", def: "nats://127.0.0.1:4222", usage: "NATS server URL(s), comma separated", set: str(func(c *Config) *string { return &c.NATSURL })},
		{env: "NATS_CREDS", flag: "nats-creds", usage: "NATS credentials file", set: str(func(c *Config) *string { return &c.NATSCreds })},
		{env: "NATS_NKEY", flag: "nats-nkey", usage: "NATS NKey seed file", set: str(func(c *Config) *string { return &c.NATSNKey })},
		{env: "NATS_USER", flag: "nats-user", usage: "NATS user", set: str(func(c *Config) *string { return &c.NATSUser })},
		{env: "NATS_PASSWORD", flag: "nats-password", secret: true, usage: "NATS password", set: str(func(c *Config) *string { return &c.NATSPassword })},
		{env: "NATS_TOKEN", flag: "nats-token", secret: true, usage: "NATS token", set: str(func(c *Config) *string { return &c.NATSToken })},
		{env: "NATS_TLS_CA", flag: "nats-tls-ca", usage: "CA certificate file for NATS TLS", set: str(func(c *Config) *string { return &c.NATSTLSCA })},
		{env: "NATS_TLS_CERT", flag: "nats-tls-cert", usage: "client certificate file for NATS mutual TLS", set: str(func(c *Config) *string { return &c.NATSTLSCert })},
		{env: "NATS_TLS_KEY", flag: "nats-tls-key", usage: "client key file for NATS mutual TLS", set: str(func(c *Config) *string { return &c.NATSTLSKey })},
		{env: "NATS_INBOX_PREFIX", flag: "nats-inbox-prefix", usage: "prefix of the reply subjects instead of _INBOX, for a NATS user who may subscribe only to <prefix>.> (e.g. _INBOX_operator)", set: func(c *Config, v string) error {
			if v == "" {
				c.NATSInboxPrefix = ""
				return nil
			}
			return subjectSetter(func(c *Config) *string { return &c.NATSInboxPrefix })(c, v)
		}},

		{env: "ZOOM_ACCOUNT_ID", flag: "zoom-account-id", file: true, usage: "Zoom Server-to-Server OAuth account id", set: str(func(c *Config) *string { return &c.ZoomAccountID })},
		{env: "ZOOM_CLIENT_ID", flag: "zoom-client-id", file: true, usage: "Zoom Server-to-Server OAuth client id", set: str(func(c *Config) *string { return &c.ZoomClientID })},
		{env: "ZOOM_CLIENT_SECRET", flag: "zoom-client-secret", secret: true, usage: "Zoom Server-to-Server OAuth client secret", set: str(func(c *Config) *string { return &c.ZoomClientSecret })},
		{env: "ZOOM_API_URL", flag: "zoom-api-url", def: "https://api.zoom.us/v2", usage: "Zoom API base URL", set: urlSetter(func(c *Config) *string { return &c.ZoomAPIURL })},
		{env: "ZOOM_TOKEN_URL", flag: "zoom-token-url", def: "https://zoom.us/oauth/token", usage: "Zoom OAuth token endpoint", set: urlSetter(func(c *Config) *string { return &c.ZoomTokenURL })},
		{env: "ZOOM_RATE_LIMIT", flag: "zoom-rate-limit", def: "20", usage: "client-side ceiling on Zoom requests per second (0 = off)", set: func(c *Config, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || !(f >= 0 && f <= 10000) { // also rejects NaN
				return fmt.Errorf("want a number of requests per second from 0 to 10000, got %q", v)
			}
			c.ZoomRateLimit = f
			return nil
		}},
		{env: "ZOOM_TIMEOUT", flag: "zoom-timeout", def: "15s", usage: "limit of one HTTP call to Zoom", set: durationSetter(func(c *Config) *time.Duration { return &c.ZoomTimeout }, time.Millisecond)},

		{env: "MAX_IN_FLIGHT", flag: "max-in-flight", def: strconv.Itoa(provision.DefaultMaxInFlight), usage: "requests handled at once by this instance", set: intSetter(func(c *Config) *int { return &c.MaxInFlight }, 1, 10000)},
		{env: "MAX_ATTEMPTS", flag: "max-attempts", def: strconv.Itoa(provision.DefaultMaxAttempts), usage: "deliveries that may fail transiently before a request is dead-lettered", set: intSetter(func(c *Config) *int { return &c.MaxAttempts }, 1, 1000)},
		{env: "MAX_ACK_PENDING", flag: "max-ack-pending", def: strconv.Itoa(provision.DefaultMaxAckPending), usage: "unacknowledged messages allowed per action consumer (parked requests do not count)", set: intSetter(func(c *Config) *int { return &c.MaxAckPending }, 1, 1000000)},
		{env: "GUARD_LIMIT", flag: "guard-limit", def: "50", usage: "deactivations and deletions that may reach Zoom within GUARD_WINDOW, for the whole account, before the rest wait for an operator (0 = no guard)", set: intSetter(func(c *Config) *int { return &c.GuardLimit }, 0, guard.MaxLimit)},
		{env: "GUARD_WINDOW", flag: "guard-window", def: "1h", usage: "the guard's sliding window", set: durationSetter(func(c *Config) *time.Duration { return &c.GuardWindow }, time.Second)},
		{env: "RECONCILE_INTERVAL", flag: "reconcile-interval", def: "0", usage: "how often one replica compares every Zoom user with the ledger and reports the drift (an event on <result prefix>.drift, zoomprov_drift_users); 0 = never", set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || (d > 0 && d < time.Second) {
				return fmt.Errorf("want 0 (off) or a duration of at least 1s such as 6h, got %q", v)
			}
			c.ReconcileInterval = d
			return nil
		}},
		{env: "RECONCILE_APPLY", flag: "reconcile-apply", def: "false", usage: "the periodic reconciliation also publishes the corrective requests of the drift it finds (as consumer reconcile --apply does)", set: boolSetter(func(c *Config) *bool { return &c.ReconcileApply })},
		{env: "ACK_WAIT", flag: "ack-wait", def: provision.DefaultAckWait.String(), usage: "consumer ack wait (progress heartbeats every third)", set: durationSetter(func(c *Config) *time.Duration { return &c.AckWait }, time.Second)},
		{env: "SHUTDOWN_TIMEOUT", flag: "shutdown-timeout", def: provision.DefaultShutdownTimeout.String(), usage: "how long in-flight requests may finish on shutdown", set: durationSetter(func(c *Config) *time.Duration { return &c.ShutdownTimeout }, time.Millisecond)},
		{env: "ACTIONS", flag: "actions", def: strings.Join(topology.Actions(), ","), usage: "creation actions and lifecycle operations this instance serves, comma separated", set: func(c *Config, v string) error {
			c.Actions = nil
			for _, a := range strings.Split(v, ",") {
				act := strings.TrimSpace(a)
				if !messages.Action(act).Valid() && !messages.Operation(act).Valid() {
					return fmt.Errorf("unknown action %q (want %s)", act, strings.Join(topology.Actions(), ", "))
				}
				c.Actions = append(c.Actions, act)
			}
			return nil
		}},
		{env: "STREAM_REPLICAS", flag: "stream-replicas", def: "auto", usage: "replicas of the streams and buckets the service creates or raises: auto (as many as the cluster has servers, at most 3) or a number; existing ones are never lowered", set: func(c *Config, v string) error {
			if v == "auto" {
				c.StreamReplicas = topology.AutoReplicas
				return nil
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 5 {
				return fmt.Errorf("want auto or a number from 1 to 5, got %q", v)
			}
			c.StreamReplicas = n
			return nil
		}},
		{env: "PROVISION_STREAMS", flag: "provision-streams", def: "true", usage: "create or update streams and consumers at start-up", set: boolSetter(func(c *Config) *bool { return &c.Provision })},

		{env: "REQUEST_STREAM", flag: "request-stream", def: "ZOOM_USERS", usage: "request stream", set: nameSetter(func(c *Config) *string { return &c.RequestStream })},
		{env: "OPERATION_SUBJECT_PREFIX", flag: "operation-subject-prefix", def: "zoom.users", usage: "prefix of the lifecycle subjects (<prefix>.update, .deactivate, .activate, .delete)", set: subjectSetter(func(c *Config) *string { return &c.OperationPrefix })},
		{env: "REQUEST_SUBJECT_PREFIX", flag: "request-subject-prefix", def: "zoom.users.create", usage: "request subject prefix (requests on <prefix>.<action>)", set: subjectSetter(func(c *Config) *string { return &c.RequestPrefix })},
		{env: "RESULT_STREAM", flag: "result-stream", def: "ZOOM_USERS_RESULTS", usage: "result stream", set: nameSetter(func(c *Config) *string { return &c.ResultStream })},
		{env: "RESULT_SUBJECT_PREFIX", flag: "result-subject-prefix", def: "zoom.users.result", usage: "result subject prefix (results on <prefix>.<outcome>)", set: subjectSetter(func(c *Config) *string { return &c.ResultPrefix })},
		{env: "RESULT_MAX_AGE", flag: "result-max-age", def: "720h", usage: "how long the result stream keeps events (0 = forever)", set: durationSetter(func(c *Config) *time.Duration { return &c.ResultMaxAge }, 0)},
		{env: "DLQ_STREAM", flag: "dlq-stream", def: "ZOOM_USERS_DLQ", usage: "dead-letter stream", set: nameSetter(func(c *Config) *string { return &c.DeadLetterStream })},
		{env: "DLQ_SUBJECT_PREFIX", flag: "dlq-subject-prefix", def: "zoom.users.dlq", usage: "dead-letter subject prefix (dead letters on <prefix>.<action>)", set: subjectSetter(func(c *Config) *string { return &c.DeadLetterPrefix })},
		// Before sealKeySetting: its setter reads this one.
		{env: sealKeyOptionalSetting, flag: "dlq-seal-key-optional", def: "false", usage: "a DLQ_SEAL_KEY_FILE that does not exist is skipped with a warning instead of stopping start-up; with none left, passwords in dead letters are redacted (for a Secret mounted with optional: true)", set: boolSetter(func(c *Config) *bool { return &c.DeadLetterKeysOptional })},
		{env: sealKeySetting, flag: "dlq-seal-key-file", usage: "file(s) of 32 random bytes that seal passwords in dead letters, comma separated: the first seals, any opens (empty = passwords are redacted)", set: func(c *Config, v string) error {
			c.DeadLetterKeys, c.DeadLetterKeysMissing = nil, nil
			if v == "" {
				return nil
			}
			paths := strings.Split(v, ",")
			if c.DeadLetterKeysOptional {
				paths, c.DeadLetterKeysMissing = existingFiles(paths)
				if len(paths) == 0 {
					return nil
				}
			}
			k, err := seal.Load(paths...)
			c.DeadLetterKeys = k
			return err
		}},
		{env: passwordKeySetting, flag: "password-key-file", usage: "file(s) of 32 random bytes, the private keys that open the autoCreate passwords publishers sealed for the service (sealedbox:v1:...), comma separated: publishers seal for the first one's public key (consumer password public-key prints it), any opens (empty = sealed passwords cannot be opened)", set: func(c *Config, v string) error {
			c.PasswordKeys = nil
			if v == "" {
				return nil
			}
			k, err := password.Load(strings.Split(v, ",")...)
			c.PasswordKeys = k
			return err
		}},
		{env: "CONSUMER_PREFIX", flag: "consumer-prefix", def: "zoom-provisioner", usage: "durable consumer name prefix (<prefix>-<action>)", set: nameSetter(func(c *Config) *string { return &c.ConsumerPrefix })},

		{env: "HTTP_ADDR", flag: "http-addr", def: ":8080", usage: "address of the health and metrics endpoint (off = none)", set: func(c *Config, v string) error {
			if v == "off" {
				v = ""
			}
			c.HTTPAddr = v
			return nil
		}},
		{env: consoleTokenSetting, flag: "console-token-file", usage: "file of the operator console's logins, one name:secret per line (the name is the actor of the audit events); set: the console is served under /console/ on HTTP_ADDR; empty = no console", set: func(c *Config, v string) error {
			c.ConsoleTokens = nil
			if v == "" {
				return nil
			}
			t, err := console.LoadTokens(v)
			c.ConsoleTokens = t
			return err
		}},
		{env: "LOG_LEVEL", flag: "log-level", def: "info", usage: "log level: trace, debug, info, warn, error", set: func(c *Config, v string) error {
			switch v {
			case "trace", "debug", "info", "warn", "error":
				c.LogLevel = v
				return nil
			}
			return fmt.Errorf("want trace, debug, info, warn or error, got %q", v)
		}},
		{env: "LOG_FORMAT", flag: "log-format", def: "json", usage: "log format: json or console", set: func(c *Config, v string) error {
			if v != "json" && v != "console" {
				return fmt.Errorf("want json or console, got %q", v)
			}
			c.LogFormat = v
			return nil
		}},
		{env: "LOG_EMAILS", flag: "log-emails", def: "false", usage: "log full e-mail addresses instead of masked ones", set: boolSetter(func(c *Config) *bool { return &c.LogEmails })},
		// The other OTEL_* variables (OTEL_SERVICE_NAME,
		// OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT,
		// _COMPRESSION, _CERTIFICATE, OTEL_TRACES_SAMPLER) are read from the
		// process environment by the OpenTelemetry SDK itself; this one is a
		// setting because it decides whether there is an exporter at all.
		{env: "OTEL_EXPORTER_OTLP_ENDPOINT", flag: "otel-exporter-otlp-endpoint", usage: "OTLP/HTTP collector base URL to export traces to (<url>/v1/traces); empty = no export", set: func(c *Config, v string) error {
			if v == "" {
				c.OTLPEndpoint = ""
				return nil
			}
			return urlSetter(func(c *Config) *string { return &c.OTLPEndpoint })(c, v)
		}},
	}
}

// parseConfig reads the configuration from getenv and args. It returns the
// remaining positional arguments.
func parseConfig(fs *flag.FlagSet, args []string, getenv func(string) string) (Config, error) {
	return parseSettings(fs, args, getenv, settings())
}

// sealKeySetting names the seal keys, a setting of run and dlq replay
// only; sealKeyOptionalSetting, a setting of run only, lets the key files
// be missing.
const (
	sealKeySetting         = "DLQ_SEAL_KEY_FILE"
	sealKeyOptionalSetting = "DLQ_SEAL_KEY_OPTIONAL"
)

// consoleTokenSetting names the console's token file, a setting of run.
const consoleTokenSetting = "CONSOLE_TOKEN_FILE"

// passwordKeySetting names the private keys that open the passwords
// publishers sealed for the service, a setting of run and of `password
// public-key`.
const passwordKeySetting = "PASSWORD_KEY_FILE"

// existingFiles splits paths into those that exist (or cannot be checked:
// seal.Load then says why) and those that do not exist.
func existingFiles(paths []string) (exist, missing []string) {
	for _, p := range paths {
		if _, err := os.Stat(strings.TrimSpace(p)); errors.Is(err, os.ErrNotExist) {
			missing = append(missing, strings.TrimSpace(p))
			continue
		}
		exist = append(exist, p)
	}
	return exist, missing
}

// settingNamed returns the setting of environment variable env.
func settingNamed(env string) setting {
	for _, s := range settings() {
		if s.env == env {
			return s
		}
	}
	panic("no setting " + env)
}

// natsSettings are the settings of commands that only talk to NATS.
func natsSettings() []setting {
	var out []setting
	for _, s := range settings() {
		if strings.HasPrefix(s.env, "NATS_") || strings.HasPrefix(s.env, "REQUEST_") || s.env == "OPERATION_SUBJECT_PREFIX" || strings.HasPrefix(s.env, "RESULT_") || (strings.HasPrefix(s.env, "DLQ_") && s.env != sealKeySetting && s.env != sealKeyOptionalSetting) || s.env == "CONSUMER_PREFIX" {
			out = append(out, s)
		}
	}
	return out
}

// parseSettings reads the given settings from getenv and args, on fs that
// may hold further flags of the calling command.
func parseSettings(fs *flag.FlagSet, args []string, getenv func(string) string, all []setting) (Config, error) {
	var c Config
	flagVals := make(map[string]*string, len(all))
	fileVals := make(map[string]*string, len(all))
	for _, s := range all {
		if s.secret {
			fileVals[s.env] = fs.String(s.flag+"-file", "", "file holding the "+s.usage+" (or $"+s.env+", $"+s.env+"_FILE)")
			continue
		}
		flagVals[s.env] = fs.String(s.flag, "", s.usage+" ($"+s.env+", default "+quoteDefault(s.def)+")")
		if s.file {
			fileVals[s.env] = fs.String(s.flag+"-file", "", "file holding the "+s.usage+" ($"+s.env+"_FILE)")
		}
	}
	var noProvision *bool
	if fs.Lookup("provision-streams") != nil {
		noProvision = fs.Bool("no-provision", false, "do not create or update streams and consumers (same as PROVISION_STREAMS=false)")
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	for _, s := range all {
		v, name, err := s.value(getenv, flagVals, fileVals, given)
		if err != nil {
			return c, &errSetting{Name: name, Err: err}
		}
		if err := s.set(&c, v); err != nil {
			return c, &errSetting{Name: name, Err: err}
		}
	}
	if noProvision != nil && *noProvision {
		c.Provision = false
	}
	if err := checkPrefixes(c); err != nil {
		return c, err
	}
	return c, nil
}

// checkPrefixes refuses subject prefixes that overlap: streams cannot share
// subjects, and the server's refusal at start-up would not say which
// setting is wrong.
func checkPrefixes(c Config) error {
	prefixes := []struct{ name, v string }{
		{"REQUEST_SUBJECT_PREFIX", c.RequestPrefix},
		{"RESULT_SUBJECT_PREFIX", c.ResultPrefix},
		{"DLQ_SUBJECT_PREFIX", c.DeadLetterPrefix},
	}
	for i, a := range prefixes {
		for _, b := range prefixes[i+1:] {
			if a.v == "" || b.v == "" {
				continue
			}
			if a.v == b.v || strings.HasPrefix(a.v, b.v+".") || strings.HasPrefix(b.v, a.v+".") {
				return &errSetting{Name: b.name, Err: fmt.Errorf("%q overlaps %s %q; the streams need distinct subjects", b.v, a.name, a.v)}
			}
		}
	}
	// The lifecycle subjects are exact: they must not fall under another
	// prefix's wildcard (<prefix>.>).
	if c.OperationPrefix != "" {
		for _, a := range prefixes {
			if a.v != "" && (c.OperationPrefix == a.v || strings.HasPrefix(c.OperationPrefix, a.v+".")) {
				return &errSetting{Name: "OPERATION_SUBJECT_PREFIX", Err: fmt.Errorf("%q puts the lifecycle subjects under %s %q; the streams need distinct subjects", c.OperationPrefix, a.name, a.v)}
			}
		}
	}
	return nil
}

// value resolves a setting: flag, then flag file, then environment, then
// environment file, then default. name is where the value came from, for
// error messages.
func (s setting) value(getenv func(string) string, flagVals, fileVals map[string]*string, given map[string]bool) (v, name string, err error) {
	if p, ok := flagVals[s.env]; ok && given[s.flag] {
		return *p, "--" + s.flag, nil
	}
	if p, ok := fileVals[s.env]; ok && given[s.flag+"-file"] {
		v, err := readSecretFile(*p)
		return v, "--" + s.flag + "-file", err
	}
	if v := getenv(s.env); v != "" {
		return v, s.env, nil
	}
	if s.secret || s.file {
		if f := getenv(s.env + "_FILE"); f != "" {
			v, err := readSecretFile(f)
			return v, s.env + "_FILE", err
		}
	}
	return s.def, s.env, nil
}

// readSecretFile reads a value from a mounted secret file. The error names
// the file but never its content.
func readSecretFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return "", fmt.Errorf("cannot read %s: %v", path, pe.Err)
		}
		return "", err
	}
	v := strings.TrimSpace(string(data))
	if v == "" {
		return "", fmt.Errorf("file %s is empty", path)
	}
	return v, nil
}

func quoteDefault(d string) string {
	if d == "" {
		return "none"
	}
	return d
}

func urlSetter(f func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
			return fmt.Errorf("want an http:// or https:// URL, got %q", v)
		}
		*f(c) = strings.TrimRight(v, "/")
		return nil
	}
}

func durationSetter(f func(*Config) *time.Duration, minimum time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("want a duration such as 15s or 2m, got %q", v)
		}
		if d < minimum || d < 0 {
			return fmt.Errorf("must be at least %v, got %v", minimum, d)
		}
		*f(c) = d
		return nil
	}
}

func intSetter(f func(*Config) *int, lo, hi int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("want a whole number from %d to %d, got %q", lo, hi, v)
		}
		*f(c) = n
		return nil
	}
}

func boolSetter(f func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", v)
		}
		*f(c) = b
		return nil
	}
}

func nameSetter(f func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "" || strings.ContainsAny(v, ".*> \t\r\n/\\") {
			return fmt.Errorf("want a name without spaces, dots, slashes, '*' or '>', got %q", v)
		}
		*f(c) = v
		return nil
	}
}

func subjectSetter(f func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "" || strings.ContainsAny(v, "*> \t\r\n") || strings.HasPrefix(v, ".") || strings.HasSuffix(v, ".") || strings.Contains(v, "..") {
			return fmt.Errorf("want a subject prefix of dot-separated tokens without wildcards, got %q", v)
		}
		*f(c) = v
		return nil
	}
}

// requireZoom checks the settings `run` cannot start without.
func requireZoom(c Config) error {
	if err := zoomCredentials(c); err != nil {
		return err
	}
	return natsTLSPair(c)
}

// zoomCredentials checks that the three Zoom credentials are set.
func zoomCredentials(c Config) error {
	for _, r := range []struct{ name, v string }{
		{"ZOOM_ACCOUNT_ID", c.ZoomAccountID},
		{"ZOOM_CLIENT_ID", c.ZoomClientID},
		{"ZOOM_CLIENT_SECRET", c.ZoomClientSecret},
	} {
		if r.v == "" {
			return &errSetting{Name: r.name, Err: errors.New("required (set it, or " + r.name + "_FILE)")}
		}
	}
	return nil
}

// natsTLSPair checks that the NATS client certificate and key come
// together.
func natsTLSPair(c Config) error {
	if (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		return &errSetting{Name: "NATS_TLS_CERT", Err: errors.New("NATS_TLS_CERT and NATS_TLS_KEY must be set together")}
	}
	return nil
}
