package messages

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Decode parses a request body strictly and validates it.
//
// Strict means: the body is at most MaxBodyBytes of UTF-8 holding exactly
// one JSON object; field names match exactly (encoding/json would accept
// "Email" for "email"); unknown fields, duplicate keys and values of the
// wrong JSON type are errors at every level. A duplicate key matters because
// encoding/json silently keeps the last one, so two producers' views of the
// same message could differ. A null value counts as an absent field.
//
// user_info may also arrive as a JSON string holding the object, the
// form-data style of Zoom's Postman collection. The string's content obeys
// the same rules and decodes to the same Request.
//
// Every error is a *ValidationError that lists all problems (unknown and
// mistyped fields together with the Validate rules) and matches ErrInvalid.
// Problems that make the body unreadable as a whole, such as a syntax error,
// are reported alone. On error the returned Request holds whatever could be
// decoded, so that callers can put the action and email into a failure
// event; it must not be sent to Zoom.
func Decode(data []byte) (Request, error) {
	var r Request
	err := decodeStrict(data,
		func(d *decoder, root *node) { r = d.request(root) },
		func(v *validator) { v.request(r) })
	return r, err
}

// decodeStrict applies the rules every request body shares (size, UTF-8,
// one JSON object, duplicate keys), then runs decode on the parsed object
// and check on what decode produced, and returns every problem found as one
// *ValidationError, or nil.
//
// A field that could not be decoded holds its zero value, so check would
// add a second, misleading complaint (a mistyped "type" would also be "must
// be one of 1, 2, 4, 99"). Only the decode problem is kept for such a
// field and the fields below it.
func decodeStrict(data []byte, decode func(*decoder, *node), check func(*validator)) error {
	if len(data) > MaxBodyBytes {
		return bodyError(fmt.Sprintf("body is %d bytes; the limit is %d bytes", len(data), MaxBodyBytes))
	}
	// encoding/json replaces invalid UTF-8 with U+FFFD instead of failing,
	// which would silently change an email address.
	if !utf8.Valid(data) {
		return bodyError("body is not valid UTF-8")
	}
	d := &decoder{}
	root, dups, reason := parseObject(data, "body", "")
	if reason != "" {
		return bodyError(reason)
	}
	d.fields = dups
	decode(d, root)
	if check == nil {
		return d.err()
	}
	var v validator
	check(&v)
	decoded := make(map[string]bool, len(d.fields))
	for _, f := range d.fields {
		decoded[f.Field] = true
	}
	for _, f := range v.fields {
		if !covered(decoded, f.Field) {
			d.fields = append(d.fields, f)
		}
	}
	return d.err()
}

// bodyError reports a problem with the body as a whole.
func bodyError(reason string) error {
	return &ValidationError{Fields: []FieldError{{Reason: reason}}}
}

// maxDepth bounds JSON nesting. A request is five levels deep; the bound
// only stops a hostile body from recursing the parser thousands of levels.
const maxDepth = 32

// kind is the JSON type of a node.
type kind int

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

// node is one parsed JSON value. Objects keep their members in order, with
// duplicates, so that the decoder can report them.
type node struct {
	kind    kind
	boolean bool
	text    string // string value, or a number's literal
	members []member
	elems   []*node
}

type member struct {
	key   string
	value *node
}

// parseObject parses data, which must hold exactly one JSON object. It uses
// json.Decoder's tokenizer rather than Unmarshal so that duplicate keys
// stay visible: it returns them, at any depth, as FieldErrors whose paths
// start with base. On failure it returns a reason that names what (for
// example "body") was malformed but quotes no content of data.
func parseObject(data []byte, what, base string) (*node, []FieldError, string) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, what + " is empty"
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // keep number literals exact; some Zoom values exceed 2^53
	p := parser{dec: dec}
	n, err := p.value(base, 0)
	if err == nil {
		if n.kind != kindObject {
			return nil, nil, what + " must be a JSON object"
		}
		// Anything but a clean end after the object is trailing data.
		if _, err := dec.Token(); err != io.EOF {
			return nil, nil, what + " has data after the JSON object"
		}
		return n, p.dups, ""
	}
	var syn *json.SyntaxError
	switch {
	case errors.Is(err, errTooDeep):
		return nil, nil, fmt.Sprintf("%s nests JSON deeper than %d levels", what, maxDepth)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, nil, what + " is truncated JSON"
	case errors.As(err, &syn):
		// The offset is enough to find the problem; encoding/json's own
		// message would quote a character of the input.
		return nil, nil, fmt.Sprintf("%s is not valid JSON (syntax error near byte offset %d)", what, syn.Offset)
	default:
		return nil, nil, what + " is not valid JSON"
	}
}

