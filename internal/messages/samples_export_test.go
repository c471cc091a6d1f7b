package messages

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// updateSamples makes TestExportSamples rewrite samplesPath.
var updateSamples = flag.Bool("update", false, "TestExportSamples: rewrite "+samplesPath)

// samplesPath is the file TestExportSamples keeps up to date: every sample
// body of the tests with the Go decoder's verdict on it, which the
// separate module api/schematest checks the JSON Schemas in api/schemas
// against.
const samplesPath = "../../api/schematest/testdata/samples.json"

// The kinds of request body, each with its decoder and its schema
// (api/schemas/<kind>.schema.json).
const (
	kindCreate = "create"
	kindUpdate = "update"
	kindStatus = "status"
	kindDelete = "delete"
	// kindResult is a result event, as the service publishes it.
	kindResult = "result"
)

var sampleKinds = []string{kindCreate, kindUpdate, kindStatus, kindDelete}

// decoderKinds maps the decoders to the kind of body they read.
var decoderKinds = map[string]string{
	"Decode": kindCreate, "DecodeUpdate": kindUpdate, "DecodeStatus": kindStatus, "DecodeDelete": kindDelete,
}

// decodeKind runs kind's decoder on body.
func decodeKind(k string, body []byte) error {
	switch k {
	case kindCreate:
		_, err := Decode(body)
		return err
	case kindUpdate:
		_, err := DecodeUpdate(body)
		return err
	case kindStatus:
		_, err := DecodeStatus(body)
		return err
	case kindDelete:
		_, err := DecodeDelete(body)
		return err
	case kindResult:
		_, err := DecodeEvent(body)
		return err
	}
	panic("unknown kind " + k)
}

// samplesFile is the JSON of samplesPath.
type samplesFile struct {
	Comment string `json:"comment"`
	// Samples are the bodies, each with its kind and the decoder's verdict.
	Samples []sampleJSON `json:"samples"`
	// NotCollected lists the decoder calls and table entries whose body is
	// computed at run time or otherwise beyond the evaluator, so that
	// what the comparison leaves out is written down.
	NotCollected []notCollected `json:"not_collected"`
}

type sampleJSON struct {
	// Sources are where the body appears: a file, a function and the
	// table case or seed.
	Sources []string `json:"sources"`
	Kind    string   `json:"kind"`
	// Exactly one of the next three holds the body: as text when it is
	// valid UTF-8 of at most 4 KiB, else base64, or gzip then base64 when
	// longer.
	Body       *string `json:"body,omitempty"`
	BodyBase64 string  `json:"body_base64,omitempty"`
	BodyGzip   string  `json:"body_gzip_base64,omitempty"`
	// Valid is the Go decoder's verdict; Errors its problems, for people.
	Valid  bool             `json:"valid"`
	Errors []fieldErrorJSON `json:"errors,omitempty"`
}

type fieldErrorJSON struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

type notCollected struct {
	Source string `json:"source"`
	Expr   string `json:"expr"`
}

const maxPlainBody = 4 << 10

func encodeSample(s sampleJSON, body []byte) (sampleJSON, error) {
	switch {
	case len(body) > maxPlainBody:
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		if _, err := zw.Write(body); err != nil {
			return s, err
		}
		if err := zw.Close(); err != nil {
			return s, err
		}
		s.BodyGzip = base64.StdEncoding.EncodeToString(b.Bytes())
	case !utf8.Valid(body):
		s.BodyBase64 = base64.StdEncoding.EncodeToString(body)
	default:
		text := string(body)
		s.Body = &text
	}
	return s, nil
}

