package schematest

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// idBase is where the schemas' $id point: https://zoomprov.github.io/
// serves the repository's api/schemas at /consumer/schemas/<major>/.
const idBase = "https://zoomprov.github.io/consumer/schemas/v1/"

// kinds are the schemas, by the kind of message they describe.
var kinds = []string{"create", "update", "status", "delete", "result"}

// requestKinds are the kinds of request body.
var requestKinds = []string{"create", "update", "status", "delete"}

// readJSON decodes a JSON file into a generic value, numbers exact.
func readJSON(t *testing.T, path string) any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// compile compiles every schema in ../schemas, by kind. Content
// assertions are on, so that user_info's string form is validated against
// its contentSchema.
func compile(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "schemas", "*.schema.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no schemas in ../schemas: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertContent()
	c.AssertFormat()
	for _, f := range files {
		doc := readJSON(t, f)
		m, _ := doc.(map[string]any)
		if err := c.AddResource(idBase+filepath.Base(f), doc); err != nil {
			t.Fatalf("AddResource(%s) = %v", f, err)
		}
		if id := m["$id"]; id != idBase+filepath.Base(f) {
			t.Errorf("%s: $id = %v; want %q", f, id, idBase+filepath.Base(f))
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, k := range kinds {
		s, err := c.Compile(idBase + k + ".schema.json")
		if err != nil {
			t.Fatalf("Compile(%s) = %v", k, err)
		}
		out[k] = s
	}
	return out
}

// validate reports whether body, a JSON document, is valid under s; a body
// that is not one JSON value is not a valid instance of anything.
func validate(s *jsonschema.Schema, body []byte) (bool, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	err = s.Validate(v)
	return err == nil, err
}

// Ensure each schema is draft 2020-12, names itself by its stable $id,
// says what it describes, and lists what it cannot express.
func TestSchemaFiles(t *testing.T) {
	compile(t)
	for _, k := range kinds {
		f := filepath.Join("..", "schemas", k+".schema.json")
		m := readJSON(t, f).(map[string]any)
		if got := m["$schema"]; got != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema = %v; want draft 2020-12", f, got)
		}
		for _, key := range []string{"title", "description", "$comment"} {
			if s, _ := m[key].(string); s == "" {
				t.Errorf("%s: no %s", f, key)
			}
		}
		if k == "result" {
			continue
		}
		// Every request schema lists the rules JSON Schema cannot express.
		comment := m["$comment"].(string)
		for _, rule := range []string{"65536 bytes", "UTF-8", "duplicate key", "32 levels", "integer literals"} {
			if !strings.Contains(comment, rule) {
				t.Errorf("%s: $comment does not mention %q among the rules it cannot express", f, rule)
			}
		}
	}
}

// Ensure the four request schemas share one definition of an e-mail
// address, which the e-mail probes (all status requests) test for all.
func TestEmailDefinitionShared(t *testing.T) {
	var first any
	for _, k := range requestKinds {
		m := readJSON(t, filepath.Join("..", "schemas", k+".schema.json")).(map[string]any)
		defs, _ := m["$defs"].(map[string]any)
		email, ok := defs["email"]
		if !ok {
			t.Fatalf("%s.schema.json has no $defs/email", k)
		}
		if first == nil {
			first = email
		} else if !reflect.DeepEqual(email, first) {
			t.Errorf("%s.schema.json $defs/email differs from create.schema.json's", k)
		}
	}
}

// Ensure every example in the schemas validates.
func TestSchemaExamples(t *testing.T) {
	schemas := compile(t)
	for _, k := range kinds {
		m := readJSON(t, filepath.Join("..", "schemas", k+".schema.json")).(map[string]any)
		examples, _ := m["examples"].([]any)
		if len(examples) == 0 {
			t.Errorf("%s.schema.json has no examples", k)
		}
		for i, ex := range examples {
			if err := schemas[k].Validate(ex); err != nil {
				t.Errorf("%s.schema.json examples[%d] is invalid: %v", k, i, err)
			}
		}
	}
}

// Ensure the JSON examples of docs/contract.md validate: a request, and a
// result event.
func TestContractExamples(t *testing.T) {
	schemas := compile(t)
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "contract.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) < 2 {
		t.Fatalf("docs/contract.md has %d json blocks; want the request and the result event", len(blocks))
	}
	for _, b := range blocks {
		var m map[string]any
		if err := json.Unmarshal(b[1], &m); err != nil {
			t.Errorf("docs/contract.md block %q: %v", b[1], err)
			continue
		}
		k := "create"
		switch {
		case m["specversion"] != nil:
			k = "result"
		case m["user"] != nil:
			k = "update"
		case m["user_info"] == nil:
			k = "delete"
		}
		if ok, err := validate(schemas[k], b[1]); !ok {
			t.Errorf("docs/contract.md example %s is invalid under %s.schema.json: %v", b[1], k, err)
		}
	}
}

