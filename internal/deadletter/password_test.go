package deadletter

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/zoomprov/consumer/internal/messages"
)

// passwordCases are bodies with their password values, as replacePasswords
// must find them.
var passwordCases = []struct {
	name, body string
	want       []string // raw values, in order
	replaced   string   // the body with each value replaced by "T"
}{
	{"object", `{"action":"autoCreate","user_info":{"email":"a@b.c","type":1,"password":"p4ss!"}}`,
		[]string{`"p4ss!"`}, `{"action":"autoCreate","user_info":{"email":"a@b.c","type":1,"password":"T"}}`},
	{"white space everywhere", "\r\n{ \"user_info\" : {\n\t\"password\" \r\n:\t\"x y\"\n } }\n", []string{`"x y"`}, "\r\n{ \"user_info\" : {\n\t\"password\" \r\n:\t\"T\"\n } }\n"},
	{"string form", `{"action":"autoCreate","user_info":"{\"email\":\"a@b.c\",\"password\":\"p\\\"q\"}"}`,
		[]string{`\"p\\\"q\"`}, `{"action":"autoCreate","user_info":"{\"email\":\"a@b.c\",\"password\":\"T\"}"}`},
	{"string form with white space", `{"user_info":" { \"password\" :\n \"p\" } "}`,
		[]string{`\"p\"`}, `{"user_info":" { \"password\" :\n \"T\" } "}`},
	{"string form, escaped key", `{"user_info":"{\"p\\u0061ssword\":\"p\"}"}`, []string{`\"p\"`}, `{"user_info":"{\"p\\u0061ssword\":\"T\"}"}`},
	{"string form, key and quotes as \\u escapes", `{"user_info":"{\u0022\u0070assword\u0022:\u0022p\u0022}"}`,
		[]string{`\u0022p\u0022`}, `{"user_info":"{\u0022\u0070assword\u0022:\"T\"}"}`},
	{"string form, upper-case key", `{"user_info":"{\"PASSWORD\":\"p\"}"}`, []string{`\"p\"`}, `{"user_info":"{\"PASSWORD\":\"T\"}"}`},
	{"string in a string", `{"a":"{\"b\":\"{\\\"password\\\":\\\"p\\\"}\"}"}`,
		[]string{`\\\"p\\\"`}, `{"a":"{\"b\":\"{\\\"password\\\":\\\"T\\\"}\"}"}`},
	{"upper-case key", `{"user_info":{"PASSWORD":"a","Password":"b"}}`, []string{`"a"`, `"b"`}, `{"user_info":{"PASSWORD":"T","Password":"T"}}`},
	{"key folded by Unicode", `{"user_info":{"paſſword":"a"}}`, []string{`"a"`}, `{"user_info":{"paſſword":"T"}}`},
	{"escaped key", `{"user_info":{"p\u0061ssword":"a"}}`, []string{`"a"`}, `{"user_info":{"p\u0061ssword":"T"}}`},
	{"duplicate", `{"user_info":{"password":"a","password":"b"}}`, []string{`"a"`, `"b"`}, `{"user_info":{"password":"T","password":"T"}}`},
	{"number", `{"user_info":{"password":12345678,"type":1}}`, []string{`12345678`}, `{"user_info":{"password":"T","type":1}}`},
	{"object value", `{"user_info":{"password":{"a":[1,"}"]},"type":1}}`, []string{`{"a":[1,"}"]}`}, `{"user_info":{"password":"T","type":1}}`},
	{"array value", `{"password":["a",{"password":"b"}],"x":1}`, []string{`["a",{"password":"b"}]`}, `{"password":"T","x":1}`},
	{"null", `{"user_info":{"password":null}}`, []string{`null`}, `{"user_info":{"password":"T"}}`},
	{"nested", `{"x":{"y":[{"password":"deep"}]}}`, []string{`"deep"`}, `{"x":{"y":[{"password":"T"}]}}`},
	{"unicode escapes", `{"user_info":{"password":"\u00e9\ud83d\ude00\"\\\/é"}}`, []string{`"\u00e9\ud83d\ude00\"\\\/é"`}, `{"user_info":{"password":"T"}}`},
	{"top level", `{"password":"p","user_info":{}}`, []string{`"p"`}, `{"password":"T","user_info":{}}`},
	{"truncated", `{"action":"autoCreate","user_info":{"password":"Zx9!kq`, []string{`"Zx9!kq`}, `{"action":"autoCreate","user_info":{"password":"T"`},
	{"truncated after the colon", `{"user_info":{"password": `, nil, `{"user_info":{"password": `},
	{"truncated object value", `{"password":{"a":"b`, []string{`{"a":"b`}, `{"password":"T"`},
	{"truncated string form", `{"user_info":"{\"password\":\"Zx9!kq`, []string{`\"Zx9!kq`}, `{"user_info":"{\"password\":\"T\"`},
	{"truncated in an escape", `{"user_info":"{\"password\":\"Zx9!kq\`, []string{`\"Zx9!kq\`}, `{"user_info":"{\"password\":\"T\"`},
	{"bad escapes", `{"user_info":"{\x\"password\":\"a\q\ud800\u12\"}"}`, []string{`\"a\q\ud800\u12\"`}, `{"user_info":"{\x\"password\":\"T\"}"}`},
	{"empty value", `{"password":,"x":1}`, []string{``}, `{"password":"T","x":1}`},
	{"invalid UTF-8", "{\"n\":\"\xff\",\"password\":\"a\xfe\"}", []string{"\"a\xfe\""}, "{\"n\":\"\xff\",\"password\":\"T\"}"},
	{"password as a value", `{"a":"password","b":"password"}`, nil, `{"a":"password","b":"password"}`},
	{"password in a name only", `{"user_info":{"first_name":"my password"}}`, nil, `{"user_info":{"first_name":"my password"}}`},
	{"longer key", `{"user_info":{"password2":"a","old_password":"b"}}`, nil, `{"user_info":{"password2":"a","old_password":"b"}}`},
	{"none", `{"action":"create","user_info":{"email":"a@b.c"}}`, nil, `{"action":"create","user_info":{"email":"a@b.c"}}`},
	{"not JSON", `password: hunter2`, nil, `password: hunter2`},
	{"empty", ``, nil, ``},
}

func TestReplacePasswords(t *testing.T) {
	for _, tc := range passwordCases {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			var raws []string
			out, n, err := replacePasswords(body, func(raw []byte, _ string) (string, error) {
				raws = append(raws, string(raw))
				return "T", nil
			})
			if err != nil || n != len(tc.want) || strings.Join(raws, "|") != strings.Join(tc.want, "|") {
				t.Errorf("replacePasswords found %q (n %d, err %v); want %q", raws, n, err, tc.want)
			}
			if string(out) != tc.replaced {
				t.Errorf("replacePasswords =\n%s\nwant\n%s", out, tc.replaced)
			}
			if string(body) != tc.body {
				t.Errorf("replacePasswords modified its input: %q", body)
			}
			if back := roundTrip(t, body); string(back) != tc.body {
				t.Errorf("round trip =\n%s\nwant\n%s", back, tc.body)
			}
		})
	}
}

