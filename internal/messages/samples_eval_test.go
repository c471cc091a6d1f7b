package messages

import (
	"errors"
	"fmt"
	"go/ast"
	goparser "go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// This file is a small evaluator of the Go expressions that build the
// sample bodies of the tests: string and integer literals, +, -, *, /, <<,
// conversions, len, strings.Repeat, strings.Join, strconv.Quote,
// fmt.Sprintf, package constants and variables (of this module's
// packages too), local variables, table fields and the test helpers whose
// body is a single return statement, such as body and update.
// TestExportSamples uses it to collect the bodies without running the
// tests; see samples_export_test.go.

// srcPackage is the parsed source of one package directory: its
// package-level values, functions and types, and every import name used
// in its files.
type srcPackage struct {
	dir     string
	fset    *token.FileSet
	files   map[string]*ast.File // by base name
	values  map[string]*binding
	funcs   map[string]*ast.FuncDecl
	types   map[string]ast.Expr
	imports map[string]string // import name -> path
	scope   *scope
}

// srcLoader parses package directories on demand.
type srcLoader struct {
	module string // module path, e.g. github.com/zoomprov/consumer
	root   string // module root directory
	pkgs   map[string]*srcPackage
}

// load parses every .go file of dir (tests too, when withTests).
func (l *srcLoader) load(dir string, withTests bool) (*srcPackage, error) {
	key := fmt.Sprintf("%s|%t", dir, withTests)
	if p, ok := l.pkgs[key]; ok {
		return p, nil
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	p := &srcPackage{
		dir: dir, fset: token.NewFileSet(), files: map[string]*ast.File{}, values: map[string]*binding{},
		funcs: map[string]*ast.FuncDecl{}, types: map[string]ast.Expr{}, imports: map[string]string{},
	}
	p.scope = &scope{pkg: p, loader: l, vars: p.values}
	for _, name := range names {
		if !withTests && strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := goparser.ParseFile(p.fset, name, nil, goparser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		p.files[filepath.Base(name)] = f
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			n := filepath.Base(path)
			if imp.Name != nil {
				n = imp.Name.Name
			}
			p.imports[n] = path
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					p.funcs[d.Name.Name] = d
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.ValueSpec:
						for i, n := range s.Names {
							if i < len(s.Values) && len(s.Names) == len(s.Values) {
								p.values[n.Name] = &binding{expr: s.Values[i], sc: p.scope}
							}
						}
					case *ast.TypeSpec:
						p.types[s.Name.Name] = s.Type
					}
				}
			}
		}
	}
	if l.pkgs == nil {
		l.pkgs = map[string]*srcPackage{}
	}
	l.pkgs[key] = p
	return p, nil
}

// binding is a name's value: an expression evaluated lazily in sc, or an
// already known value.
type binding struct {
	expr    ast.Expr
	sc      *scope
	val     any
	known   bool
	unknown bool // bound, but to something the evaluator cannot know
}

// scope is one level of names.
type scope struct {
	parent *scope
	vars   map[string]*binding
	pkg    *srcPackage
	loader *srcLoader
	depth  int
}

func (s *scope) child() *scope {
	return &scope{parent: s, vars: map[string]*binding{}, pkg: s.pkg, loader: s.loader, depth: s.depth}
}

func (s *scope) lookup(name string) (*binding, bool) {
	for c := s; c != nil; c = c.parent {
		if b, ok := c.vars[name]; ok {
			return b, true
		}
	}
	return nil, false
}

// structVal is one element of a table: a struct literal's fields.
type structVal struct {
	fields map[string]ast.Expr
	sc     *scope
}

var errNotEvaluable = errors.New("not evaluable")

// notEvaluable reports e as beyond the evaluator.
func (s *scope) notEvaluable(e ast.Expr) error {
	return fmt.Errorf("%w: %s", errNotEvaluable, exprString(s.pkg.fset, e))
}

