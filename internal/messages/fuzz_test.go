package messages

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// addSeeds adds every fixture in testdata to the fuzz corpus.
func addSeeds(f *testing.F) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures in testdata: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// reasons is every Reason that Decode can produce, with N for a number.
// FuzzDecode checks reasons against it, with every run of digits replaced
// by N on both sides, which shows that no reason repeats input values; only
// field paths can (as unknown keys).
var reasons = []string{
	"body is N bytes; the limit is N bytes",
	"body is not valid UTF-8",
	"unknown field",
	"duplicate key",
	"is required",
	"must be a string",
	"must be an integer",
	"must be an integer that fits in N bits",
	"must be a boolean",
	"must be an object",
	"must be an array of strings",
	"must be an array of objects",
	"must be an object or a string holding a JSON object",
	"must be one of create, autoCreate, custCreate, ssoCreate",
	"must be one of N, N, N, N",
	"N is only allowed with action ssoCreate",
	"must be at most N characters (got N)",
	"must not contain control characters",
	"must not contain spaces",
	"must be a bare email address such as name@example.com, without a display name",
	"must be a bare email address such as name@example.com, without a display name or angle brackets",
	"is required for action autoCreate",
	"must be N to N characters",
	"must be a well-formed sealed password (sealedbox:vN:<key id>:<base64>)",
	`must be a string of digits such as "N"`,
	"must have at most N entry (got N)",
	"must have at most N items (got N)",
	"must be MEETING or ZOOM_WORKPLACE_BUNDLE",
}

func init() {
	for _, what := range []string{"body", "string form"} {
		for _, r := range []string{
			"is empty", "must be a JSON object", "has data after the JSON object", "nests JSON deeper than N levels",
			"is truncated JSON", "is not valid JSON (syntax error near byte offset N)", "is not valid JSON",
		} {
			reasons = append(reasons, what+" "+r)
		}
	}
}

var digits = regexp.MustCompile(`[0-9]+`)

func FuzzDecode(f *testing.F) {
	addSeeds(f)
	f.Add([]byte(body("autoCreate", `{"email":"a@example.com","type":1,"password":"hunter22","password":"x"}`)))
	f.Add([]byte(body("create", `"{\"email\":\"a@example.com\",\"type\":1}"`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Decode(data)
		if err != nil {
			checkDecodeError(t, data, err)
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("Decode(%q) succeeded but Validate() = %v", data, err)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("json.Marshal(Decode(%q)) error = %v", data, err)
		}
		again, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(%s), the re-encoding of Decode(%q), error = %v", b, data, err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("Decode(%s) = %#v; want %#v as from Decode(%q)", b, again, r, data)
		}
		// Formatting must not depend on the password's value.
		other := r
		other.UserInfo.Password = strings.Repeat("x", len(r.UserInfo.Password))
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d"} {
			if got, want := fmt.Sprintf(verb, r), fmt.Sprintf(verb, other); got != want {
				t.Fatalf("Sprintf(%q) = %q, but %q with another password", verb, got, want)
			}
		}
	})
}

// checkDecodeError checks the invariants of a failed Decode.
func checkDecodeError(t *testing.T, data []byte, err error) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) || len(ve.Fields) == 0 {
		t.Fatalf("Decode(%q) = %#v; want a non-empty *ValidationError matching ErrInvalid", data, err)
	}
	if !slices.IsSortedFunc(ve.Fields, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) }) {
		t.Fatalf("Decode(%q) fields = %q; want them sorted by field", data, ve.Fields)
	}
	for _, fe := range ve.Fields {
		if !slices.ContainsFunc(reasons, func(r string) bool {
			return digits.ReplaceAllString(r, "N") == digits.ReplaceAllString(fe.Reason, "N")
		}) {
			t.Fatalf("Decode(%q) reason %q is not a known reason; reasons must not quote the input", data, fe.Reason)
		}
	}

	// The error must not depend on the password's value: decode the same
	// body with every password replaced by other characters of the same
	// length, and compare.
	other, pws := replacePasswords(data)
	if len(pws) == 0 {
		return
	}
	_, otherErr := Decode(other)
	if otherErr == nil || otherErr.Error() != err.Error() {
		t.Fatalf("Decode(%q) = %v\nbut with other passwords Decode(%q) = %v", data, err, other, otherErr)
	}
	for _, pw := range pws {
		if len(pw) >= 4 && strings.Contains(err.Error(), pw) && !strings.Contains(otherErr.Error(), pw) {
			t.Fatalf("Decode(%q) = %q; want no password %q in it", data, err, pw)
		}
	}
}

// replacePasswords returns a copy of data in which the value of every
// "password" member, at any depth, has each character replaced by another,
// and the passwords it replaced. Only plain ASCII values without escapes
// are replaced, so that the body's length and byte offsets do not change.
func replacePasswords(data []byte) ([]byte, []string) {
	out := bytes.Clone(data)
	var pws []string
	dec := json.NewDecoder(bytes.NewReader(data))
	var stack []bool // true for an object, false for an array
	expectKey, lastKey := false, ""
	for {
		tok, err := dec.Token()
		if err != nil {
			return out, pws
		}
		inObject := len(stack) > 0 && stack[len(stack)-1]
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{':
				stack = append(stack, true)
				expectKey = true
			case '[':
				stack = append(stack, false)
			default:
				stack = stack[:len(stack)-1]
				expectKey = len(stack) > 0 && stack[len(stack)-1]
			}
			continue
		}
		if inObject && expectKey {
			lastKey, _ = tok.(string)
			expectKey = false
			continue
		}
		if s, ok := tok.(string); ok && inObject && lastKey == "password" {
			end := int(dec.InputOffset()) - 1 // the closing quote
			start := end - len(s)
			if start > 0 && data[start-1] == '"' && string(data[start:end]) == s && printableASCII(s) {
				for i := start; i < end; i++ {
					out[i] = 'x'
					if data[i] == 'x' {
						out[i] = 'y'
					}
				}
				pws = append(pws, s)
			}
		}
		expectKey = inObject
	}
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e || s[i] == '\\' || s[i] == '"' {
			return false
		}
	}
	return true
}

func FuzzDecodeEvent(f *testing.F) {
	golden, err := fixedEvent().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add([]byte(`{"specversion":"1.0","id":"a","source":"s","type":"t","data":{"attempt":1,"replay_of":"x"}}`))
	f.Add([]byte(`{"specversion":"1.0","id":"a","source":"s","type":"t","data":null,"traceparent":"00-x"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEvent(data)
		if err != nil {
			return
		}
		b, err := e.Marshal()
		if err != nil {
			t.Fatalf("DecodeEvent(%q).Marshal() error = %v", data, err)
		}
		again, err := DecodeEvent(b)
		if err != nil || !reflect.DeepEqual(again, e) {
			t.Fatalf("DecodeEvent(%s) = %+v, %v; want %+v as from DecodeEvent(%q)", b, again, err, e, data)
		}
	})
}