func (s sampleJSON) body() ([]byte, error) {
	switch {
	case s.Body != nil:
		return []byte(*s.Body), nil
	case s.BodyBase64 != "":
		return base64.StdEncoding.DecodeString(s.BodyBase64)
	default:
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
}

// Ensure samplesPath holds every sample body of the tests with the Go
// decoders' verdicts: the bodies of the table-driven tests of this package
// (wherever a literal or table field reaches Decode, DecodeUpdate,
// DecodeStatus or DecodeDelete), the seeds and corpora of the fuzz targets
// that call them, the fixtures in testdata, the poison catalogue of
// internal/provision/poison_test.go, and probes of the e-mail rule. With
// -update it writes the file; otherwise it fails when the file is stale.
func TestExportSamples(t *testing.T) {
	got, err := collectSamples()
	if err != nil {
		t.Fatalf("collectSamples() error = %v", err)
	}
	counts := map[string]int{}
	poison := 0
	for _, s := range got.Samples {
		counts[s.Kind]++
		for _, src := range s.Sources {
			if strings.HasPrefix(src, "internal/provision/poison_test.go ") {
				poison++
				break
			}
		}
	}
	// The collector can fail quietly (an evaluator gap drops bodies), so
	// hold it to what the tests are known to hold.
	for _, k := range sampleKinds {
		if counts[k] < 20 {
			t.Errorf("collectSamples() found %d %s samples; want at least 20", counts[k], k)
		}
	}
	if counts[kindResult] < len(Outcomes) {
		t.Errorf("collectSamples() found %d result events; want at least %d, one per outcome", counts[kindResult], len(Outcomes))
	}
	if poison < 40 {
		t.Errorf("collectSamples() found %d samples of the poison catalogue; want at least 40", poison)
	}
	if len(got.NotCollected) > 40 {
		t.Errorf("collectSamples() could not evaluate %d bodies; want at most 40 (the evaluator lost track):\n%v", len(got.NotCollected), got.NotCollected)
	}

	if *updateSamples {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(got); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(samplesPath, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s: %d samples (%v), %d not collected", samplesPath, len(got.Samples), counts, len(got.NotCollected))
		return
	}
	b, err := os.ReadFile(samplesPath)
	if err != nil {
		t.Fatalf("%v; run go test ./internal/messages -run TestExportSamples -update", err)
	}
	var have samplesFile
	if err := json.Unmarshal(b, &have); err != nil {
		t.Fatalf("%s: %v; run go test ./internal/messages -run TestExportSamples -update", samplesPath, err)
	}
	if diff := diffSamples(have, got); diff != "" {
		t.Errorf("%s is stale (the tests' bodies or the decoders changed): %s\nrun go test ./internal/messages -run TestExportSamples -update, then the schema test: cd api/schematest && go test ./...", samplesPath, diff)
	}
}

// diffSamples describes how have differs from want, comparing the bodies
// themselves (the gzip encoding may differ between Go versions).
func diffSamples(have, want samplesFile) string {
	key := func(s sampleJSON) (string, error) {
		b, err := s.body()
		if err != nil {
			return "", err
		}
		e, _ := json.Marshal(struct {
			Sources []string
			Kind    string
			Body    []byte
			Valid   bool
			Errors  []fieldErrorJSON
		}{s.Sources, s.Kind, b, s.Valid, s.Errors})
		return string(e), nil
	}
	var diffs []string
	haveKeys := map[string]bool{}
	for _, s := range have.Samples {
		k, err := key(s)
		if err != nil {
			return fmt.Sprintf("sample %v: %v", s.Sources, err)
		}
		haveKeys[k] = true
	}
	wantKeys := map[string]bool{}
	for _, s := range want.Samples {
		k, _ := key(s)
		wantKeys[k] = true
		if !haveKeys[k] {
			diffs = append(diffs, fmt.Sprintf("missing or changed: %s %v", s.Kind, s.Sources))
		}
	}
	for _, s := range have.Samples {
		if k, _ := key(s); !wantKeys[k] {
			diffs = append(diffs, fmt.Sprintf("no longer in the tests, or changed: %s %v", s.Kind, s.Sources))
		}
	}
	if !slices.Equal(have.NotCollected, want.NotCollected) {
		diffs = append(diffs, "the list of bodies not collected changed")
	}
	if len(diffs) > 10 {
		diffs = append(diffs[:10], fmt.Sprintf("and %d more", len(diffs)-10))
	}
	return strings.Join(diffs, "; ")
}

// collector gathers the samples.
type collector struct {
	loader  *srcLoader
	root    string
	samples []sampleJSON
	bodies  [][]byte
	byKey   map[string]int
	missed  []notCollected
	// fuzzKinds are the kinds each fuzz target decodes, for its corpus.
	fuzzKinds map[string][]string
	// fixtureKinds are the kinds of the fuzz targets seeded with the
	// fixtures in testdata (addSeeds).
	fixtureKinds []string
}

// add records body as a sample of kind seen at source.
func (c *collector) add(source, kind string, body []byte) {
	key := kind + "\x00" + string(body)
	if i, ok := c.byKey[key]; ok {
		if !slices.Contains(c.samples[i].Sources, source) {
			c.samples[i].Sources = append(c.samples[i].Sources, source)
		}
		return
	}
	c.byKey[key] = len(c.samples)
	c.samples = append(c.samples, sampleJSON{Sources: []string{source}, Kind: kind})
	c.bodies = append(c.bodies, bytes.Clone(body))
}

func (c *collector) miss(source, expr string) {
	n := notCollected{Source: source, Expr: expr}
	if !slices.Contains(c.missed, n) {
		c.missed = append(c.missed, n)
	}
}

func collectSamples() (samplesFile, error) {
	module, root, err := moduleRoot()
	if err != nil {
		return samplesFile{}, err
	}
	c := &collector{loader: &srcLoader{module: module, root: root}, root: root, byKey: map[string]int{}, fuzzKinds: map[string][]string{}}

	// The tests of this package.
	dir, err := os.Getwd()
	if err != nil {
		return samplesFile{}, err
	}
	pkg, err := c.loader.load(dir, true)
	if err != nil {
		return samplesFile{}, err
	}
	var files []string
	for name := range pkg.files {
		if strings.HasSuffix(name, "_test.go") && !strings.HasPrefix(name, "samples_") {
			files = append(files, name)
		}
	}
	sort.Strings(files)
	for _, name := range files {
		rel := c.rel(filepath.Join(dir, name))
		f := pkg.files[name]
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
				c.walkFunc(rel, pkg, f.Name.Name == "messages", fd)
			}
		}
	}

	// The fixtures, and the fuzz corpora.
	fixtures, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		return samplesFile{}, err
	}
	for _, f := range fixtures {
		b, err := os.ReadFile(f)
		if err != nil {
			return samplesFile{}, err
		}
		for _, k := range c.fixtureKinds {
			c.add(c.rel(filepath.Join(dir, f)), k, b)
		}
	}
	targets := make([]string, 0, len(c.fuzzKinds))
	for name := range c.fuzzKinds {
		targets = append(targets, name)
	}
	sort.Strings(targets)
	for _, name := range targets {
		entries, err := filepath.Glob(filepath.Join("testdata", "fuzz", name, "*"))
		if err != nil {
			return samplesFile{}, err
		}
		sort.Strings(entries)
		for _, e := range entries {
			b, err := readCorpusEntry(e)
			if err != nil {
				return samplesFile{}, fmt.Errorf("%s: %w", e, err)
			}
			for _, k := range c.fuzzKinds[name] {
				c.add(c.rel(filepath.Join(dir, e)), k, b)
			}
		}
	}

	// The poison catalogue of internal/provision.
	if err := c.poison(filepath.Join(root, "internal", "provision")); err != nil {
		return samplesFile{}, err
	}

	c.emailProbes()
	if err := c.resultEvents(); err != nil {
		return samplesFile{}, err
	}

	out := samplesFile{
		Comment: "Generated by go test ./internal/messages -run TestExportSamples -update from the sample bodies of the tests; do not edit. " +
			"Each sample holds a request body, its kind (the decoder and the schema: api/schemas/<kind>.schema.json) and the Go decoder's verdict. " +
			"api/schematest checks that the JSON Schemas agree.",
		NotCollected: c.missed,
	}
	for i, s := range c.samples {
		body := c.bodies[i]
		err := decodeKind(s.Kind, body)
		s.Valid = err == nil
		var ve *ValidationError
		if errors.As(err, &ve) {
			for _, f := range ve.Fields {
				s.Errors = append(s.Errors, fieldErrorJSON{Field: f.Field, Reason: f.Reason})
			}
		}
		s, err = encodeSample(s, body)
		if err != nil {
			return samplesFile{}, err
		}
		out.Samples = append(out.Samples, s)
	}
	if out.NotCollected == nil {
		out.NotCollected = []notCollected{}
	}
	return out, nil
}