func exprString(fset *token.FileSet, e ast.Expr) string {
	var b strings.Builder
	if err := printer.Fprint(&b, fset, e); err != nil {
		return fmt.Sprintf("%T", e)
	}
	s := b.String()
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// eval evaluates e in s.
func (s *scope) eval(e ast.Expr) (any, error) {
	if s.depth > 64 {
		return nil, s.notEvaluable(e)
	}
	switch e := e.(type) {
	case *ast.BasicLit:
		switch e.Kind {
		case token.STRING:
			return strconv.Unquote(e.Value)
		case token.INT:
			return strconv.ParseInt(strings.ReplaceAll(e.Value, "_", ""), 0, 64)
		case token.CHAR:
			v, _, _, err := strconv.UnquoteChar(e.Value[1:len(e.Value)-1], '\'')
			return int64(v), err
		}
	case *ast.ParenExpr:
		return s.eval(e.X)
	case *ast.Ident:
		return s.ident(e)
	case *ast.SelectorExpr:
		return s.selector(e)
	case *ast.UnaryExpr:
		if e.Op == token.SUB {
			v, err := s.eval(e.X)
			if n, ok := v.(int64); ok && err == nil {
				return -n, nil
			}
		}
	case *ast.BinaryExpr:
		return s.binary(e)
	case *ast.CallExpr:
		return s.call(e)
	case *ast.CompositeLit:
		return s.composite(e)
	case *ast.SliceExpr:
		return s.slice(e)
	}
	return nil, s.notEvaluable(e)
}

// slice evaluates s[lo:hi] of a string.
func (s *scope) slice(e *ast.SliceExpr) (any, error) {
	v, err := s.eval(e.X)
	str, ok := v.(string)
	if err != nil || !ok || e.Slice3 {
		return nil, s.notEvaluable(e)
	}
	bound := func(b ast.Expr, def int) (int, bool) {
		if b == nil {
			return def, true
		}
		n, err := s.eval(b)
		i, ok := n.(int64)
		return int(i), err == nil && ok
	}
	lo, ok1 := bound(e.Low, 0)
	hi, ok2 := bound(e.High, len(str))
	if !ok1 || !ok2 || lo < 0 || hi < lo || hi > len(str) {
		return nil, s.notEvaluable(e)
	}
	return str[lo:hi], nil
}

func (s *scope) ident(e *ast.Ident) (any, error) {
	if b, ok := s.lookup(e.Name); ok {
		return s.resolve(b, e)
	}
	switch e.Name {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return nil, s.notEvaluable(e)
}

func (s *scope) resolve(b *binding, e ast.Expr) (any, error) {
	switch {
	case b.unknown:
		return nil, s.notEvaluable(e)
	case b.known:
		return b.val, nil
	}
	c := *b.sc
	c.depth = s.depth + 1
	v, err := c.eval(b.expr)
	if err != nil {
		return nil, err
	}
	b.val, b.known = v, true
	return v, nil
}

func (s *scope) selector(e *ast.SelectorExpr) (any, error) {
	x, ok := e.X.(*ast.Ident)
	if !ok {
		return nil, s.notEvaluable(e)
	}
	if b, ok := s.lookup(x.Name); ok {
		// A table element's field, such as tc.in.
		v, err := s.resolve(b, x)
		if err != nil {
			return nil, err
		}
		sv, ok := v.(*structVal)
		if !ok {
			return nil, s.notEvaluable(e)
		}
		fe, ok := sv.fields[e.Sel.Name]
		if !ok {
			return "", nil // an omitted field is its zero value; only strings are asked for
		}
		c := *sv.sc
		c.depth = s.depth + 1
		return c.eval(fe)
	}
	// A qualified name: a constant or variable of one of this module's
	// packages.
	p, err := s.importedPackage(x.Name)
	if err != nil {
		return nil, s.notEvaluable(e)
	}
	b, ok := p.values[e.Sel.Name]
	if !ok {
		return nil, s.notEvaluable(e)
	}
	return p.scope.resolve(b, e)
}

// importedPackage loads the package imported as name, if it is one of
// this module's.
func (s *scope) importedPackage(name string) (*srcPackage, error) {
	path, ok := s.pkg.imports[name]
	if !ok {
		return nil, errNotEvaluable
	}
	rel, ok := strings.CutPrefix(path, s.loader.module+"/")
	if !ok {
		return nil, errNotEvaluable
	}
	return s.loader.load(filepath.Join(s.loader.root, filepath.FromSlash(rel)), false)
}

func (s *scope) binary(e *ast.BinaryExpr) (any, error) {
	x, err := s.eval(e.X)
	if err != nil {
		return nil, err
	}
	y, err := s.eval(e.Y)
	if err != nil {
		return nil, err
	}
	switch x := x.(type) {
	case string:
		if y, ok := y.(string); ok && e.Op == token.ADD {
			return x + y, nil
		}
	case int64:
		y, ok := y.(int64)
		if !ok {
			break
		}
		switch e.Op {
		case token.ADD:
			return x + y, nil
		case token.SUB:
			return x - y, nil
		case token.MUL:
			return x * y, nil
		case token.QUO:
			if y != 0 {
				return x / y, nil
			}
		case token.SHL:
			return x << y, nil
		case token.SHR:
			return x >> y, nil
		}
	}
	return nil, s.notEvaluable(e)
}

func (s *scope) args(e *ast.CallExpr) ([]any, error) {
	if e.Ellipsis.IsValid() {
		return nil, s.notEvaluable(e)
	}
	out := make([]any, len(e.Args))
	for i, a := range e.Args {
		v, err := s.eval(a)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (s *scope) call(e *ast.CallExpr) (any, error) {
	// Conversions: []byte(x), string(x), Action(x) and the like.
	if at, ok := e.Fun.(*ast.ArrayType); ok && len(e.Args) == 1 {
		if id, ok := at.Elt.(*ast.Ident); ok && id.Name == "byte" && at.Len == nil {
			return s.eval(e.Args[0])
		}
	}
	if id, ok := e.Fun.(*ast.Ident); ok && len(e.Args) == 1 {
		if _, isType := s.pkg.types[id.Name]; isType || id.Name == "string" {
			return s.eval(e.Args[0])
		}
	}
	args, err := s.args(e)
	if err != nil {
		return nil, err
	}
	switch fn := e.Fun.(type) {
	case *ast.Ident:
		if fn.Name == "len" && len(args) == 1 {
			switch a := args[0].(type) {
			case string:
				return int64(len(a)), nil
			case []any:
				return int64(len(a)), nil
			}
			return nil, s.notEvaluable(e)
		}
		if d, ok := s.pkg.funcs[fn.Name]; ok {
			return s.callFunc(d, args, e)
		}
	case *ast.SelectorExpr:
		x, ok := fn.X.(*ast.Ident)
		if !ok {
			break
		}
		if _, local := s.lookup(x.Name); local {
			break
		}
		return s.callLibrary(s.pkg.imports[x.Name], fn.Sel.Name, args, e)
	}
	return nil, s.notEvaluable(e)
}

// callFunc evaluates a call of a package function whose body is a single
// return statement, with its parameters bound to args.
func (s *scope) callFunc(d *ast.FuncDecl, args []any, e ast.Expr) (any, error) {
	if d.Body == nil || len(d.Body.List) != 1 || d.Type.TypeParams != nil {
		return nil, s.notEvaluable(e)
	}
	ret, ok := d.Body.List[0].(*ast.ReturnStmt)
	if !ok || len(ret.Results) != 1 {
		return nil, s.notEvaluable(e)
	}
	c := s.pkg.scope.child()
	c.depth = s.depth + 1
	i := 0
	for _, f := range d.Type.Params.List {
		for _, n := range f.Names {
			if i >= len(args) {
				return nil, s.notEvaluable(e)
			}
			c.vars[n.Name] = &binding{val: args[i], known: true}
			i++
		}
	}
	if i != len(args) {
		return nil, s.notEvaluable(e)
	}
	return c.eval(ret.Results[0])
}

// callLibrary evaluates the few standard-library functions the samples
// are built with.
func (s *scope) callLibrary(path, name string, args []any, e ast.Expr) (any, error) {
	str := func(i int) (string, bool) {
		if i >= len(args) {
			return "", false
		}
		v, ok := args[i].(string)
		return v, ok
	}
	switch path + "." + name {
	case "strings.Repeat":
		if len(args) != 2 {
			break
		}
		a, ok1 := str(0)
		if n, ok2 := args[1].(int64); ok1 && ok2 && n >= 0 {
			return strings.Repeat(a, int(n)), nil
		}
	case "strconv.Quote":
		if a, ok := str(0); ok && len(args) == 1 {
			return strconv.Quote(a), nil
		}
	case "strings.Join":
		if len(args) != 2 {
			break
		}
		list, ok1 := args[0].([]any)
		sep, ok2 := str(1)
		if ok1 && ok2 {
			parts := make([]string, len(list))
			for i, v := range list {
				p, ok := v.(string)
				if !ok {
					return nil, s.notEvaluable(e)
				}
				parts[i] = p
			}
			return strings.Join(parts, sep), nil
		}
	case "fmt.Sprintf":
		if f, ok := str(0); ok {
			return fmt.Sprintf(f, args[1:]...), nil
		}
	}
	return nil, s.notEvaluable(e)
}

// composite evaluates a slice literal: a []any of its elements, each a
// value or, for a table of structs, a *structVal.
func (s *scope) composite(e *ast.CompositeLit) (any, error) {
	at, ok := e.Type.(*ast.ArrayType)
	if !ok || at.Len != nil {
		return nil, s.notEvaluable(e)
	}
	fields, isStruct := s.structFields(at.Elt)
	out := make([]any, 0, len(e.Elts))
	for _, el := range e.Elts {
		if !isStruct {
			v, err := s.eval(el)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			continue
		}
		cl, ok := el.(*ast.CompositeLit)
		if !ok {
			return nil, s.notEvaluable(el)
		}
		sv := &structVal{fields: map[string]ast.Expr{}, sc: s}
		for i, f := range cl.Elts {
			if kv, ok := f.(*ast.KeyValueExpr); ok {
				if k, ok := kv.Key.(*ast.Ident); ok {
					sv.fields[k.Name] = kv.Value
				}
				continue
			}
			if i < len(fields) {
				sv.fields[fields[i]] = f
			}
		}
		out = append(out, sv)
	}
	return out, nil
}

// structFields returns the field names, in order, of a struct type given
// as a literal or by the name of a type of the package.
func (s *scope) structFields(t ast.Expr) ([]string, bool) {
	if id, ok := t.(*ast.Ident); ok {
		t = s.pkg.types[id.Name]
	}
	st, ok := t.(*ast.StructType)
	if !ok {
		return nil, false
	}
	var names []string
	for _, f := range st.Fields.List {
		for _, n := range f.Names {
			names = append(names, n.Name)
		}
	}
	return names, true
}

// moduleRoot returns the module's path and root directory, found from the
// working directory.
func moduleRoot() (module, root string, err error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			for line := range strings.SplitSeq(string(b), "\n") {
				if m, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
					return strings.TrimSpace(m), dir, nil
				}
			}
			return "", "", errors.New("go.mod without a module line")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
