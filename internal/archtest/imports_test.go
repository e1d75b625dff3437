package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "gstcapture"

// goGst is both go-gst modules: the bindings and go-glib under them.
const goGst = "github.com/go-gst"

// gstreamer is what a package that knows nothing of GStreamer must not reach.
var gstreamer = []string{goGst, module + "/internal/gsthost", module + "/internal/appsink"}

// rule forbids some imports to some packages. Packages are named relative
// to the module ("internal/ring"); a forbidden path also forbids everything
// under it ("github.com/go-gst" forbids github.com/go-gst/go-gst/gst).
type rule struct {
	says   string   // the rule in words, for the failure message
	pkgs   []string // the packages it binds; none: every package of the module but except
	except []string
	forbid []string
	// transitive binds everything the package's non-test files pull in,
	// through any number of packages, standard and third-party ones too.
	// Otherwise the rule binds the package's own imports, from its test
	// files as well.
	transitive bool
}

var rules = []rule{
	{
		says:       "ring, frame and stats are leaves: they import no gstcapture package",
		pkgs:       []string{"internal/ring", "internal/frame", "internal/stats"},
		forbid:     []string{module},
		transitive: true,
	},
	{
		says:       "publish knows nothing of GStreamer",
		pkgs:       []string{"internal/publish"},
		forbid:     gstreamer,
		transitive: true,
	},
	{
		says:       "health drives no pipeline",
		pkgs:       []string{"internal/health"},
		forbid:     gstreamer,
		transitive: true,
	},
	{
		says:   "only gsthost and appsink import go-gst (docs/adr/0001-go-gst-v1.4.md)",
		except: []string{"internal/gsthost", "internal/appsink"},
		forbid: []string{goGst},
	},
	{
		says:       "the console is files: it imports no gstcapture package, and talks to the service only over /api/v1",
		pkgs:       []string{"internal/console"},
		forbid:     []string{module},
		transitive: true,
	},
}

// pkg is the part of `go list -json` output the rules read.
type pkg struct {
	ImportPath   string
	Dir          string
	Module       *struct{ Path string }
	Imports      []string
	TestImports  []string
	XTestImports []string
	GoFiles      []string
	CgoFiles     []string
	TestGoFiles  []string
	XTestGoFiles []string
	Error        *struct{ Err string }
}

func (p *pkg) inModule() bool { return p.Module != nil && p.Module.Path == module }

// listPackages returns every package of the module and everything they
// import, by import path, as the go command resolves them for a cgo build
// (the cgo files are where gsthost and appsink import go-gst).
func listPackages(t *testing.T) map[string]*pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-deps", "-json", module+"/...")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list: %s", stderr.String())
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := &pkg{}
		err := dec.Decode(p)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "decoding go list output")
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

func forbidden(imp string, forbid []string) bool {
	for _, f := range forbid {
		if imp == f || strings.HasPrefix(imp, f+"/") {
			return true
		}
	}
	return false
}

// violation is one forbidden import: chain runs from the package to it.
type violation struct {
	chain []string
	tests bool // imported by test files only
}

// reach walks everything from's non-test files import, breadth first so
// each chain is a shortest one, and returns a chain to each forbidden
// package it meets; it does not walk on from a forbidden package, whose
// own imports are then no news.
func reach(pkgs map[string]*pkg, from string, forbid []string) []violation {
	var out []violation
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		p := pkgs[cur]
		if p == nil {
			continue // "C", or a package go list could not find
		}
		for _, imp := range p.Imports {
			if _, seen := prev[imp]; seen {
				continue
			}
			prev[imp] = cur
			if !forbidden(imp, forbid) {
				queue = append(queue, imp)
				continue
			}
			chain := []string{imp}
			for at := cur; at != ""; at = prev[at] {
				chain = append(chain, at)
			}
			slices.Reverse(chain)
			out = append(out, violation{chain: chain})
		}
	}
	return out
}

// direct returns p's own forbidden imports, test files included.
func direct(p *pkg, forbid []string) []violation {
	var out []violation
	for _, imp := range p.Imports {
		if forbidden(imp, forbid) {
			out = append(out, violation{chain: []string{p.ImportPath, imp}})
		}
	}
	for _, imp := range append(slices.Clone(p.TestImports), p.XTestImports...) {
		if forbidden(imp, forbid) && !slices.Contains(p.Imports, imp) {
			out = append(out, violation{chain: []string{p.ImportPath, imp}, tests: true})
		}
	}
	return out
}