func (c *collector) rel(path string) string {
	r, err := filepath.Rel(c.root, path)
	if err != nil {
		return path
	}
	return filepath.ToSlash(r)
}

// readCorpusEntry reads a fuzz corpus file of one []byte or string value.
func readCorpusEntry(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.SplitN(strings.TrimSpace(string(b)), "\n", 2)
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		return nil, errors.New("not a go test fuzz v1 file of one value")
	}
	v := strings.TrimSpace(lines[1])
	for _, p := range []string{"[]byte(", "string("} {
		if inner, ok := strings.CutPrefix(v, p); ok && strings.HasSuffix(inner, ")") {
			s, err := strconv.Unquote(strings.TrimSuffix(inner, ")"))
			return []byte(s), err
		}
	}
	return nil, errors.New("not a []byte or string value")
}

// walker walks one function, following the values of its variables, and
// collects the bodies that reach a decoder.
type walker struct {
	c      *collector
	source string   // file and function
	cases  []string // the table cases being walked, outermost first
	// fuzzArg is the *testing.F parameter of a fuzz target, and fuzzKinds
	// the kinds its fuzz function decodes.
	fuzzArg   string
	fuzzKinds []string
	// onReturn, if set, sees every return statement.
	onReturn func(*ast.ReturnStmt, *scope)
	// local: the function is in package messages, not messages_test.
	local bool
}

