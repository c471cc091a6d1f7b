package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/topology"
)

// parse runs parseConfig the way `consumer run` does.
func parse(env map[string]string, args ...string) (Config, error) {
	return parseConfig(newFlagSet("run"), args, mapEnv(env))
}

// writeFile writes content to a new file in a temporary directory.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	return p
}

// Ensure the defaults are the documented contract.
func TestParseConfigDefaults(t *testing.T) {
	cfg, err := parse(nil)
	if err != nil {
		t.Fatalf("parseConfig(no env, no args) = %v; want nil", err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"NATS_URL", cfg.NATSURL, "nats://127.0.0.1:4222"},
		{"ZOOM_API_URL", cfg.ZoomAPIURL, "https://api.zoom.us/v2"},
		{"ZOOM_TOKEN_URL", cfg.ZoomTokenURL, "https://zoom.us/oauth/token"},
		{"ZOOM_RATE_LIMIT", cfg.ZoomRateLimit, 20.0},
		{"ZOOM_TIMEOUT", cfg.ZoomTimeout, 15 * time.Second},
		{"ZOOM_ACCOUNT_ID", cfg.ZoomAccountID, ""},
		{"ZOOM_CLIENT_ID", cfg.ZoomClientID, ""},
		{"ZOOM_CLIENT_SECRET", cfg.ZoomClientSecret, ""},
		{"MAX_IN_FLIGHT", cfg.MaxInFlight, 64},
		{"MAX_ATTEMPTS", cfg.MaxAttempts, 10},
		{"MAX_ACK_PENDING", cfg.MaxAckPending, 1000},
		{"ACK_WAIT", cfg.AckWait, 30 * time.Second},
		{"SHUTDOWN_TIMEOUT", cfg.ShutdownTimeout, 20 * time.Second},
		{"ACTIONS", cfg.Actions, []string{"create", "autoCreate", "custCreate", "ssoCreate", "update", "deactivate", "activate", "delete"}},
		{"OPERATION_SUBJECT_PREFIX", cfg.OperationPrefix, "zoom.users"},
		{"PROVISION_STREAMS", cfg.Provision, true},
		{"STREAM_REPLICAS", cfg.StreamReplicas, topology.AutoReplicas},
		{"REQUEST_STREAM", cfg.RequestStream, "ZOOM_USERS"},
		{"REQUEST_SUBJECT_PREFIX", cfg.RequestPrefix, "zoom.users.create"},
		{"RESULT_STREAM", cfg.ResultStream, "ZOOM_USERS_RESULTS"},
		{"RESULT_SUBJECT_PREFIX", cfg.ResultPrefix, "zoom.users.result"},
		{"RESULT_MAX_AGE", cfg.ResultMaxAge, 720 * time.Hour},
		{"DLQ_STREAM", cfg.DeadLetterStream, "ZOOM_USERS_DLQ"},
		{"DLQ_SUBJECT_PREFIX", cfg.DeadLetterPrefix, "zoom.users.dlq"},
		{"CONSUMER_PREFIX", cfg.ConsumerPrefix, "zoom-provisioner"},
		{"HTTP_ADDR", cfg.HTTPAddr, ":8080"},
		{"LOG_LEVEL", cfg.LogLevel, "info"},
		{"LOG_FORMAT", cfg.LogFormat, "json"},
		{"LOG_EMAILS", cfg.LogEmails, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Errorf("parseConfig(defaults) %s = %#v; want %#v", tc.name, tc.got, tc.want)
			}
		})
	}
}

