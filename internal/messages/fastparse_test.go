package messages

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// slowParseObject is parseObject without its fast path.
func slowParseObject(data []byte, what, base string) (*node, []FieldError, string) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	p := parser{dec: dec}
	n, err := p.value(base, 0)
	if err != nil || n.kind != kindObject {
		return nil, nil, "failed"
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, "trailing data"
	}
	return n, p.dups, ""
}

// checkFastParse holds fastParseObject to its promise: whenever it
// succeeds, it returns exactly what the tokenizer-based parser returns.
func checkFastParse(t *testing.T, data []byte) (fastOK bool) {
	t.Helper()
	n, dups, ok := fastParseObject(data, "user_info")
	if !ok {
		return false
	}
	sn, sdups, reason := slowParseObject(data, "body", "user_info")
	if reason != "" {
		t.Fatalf("fastParseObject(%q) succeeded; the tokenizer says %s", data, reason)
	}
	if !reflect.DeepEqual(n, sn) {
		t.Fatalf("fastParseObject(%q) = %s; want %s", data, dumpNode(n), dumpNode(sn))
	}
	if !reflect.DeepEqual(dups, sdups) {
		t.Fatalf("fastParseObject(%q) duplicates = %q; want %q", data, dups, sdups)
	}
	return true
}

func dumpNode(n *node) string {
	b, _ := json.Marshal(toAny(n))
	return string(b)
}

func toAny(n *node) any {
	if n == nil {
		return nil
	}
	switch n.kind {
	case kindObject:
		var out [][2]any
		for _, m := range n.members {
			out = append(out, [2]any{m.key, toAny(m.value)})
		}
		return map[string]any{"object": out, "nil": n.members == nil}
	case kindArray:
		var out []any
		for _, e := range n.elems {
			out = append(out, toAny(e))
		}
		return map[string]any{"array": out, "nil": n.elems == nil}
	}
	return map[string]any{"kind": n.kind, "text": n.text, "bool": n.boolean}
}

// Ensure the fast path takes every valid fixture without a \u escape (so
// that real requests do not fall back to the slow parser) and agrees with
// the tokenizer on all of them.
func TestFastParseFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		_, _, slowReason := slowParseObject(data, "body", "")
		fast := checkFastParse(t, data)
		if slowReason == "" && !fast && !bytes.Contains(data, []byte(`\u`)) && len(data) <= MaxBodyBytes {
			t.Errorf("%s: fastParseObject gave up on a well-formed body", name)
		}
	}
	for _, s := range []string{
		`{}`, ` {"a" : [ ] , "b":{ }} `, `{"a":"x\"\\\/\b\f\n\r\ty"}`, `{"a":-0.5e+10,"b":[1,[2,{"c":true,"c":null,"c":false}]]}`,
		`{"action":"create","action":"create","user_info":{"email":"a@b.c","type":1,"type":2}}`,
	} {
		if !checkFastParse(t, []byte(s)) {
			t.Errorf("fastParseObject(%q) gave up; want it to parse", s)
		}
	}
	for _, s := range []string{
		``, `[]`, `{"a":1}x`, `{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":"\u0041"}`, `{"a":"\x"}`, "{\"a\":\"\x01\"}",
		`{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":tru}`, `{"a":[1,]}`, `{"a":1`, "{\"a\":\"\xff\"}",
	} {
		if checkFastParse(t, []byte(s)) {
			t.Errorf("fastParseObject(%q) succeeded; want it to give up", s)
		}
	}
}

func FuzzFastParse(f *testing.F) {
	addSeeds(f)
	f.Add([]byte(`{"a":{"b":[{"c":1,"c":2}],"b":"x\n"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastParse(t, data)
	})
}