// tokenFor is a reversible stand-in for seal.Keyring.Seal; it binds the
// path as Seal binds its context.
func tokenFor(raw []byte, path string) (string, error) {
	return "tok:" + base64.RawURLEncoding.EncodeToString([]byte(path)) + ":" + base64.RawURLEncoding.EncodeToString(raw), nil
}

// rawFor reverses tokenFor; other values are left alone, and a token
// given another path than its own is an error.
func rawFor(v, path string) ([]byte, bool, error) {
	rest, ok := strings.CutPrefix(v, "tok:")
	if !ok {
		return nil, false, nil
	}
	p, enc, _ := strings.Cut(rest, ":")
	if p != base64.RawURLEncoding.EncodeToString([]byte(path)) {
		return nil, false, fmt.Errorf("token of another path given %q", path)
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	return raw, err == nil, err
}

// roundTrip replaces every password by an encoding of its raw bytes and
// path and restores them, which checks that restorePasswords finds each
// replacement at the path replacePasswords gave.
func roundTrip(t testing.TB, body []byte) []byte {
	t.Helper()
	sealed, n, err := replacePasswords(body, tokenFor)
	if err != nil {
		t.Fatalf("replacePasswords: %v", err)
	}
	back, m, err := restorePasswords(sealed, rawFor)
	if err != nil {
		t.Fatalf("restorePasswords(%q): %v", sealed, err)
	}
	if m != n {
		t.Errorf("restorePasswords(%q) restored %d values; replacePasswords replaced %d", sealed, m, n)
	}
	return back
}

// Ensure every password is given the path of its member: object members
// joined by dots, array elements by index, the password's own key as
// "password" in any spelling, and a value inside a string holding JSON
// under the path of that string.
func TestPasswordPaths(t *testing.T) {
	tests := []struct {
		body string
		want []string
	}{
		{`{"action":"autoCreate","user_info":{"email":"a@b.c","password":"p"}}`, []string{"user_info.password"}},
		{`{"action":"autoCreate","user_info":"{\"email\":\"a@b.c\",\"password\":\"p\"}"}`, []string{"user_info.password"}},
		{`{"user_info":{"p\u0061ssword":"a","PASSWORD":"b"}}`, []string{"user_info.password", "user_info.password"}},
		{`{"password":"p","user_info":{"password":"q"}}`, []string{"password", "user_info.password"}},
		{`{"x":{"y":[{"a":1},{"password":"deep"}],"z":[[],{"password":"p"}]}}`, []string{"x.y[1].password", "x.z[1].password"}},
		{`{"a":"{\"b\":\"{\\\"password\\\":\\\"p\\\"}\"}"}`, []string{"a.b.password"}},
		{`{"user_info":{"password":{"password":"inner"},"n":{"password":"x"}}}`, []string{"user_info.password", "user_info.n.password"}},
		{`["x",{"password":"p"}]`, []string{"[1].password"}},
		{`"password":"p"`, []string{"password"}},
		{`{"user_info":{"password":"Zx9!kq`, []string{"user_info.password"}},
	}
	for _, tc := range tests {
		var got []string
		_, _, err := replacePasswords([]byte(tc.body), func(_ []byte, path string) (string, error) {
			got = append(got, path)
			return "T", nil
		})
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("replacePasswords(%s) paths = %q, %v; want %q", tc.body, got, err, tc.want)
		}
	}
}