// Ensure the environment sets every kind of value and a flag overrides the
// environment.
func TestParseConfigValues(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		field func(Config) any
		want  any
	}{
		{"NATS_URL from env", map[string]string{"NATS_URL": "nats://a:4222,nats://b:4222"}, nil,
			func(c Config) any { return c.NATSURL }, "nats://a:4222,nats://b:4222"},
		{"ZOOM_API_URL loses trailing slash", map[string]string{"ZOOM_API_URL": "http://127.0.0.1:9/v2/"}, nil,
			func(c Config) any { return c.ZoomAPIURL }, "http://127.0.0.1:9/v2"},
		{"ZOOM_TOKEN_URL from env", map[string]string{"ZOOM_TOKEN_URL": "http://127.0.0.1:9/oauth/token"}, nil,
			func(c Config) any { return c.ZoomTokenURL }, "http://127.0.0.1:9/oauth/token"},
		{"HTTP_ADDR off turns the endpoint off", map[string]string{"HTTP_ADDR": "off"}, nil,
			func(c Config) any { return c.HTTPAddr }, ""},
		{"RECONCILE_INTERVAL off by default", nil, nil,
			func(c Config) any { return c.ReconcileInterval }, time.Duration(0)},
		{"RECONCILE_INTERVAL from a flag", nil, []string{"--reconcile-interval", "6h"},
			func(c Config) any { return c.ReconcileInterval }, 6 * time.Hour},
		{"RECONCILE_APPLY from env", map[string]string{"RECONCILE_APPLY": "true"}, nil,
			func(c Config) any { return c.ReconcileApply }, true},
		{"ZOOM_RATE_LIMIT 0 turns it off", map[string]string{"ZOOM_RATE_LIMIT": "0"}, nil,
			func(c Config) any { return c.ZoomRateLimit }, 0.0},
		{"ZOOM_RATE_LIMIT fraction", map[string]string{"ZOOM_RATE_LIMIT": "2.5"}, nil,
			func(c Config) any { return c.ZoomRateLimit }, 2.5},
		{"ZOOM_TIMEOUT from env", map[string]string{"ZOOM_TIMEOUT": "2m"}, nil,
			func(c Config) any { return c.ZoomTimeout }, 2 * time.Minute},
		{"ZOOM_ACCOUNT_ID from env", map[string]string{"ZOOM_ACCOUNT_ID": "acct"}, nil,
			func(c Config) any { return c.ZoomAccountID }, "acct"},
		{"ZOOM_CLIENT_ID from env", map[string]string{"ZOOM_CLIENT_ID": "client"}, nil,
			func(c Config) any { return c.ZoomClientID }, "client"},
		{"ZOOM_CLIENT_SECRET from env", map[string]string{"ZOOM_CLIENT_SECRET": "secret"}, nil,
			func(c Config) any { return c.ZoomClientSecret }, "secret"},
		{"MAX_IN_FLIGHT from env", map[string]string{"MAX_IN_FLIGHT": "8"}, nil,
			func(c Config) any { return c.MaxInFlight }, 8},
		{"MAX_ATTEMPTS from env", map[string]string{"MAX_ATTEMPTS": "3"}, nil,
			func(c Config) any { return c.MaxAttempts }, 3},
		{"ACK_WAIT from env", map[string]string{"ACK_WAIT": "1s"}, nil,
			func(c Config) any { return c.AckWait }, time.Second},
		{"ACTIONS trimmed", map[string]string{"ACTIONS": "create, ssoCreate"}, nil,
			func(c Config) any { return c.Actions }, []string{"create", "ssoCreate"}},
		{"RESULT_MAX_AGE 0 keeps forever", map[string]string{"RESULT_MAX_AGE": "0s"}, nil,
			func(c Config) any { return c.ResultMaxAge }, time.Duration(0)},
		{"REQUEST_STREAM from env", map[string]string{"REQUEST_STREAM": "REQS"}, nil,
			func(c Config) any { return c.RequestStream }, "REQS"},
		{"RESULT_SUBJECT_PREFIX from env", map[string]string{"RESULT_SUBJECT_PREFIX": "hr.zoom.results"}, nil,
			func(c Config) any { return c.ResultPrefix }, "hr.zoom.results"},
		{"LOG_LEVEL from env", map[string]string{"LOG_LEVEL": "debug"}, nil,
			func(c Config) any { return c.LogLevel }, "debug"},
		{"LOG_FORMAT from env", map[string]string{"LOG_FORMAT": "console"}, nil,
			func(c Config) any { return c.LogFormat }, "console"},
		{"LOG_EMAILS from env", map[string]string{"LOG_EMAILS": "true"}, nil,
			func(c Config) any { return c.LogEmails }, true},
		{"HTTP_ADDR from env", map[string]string{"HTTP_ADDR": "127.0.0.1:9090"}, nil,
			func(c Config) any { return c.HTTPAddr }, "127.0.0.1:9090"},
		{"empty --http-addr turns it off", nil, []string{"--http-addr="},
			func(c Config) any { return c.HTTPAddr }, ""},
		{"PROVISION_STREAMS=false", map[string]string{"PROVISION_STREAMS": "false"}, nil,
			func(c Config) any { return c.Provision }, false},
		{"--no-provision", nil, []string{"--no-provision"},
			func(c Config) any { return c.Provision }, false},
		{"--no-provision beats PROVISION_STREAMS=true", map[string]string{"PROVISION_STREAMS": "true"}, []string{"--no-provision"},
			func(c Config) any { return c.Provision }, false},
		{"--provision-streams=false", nil, []string{"--provision-streams=false"},
			func(c Config) any { return c.Provision }, false},
		{"ACTIONS with operations", map[string]string{"ACTIONS": "ssoCreate,update,delete"}, nil,
			func(c Config) any { return c.Actions }, []string{"ssoCreate", "update", "delete"}},
		{"STREAM_REPLICAS=3", map[string]string{"STREAM_REPLICAS": "3"}, nil,
			func(c Config) any { return c.StreamReplicas }, 3},
		{"--stream-replicas=1 beats STREAM_REPLICAS=3", map[string]string{"STREAM_REPLICAS": "3"}, []string{"--stream-replicas=1"},
			func(c Config) any { return c.StreamReplicas }, 1},
		{"STREAM_REPLICAS=auto", map[string]string{"STREAM_REPLICAS": "auto"}, nil,
			func(c Config) any { return c.StreamReplicas }, topology.AutoReplicas},
		{"no DLQ_SEAL_KEY_FILE: passwords are redacted", nil, nil,
			func(c Config) any { return c.DeadLetterKeys == nil }, true},
		{"no NATS_INBOX_PREFIX: the client's _INBOX", nil, nil,
			func(c Config) any { return c.NATSInboxPrefix }, ""},
		{"NATS_INBOX_PREFIX from env", map[string]string{"NATS_INBOX_PREFIX": "_INBOX_operator"}, nil,
			func(c Config) any { return c.NATSInboxPrefix }, "_INBOX_operator"},
		{"--nats-inbox-prefix beats NATS_INBOX_PREFIX", map[string]string{"NATS_INBOX_PREFIX": "_INBOX_env"}, []string{"--nats-inbox-prefix", "_INBOX.ops"},
			func(c Config) any { return c.NATSInboxPrefix }, "_INBOX.ops"},

		{"flag beats env: --nats-url", map[string]string{"NATS_URL": "nats://env:4222"}, []string{"--nats-url", "nats://flag:4222"},
			func(c Config) any { return c.NATSURL }, "nats://flag:4222"},
		{"flag beats env: --max-in-flight", map[string]string{"MAX_IN_FLIGHT": "8"}, []string{"--max-in-flight=4"},
			func(c Config) any { return c.MaxInFlight }, 4},
		{"flag beats env: --log-level", map[string]string{"LOG_LEVEL": "debug"}, []string{"-log-level", "warn"},
			func(c Config) any { return c.LogLevel }, "warn"},
		{"flag beats env: --zoom-timeout", map[string]string{"ZOOM_TIMEOUT": "1s"}, []string{"--zoom-timeout", "3s"},
			func(c Config) any { return c.ZoomTimeout }, 3 * time.Second},
		{"flag beats env: --zoom-account-id", map[string]string{"ZOOM_ACCOUNT_ID": "env"}, []string{"--zoom-account-id", "flag"},
			func(c Config) any { return c.ZoomAccountID }, "flag"},
		{"flag beats env: --actions", map[string]string{"ACTIONS": "create"}, []string{"--actions", "autoCreate"},
			func(c Config) any { return c.Actions }, []string{"autoCreate"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parse(tc.env, tc.args...)
			if err != nil {
				t.Fatalf("parseConfig(%v, %q) = %v; want nil", tc.env, tc.args, err)
			}
			if got := tc.field(cfg); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseConfig(%v, %q) = %#v; want %#v", tc.env, tc.args, got, tc.want)
			}
		})
	}
}

