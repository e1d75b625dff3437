package gsthost

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Only internal/gsthost and internal/appsink may import go-gst (ADR 0001):
// upgrading the bindings must touch these two packages only.
func TestOnlyHostPackagesImportGoGst(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	allowed := map[string]bool{"internal/gsthost": true, "internal/appsink": true}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/go-gst/") {
				assert.True(t, allowed[filepath.ToSlash(rel)], "%s imports %s", path, p)
			}
		}
		return nil
	})
	require.NoError(t, err)
	assert.Greater(t, checked, 50, "walked the repository")
}
