package topology_test

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/zoomprov/consumer/internal/deadletter"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/topology"
)

// asyncAPIFile is the AsyncAPI description of the contract.
const asyncAPIFile = "../../api/asyncapi.yaml"

// schemaIDBase is the $id prefix of the JSON Schemas in api/schemas.
const schemaIDBase = "https://zoomprov.github.io/consumer/schemas/v1/"

// readAsyncAPI decodes asyncAPIFile into generic maps.
func readAsyncAPI(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(asyncAPIFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", asyncAPIFile, err)
	}
	return doc
}

// get walks doc along a path of map keys; nil if any is missing.
func get(doc any, path ...string) any {
	for _, p := range path {
		m, ok := doc.(map[string]any)
		if !ok {
			return nil
		}
		doc = m[p]
	}
	return doc
}

// pointer resolves a local JSON pointer ("#/a/b") in doc.
func pointer(doc any, ref string) (any, bool) {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, false
	}
	for _, tok := range strings.Split(p, "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := doc.(map[string]any)
		if !ok {
			return nil, false
		}
		if doc, ok = m[tok]; !ok {
			return nil, false
		}
	}
	return doc, true
}

// refs returns every $ref in doc.
func refs(doc any) []string {
	var out []string
	switch v := doc.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && k == "$ref" {
				out = append(out, s)
			} else {
				out = append(out, refs(e)...)
			}
		}
	case []any:
		for _, e := range v {
			out = append(out, refs(e)...)
		}
	}
	return out
}

// addressPattern turns a channel address with parameters ("a.{p}.c") into
// a regexp matching the subjects it stands for, one token per parameter.
func addressPattern(address string) *regexp.Regexp {
	parts := regexp.MustCompile(`\{[^}]+\}`).Split(address, -1)
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, `[^.*>]+`) + "$")
}