// Ensure secrets and ids can come from mounted files (trimmed), and the
// order of precedence: flag file, environment, environment file.
func TestParseConfigSecretFiles(t *testing.T) {
	secret := writeFile(t, "secret", "  s3cret-from-file\n")
	account := writeFile(t, "account", "acct-from-file\n")
	password := writeFile(t, "password", "nats-pass\r\n")
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		field func(Config) any
		want  string
	}{
		{"ZOOM_CLIENT_SECRET_FILE", map[string]string{"ZOOM_CLIENT_SECRET_FILE": secret}, nil,
			func(c Config) any { return c.ZoomClientSecret }, "s3cret-from-file"},
		{"--zoom-client-secret-file", nil, []string{"--zoom-client-secret-file", secret},
			func(c Config) any { return c.ZoomClientSecret }, "s3cret-from-file"},
		{"--zoom-client-secret-file beats ZOOM_CLIENT_SECRET", map[string]string{"ZOOM_CLIENT_SECRET": "from-env"}, []string{"--zoom-client-secret-file", secret},
			func(c Config) any { return c.ZoomClientSecret }, "s3cret-from-file"},
		{"ZOOM_CLIENT_SECRET beats ZOOM_CLIENT_SECRET_FILE", map[string]string{"ZOOM_CLIENT_SECRET": "from-env", "ZOOM_CLIENT_SECRET_FILE": secret}, nil,
			func(c Config) any { return c.ZoomClientSecret }, "from-env"},
		{"ZOOM_ACCOUNT_ID_FILE", map[string]string{"ZOOM_ACCOUNT_ID_FILE": account}, nil,
			func(c Config) any { return c.ZoomAccountID }, "acct-from-file"},
		{"--zoom-account-id-file", nil, []string{"--zoom-account-id-file=" + account},
			func(c Config) any { return c.ZoomAccountID }, "acct-from-file"},
		{"ZOOM_CLIENT_ID_FILE", map[string]string{"ZOOM_CLIENT_ID_FILE": account}, nil,
			func(c Config) any { return c.ZoomClientID }, "acct-from-file"},
		{"NATS_PASSWORD_FILE", map[string]string{"NATS_PASSWORD_FILE": password}, nil,
			func(c Config) any { return c.NATSPassword }, "nats-pass"},
		{"--nats-token-file", nil, []string{"--nats-token-file", password},
			func(c Config) any { return c.NATSToken }, "nats-pass"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parse(tc.env, tc.args...)
			if err != nil {
				t.Fatalf("parseConfig(%v, %q) = %v; want nil", tc.env, tc.args, err)
			}
			if got := tc.field(cfg); got != tc.want {
				t.Errorf("parseConfig(%v, %q) = %q; want %q", tc.env, tc.args, got, tc.want)
			}
		})
	}
}