// importingFiles names p's files (module-relative) with an import of imp.
func importingFiles(t *testing.T, p *pkg, imp string, tests bool) []string {
	files := append(slices.Clone(p.GoFiles), p.CgoFiles...)
	if tests {
		files = append(append(files, p.TestGoFiles...), p.XTestGoFiles...)
	}
	var out []string
	for _, name := range files {
		path := filepath.Join(p.Dir, name)
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			t.Logf("%s: %v", path, err)
			continue
		}
		for _, is := range f.Imports {
			if v, _ := strconv.Unquote(is.Path.Value); v == imp {
				out = append(out, strings.TrimPrefix(p.ImportPath, module+"/")+"/"+name)
			}
		}
	}
	return out
}

// bound returns the module packages r binds.
func (r rule) bound(t *testing.T, pkgs map[string]*pkg) []*pkg {
	var out []*pkg
	if len(r.pkgs) > 0 {
		for _, name := range r.pkgs {
			p := pkgs[module+"/"+name]
			if assert.NotNil(t, p, "rule %q names %s, which go list does not know: renamed or moved? Update the rule", r.says, name) {
				out = append(out, p)
			}
		}
		return out
	}
	for _, name := range r.except {
		assert.Contains(t, pkgs, module+"/"+name, "rule %q excepts %s, which go list does not know: update the rule", r.says, name)
	}
	for _, p := range pkgs {
		if p.inModule() && !slices.Contains(r.except, strings.TrimPrefix(p.ImportPath, module+"/")) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *pkg) int { return strings.Compare(a.ImportPath, b.ImportPath) })
	return out
}

// check returns every import r forbids in pkgs.
func (r rule) check(t *testing.T, pkgs map[string]*pkg) []violation {
	var out []violation
	for _, p := range r.bound(t, pkgs) {
		if r.transitive {
			out = append(out, reach(pkgs, p.ImportPath, r.forbid)...)
		} else {
			out = append(out, direct(p, r.forbid)...)
		}
	}
	return out
}

// TestImportRules: each package imports only what the rules let it. A
// failure names the package, the forbidden import, the chain of imports
// that reaches it and the file that starts the chain.
func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	for _, p := range pkgs {
		if p.inModule() && p.Error != nil {
			t.Errorf("go list cannot read %s, so its imports are not checked: %s", p.ImportPath, p.Error.Err)
		}
	}
	// The rules pass trivially on a graph that lost the cgo files.
	host := pkgs[module+"/internal/gsthost"]
	require.NotNil(t, host)
	require.True(t, slices.ContainsFunc(host.Imports, func(s string) bool { return forbidden(s, []string{goGst}) }),
		"go list shows gsthost without its go-gst import: were cgo files left out?")

	for _, r := range rules {
		for _, v := range r.check(t, pkgs) {
			p := pkgs[v.chain[0]]
			files := importingFiles(t, p, v.chain[1], v.tests)
			t.Errorf("%s imports %s; rule: %s\n"+
				"chain: %s\n"+
				"%s imports %s",
				p.ImportPath, v.chain[len(v.chain)-1], r.says,
				strings.Join(v.chain, " -> "),
				strings.Join(files, ", "), v.chain[1])
		}
	}
}

// TestRulesCatchPlantedImports adds one bad import at a time to the real
// graph, in memory, and checks that the rules report it with its chain.
func TestRulesCatchPlantedImports(t *testing.T) {
	const (
		ring    = module + "/internal/ring"
		health  = module + "/internal/health"
		publish = module + "/internal/publish"
		capture = module + "/internal/capture"
		gsthost = module + "/internal/gsthost"
		gst     = "github.com/go-gst/go-gst/gst"
	)
	tests := []struct {
		name      string
		pkg, add  string
		testFile  bool
		rules     []int // indexes in rules of those that must catch it
		wantChain []string
	}{
		{"leaf imports a sibling", ring, module + "/internal/frame", false, []int{0}, []string{ring, module + "/internal/frame"}},
		{"health through capture", health, capture, false, []int{2}, []string{health, capture, gsthost}},
		{"publish through capture", publish, capture, false, []int{1}, []string{publish, capture, gsthost}},
		{"publish imports go-gst", publish, gst, false, []int{1, 3}, []string{publish, gst}},
		{"a test file imports go-gst", publish, gst, true, []int{3}, []string{publish, gst}},
	}
	graph := listPackages(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs := maps.Clone(graph)
			p := *pkgs[tt.pkg]
			if tt.testFile {
				p.TestImports = append(slices.Clone(p.TestImports), tt.add)
			} else {
				p.Imports = append(slices.Clone(p.Imports), tt.add)
			}
			pkgs[tt.pkg] = &p
			for i, r := range rules {
				vs := r.check(t, pkgs)
				if !slices.Contains(tt.rules, i) {
					assert.Empty(t, vs, "rule %q", r.says)
					continue
				}
				require.Len(t, vs, 1, "rule %q", r.says)
				assert.Equal(t, tt.wantChain, vs[0].chain)
				assert.Equal(t, tt.testFile, vs[0].tests)
			}
		})
	}
}