func TestRestorePasswords(t *testing.T) {
	tests := []struct {
		name, body string
		values     []string // given to f
		want       string   // f returns "<" + value + ">" for values that start with "s"
		n          int
	}{
		{"object", `{"user_info":{"password":"s1","x":"s2"}}`, []string{"s1"}, `{"user_info":{"password":<s1>,"x":"s2"}}`, 1},
		{"escapes", `{"password":"s\u00e9\"","PASSWORD":"s\/"}`, []string{`sé"`, "s/"}, `{"password":<sé">,"PASSWORD":<s/>}`, 2},
		{"string form", `{"user_info":"{\"password\":\"s\\\"x\"}"}`, []string{`s"x`}, `{"user_info":"{\"password\":<s"x>}"}`, 1},
		{"not a string", `{"password":12,"Password":{"a":"s"},"pAssword":null}`, nil, `{"password":12,"Password":{"a":"s"},"pAssword":null}`, 0},
		{"left alone", `{"password":"t","password":"s"}`, []string{"t", "s"}, `{"password":"t","password":<s>}`, 1},
		{"unterminated", `{"password":"s`, nil, `{"password":"s`, 0},
		{"none", `{"a":"s"}`, nil, `{"a":"s"}`, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var values []string
			out, n, err := restorePasswords([]byte(tc.body), func(v, _ string) ([]byte, bool, error) {
				values = append(values, v)
				return []byte("<" + v + ">"), strings.HasPrefix(v, "s"), nil
			})
			if err != nil || n != tc.n || string(out) != tc.want || !reflect.DeepEqual(values, tc.values) {
				t.Errorf("restorePasswords = %s, %d, %v, given %q; want %s, %d, given %q", out, n, err, values, tc.want, tc.n, tc.values)
			}
		})
	}
}

func TestPasswordsCallbackError(t *testing.T) {
	errSeal := errors.New("no randomness")
	out, n, err := replacePasswords([]byte(`{"password":"x","password":"y"}`), func(raw []byte, _ string) (string, error) {
		if string(raw) == `"y"` {
			return "", errSeal
		}
		return "T", nil
	})
	if !errors.Is(err, errSeal) || out != nil || n != 0 {
		t.Errorf("replacePasswords = %q, %d, %v; want nil, 0 and an error wrapping %v", out, n, err, errSeal)
	}
	calls := 0
	out, n, err = restorePasswords([]byte(`{"password":"x","password":"y"}`), func(string, string) ([]byte, bool, error) {
		calls++
		return nil, false, errSeal
	})
	if !errors.Is(err, errSeal) || out != nil || n != 0 || calls != 1 {
		t.Errorf("restorePasswords = %q, %d, %v after %d calls; want nil, 0 and an error wrapping %v after 1", out, n, err, calls, errSeal)
	}
}