// Ensure an empty, blank or unreadable secret file is an error that names
// where the value came from, is one line, and never shows a secret.
func TestParseConfigSecretFileErrors(t *testing.T) {
	const secretValue = "s3cr3t-VALUE"
	empty := writeFile(t, "empty", "")
	blank := writeFile(t, "blank", " \n\t\n")
	good := writeFile(t, "good", secretValue+"\n")
	missing := filepath.Join(t.TempDir(), "missing")
	dir := t.TempDir()
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantName string
	}{
		{"empty ZOOM_CLIENT_SECRET_FILE", map[string]string{"ZOOM_CLIENT_SECRET_FILE": empty}, nil, "ZOOM_CLIENT_SECRET_FILE"},
		{"blank ZOOM_CLIENT_SECRET_FILE", map[string]string{"ZOOM_CLIENT_SECRET_FILE": blank}, nil, "ZOOM_CLIENT_SECRET_FILE"},
		{"missing ZOOM_CLIENT_SECRET_FILE", map[string]string{"ZOOM_CLIENT_SECRET_FILE": missing}, nil, "ZOOM_CLIENT_SECRET_FILE"},
		{"directory as ZOOM_CLIENT_SECRET_FILE", map[string]string{"ZOOM_CLIENT_SECRET_FILE": dir}, nil, "ZOOM_CLIENT_SECRET_FILE"},
		{"empty --zoom-client-secret-file", nil, []string{"--zoom-client-secret-file", empty}, "--zoom-client-secret-file"},
		{"missing --zoom-client-secret-file", nil, []string{"--zoom-client-secret-file", missing}, "--zoom-client-secret-file"},
		{"empty ZOOM_ACCOUNT_ID_FILE", map[string]string{"ZOOM_ACCOUNT_ID_FILE": empty}, nil, "ZOOM_ACCOUNT_ID_FILE"},
		{"missing NATS_PASSWORD_FILE", map[string]string{"NATS_PASSWORD_FILE": missing}, nil, "NATS_PASSWORD_FILE"},
		{"good secret file, bad other setting", map[string]string{"ZOOM_CLIENT_SECRET_FILE": good, "MAX_IN_FLIGHT": "0"}, nil, "MAX_IN_FLIGHT"},
		{"good secret file flag, bad other setting", map[string]string{"ZOOM_API_URL": "ftp://x"}, []string{"--zoom-client-secret-file", good}, "ZOOM_API_URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.env, tc.args...)
			if err == nil {
				t.Fatalf("parseConfig(%v, %q) = nil; want an error naming %s", tc.env, tc.args, tc.wantName)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantName) {
				t.Errorf("parseConfig(%v, %q) = %q; want it to name %s", tc.env, tc.args, msg, tc.wantName)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("parseConfig(%v, %q) = %q; want one line", tc.env, tc.args, msg)
			}
			if strings.Contains(msg, secretValue) {
				t.Errorf("parseConfig(%v, %q) = %q; want no secret in it", tc.env, tc.args, msg)
			}
			var es *errSetting
			if !errors.As(err, &es) {
				t.Errorf("parseConfig(%v, %q) = %T; want *errSetting", tc.env, tc.args, err)
			}
		})
	}
}