func (c *collector) walkFunc(file string, pkg *srcPackage, local bool, fd *ast.FuncDecl) {
	w := &walker{c: c, source: file + " " + fd.Name.Name, local: local}
	sc := pkg.scope.child()
	bindUnknown(sc, fd.Type.Params)
	if strings.HasPrefix(fd.Name.Name, "Fuzz") && len(fd.Type.Params.List) == 1 && len(fd.Type.Params.List[0].Names) == 1 {
		w.fuzzArg = fd.Type.Params.List[0].Names[0].Name
		w.fuzzKinds = fuzzKindsOf(pkg, fd, w.fuzzArg)
		if len(w.fuzzKinds) > 0 {
			c.fuzzKinds[fd.Name.Name] = w.fuzzKinds
		}
	}
	w.stmt(fd.Body, sc)
}

// fuzzKindsOf returns the kinds of body the fuzz function of target fd
// decodes.
func fuzzKindsOf(pkg *srcPackage, fd *ast.FuncDecl, f string) []string {
	var kinds []string
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || !isMethodCall(call, f, "Fuzz") || len(call.Args) != 1 {
			return true
		}
		ast.Inspect(call.Args[0], func(n ast.Node) bool {
			if inner, ok := n.(*ast.CallExpr); ok {
				if k := decoderName(pkg, inner, true); k != "" && !slices.Contains(kinds, decoderKinds[k]) {
					kinds = append(kinds, decoderKinds[k])
				}
			}
			return true
		})
		return false
	})
	sort.Strings(kinds)
	return kinds
}

func isMethodCall(call *ast.CallExpr, recv, name string) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != name {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == recv
}

// decoderName returns the decoder call calls ("Decode", ...), or "";
// local says whether the call is in package messages itself.
func decoderName(pkg *srcPackage, call *ast.CallExpr, local bool) string {
	var name string
	switch fn := call.Fun.(type) {
	case *ast.Ident:
		if local {
			name = fn.Name
		}
	case *ast.SelectorExpr:
		if id, ok := fn.X.(*ast.Ident); ok && strings.HasSuffix(pkg.imports[id.Name], "/internal/messages") {
			name = fn.Sel.Name
		}
	}
	if _, ok := decoderKinds[name]; ok && len(call.Args) == 1 {
		return name
	}
	return ""
}

func bindUnknown(sc *scope, fields *ast.FieldList) {
	if fields == nil {
		return
	}
	for _, f := range fields.List {
		for _, n := range f.Names {
			sc.vars[n.Name] = &binding{unknown: true}
		}
	}
}

func (w *walker) label() string {
	if len(w.cases) == 0 {
		return w.source
	}
	return w.source + "/" + strings.Join(w.cases, "/")
}

