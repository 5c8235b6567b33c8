package codeshape

import (
	"bufio"
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const (
	module      = "github.com/parley-chat/parley"
	goRedis     = "github.com/redis/go-redis/v9"
	maxFileLine = 600
	maxFuncLine = 80
)

// root is the repository's top directory.
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestImportDirections keeps the layers apart: views render and know nothing
// of Redis, the model client knows nothing of storage or HTTP, storage knows
// nothing of pages, and handlers reach Redis only through store.
func TestImportDirections(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .Deps \" \"}}", "./...")
	cmd.Dir = root(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	rules := []struct {
		from, to string
		direct   bool // only a direct import is forbidden
		why      string
	}{
		{"views", goRedis, false, "views are pure components"},
		{"llm", module + "/store", false, "the model client must not know storage"},
		{"llm", module + "/handlers", false, "the model client must not know HTTP"},
		{"store", module + "/handlers", false, "storage must not know HTTP"},
		{"store", module + "/views", false, "storage must not know pages"},
		{"handlers", goRedis, true, "handlers reach Redis through store"},
		{"metrics", module + "/store", true, "metrics name their own labels"},
	}
	checked := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), "|", 3)
		if len(parts) != 3 {
			continue
		}
		pkg, imports, deps := parts[0], strings.Fields(parts[1]), strings.Fields(parts[2])
		for _, r := range rules {
			if pkg != module+"/"+r.from && !strings.HasPrefix(pkg, module+"/"+r.from+"/") {
				continue
			}
			checked[r.from] = true
			list := deps
			if r.direct {
				list = imports
			}
			for _, d := range list {
				if d == r.to || strings.HasPrefix(d, r.to+"/") {
					t.Errorf("%s depends on %s: %s", pkg, d, r.why)
				}
			}
		}
	}
	for _, r := range rules {
		if !checked[r.from] {
			t.Errorf("no package %s: the rule %q checks nothing", r.from, r.why)
		}
	}
}

// TestSizes keeps files and functions small enough to read whole: a file of
// more than 600 lines or a function of more than 80 (tests and generated code
// aside) fails unless the function's doc comment says why it is long.
func TestSizes(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	top := root(t)
	err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != top && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.HasSuffix(path, "_templ.go") {
			return nil
		}
		rel, _ := filepath.Rel(top, path)
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if n := bytes.Count(src, []byte("\n")); n > maxFileLine {
			t.Errorf("%s has %d lines (at most %d): split it by job", rel, n, maxFileLine)
		}
		f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			lines := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
			if lines > maxFuncLine && !saysWhyLong(fn.Doc) {
				t.Errorf("%s: %s is %d lines (at most %d unless its doc comment says why it is long)",
					rel, fn.Name.Name, lines, maxFuncLine)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var longReason = regexp.MustCompile(`(?i)\blong\b`)

func saysWhyLong(doc *ast.CommentGroup) bool {
	return doc != nil && longReason.MatchString(doc.Text())
}

// TestSelfContained: the repository carries its own design documents, so
// nothing in it may point outside it.
func TestSelfContained(t *testing.T) {
	t.Parallel()
	// The vendored client's source map quotes its own sources' paths.
	cmd := exec.Command("git", "grep", "-l", "-I", "\\.\\./shared", "--", ".",
		":!internal/codeshape", ":!static/datastar-*.js.map")
	cmd.Dir = root(t)
	out, err := cmd.Output()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 1: // no match
	case err != nil:
		t.Fatalf("git grep: %v", err)
	default:
		t.Errorf("these files point outside the repository:\n%s", out)
	}
}