// Ensure api/asyncapi.yaml is an AsyncAPI 3 document of exactly the
// subjects the topology has: a request channel per action and operation, a
// result channel per outcome, the dead-letter channel; that its local
// references resolve; and that every schema file it references exists
// with the $id the file name calls for.
func TestAsyncAPI(t *testing.T) {
	doc := readAsyncAPI(t)
	if v, _ := doc["asyncapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Errorf("%s: asyncapi = %q; want 3.x", asyncAPIFile, v)
	}

	channels, _ := doc["channels"].(map[string]any)
	var exact []string
	var patterns []*regexp.Regexp
	for _, name := range slices.Sorted(maps.Keys(channels)) {
		addr, _ := get(channels[name], "address").(string)
		if addr == "" {
			t.Errorf("channel %s has no address", name)
			continue
		}
		if strings.Contains(addr, "{") {
			patterns = append(patterns, addressPattern(addr))
			for p := range get(channels[name], "parameters").(map[string]any) {
				if !strings.Contains(addr, "{"+p+"}") {
					t.Errorf("channel %s: parameter %s is not in the address %s", name, p, addr)
				}
			}
		} else {
			exact = append(exact, addr)
		}
	}

	topo := topology.Default()
	var want []string
	for _, a := range topology.Actions() {
		want = append(want, topo.RequestSubject(a))
	}
	for _, o := range messages.Outcomes {
		want = append(want, topo.ResultSubject(o))
	}
	for _, s := range want {
		if !slices.Contains(exact, s) {
			t.Errorf("%s has no channel with address %s", asyncAPIFile, s)
		}
	}
	// Dead letters go to <prefix>.<action>, and to <prefix>.unknown for a
	// request whose subject names none.
	for _, a := range append(topology.Actions(), "unknown") {
		s := topo.DeadLetterSubject(a)
		if !slices.ContainsFunc(patterns, func(re *regexp.Regexp) bool { return re.MatchString(s) }) {
			t.Errorf("%s has no channel whose address matches %s", asyncAPIFile, s)
		}
	}
	// And nothing the service does not have.
	for _, s := range exact {
		if !slices.Contains(want, s) {
			t.Errorf("%s: channel address %s is no subject of the topology", asyncAPIFile, s)
		}
	}
	for _, re := range patterns {
		if re.MatchString(topo.RequestSubject("create")) || re.MatchString(topo.ResultSubject(messages.OutcomeCreated)) {
			t.Errorf("%s: channel address pattern %s covers request or result subjects", asyncAPIFile, re)
		}
	}

	// Every operation uses a channel, and messages of that channel.
	ops, _ := doc["operations"].(map[string]any)
	if len(ops) != len(channels) {
		t.Errorf("%s has %d operations for %d channels; want one each", asyncAPIFile, len(ops), len(channels))
	}
	for name, op := range ops {
		ch, _ := get(op, "channel", "$ref").(string)
		msgs, _ := get(op, "messages").([]any)
		if len(msgs) == 0 {
			t.Errorf("operation %s has no messages", name)
		}
		for _, m := range msgs {
			if ref, _ := get(m, "$ref").(string); !strings.HasPrefix(ref, ch+"/messages/") {
				t.Errorf("operation %s: message %s is not a message of its channel %s", name, ref, ch)
			}
		}
	}

	// References: local ones resolve; files are schemas with the right $id.
	files := 0
	for _, ref := range refs(doc) {
		if strings.HasPrefix(ref, "#") {
			if _, ok := pointer(doc, ref); !ok {
				t.Errorf("%s: $ref %s does not resolve", asyncAPIFile, ref)
			}
			continue
		}
		files++
		path := filepath.Join(filepath.Dir(asyncAPIFile), filepath.FromSlash(ref))
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: $ref %s: %v", asyncAPIFile, ref, err)
			continue
		}
		var schema struct {
			ID string `json:"$id"`
		}
		if err := json.Unmarshal(b, &schema); err != nil {
			t.Errorf("%s: $ref %s: %v", asyncAPIFile, ref, err)
			continue
		}
		if want := schemaIDBase + filepath.Base(ref); schema.ID != want {
			t.Errorf("%s: $ref %s: $id %q; want %q", asyncAPIFile, ref, schema.ID, want)
		}
	}
	if files < 5 {
		t.Errorf("%s references %d schema files; want the five in api/schemas", asyncAPIFile, files)
	}
	// The result events point at the same schema.
	if want := schemaIDBase + "result.schema.json"; messages.DataSchema != want {
		t.Errorf("messages.DataSchema = %q; want %q", messages.DataSchema, want)
	}
}

// Ensure the headers the service reads and writes are documented: the
// request's, the result event's and every dead-letter header.
func TestAsyncAPIHeaders(t *testing.T) {
	doc := readAsyncAPI(t)
	headers := func(message string) []string {
		ref, _ := get(doc, "components", "messages", message, "headers", "$ref").(string)
		schema, ok := pointer(doc, ref)
		if !ok {
			t.Fatalf("message %s: headers $ref %q does not resolve", message, ref)
		}
		props, _ := get(schema, "properties").(map[string]any)
		return slices.Sorted(maps.Keys(props))
	}
	deadLetter := deadletter.Header{Password: deadletter.PasswordSealed, SealKey: "0badc0de", DeadLetteredAt: time.Unix(0, 0)}
	tests := []struct {
		message string
		want    []string
	}{
		{"createRequest", []string{"Nats-Msg-Id", "traceparent", messages.HeaderReplayedFrom, messages.HeaderOriginalRequestID}},
		{"updateRequest", []string{"Nats-Msg-Id", "traceparent"}},
		{"statusRequest", []string{"Nats-Msg-Id", "traceparent"}},
		{"deleteRequest", []string{"Nats-Msg-Id", "traceparent"}},
		{"resultEvent", []string{"Nats-Msg-Id", "Content-Type", "traceparent"}},
		{"deadLetter", append(slices.Collect(maps.Keys(deadLetter.Headers())), "Nats-Msg-Id", "traceparent")},
	}
	for _, tc := range tests {
		got := headers(tc.message)
		for _, h := range tc.want {
			if !slices.Contains(got, h) {
				t.Errorf("%s: message %s documents headers %q; want %s among them", asyncAPIFile, tc.message, got, h)
			}
		}
	}
}
