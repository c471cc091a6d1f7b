package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/testenv"
)

// Ensure `publish --json` prints the stream's acknowledgement as a JSON
// line, then with --wait the request's result event as stored, and that a
// duplicate says so without waiting.
func TestPublishJSON(t *testing.T) {
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{})
	_, js := connectJS(t, ns.URL())
	provisionStreams(t, js, 30*time.Second)
	startRun(t, serviceEnv(ns, sim))
	env := map[string]string{"NATS_URL": ns.URL()}
	args := []string{"publish", "--action", "ssoCreate", "--email", "json@example.com", "--msg-id", "pub-json", "--json"}

	res := runCLI(t, 30*time.Second, env, "", append(args, "--wait", "20s")...)
	if res.code != 0 {
		t.Fatalf("publish --json --wait exit code = %d (stderr %q, stdout %q); want 0", res.code, res.stderr, res.stdout)
	}
	lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("publish --json --wait stdout = %q; want two lines: the acknowledgement and the result", res.stdout)
	}
	var ack publishAck
	if err := json.Unmarshal([]byte(lines[0]), &ack); err != nil {
		t.Fatalf("publish --json first line %q: %v", lines[0], err)
	}
	if want := (publishAck{RequestID: "pub-json", Subject: "zoom.users.create.ssoCreate", Stream: "ZOOM_USERS", Sequence: ack.Sequence}); ack != want || ack.Sequence == 0 {
		t.Errorf("publish --json acknowledgement = %+v; want %+v with a sequence", ack, want)
	}
	ev, err := messages.DecodeEvent([]byte(lines[1]))
	if err != nil || ev.Data.RequestID != "pub-json" || ev.Data.Outcome != messages.OutcomeCreated || ev.DataSchema != messages.DataSchema {
		t.Errorf("publish --json second line = %q (%v); want the created event of pub-json", lines[1], err)
	}

	res = runCLI(t, 10*time.Second, env, "", append(args, "--wait", "20s")...)
	if err := json.Unmarshal([]byte(res.stdout), &ack); err != nil || res.code != 0 || !ack.Duplicate || strings.Count(res.stdout, "\n") != 1 {
		t.Errorf("publish --json again = %d, %q (%v); want one line, duplicate true", res.code, res.stdout, err)
	}
}

// Ensure `dlq replay --json` prints the plan (--dry-run) and the summary
// as one JSON document on stdout, with progress elsewhere.
func TestDLQReplayJSON(t *testing.T) {
	ns := startNATS(t)
	_, js := connectJS(t, ns.URL())
	provisionStreams(t, js, 30*time.Second)
	var dls []deadLetter
	for i := range 2 {
		dls = append(dls, groupMissing(fmt.Sprintf("json-%d", i), "ssoCreate", fmt.Sprintf("j%d@example.com", i)))
	}
	seedDLQ(t, js, append(dls, threeDeadLetters[2])...)
	env := map[string]string{"NATS_URL": ns.URL()}

	type replay struct {
		DryRun   bool `json:"dry_run"`
		Replayed int  `json:"replayed"`
		Deleted  int  `json:"deleted"`
		Skipped  []struct {
			Seq       uint64 `json:"seq"`
			RequestID string `json:"request_id"`
			Reason    string `json:"reason"`
		} `json:"skipped"`
		Entries []struct {
			RequestID string `json:"request_id"`
		} `json:"entries"`
	}
	decode := func(args []string, res cliResult) replay {
		t.Helper()
		var r replay
		if err := json.Unmarshal([]byte(res.stdout), &r); err != nil || res.code != 0 {
			t.Fatalf("consumer %q = %d, %q (%v); want 0 and one JSON document", args, res.code, res.stdout, err)
		}
		if !json.Valid(bytes.TrimSpace([]byte(res.stdout))) {
			t.Fatalf("consumer %q stdout is not one JSON document: %q", args, res.stdout)
		}
		return r
	}

	args := []string{"dlq", "replay", "--dry-run", "--json"}
	plan := decode(args, runCLI(t, 20*time.Second, env, "", args...))
	if !plan.DryRun || plan.Replayed != 2 || len(plan.Entries) != 2 || len(plan.Skipped) != 1 || plan.Skipped[0].RequestID != "hris-3" ||
		!strings.Contains(plan.Skipped[0].Reason, "user_info.email") {
		t.Errorf("consumer %q = %+v; want a dry run replaying json-0 and json-1, skipping hris-3 for its e-mail", args, plan)
	}

	args = []string{"dlq", "replay", "--yes", "--rate", "0", "--json"}
	sum := decode(args, runCLI(t, 20*time.Second, env, "", args...))
	if sum.DryRun || sum.Replayed != 2 || sum.Deleted != 2 || len(sum.Skipped) != 1 || len(sum.Entries) != 0 {
		t.Errorf("consumer %q = %+v; want 2 replayed and deleted, 1 skipped", args, sum)
	}

	// The invalid one is left for purge.
	args = []string{"dlq", "purge", "--yes", "--json"}
	res := runCLI(t, 20*time.Second, env, "", args...)
	var purged struct{ Deleted, Gone int }
	if err := json.Unmarshal([]byte(res.stdout), &purged); err != nil || res.code != 0 || purged.Deleted != 1 || purged.Gone != 0 {
		t.Errorf("consumer %q = %d, %q (%v); want {\"deleted\": 1, \"gone\": 0}", args, res.code, res.stdout, err)
	}
}
