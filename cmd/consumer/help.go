package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// settingTopic is one group of settings in `consumer run -h`.
type settingTopic struct {
	title string
	// envs are the settings, by environment variable, in the order shown.
	envs []string
	// flags are further flags of the commands that belong here.
	flags []string
}

// settingTopics groups every setting of settings() under one topic; the
// tests hold it to that.
var settingTopics = []settingTopic{
	{title: "NATS", envs: []string{"NATS_URL", "NATS_USER", "NATS_PASSWORD", "NATS_TOKEN", "NATS_CREDS", "NATS_NKEY", "NATS_INBOX_PREFIX"}},
	{title: "Zoom", envs: []string{"ZOOM_ACCOUNT_ID", "ZOOM_CLIENT_ID", "ZOOM_CLIENT_SECRET", "ZOOM_API_URL", "ZOOM_TOKEN_URL", "ZOOM_TIMEOUT"}},
	{title: "limits and retries", envs: []string{"ZOOM_RATE_LIMIT", "MAX_IN_FLIGHT", "MAX_ATTEMPTS", "MAX_ACK_PENDING", "ACK_WAIT", "SHUTDOWN_TIMEOUT", "GUARD_LIMIT", "GUARD_WINDOW"}},
	{title: "reconciliation", envs: []string{"RECONCILE_INTERVAL", "RECONCILE_APPLY"}},
	{title: "streams and subjects", envs: []string{"ACTIONS", "PROVISION_STREAMS", "STREAM_REPLICAS", "REQUEST_STREAM", "REQUEST_SUBJECT_PREFIX",
		"OPERATION_SUBJECT_PREFIX", "RESULT_STREAM", "RESULT_SUBJECT_PREFIX", "RESULT_MAX_AGE", "DLQ_STREAM", "DLQ_SUBJECT_PREFIX", "CONSUMER_PREFIX"},
		flags: []string{"no-provision"}},
	{title: "observability", envs: []string{"HTTP_ADDR", "LOG_LEVEL", "LOG_FORMAT", "OTEL_EXPORTER_OTLP_ENDPOINT"}},
	{title: "security", envs: []string{"NATS_TLS_CA", "NATS_TLS_CERT", "NATS_TLS_KEY", sealKeySetting, "DLQ_SEAL_KEY_OPTIONAL", passwordKeySetting, "LOG_EMAILS", consoleTokenSetting}},
}

// helpPrinters print the flags of the commands whose -h is more than a
// list, by flag set name.
var helpPrinters = map[string]func(io.Writer, *flag.FlagSet){
	"consumer run": func(w io.Writer, fs *flag.FlagSet) {
		printSettingsHelp(w, fs, `Every setting is an environment variable or the flag shown (the flag wins); secrets have no
value flag: set them in the environment, or name a file with <NAME>_FILE or --<flag>-file.`, `examples:
  # Zoom credentials from the environment, NATS on this host
  ZOOM_ACCOUNT_ID=... ZOOM_CLIENT_ID=... ZOOM_CLIENT_SECRET=... consumer run

  # the secret from a mounted file, a NATS cluster, readable logs
  consumer run --nats-url nats://nats-0:4222,nats://nats-1:4222 --zoom-account-id-file /run/secrets/account \
    --zoom-client-id-file /run/secrets/client --zoom-client-secret-file /run/secrets/secret --log-format console

  # only invitations, on streams an operator provisioned (deploy/nats), 10 Zoom calls/s across all replicas
  consumer run --actions create --no-provision --zoom-rate-limit 10`)
	},
	"consumer config check": func(w io.Writer, fs *flag.FlagSet) {
		printSettingsHelp(w, fs, `Checks what `+"`consumer run`"+` would start with, without starting it: the same settings (environment
variables or flags), then NATS, the streams, consumers and buckets, and Zoom's token endpoint.
One line per check; exit 0 when all pass, 1 when one fails, 2 on a usage mistake.`, `examples:
  # as the service would start in this environment
  consumer config check

  # against streams an operator provisioned, with a shorter time limit
  consumer config check --no-provision --timeout 5s`)
	},
}

// printSettingsHelp prints the flags of fs grouped by settingTopics, the
// flags of no topic after them, then the examples.
func printSettingsHelp(w io.Writer, fs *flag.FlagSet, intro, examples string) {
	fmt.Fprintf(w, "%s\n", intro)
	byEnv := map[string]setting{}
	for _, s := range settings() {
		byEnv[s.env] = s
	}
	printed := map[string]bool{}
	print1 := func(name string) {
		f := fs.Lookup(name)
		if f == nil || printed[name] {
			return
		}
		printed[name] = true
		kind, usage := flag.UnquoteUsage(f)
		if kind != "" {
			kind = " " + kind
		}
		fmt.Fprintf(w, "  --%s%s\n    \t%s\n", f.Name, kind, strings.ReplaceAll(usage, "\n", "\n    \t"))
	}
	for _, t := range settingTopics {
		fmt.Fprintf(w, "\n%s:\n", t.title)
		for _, env := range t.envs {
			s := byEnv[env]
			if !s.secret {
				print1(s.flag)
			}
			if s.secret || s.file {
				print1(s.flag + "-file")
			}
		}
		for _, f := range t.flags {
			print1(f)
		}
	}
	var rest []string
	fs.VisitAll(func(f *flag.Flag) {
		if !printed[f.Name] {
			rest = append(rest, f.Name)
		}
	})
	if len(rest) > 0 {
		fmt.Fprintf(w, "\n%s:\n", strings.TrimPrefix(fs.Name(), "consumer "))
		for _, name := range slices.Sorted(slices.Values(rest)) {
			print1(name)
		}
	}
	fmt.Fprintf(w, "\n%s\n", examples)
}