var (
	errTooDeep = errors.New("too deep")
	errSyntax  = errors.New("unexpected token")
)

// parser builds a tree of nodes from a JSON token stream.
type parser struct {
	dec  *json.Decoder
	dups []FieldError
}

// value reads one complete JSON value found at path.
func (p *parser) value(path string, depth int) (*node, error) {
	tok, err := p.dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case nil:
		return &node{kind: kindNull}, nil
	case bool:
		return &node{kind: kindBool, boolean: t}, nil
	case json.Number:
		return &node{kind: kindNumber, text: string(t)}, nil
	case string:
		return &node{kind: kindString, text: t}, nil
	case json.Delim:
		if depth >= maxDepth {
			return nil, errTooDeep
		}
		switch t {
		case '{':
			n := &node{kind: kindObject}
			// seen counts each key so that a key repeated many times is
			// reported once.
			seen := make(map[string]int)
			for p.dec.More() {
				kt, err := p.dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := kt.(string)
				if !ok {
					return nil, errSyntax
				}
				field := join(path, key)
				if seen[key]++; seen[key] == 2 {
					p.dups = append(p.dups, FieldError{Field: field, Reason: "duplicate key"})
				}
				v, err := p.value(field, depth+1)
				if err != nil {
					return nil, err
				}
				n.members = append(n.members, member{key: key, value: v})
			}
			return n, p.end('}')
		case '[':
			n := &node{kind: kindArray}
			for i := 0; p.dec.More(); i++ {
				v, err := p.value(path+"["+strconv.Itoa(i)+"]", depth+1)
				if err != nil {
					return nil, err
				}
				n.elems = append(n.elems, v)
			}
			return n, p.end(']')
		}
	}
	return nil, errSyntax
}

// end consumes the closing delimiter of an object or array.
func (p *parser) end(want json.Delim) error {
	tok, err := p.dec.Token()
	if err != nil {
		return err
	}
	if tok != want {
		return errSyntax
	}
	return nil
}

// decoder maps parsed nodes onto the Request types, collecting a FieldError
// for every unknown, duplicate, missing or mistyped field.
type decoder struct {
	validator
}

// covered reports whether fields holds field or one of its ancestors, so
// that "user_info.feature" covers "user_info.feature.zoom_phone" and
// "user_info.license_info_list" covers "user_info.license_info_list[0]".
func covered(fields map[string]bool, field string) bool {
	for {
		if fields[field] {
			return true
		}
		i := strings.LastIndexAny(field, ".[")
		if i <= 0 {
			return false
		}
		field = field[:i]
	}
}

// members returns the members of object n by key after reporting unknown
// keys. The parser has already reported duplicate keys; only the first
// occurrence is used. Null members are left out: null means absent.
func (d *decoder) members(n *node, path string, known ...string) map[string]*node {
	out := make(map[string]*node, len(n.members))
	seen := make(map[string]bool, len(n.members))
	for _, m := range n.members {
		if seen[m.key] {
			continue
		}
		seen[m.key] = true
		if !slices.Contains(known, m.key) {
			d.add(join(path, m.key), "unknown field")
			continue
		}
		if m.value.kind != kindNull {
			out[m.key] = m.value
		}
	}
	return out
}

func (d *decoder) request(root *node) Request {
	var r Request
	m := d.members(root, "", "action", "user_info")
	if n, ok := m["action"]; ok {
		s, _ := d.string(n, "action")
		r.Action = Action(s)
	} else {
		d.add("action", "is required")
	}
	n, ok := m["user_info"]
	switch {
	case !ok:
		d.add("user_info", "is required")
	case n.kind == kindObject:
		r.UserInfo = d.userInfo(n)
	case n.kind == kindString:
		inner, dups, reason := parseObject([]byte(n.text), "string form", "user_info")
		if reason != "" {
			d.add("user_info", reason)
			break
		}
		d.fields = append(d.fields, dups...)
		// The inner object shares the outer paths, so nested duplicate
		// or unknown keys read the same in both forms.
		r.UserInfo = d.userInfo(inner)
	default:
		d.add("user_info", "must be an object or a string holding a JSON object")
	}
	return r
}