func (w *walker) stmt(st ast.Stmt, sc *scope) {
	switch st := st.(type) {
	case nil:
	case *ast.BlockStmt:
		c := sc.child()
		for _, s := range st.List {
			w.stmt(s, c)
		}
	case *ast.AssignStmt:
		for _, e := range st.Rhs {
			w.expr(e, sc)
		}
		for i, l := range st.Lhs {
			id, ok := l.(*ast.Ident)
			if !ok || id.Name == "_" {
				continue
			}
			b := &binding{unknown: true}
			if len(st.Lhs) == len(st.Rhs) && st.Tok == token.DEFINE {
				b = &binding{expr: st.Rhs[i], sc: sc}
			}
			if st.Tok == token.DEFINE {
				sc.vars[id.Name] = b
			} else if old, ok := sc.lookup(id.Name); ok {
				// Reassigned: from here on, unknown.
				*old = binding{unknown: true}
			}
		}
	case *ast.DeclStmt:
		gd, ok := st.Decl.(*ast.GenDecl)
		if !ok {
			return
		}
		for _, s := range gd.Specs {
			vs, ok := s.(*ast.ValueSpec)
			if !ok {
				continue
			}
			for i, n := range vs.Names {
				if len(vs.Names) == len(vs.Values) {
					w.expr(vs.Values[i], sc)
					sc.vars[n.Name] = &binding{expr: vs.Values[i], sc: sc}
				} else {
					sc.vars[n.Name] = &binding{unknown: true}
				}
			}
		}
	case *ast.RangeStmt:
		w.rangeStmt(st, sc)
	case *ast.ExprStmt:
		w.expr(st.X, sc)
	case *ast.ReturnStmt:
		for _, e := range st.Results {
			w.expr(e, sc)
		}
		if w.onReturn != nil {
			w.onReturn(st, sc)
		}
	case *ast.IfStmt:
		c := sc.child()
		w.stmt(st.Init, c)
		w.expr(st.Cond, c)
		w.stmt(st.Body, c)
		w.stmt(st.Else, c)
	case *ast.ForStmt:
		c := sc.child()
		w.stmt(st.Init, c)
		if st.Cond != nil {
			w.expr(st.Cond, c)
		}
		w.stmt(st.Post, c)
		w.stmt(st.Body, c)
	case *ast.SwitchStmt:
		c := sc.child()
		w.stmt(st.Init, c)
		if st.Tag != nil {
			w.expr(st.Tag, c)
		}
		w.stmt(st.Body, c)
	case *ast.TypeSwitchStmt:
		c := sc.child()
		w.stmt(st.Init, c)
		w.stmt(st.Assign, c)
		w.stmt(st.Body, c)
	case *ast.CaseClause:
		c := sc.child()
		for _, e := range st.List {
			w.expr(e, c)
		}
		for _, s := range st.Body {
			w.stmt(s, c)
		}
	case *ast.LabeledStmt:
		w.stmt(st.Stmt, sc)
	case *ast.DeferStmt:
		w.expr(st.Call, sc)
	case *ast.GoStmt:
		w.expr(st.Call, sc)
	default:
		ast.Inspect(st, func(n ast.Node) bool {
			if e, ok := n.(ast.Expr); ok {
				w.expr(e, sc)
				return false
			}
			return true
		})
	}
}

// rangeStmt walks the body once per element of a table or list the
// evaluator knows, with the loop variables bound to it; otherwise once,
// with them unknown.
func (w *walker) rangeStmt(st *ast.RangeStmt, sc *scope) {
	w.expr(st.X, sc)
	bind := func(c *scope, e ast.Expr, b *binding) {
		if id, ok := e.(*ast.Ident); ok && id.Name != "_" {
			c.vars[id.Name] = b
		}
	}
	v, err := sc.eval(st.X)
	list, ok := v.([]any)
	if err != nil || !ok {
		c := sc.child()
		bind(c, st.Key, &binding{unknown: true})
		bind(c, st.Value, &binding{unknown: true})
		w.stmt(st.Body, c)
		return
	}
	for i, el := range list {
		c := sc.child()
		bind(c, st.Key, &binding{val: int64(i), known: true})
		bind(c, st.Value, &binding{val: el, known: true})
		name := "#" + strconv.Itoa(i)
		if sv, ok := el.(*structVal); ok {
			if ne, ok := sv.fields["name"]; ok {
				if n, err := sv.sc.eval(ne); err == nil {
					if s, ok := n.(string); ok && s != "" {
						name = strconv.Quote(s)
					}
				}
			}
		}
		w.cases = append(w.cases, name)
		w.stmt(st.Body, c)
		w.cases = w.cases[:len(w.cases)-1]
	}
}

// expr looks into e for decoder calls, seeds and function literals.
func (w *walker) expr(e ast.Expr, sc *scope) {
	ast.Inspect(e, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncLit:
			if w.fuzzArg != "" && w.isFuzzBody(n, e) {
				return false // its inputs are the fuzzer's
			}
			c := sc.child()
			bindUnknown(c, n.Type.Params)
			w.stmt(n.Body, c)
			return false
		case *ast.CallExpr:
			w.call(n, sc)
		}
		return true
	})
}