// Ensure secrets cannot be given as command-line values, which `ps` would
// show: only their -file flags exist.
func TestParseConfigNoSecretFlags(t *testing.T) {
	for _, name := range []string{"zoom-client-secret", "nats-password", "nats-token"} {
		t.Run(name, func(t *testing.T) {
			fs := newFlagSet("run")
			_, err := parseConfig(fs, []string{"--" + name, "s3cr3t-VALUE"}, mapEnv(nil))
			if err == nil {
				t.Fatalf("parseConfig(--%s VALUE) = nil; want an error: the flag must not exist", name)
			}
			if strings.Contains(err.Error(), "s3cr3t-VALUE") {
				t.Errorf("parseConfig(--%s VALUE) = %q; want no secret in it", name, err)
			}
			if f := fs.Lookup(name); f != nil {
				t.Errorf("flag --%s exists; want only --%s-file", name, name)
			}
			if f := fs.Lookup(name + "-file"); f == nil {
				t.Errorf("flag --%s-file missing", name)
			}
		})
	}
}

// Ensure every malformed setting is rejected with one line naming it,
// whether it came from the environment or a flag.
func TestParseConfigRejectsMalformed(t *testing.T) {
	shortKeyFile := writeFile(t, "short.key", "0123456789abcdef")
	goodKeyFile := writeFile(t, "good.key", strings.Repeat("ab", 32))
	tests := []struct {
		env      map[string]string
		args     []string
		wantName string
	}{
		{env: map[string]string{"ZOOM_TIMEOUT": "abc"}, wantName: "ZOOM_TIMEOUT"},
		{env: map[string]string{"RESULT_SUBJECT_PREFIX": "zoom.users.create"}, wantName: "RESULT_SUBJECT_PREFIX"},
		{env: map[string]string{"DLQ_SUBJECT_PREFIX": "zoom.users.result.dead"}, wantName: "DLQ_SUBJECT_PREFIX"},
		{env: map[string]string{"ZOOM_TIMEOUT": "0s"}, wantName: "ZOOM_TIMEOUT"},
		{env: map[string]string{"ZOOM_TIMEOUT": "-5s"}, wantName: "ZOOM_TIMEOUT"},
		{env: map[string]string{"MAX_IN_FLIGHT": "0"}, wantName: "MAX_IN_FLIGHT"},
		{env: map[string]string{"MAX_IN_FLIGHT": "ten"}, wantName: "MAX_IN_FLIGHT"},
		{env: map[string]string{"MAX_ATTEMPTS": "0"}, wantName: "MAX_ATTEMPTS"},
		{env: map[string]string{"MAX_ACK_PENDING": "-1"}, wantName: "MAX_ACK_PENDING"},
		{env: map[string]string{"ACK_WAIT": "500ms"}, wantName: "ACK_WAIT"},
		{env: map[string]string{"SHUTDOWN_TIMEOUT": "soon"}, wantName: "SHUTDOWN_TIMEOUT"},
		{env: map[string]string{"RESULT_MAX_AGE": "-1h"}, wantName: "RESULT_MAX_AGE"},
		{env: map[string]string{"ZOOM_RATE_LIMIT": "-1"}, wantName: "ZOOM_RATE_LIMIT"},
		{env: map[string]string{"ZOOM_RATE_LIMIT": "fast"}, wantName: "ZOOM_RATE_LIMIT"},
		{env: map[string]string{"ZOOM_RATE_LIMIT": "Inf"}, wantName: "ZOOM_RATE_LIMIT"},
		{env: map[string]string{"ZOOM_RATE_LIMIT": "NaN"}, wantName: "ZOOM_RATE_LIMIT"},
		{env: map[string]string{"RECONCILE_INTERVAL": "500ms"}, wantName: "RECONCILE_INTERVAL"},
		{env: map[string]string{"RECONCILE_INTERVAL": "-1h"}, wantName: "RECONCILE_INTERVAL"},
		{env: map[string]string{"RECONCILE_INTERVAL": "daily"}, wantName: "RECONCILE_INTERVAL"},
		{args: []string{"--reconcile-apply", "sometimes"}, wantName: "--reconcile-apply"},
		{env: map[string]string{"LOG_LEVEL": "loud"}, wantName: "LOG_LEVEL"},
		{env: map[string]string{"LOG_LEVEL": "info\nerror"}, wantName: "LOG_LEVEL"},
		{env: map[string]string{"LOG_FORMAT": "xml"}, wantName: "LOG_FORMAT"},
		{env: map[string]string{"LOG_EMAILS": "sometimes"}, wantName: "LOG_EMAILS"},
		{env: map[string]string{"ZOOM_API_URL": "ftp://x"}, wantName: "ZOOM_API_URL"},
		{env: map[string]string{"ZOOM_TOKEN_URL": "zoom.us/oauth/token"}, wantName: "ZOOM_TOKEN_URL"},
		{env: map[string]string{"ACTIONS": "create,bogus"}, wantName: "ACTIONS"},
		{env: map[string]string{"ACTIONS": ","}, wantName: "ACTIONS"},
		{env: map[string]string{"PROVISION_STREAMS": "maybe"}, wantName: "PROVISION_STREAMS"},
		{env: map[string]string{"ACTIONS": "update,renew"}, wantName: "ACTIONS"},
		{env: map[string]string{"OPERATION_SUBJECT_PREFIX": "zoom.users.create"}, wantName: "OPERATION_SUBJECT_PREFIX"},
		{env: map[string]string{"OPERATION_SUBJECT_PREFIX": "zoom.users.result.x"}, wantName: "OPERATION_SUBJECT_PREFIX"},
		{env: map[string]string{"OPERATION_SUBJECT_PREFIX": "a.>"}, wantName: "OPERATION_SUBJECT_PREFIX"},
		{env: map[string]string{"STREAM_REPLICAS": "0"}, wantName: "STREAM_REPLICAS"},
		{env: map[string]string{"DLQ_SEAL_KEY_FILE": "/nonexistent/seal.key"}, wantName: "DLQ_SEAL_KEY_FILE"},
		{env: map[string]string{"DLQ_SEAL_KEY_FILE": shortKeyFile}, wantName: "DLQ_SEAL_KEY_FILE"},
		{env: map[string]string{"DLQ_SEAL_KEY_FILE": goodKeyFile + ","}, wantName: "DLQ_SEAL_KEY_FILE"},
		{env: map[string]string{"STREAM_REPLICAS": "three"}, wantName: "STREAM_REPLICAS"},
		{env: map[string]string{"STREAM_REPLICAS": "7"}, wantName: "STREAM_REPLICAS"},
		{env: map[string]string{"REQUEST_STREAM": "a.b"}, wantName: "REQUEST_STREAM"},
		{env: map[string]string{"REQUEST_STREAM": "a\nb"}, wantName: "REQUEST_STREAM"},
		{env: map[string]string{"RESULT_STREAM": "a b"}, wantName: "RESULT_STREAM"},
		{env: map[string]string{"DLQ_STREAM": "a/b"}, wantName: "DLQ_STREAM"},
		{env: map[string]string{"CONSUMER_PREFIX": "a*"}, wantName: "CONSUMER_PREFIX"},
		{env: map[string]string{"REQUEST_SUBJECT_PREFIX": ".a"}, wantName: "REQUEST_SUBJECT_PREFIX"},
		{env: map[string]string{"RESULT_SUBJECT_PREFIX": "a.*"}, wantName: "RESULT_SUBJECT_PREFIX"},
		{env: map[string]string{"RESULT_SUBJECT_PREFIX": "a.>"}, wantName: "RESULT_SUBJECT_PREFIX"},
		{env: map[string]string{"DLQ_SUBJECT_PREFIX": "a..b"}, wantName: "DLQ_SUBJECT_PREFIX"},
		{env: map[string]string{"DLQ_SUBJECT_PREFIX": "a."}, wantName: "DLQ_SUBJECT_PREFIX"},
		{env: map[string]string{"NATS_INBOX_PREFIX": "_INBOX_ops.>"}, wantName: "NATS_INBOX_PREFIX"},
		{env: map[string]string{"NATS_INBOX_PREFIX": "_INBOX ops"}, wantName: "NATS_INBOX_PREFIX"},
		{env: map[string]string{"DLQ_SEAL_KEY_OPTIONAL": "perhaps"}, wantName: "DLQ_SEAL_KEY_OPTIONAL"},
		{args: []string{"--max-in-flight", "0"}, wantName: "--max-in-flight"},
		{args: []string{"--zoom-timeout=abc"}, wantName: "--zoom-timeout"},
		{args: []string{"--log-format", "xml"}, wantName: "--log-format"},
		{env: map[string]string{"LOG_LEVEL": "info"}, args: []string{"--log-level", "loud"}, wantName: "--log-level"},
	}
	for _, tc := range tests {
		name := tc.wantName
		for k, v := range tc.env {
			name = k + "=" + v
		}
		if len(tc.args) > 0 {
			name = strings.Join(tc.args, " ")
		}
		t.Run(name, func(t *testing.T) {
			_, err := parse(tc.env, tc.args...)
			if err == nil {
				t.Fatalf("parseConfig(%q, %q) = nil; want an error naming %s", tc.env, tc.args, tc.wantName)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantName) {
				t.Errorf("parseConfig(%q, %q) = %q; want it to name %s", tc.env, tc.args, msg, tc.wantName)
			}
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("parseConfig(%q, %q) = %q; want one line", tc.env, tc.args, msg)
			}
			var es *errSetting
			if !errors.As(err, &es) {
				t.Errorf("parseConfig(%q, %q) = %T; want *errSetting", tc.env, tc.args, err)
			}
		})
	}
}