func (d *decoder) userInfo(n *node) UserInfo {
	var u UserInfo
	m := d.members(n, "user_info",
		"email", "type", "first_name", "last_name", "display_name", "password",
		"feature", "plan_united_type", "division_ids", "license_info_list")
	if v, ok := m["email"]; ok {
		u.Email, _ = d.string(v, "user_info.email")
	} else {
		d.add("user_info.email", "is required")
	}
	if v, ok := m["type"]; ok {
		t, ok := d.int(v, "user_info.type")
		if ok && (t < -1<<31 || t > 1<<31-1) {
			// Out of int's range on 32-bit platforms; no valid type is.
			d.add("user_info.type", "must be one of 1, 2, 4, 99")
		} else {
			u.Type = int(t)
		}
	} else {
		d.add("user_info.type", "is required")
	}
	u.FirstName = d.optString(m, "first_name", "user_info.first_name")
	u.LastName = d.optString(m, "last_name", "user_info.last_name")
	u.DisplayName = d.optString(m, "display_name", "user_info.display_name")
	u.Password = d.optString(m, "password", "user_info.password")
	u.PlanUnitedType = d.optString(m, "plan_united_type", "user_info.plan_united_type")

	if v, ok := m["feature"]; ok {
		if d.want(v, kindObject, "user_info.feature", "must be an object") {
			f := &Feature{}
			fm := d.members(v, "user_info.feature", "zoom_phone", "zoom_one_type")
			if b, ok := fm["zoom_phone"]; ok {
				if d.want(b, kindBool, "user_info.feature.zoom_phone", "must be a boolean") {
					f.ZoomPhone = &b.boolean
				}
			}
			if t, ok := fm["zoom_one_type"]; ok {
				f.ZoomOneType, _ = d.int(t, "user_info.feature.zoom_one_type")
			}
			u.Feature = f
		}
	}

	if v, ok := m["division_ids"]; ok {
		if d.want(v, kindArray, "user_info.division_ids", "must be an array of strings") {
			for i, e := range v.elems {
				// A bad entry still takes its place so that Validate
				// sees the real count.
				s, _ := d.string(e, fmt.Sprintf("user_info.division_ids[%d]", i))
				u.DivisionIDs = append(u.DivisionIDs, s)
			}
		}
	}

	if v, ok := m["license_info_list"]; ok {
		if d.want(v, kindArray, "user_info.license_info_list", "must be an array of objects") {
			for i, e := range v.elems {
				path := fmt.Sprintf("user_info.license_info_list[%d]", i)
				// A bad item still takes its place so that Validate's
				// indexes match the body's.
				var l LicenseInfo
				if !d.want(e, kindObject, path, "must be an object") {
					u.LicenseInfoList = append(u.LicenseInfoList, l)
					continue
				}
				lm := d.members(e, path, "license_type", "license_option", "subscription_id")
				l.LicenseType = d.optString(lm, "license_type", path+".license_type")
				if o, ok := lm["license_option"]; ok {
					l.LicenseOption, _ = d.int(o, path+".license_option")
				}
				l.SubscriptionID = d.optString(lm, "subscription_id", path+".subscription_id")
				u.LicenseInfoList = append(u.LicenseInfoList, l)
			}
		}
	}
	return u
}

// want reports whether n has kind k, recording reason for path if not.
func (d *decoder) want(n *node, k kind, path, reason string) bool {
	if n.kind != k {
		d.add(path, reason)
		return false
	}
	return true
}

func (d *decoder) string(n *node, path string) (string, bool) {
	if !d.want(n, kindString, path, "must be a string") {
		return "", false
	}
	return n.text, true
}

// optString returns the string member key of m, or "" if it is absent.
func (d *decoder) optString(m map[string]*node, key, path string) string {
	n, ok := m[key]
	if !ok {
		return ""
	}
	s, _ := d.string(n, path)
	return s
}

// int decodes a JSON integer. Only plain integer literals count: 1.0, 1e2
// and "1" are rejected, as encoding/json would reject them for an int field.
func (d *decoder) int(n *node, path string) (int64, bool) {
	if !d.want(n, kindNumber, path, "must be an integer") {
		return 0, false
	}
	i, err := strconv.ParseInt(n.text, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			d.add(path, "must be an integer that fits in 64 bits")
		} else {
			d.add(path, "must be an integer")
		}
		return 0, false
	}
	return i, true
}

// join appends key to the JSON path. Keys that are not plain identifiers
// are quoted, and long ones cut short, so that an odd key cannot garble or
// flood the error line.
func join(path, key string) string {
	if !plainKey(key) {
		const maxKeyRunes = 40
		if utf8.RuneCountInString(key) > maxKeyRunes {
			key = string([]rune(key)[:maxKeyRunes]) + "..."
		}
		key = strconv.QuoteToASCII(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func plainKey(key string) bool {
	if key == "" || len(key) > 64 {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