// Ensure a valid request keeps every field but the password as Decode
// reads it, in both forms of user_info, and that the password Decode reads
// is the replacement.
func TestReplacePasswordsDecodes(t *testing.T) {
	const pw = "Zx9!kq2Lm"
	bodies := []string{
		`{"action":"autoCreate","user_info":{"email":"a@example.com","type":1,"password":"` + pw + `","first_name":"Ann"}}`,
		"{\n  \"action\": \"autoCreate\",\n  \"user_info\": {\n    \"password\" : \"" + pw + "\",\n    \"email\": \"a@example.com\", \"type\": 1\n  }\n}\n",
		`{"user_info":{"type":1,"p\u0061ssword":"Zx9!\u006bq2Lm","email":"a@example.com","last_name":"M\u00fcller"},"action":"autoCreate"}`,
		`{"action":"autoCreate","user_info":"{\"email\":\"a@example.com\",\"type\":1,\"password\":\"Zx9!\\\"kq2Lm\",\"display_name\":\"Ann \\u00e9\"}"}`,
		`{"action":"autoCreate","user_info":"{\"email\":\"a@example.com\",\"type\":1,\"p\\u0061ssword\":\"` + pw + `\"}"}`,
		`{"action":"create","user_info":{"email":"a@example.com","type":2,"feature":{"zoom_phone":true},"password":"` + pw + `"}}`,
	}
	for _, repl := range []string{PasswordRedacted, `se"al\ed:é<>&`} {
		for _, body := range bodies {
			want, err := messages.Decode([]byte(body))
			if err != nil || want.UserInfo.Password == "" {
				t.Fatalf("Decode(%s) = %v (password %q); want a valid request with a password", body, err, want.UserInfo.Password)
			}
			out, n, err := replacePasswords([]byte(body), func([]byte, string) (string, error) { return repl, nil })
			if err != nil || n != 1 {
				t.Fatalf("replacePasswords(%s) = %d, %v; want 1 value", body, n, err)
			}
			got, err := messages.Decode(out)
			want.UserInfo.Password = repl
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("Decode(replacePasswords(%s)) = %#v, %v; want %#v", body, got.UserInfo, err, want.UserInfo)
			}
		}
	}
}

// FuzzReplacePasswords: replacePasswords then restorePasswords give back
// any body exactly; no password value of 4 bytes or more that occurs once
// in the body is left in the output (an occurrence made of the
// replacement and the text around it is no leak); the input is never
// modified.
func FuzzReplacePasswords(f *testing.F) {
	for _, tc := range passwordCases {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		if back := roundTrip(t, body); !bytes.Equal(back, body) {
			t.Fatalf("round trip of %q = %q", body, back)
		}
		const repl = "T"
		var raws [][]byte
		out, n, err := replacePasswords(body, func(raw []byte, _ string) (string, error) {
			raws = append(raws, bytes.Clone(raw))
			return repl, nil
		})
		if err != nil || n != len(raws) {
			t.Fatalf("replacePasswords = %d, %v after %d calls", n, err, len(raws))
		}
		if !bytes.Equal(body, orig) {
			t.Fatalf("replacePasswords modified its input %q to %q", orig, body)
		}
		// Where the replacements stand in out.
		var regions [][2]int
		shift := 0
		for _, s := range passwordSpans(body, 0, nil, "") {
			l := len(escape(quote(repl), s.level))
			regions = append(regions, [2]int{s.start + shift, s.start + shift + l})
			shift += l - (s.end - s.start)
		}
		for _, raw := range raws {
			if len(raw) < 4 || bytes.Count(body, raw) != 1 {
				continue
			}
			for i := 0; i+len(raw) <= len(out); i++ {
				if !bytes.HasPrefix(out[i:], raw) {
					continue
				}
				overlaps := false
				for _, r := range regions {
					overlaps = overlaps || i < r[1] && r[0] < i+len(raw)
				}
				if !overlaps {
					t.Fatalf("replacePasswords(%q) = %q still holds %q at %d", body, out, raw, i)
				}
			}
		}
	})
}