// isFuzzBody reports whether fl is the function passed to f.Fuzz in e.
func (w *walker) isFuzzBody(fl *ast.FuncLit, e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	return ok && isMethodCall(call, w.fuzzArg, "Fuzz") && len(call.Args) == 1 && call.Args[0] == fl
}

func (w *walker) call(call *ast.CallExpr, sc *scope) {
	var kinds []string
	var arg ast.Expr
	switch {
	case w.fuzzArg != "" && isMethodCall(call, w.fuzzArg, "Add") && len(call.Args) == 1:
		kinds, arg = w.fuzzKinds, call.Args[0]
	case w.fuzzArg != "" && isFuncCall(call, "addSeeds"):
		for _, k := range w.fuzzKinds {
			if !slices.Contains(w.c.fixtureKinds, k) {
				w.c.fixtureKinds = append(w.c.fixtureKinds, k)
			}
		}
		return
	default:
		name := decoderName(sc.pkg, call, w.local)
		if name == "" {
			return
		}
		kinds, arg = []string{decoderKinds[name]}, call.Args[0]
	}
	if len(kinds) == 0 {
		return
	}
	v, err := sc.eval(arg)
	s, ok := v.(string)
	if err != nil || !ok {
		w.c.miss(w.label(), exprString(sc.pkg.fset, arg))
		return
	}
	for _, k := range kinds {
		w.c.add(w.label(), k, []byte(s))
	}
}

func isFuncCall(call *ast.CallExpr, name string) bool {
	id, ok := call.Fun.(*ast.Ident)
	return ok && id.Name == name
}

// poison collects the poison catalogue: the table poisonCatalogue returns,
// each body of the kind its subject names (a subject that names no action
// or operation carries a creation body).
func (c *collector) poison(dir string) error {
	pkg, err := c.loader.load(dir, true)
	if err != nil {
		return err
	}
	fd, ok := pkg.funcs["poisonCatalogue"]
	if !ok {
		return errors.New("internal/provision: no func poisonCatalogue")
	}
	file := c.rel(pkg.fset.Position(fd.Pos()).Filename)
	w := &walker{c: c, source: file + " " + fd.Name.Name}
	found := 0
	w.onReturn = func(ret *ast.ReturnStmt, sc *scope) {
		if len(ret.Results) != 1 {
			return
		}
		v, err := sc.eval(ret.Results[0])
		list, ok := v.([]any)
		if err != nil || !ok {
			c.miss(w.source, exprString(pkg.fset, ret.Results[0]))
			return
		}
		for i, el := range list {
			sv, ok := el.(*structVal)
			if !ok {
				continue
			}
			str := func(field string) (string, error) {
				e, ok := sv.fields[field]
				if !ok {
					return "", nil
				}
				v, err := sv.sc.eval(e)
				s, _ := v.(string)
				return s, err
			}
			name, _ := str("name")
			if name == "" {
				name = "#" + strconv.Itoa(i)
			}
			source := w.source + "/" + strconv.Quote(name)
			subject, err1 := str("subject")
			body, err2 := str("body")
			if err1 != nil || err2 != nil {
				c.miss(source, exprString(pkg.fset, sv.fields["body"]))
				continue
			}
			c.add(source, kindOfSubject(subject), []byte(body))
			found++
		}
	}
	w.stmt(fd.Body, pkg.scope.child())
	if found == 0 {
		return errors.New("internal/provision: poisonCatalogue yielded no request")
	}
	return nil
}

// kindOfSubject is the kind of body published on a request subject ending
// in token.
func kindOfSubject(tok string) string {
	switch Operation(tok) {
	case OpUpdate:
		return kindUpdate
	case OpDeactivate, OpActivate:
		return kindStatus
	case OpDelete:
		return kindDelete
	}
	return kindCreate
}