// Ensure flag-level mistakes are errors too (runCommand turns them into
// one-line usage errors).
func TestParseConfigFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want error
	}{
		{"unknown flag", []string{"--bogus-flag"}, nil},
		{"positional argument", []string{"extra"}, nil},
		{"help", []string{"-h"}, flag.ErrHelp},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(nil, tc.args...)
			if err == nil {
				t.Fatalf("parseConfig(%q) = nil; want an error", tc.args)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("parseConfig(%q) = %v; want %v", tc.args, err, tc.want)
			}
		})
	}
}

// Ensure requireZoom names the first missing credential, and the TLS
// certificate and key go together.
func TestRequireZoom(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		wantName string // the setting named; "" means no error
	}{
		{"nothing set", nil, "ZOOM_ACCOUNT_ID"},
		{"only client id and secret", map[string]string{"ZOOM_CLIENT_ID": "c", "ZOOM_CLIENT_SECRET": "s"}, "ZOOM_ACCOUNT_ID"},
		{"account id", map[string]string{"ZOOM_ACCOUNT_ID": "a"}, "ZOOM_CLIENT_ID"},
		{"account id and secret", map[string]string{"ZOOM_ACCOUNT_ID": "a", "ZOOM_CLIENT_SECRET": "s"}, "ZOOM_CLIENT_ID"},
		{"account and client id", map[string]string{"ZOOM_ACCOUNT_ID": "a", "ZOOM_CLIENT_ID": "c"}, "ZOOM_CLIENT_SECRET"},
		{"all three", map[string]string{"ZOOM_ACCOUNT_ID": "a", "ZOOM_CLIENT_ID": "c", "ZOOM_CLIENT_SECRET": "s"}, ""},
		{"tls cert without key", map[string]string{"ZOOM_ACCOUNT_ID": "a", "ZOOM_CLIENT_ID": "c", "ZOOM_CLIENT_SECRET": "s", "NATS_TLS_CERT": "/c.pem"}, "NATS_TLS_CERT"},
		{"tls key without cert", map[string]string{"ZOOM_ACCOUNT_ID": "a", "ZOOM_CLIENT_ID": "c", "ZOOM_CLIENT_SECRET": "s", "NATS_TLS_KEY": "/k.pem"}, "NATS_TLS_CERT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parse(tc.env)
			if err != nil {
				t.Fatalf("parseConfig(%v) = %v; want nil", tc.env, err)
			}
			err = requireZoom(cfg)
			if tc.wantName == "" {
				if err != nil {
					t.Errorf("requireZoom(%v) = %v; want nil", tc.env, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("requireZoom(%v) = nil; want an error naming %s", tc.env, tc.wantName)
			}
			if !strings.Contains(err.Error(), tc.wantName) {
				t.Errorf("requireZoom(%v) = %q; want it to name %s", tc.env, err, tc.wantName)
			}
			var es *errSetting
			if !errors.As(err, &es) || es.Name != tc.wantName {
				t.Errorf("requireZoom(%v) = %#v; want *errSetting for %s", tc.env, err, tc.wantName)
			}
		})
	}
}