// sample is one entry of testdata/samples.json.
type sample struct {
	Sources    []string `json:"sources"`
	Kind       string   `json:"kind"`
	Body       *string  `json:"body"`
	BodyBase64 string   `json:"body_base64"`
	BodyGzip   string   `json:"body_gzip_base64"`
	Valid      bool     `json:"valid"`
	Errors     []struct {
		Field  string `json:"field"`
		Reason string `json:"reason"`
	} `json:"errors"`
}

func (s sample) body() ([]byte, error) {
	switch {
	case s.Body != nil:
		return []byte(*s.Body), nil
	case s.BodyBase64 != "":
		return base64.StdEncoding.DecodeString(s.BodyBase64)
	}
	z, err := base64.StdEncoding.DecodeString(s.BodyGzip)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

func (s sample) String() string {
	src := s.Sources[0]
	if len(s.Sources) > 1 {
		src += fmt.Sprintf(" (and %d more)", len(s.Sources)-1)
	}
	return s.Kind + " sample " + src
}

// inexpressible is a rule of the decoders that JSON Schema cannot express,
// with a test of whether a body breaks it. A body the decoder refuses and
// the schema accepts is skipped only when one of these holds for it.
type inexpressible struct {
	name  string
	holds func(kind string, body []byte) bool
}

var inexpressibles = []inexpressible{
	{"bodyOver64KiB", func(_ string, b []byte) bool { return len(b) > 64<<10 }},
	{"notUTF8", func(_ string, b []byte) bool { return !utf8.Valid(b) }},
	{"duplicateKey", func(_ string, b []byte) bool { return walkJSON(b, func(j jsonFacts) bool { return j.duplicate }) }},
	{"nestedDeeperThan32", func(_ string, b []byte) bool { return walkJSON(b, func(j jsonFacts) bool { return j.depth > 32 }) }},
	{"integerNotWrittenAsInteger", func(_ string, b []byte) bool {
		return walkJSON(b, func(j jsonFacts) bool { return j.integralNonInteger })
	}},
	{"transferToSameUser", func(k string, b []byte) bool {
		var d struct {
			Email         string `json:"email"`
			TransferEmail string `json:"transfer_email"`
		}
		return k == "delete" && json.Unmarshal(b, &d) == nil && d.TransferEmail != "" && strings.EqualFold(d.Email, d.TransferEmail)
	}},
}

// jsonFacts are what the inexpressible rules need to know about a body.
type jsonFacts struct {
	duplicate          bool
	depth              int
	integralNonInteger bool // a number such as 1.0 or 1e2
}

// walkJSON reads body, and any string-form user_info inside it, token by
// token, and reports whether pred holds for what it found.
func walkJSON(body []byte, pred func(jsonFacts) bool) bool {
	var j jsonFacts
	scanJSON(body, &j)
	var top struct {
		UserInfo json.RawMessage `json:"user_info"`
	}
	if json.Unmarshal(body, &top) == nil {
		var s string
		if json.Unmarshal(top.UserInfo, &s) == nil {
			// The decoder parses the string form as a document of its
			// own, with its own depth.
			scanJSON([]byte(s), &j)
		}
	}
	return pred(j)
}

// scanJSON records the facts of the JSON value data, as far as it parses.
func scanJSON(data []byte, j *jsonFacts) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	_ = scanValue(dec, j, 0) // a syntax error ends the scan; what was read counts
}

