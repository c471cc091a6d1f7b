package messages

import (
	"strconv"
	"unicode/utf8"
)

// fastParseObject is parseObject's fast path for the bodies producers
// really send: well-formed JSON with no \u escapes and objects of a few
// members. It scans the bytes itself instead of going through
// json.Decoder's tokens, which allocate an interface value per token and
// were most of a request's decoding cost. It reports ok only when it is
// sure to return what parseObject returns; for anything else (malformed or
// empty input, \u escapes, deep nesting, large objects, invalid UTF-8) it
// gives up, and the caller runs parseObject, so every error keeps its
// wording and offsets. FuzzFastParse holds the two parsers to that.
func fastParseObject(data []byte, base string) (n *node, dups []FieldError, ok bool) {
	if !utf8.Valid(data) {
		return nil, nil, false
	}
	p := fastParser{data: data}
	p.ws()
	if p.pos >= len(data) || data[p.pos] != '{' {
		return nil, nil, false
	}
	n, ok = p.value(base, 0)
	if !ok {
		return nil, nil, false
	}
	p.ws()
	if p.pos != len(data) {
		return nil, nil, false
	}
	return n, p.dups, true
}

// fastMaxMembers bounds the members of an object the fast path handles:
// it finds duplicate keys by comparing each key with the earlier ones,
// which is quicker than a map for a handful and must not become quadratic
// on a hostile body.
const fastMaxMembers = 32

type fastParser struct {
	data  []byte
	pos   int
	dups  []FieldError
	arena []node   // nodes are carved out of small blocks, never regrown
	stack []member // members of the objects being parsed
}

func (p *fastParser) newNode(k kind) *node {
	if len(p.arena) == cap(p.arena) {
		p.arena = make([]node, 0, 16)
	}
	p.arena = p.arena[:len(p.arena)+1]
	n := &p.arena[len(p.arena)-1]
	n.kind = k
	return n
}

func (p *fastParser) ws() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// value parses the value at p.pos, found at path (used only to name
// duplicate keys inside it), depth levels down.
func (p *fastParser) value(path string, depth int) (*node, bool) {
	if p.pos >= len(p.data) {
		return nil, false
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		if depth >= maxDepth {
			return nil, false
		}
		return p.object(path, depth)
	case c == '[':
		if depth >= maxDepth {
			return nil, false
		}
		return p.array(path, depth)
	case c == '"':
		s, ok := p.str(false)
		if !ok {
			return nil, false
		}
		n := p.newNode(kindString)
		n.text = s
		return n, true
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	case c == 't':
		return p.literal("true", kindBool, true)
	case c == 'f':
		return p.literal("false", kindBool, false)
	case c == 'n':
		return p.literal("null", kindNull, false)
	}
	return nil, false
}

func (p *fastParser) literal(word string, k kind, b bool) (*node, bool) {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return nil, false
	}
	p.pos += len(word)
	n := p.newNode(k)
	n.boolean = b
	return n, true
}

// number reads a number literal as JSON's grammar has it; what follows
// it is checked by the caller's grammar.
func (p *fastParser) number() (*node, bool) {
	d, start := p.data, p.pos
	i := p.pos
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(d) && d[i] == '.' {
		i++
		j := i
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
		if i == j {
			return nil, false
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := i
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
		if i == j {
			return nil, false
		}
	}
	p.pos = i
	n := p.newNode(kindNumber)
	n.text = string(d[start:i])
	return n, true
}

// str reads a string at p.pos (its opening quote). Keys that the request
// schema knows come back as constants, without allocating.
func (p *fastParser) str(key bool) (string, bool) {
	d := p.data
	i := p.pos + 1
	start := i
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			p.pos = i + 1
			if key {
				if k, ok := knownKey(d[start:i]); ok {
					return k, true
				}
			}
			return string(d[start:i]), true
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			return "", false
		}
		i++
	}
	return "", false
}

// escaped reads the rest of a string that holds an escape, decoding the
// escapes encoding/json decodes the same way; \u gives up.
func (p *fastParser) escaped(start int) (string, bool) {
	d := p.data
	buf := make([]byte, 0, 32)
	i := start
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return string(buf), true
		case c < 0x20:
			return "", false
		case c != '\\':
			buf = append(buf, c)
			i++
			continue
		}
		if i+1 >= len(d) {
			return "", false
		}
		switch d[i+1] {
		case '"', '\\', '/':
			buf = append(buf, d[i+1])
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		default: // \u (surrogates, replacement characters) and invalid escapes
			return "", false
		}
		i += 2
	}
	return "", false
}

// knownKey returns the constant for a key of the request schema.
func knownKey(b []byte) (string, bool) {
	switch string(b) { // no allocation: the compiler compares in place
	case "action":
		return "action", true
	case "user_info":
		return "user_info", true
	case "email":
		return "email", true
	case "type":
		return "type", true
	case "first_name":
		return "first_name", true
	case "last_name":
		return "last_name", true
	case "display_name":
		return "display_name", true
	case "password":
		return "password", true
	case "feature":
		return "feature", true
	case "zoom_phone":
		return "zoom_phone", true
	case "user":
		return "user", true
	case "job_title":
		return "job_title", true
	case "dept":
		return "dept", true
	case "timezone":
		return "timezone", true
	case "transfer_email":
		return "transfer_email", true
	}
	return "", false
}

func (p *fastParser) object(path string, depth int) (*node, bool) {
	n := p.newNode(kindObject)
	p.pos++ // {
	base := len(p.stack)
	defer func() { p.stack = p.stack[:base] }()
	p.ws()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return n, true
	}
	for {
		p.ws()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, false
		}
		key, ok := p.str(true)
		if !ok {
			return nil, false
		}
		members := p.stack[base:]
		if len(members) == fastMaxMembers {
			return nil, false
		}
		// As parseObject: a key repeated is reported once, when it is
		// seen the second time, before its value is parsed.
		seen := 0
		for _, m := range members {
			if m.key == key {
				seen++
			}
		}
		if seen == 1 {
			p.dups = append(p.dups, FieldError{Field: join(path, key), Reason: "duplicate key"})
		}
		p.ws()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, false
		}
		p.pos++
		p.ws()
		childPath := ""
		if p.pos < len(p.data) && (p.data[p.pos] == '{' || p.data[p.pos] == '[') {
			childPath = join(path, key)
		}
		v, ok := p.value(childPath, depth+1)
		if !ok {
			return nil, false
		}
		p.stack = append(p.stack, member{key: key, value: v})
		p.ws()
		if p.pos >= len(p.data) {
			return nil, false
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			n.members = append([]member(nil), p.stack[base:]...)
			return n, true
		default:
			return nil, false
		}
	}
}

func (p *fastParser) array(path string, depth int) (*node, bool) {
	n := p.newNode(kindArray)
	p.pos++ // [
	p.ws()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return n, true
	}
	for i := 0; ; i++ {
		p.ws()
		childPath := ""
		if p.pos < len(p.data) && (p.data[p.pos] == '{' || p.data[p.pos] == '[') {
			childPath = path + "[" + strconv.Itoa(i) + "]"
		}
		v, ok := p.value(childPath, depth+1)
		if !ok {
			return nil, false
		}
		n.elems = append(n.elems, v)
		p.ws()
		if p.pos >= len(p.data) {
			return nil, false
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return n, true
		default:
			return nil, false
		}
	}
}