// Ensure DLQ_SEAL_KEY_OPTIONAL (the Kubernetes Secret mounted with
// optional: true) skips key files that do not exist, and only those: with
// none left passwords are redacted, a malformed key still stops start-up,
// and without the setting a missing key file is an error as before.
func TestParseConfigOptionalSealKey(t *testing.T) {
	good := writeFile(t, "good.key", strings.Repeat("ab", 32))
	short := writeFile(t, "short.key", "0123456789abcdef")
	missing := filepath.Join(t.TempDir(), "missing.key")
	tests := []struct {
		name        string
		env         map[string]string
		wantErr     bool
		wantKeys    bool
		wantMissing []string
	}{
		{"missing, not optional", map[string]string{"DLQ_SEAL_KEY_FILE": missing}, true, false, nil},
		{"missing, optional", map[string]string{"DLQ_SEAL_KEY_FILE": missing, "DLQ_SEAL_KEY_OPTIONAL": "true"}, false, false, []string{missing}},
		{"one of two missing, optional", map[string]string{"DLQ_SEAL_KEY_FILE": missing + "," + good, "DLQ_SEAL_KEY_OPTIONAL": "true"}, false, true, []string{missing}},
		{"present, optional", map[string]string{"DLQ_SEAL_KEY_FILE": good, "DLQ_SEAL_KEY_OPTIONAL": "true"}, false, true, nil},
		{"malformed, optional", map[string]string{"DLQ_SEAL_KEY_FILE": short, "DLQ_SEAL_KEY_OPTIONAL": "true"}, true, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parse(tc.env)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseConfig(%v) = %v; want error %v", tc.env, err, tc.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "DLQ_SEAL_KEY_FILE") {
					t.Errorf("parseConfig(%v) = %q; want it to name DLQ_SEAL_KEY_FILE", tc.env, err)
				}
				return
			}
			if (cfg.DeadLetterKeys != nil) != tc.wantKeys || !reflect.DeepEqual(cfg.DeadLetterKeysMissing, tc.wantMissing) {
				t.Errorf("parseConfig(%v) keys %v, missing %q; want keys %v, missing %q", tc.env, cfg.DeadLetterKeys != nil, cfg.DeadLetterKeysMissing, tc.wantKeys, tc.wantMissing)
			}
		})
	}
}