func scanValue(dec *json.Decoder, j *jsonFacts, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		depth++
		j.depth = max(j.depth, depth)
		keys := map[string]bool{}
		for dec.More() {
			if t == '{' {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k, _ := kt.(string)
				if keys[k] {
					j.duplicate = true
				}
				keys[k] = true
			}
			if err := scanValue(dec, j, depth); err != nil {
				return err
			}
		}
		_, err := dec.Token() // the closing delimiter
		return err
	case json.Number:
		if strings.ContainsAny(string(t), ".eE") {
			if r, ok := new(big.Rat).SetString(string(t)); ok && r.IsInt() {
				j.integralNonInteger = true
			}
		}
	}
	return nil
}

// expandUserInfo returns body with a string-form user_info replaced by the
// object it holds, or nil if body has none.
func expandUserInfo(body []byte) []byte {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	m, ok := v.(map[string]any)
	if err != nil || !ok {
		return nil
	}
	s, ok := m["user_info"].(string)
	if !ok {
		return nil
	}
	inner, err := jsonschema.UnmarshalJSON(strings.NewReader(s))
	if _, isObject := inner.(map[string]any); err != nil || !isObject {
		return nil
	}
	m["user_info"] = inner
	out, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	return out
}

// Ensure the schemas accept and refuse exactly the bodies the Go decoders
// accept and refuse (testdata/samples.json: the sample bodies of the
// tests, the fuzz seeds and corpora, the poison catalogue, e-mail probes
// and the result events the service publishes), except where the
// difference comes from a rule JSON Schema cannot express, named in
// inexpressibles; and that a schema never refuses what the decoder
// accepts.
func TestSamplesAgreeWithDecoders(t *testing.T) {
	schemas := compile(t)
	b, err := os.ReadFile(filepath.Join("testdata", "samples.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Samples      []sample `json:"samples"`
		NotCollected []struct {
			Source, Expr string
		} `json:"not_collected"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Samples) < 500 {
		t.Fatalf("testdata/samples.json holds %d samples; want the tests' (at least 500)", len(file.Samples))
	}
	agreed, notJSON := 0, 0
	skipped := map[string]int{}
	perKind := map[string]int{}
	for _, s := range file.Samples {
		body, err := s.body()
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		schema, ok := schemas[s.Kind]
		if !ok {
			t.Fatalf("%s: unknown kind", s)
		}
		perKind[s.Kind]++
		got, verr := validate(schema, body)
		var syntax *json.SyntaxError
		if !got && (errors.As(verr, &syntax) || errors.Is(verr, io.ErrUnexpectedEOF) || errors.Is(verr, io.EOF) ||
			(verr != nil && strings.Contains(verr.Error(), "after top-level value"))) {
			notJSON++
		}
		if got == s.Valid {
			agreed++
			continue
		}
		if !s.Valid && got {
			if name := explain(schemas, s.Kind, body); name != "" {
				skipped[name]++
				continue
			}
			t.Errorf("%s: the schema accepts what the decoder refuses (%v):\n%s", s, s.Errors, clip(body))
			continue
		}
		t.Errorf("%s: the schema refuses what the decoder accepts: %v\n%s", s, verr, clip(body))
	}
	names := make([]string, 0, len(skipped))
	for n := range skipped {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d", n, skipped[n]))
	}
	t.Logf("%d samples %v: %d agree (%d of them refused as not one JSON value), skipped by an inexpressible rule: %s; %d bodies of the tests not collected (see testdata/samples.json)",
		len(file.Samples), perKind, agreed, notJSON, strings.Join(parts, ", "), len(file.NotCollected))
}

// explain returns the name of the inexpressible rule that accounts for the
// schema accepting body, which the decoder refuses, or "".
func explain(schemas map[string]*jsonschema.Schema, kind string, body []byte) string {
	for _, r := range inexpressibles {
		if r.holds(kind, body) {
			return r.name
		}
	}
	// A rule between action and a string-form user_info (type 99 only
	// with ssoCreate, autoCreate's password): contentSchema sees user_info
	// alone. The same body with the object in place must be refused.
	if kind == "create" {
		if expanded := expandUserInfo(body); expanded != nil {
			if ok, _ := validate(schemas[kind], expanded); !ok {
				return "stringFormUserInfoAgainstAction"
			}
		}
	}
	return ""
}

func clip(b []byte) string {
	if len(b) > 300 {
		return fmt.Sprintf("%q... (%d bytes)", b[:300], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// Ensure the inexpressible rules are tested themselves: each holds for a
// body that breaks it and not for the same body without the problem.
func TestInexpressibles(t *testing.T) {
	tests := []struct {
		rule      string
		kind      string
		holds, ok string
	}{
		{"bodyOver64KiB", "status", `{"email":"a@example.com"}` + strings.Repeat(" ", 64<<10), `{"email":"a@example.com"}`},
		{"notUTF8", "status", "{\"email\":\"a\xff@example.com\"}", `{"email":"a@example.com"}`},
		{"duplicateKey", "create", `{"action":"create","user_info":"{\"email\":\"a@example.com\",\"type\":1,\"type\":2}"}`, `{"action":"create","user_info":"{\"email\":\"a@example.com\",\"type\":1}"}`},
		{"duplicateKey", "update", `{"email":"a@example.com","user":{"dept":"x","feature":{"zoom_phone":true,"zoom_phone":false}}}`, `{"email":"a@example.com","user":{"dept":"x","feature":{"zoom_phone":true},"zoom_phone":false}}`},
		{"nestedDeeperThan32", "status", `{"x":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`, `{"x":` + strings.Repeat("[", 31) + strings.Repeat("]", 31) + `}`},
		{"integerNotWrittenAsInteger", "create", `{"action":"create","user_info":{"email":"a@example.com","type":1.0}}`, `{"action":"create","user_info":{"email":"a@example.com","type":1.5}}`},
		{"integerNotWrittenAsInteger", "update", `{"email":"a@example.com","user":{"zoom_one_type":1e2}}`, `{"email":"a@example.com","user":{"zoom_one_type":100}}`},
		{"transferToSameUser", "delete", `{"email":"Kim@example.com","transfer_email":"\u212aim@EXAMPLE.com"}`, `{"email":"kim@example.com","transfer_email":"tim@example.com"}`},
	}
	for _, tc := range tests {
		i := slices.IndexFunc(inexpressibles, func(r inexpressible) bool { return r.name == tc.rule })
		if i < 0 {
			t.Fatalf("no inexpressible rule %q", tc.rule)
		}
		r := inexpressibles[i]
		if !r.holds(tc.kind, []byte(tc.holds)) {
			t.Errorf("%s.holds(%s, %q) = false; want true", tc.rule, tc.kind, clip([]byte(tc.holds)))
		}
		if r.holds(tc.kind, []byte(tc.ok)) {
			t.Errorf("%s.holds(%s, %q) = true; want false", tc.rule, tc.kind, tc.ok)
		}
	}
}

// Ensure user_info's string form is validated (contentSchema is asserted),
// and show what it cannot check: the rules between action and user_info,
// which explain then names.
func TestStringFormUserInfo(t *testing.T) {
	schemas := compile(t)
	tests := []struct {
		body      string
		wantValid bool
		wantRule  string // when valid: the rule explain names
	}{
		{`{"action":"create","user_info":"{\"email\":\"a@example.com\",\"type\":1}"}`, true, ""},
		{`{"action":"create","user_info":"{\"email\":\"a@example.com\",\"type\":1,\"phone\":\"1\"}"}`, false, ""},
		{`{"action":"create","user_info":"{\"email\":\"a@example.com\",\"type\":\"1\"}"}`, false, ""},
		{`{"action":"create","user_info":"{\"email\":\"a@example.com\",\"type\":1"}`, false, ""},
		{`{"action":"create","user_info":"[]"}`, false, ""},
		{`{"action":"create","user_info":"{\"email\":\"a@example.com\",\"type\":99}"}`, true, "stringFormUserInfoAgainstAction"},
		{`{"action":"autoCreate","user_info":"{\"email\":\"a@example.com\",\"type\":1}"}`, true, "stringFormUserInfoAgainstAction"},
		{`{"action":"autoCreate","user_info":"{\"email\":\"a@example.com\",\"type\":1,\"password\":\"Tr1cky-Pa55\"}"}`, true, ""},
	}
	for _, tc := range tests {
		got, err := validate(schemas["create"], []byte(tc.body))
		if got != tc.wantValid {
			t.Errorf("validate(create, %s) = %t (%v); want %t", tc.body, got, err, tc.wantValid)
			continue
		}
		if got {
			if rule := explain(schemas, "create", []byte(tc.body)); rule != tc.wantRule {
				t.Errorf("explain(create, %s) = %q; want %q", tc.body, rule, tc.wantRule)
			}
		}
	}
}

// Ensure the result schema refuses events that break the contract.
func TestResultSchemaRefuses(t *testing.T) {
	schemas := compile(t)
	valid := `{"specversion":"1.0","id":"r1:result","source":"zoom-provisioner","type":"zoom.user.provisioning.created",` +
		`"subject":"r1","time":"2026-11-28T12:12:20.512Z","datacontenttype":"application/json",` +
		`"dataschema":"` + idBase + `result.schema.json","data":{"request_id":"r1","action":"ssoCreate",` +
		`"email":"a@example.com","outcome":"created","zoom_user_id":"u1","http_status":201,"zoom_code":0,` +
		`"zoom_message":"","reason":"","retry_at":"","attempt":1,"stream_sequence":42}}`
	if ok, err := validate(schemas["result"], []byte(valid)); !ok {
		t.Fatalf("validate(result, %s) = %v; want valid", valid, err)
	}
	tests := []struct{ name, old, new string }{
		{"type and outcome differ", `"type":"zoom.user.provisioning.created"`, `"type":"zoom.user.provisioning.exists"`},
		{"unknown outcome", `"outcome":"created"`, `"outcome":"held"`},
		{"no dataschema", `"dataschema":"` + idBase + `result.schema.json",`, ``},
		{"another dataschema", idBase + "result.schema.json", idBase + "create.schema.json"},
		{"terminal id without :result", `"id":"r1:result"`, `"id":"r1:deferred:1"`},
		{"retry_at on a terminal outcome", `"retry_at":""`, `"retry_at":"2026-11-29T00:00:00Z"`},
		{"specversion 0.3", `"specversion":"1.0"`, `"specversion":"0.3"`},
		{"time not RFC 3339", `"time":"2026-11-28T12:12:20.512Z"`, `"time":"28 Nov 2026"`},
		{"data member missing", `"zoom_code":0,`, ``},
		{"reason unknown", `"reason":""`, `"reason":"because"`},
		{"attribute name with upper case", `"subject":"r1"`, `"subject":"r1","partitionKey":"p"`},
		{"traceparent malformed", `"subject":"r1"`, `"subject":"r1","traceparent":"00-x"`},
		{"stream_sequence negative", `"stream_sequence":42`, `"stream_sequence":-1`},
	}
	for _, tc := range tests {
		if !strings.Contains(valid, tc.old) {
			t.Fatalf("%s: %q not in the valid event", tc.name, tc.old)
		}
		body := strings.Replace(valid, tc.old, tc.new, 1)
		if ok, _ := validate(schemas["result"], []byte(body)); ok {
			t.Errorf("%s: validate(result, %s) = valid; want invalid", tc.name, body)
		}
	}
	// Extension attributes and deferred events are fine.
	for _, body := range []string{
		strings.Replace(valid, `"subject":"r1"`, `"subject":"r1","partitionkey":"p1"`, 1),
		strings.NewReplacer(`"type":"zoom.user.provisioning.created"`, `"type":"zoom.user.provisioning.deferred"`,
			`"outcome":"created"`, `"outcome":"deferred"`, `"id":"r1:result"`, `"id":"r1:deferred:3"`,
			`"retry_at":""`, `"retry_at":"2026-11-29T00:00:00Z"`).Replace(valid),
	} {
		if ok, err := validate(schemas["result"], []byte(body)); !ok {
			t.Errorf("validate(result, %s) = %v; want valid", body, err)
		}
	}
}