// emailProbes adds status requests whose e-mails probe the address rule
// character by character: every ASCII character and the Unicode ones the
// rule treats specially, in the local part and in the domain, and the
// shapes around dots, "@" and the length limit. The e-mail $def is the
// same in every request schema (api/schematest checks it).
func (c *collector) emailProbes() {
	var emails []string
	chars := []rune{}
	for r := rune(0); r < 0x80; r++ {
		chars = append(chars, r)
	}
	chars = append(chars, 0x80, 0x85, 0x9f, 0xa0, 0xa1, 0xe9, 0x1680, 0x1681, 0x2000, 0x200a, 0x200b, 0x2028,
		0x2029, 0x202f, 0x205f, 0x2060, 0x3000, 0x212a, 0xfeff, 0xfffd, 0x1f600, 0x10ffff)
	for _, r := range chars {
		emails = append(emails, "a"+string(r)+"b@example.com", "ab@exa"+string(r)+"mple.com", string(r)+"@example.com", "a@example."+string(r))
	}
	emails = append(emails,
		"a@example.com", "a.b@example.com", ".a@example.com", "a.@example.com", "a..b@example.com",
		"a@.example.com", "a@example.com.", "a@example..com", "a@example", "a@b.c", "@example.com", "a@",
		"a@@example.com", "a@b@example.com", "\"a\"@example.com", "\"a b\"@example.com", "a@[192.0.2.1]",
		"a@[example.com]", "Bob <b@example.com>", "b@example.com (work)", "(c)b@example.com", " a@example.com",
		"a@example.com ", "a@example.com\n", "jörg@exämple.de", "山田@例え.jp", "a+b=c@x.y", "a!#$%&'*+-/=?^_`{|}~@x.y",
		strings.Repeat("a", 116)+"@example.com", strings.Repeat("a", 117)+"@example.com",
		strings.Repeat("é", 116)+"@example.com", strings.Repeat("é", 117)+"@example.com",
		strings.Repeat("😀", 116)+"@example.com", strings.Repeat("😀", 117)+"@example.com",
	)
	for i, e := range emails {
		b, err := json.Marshal(map[string]string{"email": e})
		if err != nil {
			panic(err) // a map of strings always encodes
		}
		c.add(fmt.Sprintf("internal/messages/samples_export_test.go emailProbes/#%d", i), kindStatus, b)
	}
}

// resultEvents adds a result event of every outcome as NewEvent makes it,
// and one of a replayed, traced request.
func (c *collector) resultEvents() error {
	now := time.Date(2026, 11, 28, 12, 12, 20, 512000000, time.UTC)
	base := Result{Email: "alice@example.com", Attempt: 1, StreamSequence: 42}
	for i, o := range Outcomes {
		r := base
		r.RequestID = "hris-" + strconv.Itoa(40+i)
		r.Outcome = o
		switch o {
		case OutcomeCreated:
			r.Action, r.ZoomUserID, r.HTTPStatus = "ssoCreate", "KDcuGIm1QgePTO8WbOqwIQ", 201
		case OutcomeExists:
			r.Action, r.ZoomUserID, r.HTTPStatus, r.ZoomCode, r.ZoomMessage = "create", "KDcuGIm1QgePTO8WbOqwIQ", 409, 1005, "User already in the account: alice@example.com"
		case OutcomeFailed:
			r.Action, r.Reason, r.ZoomMessage = "custCreate", ReasonInvalidRequest, "messages: invalid request: user_info.email: must be a bare email address such as name@example.com, without a display name"
		case OutcomeDeferred:
			r.Action, r.HTTPStatus, r.ZoomCode, r.ZoomMessage, r.RetryAt, r.Attempt = "create", 429, 429, "You have exceeded the daily rate limit (1500) of Create User API requests", "2026-11-29T00:00:00Z", 3
		case OutcomeDeleted:
			r.Action, r.HTTPStatus, r.ZoomCode = "delete", 404, 1001
		default:
			r.Action, r.HTTPStatus = string(o)[:len(o)-1], 204
		}
		b, err := NewEvent(r, now).Marshal()
		if err != nil {
			return err
		}
		c.add("internal/messages/event.go NewEvent/"+string(o), kindResult, b)
	}
	r := base
	r.RequestID, r.ReplayOf, r.Action, r.Outcome, r.HTTPStatus = "hris-4715/replay/5", "hris-4715", "create", OutcomeCreated, 201
	e := NewEvent(r, now)
	e.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	b, err := e.Marshal()
	if err != nil {
		return err
	}
	c.add("internal/messages/event.go NewEvent/replayed, traced", kindResult, b)
	return nil
}
