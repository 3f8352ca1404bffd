package store_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// A goroutine that holds a pool connection (an open transaction, an
// acquired connection) and then asks the pool for another deadlocks a
// small pool as soon as enough goroutines do it at once. This regression
// check reads the project's sources: no closure passed to pgx.BeginFunc
// may name a pool, and nothing outside this package acquires connections
// by hand.
func TestNoSecondPoolConnectionWhileHoldingOne(t *testing.T) {
	fset := token.NewFileSet()
	var bad []string
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if sel.Sel.Name == "Acquire" && !strings.Contains(path, "internal/pgtest") {
				bad = append(bad, fset.Position(call.Pos()).String()+": acquires a connection by hand")
			}
			if sel.Sel.Name != "BeginFunc" || len(call.Args) != 3 {
				return true
			}
			body, ok := call.Args[2].(*ast.FuncLit)
			if !ok {
				return true
			}
			ast.Inspect(body.Body, func(m ast.Node) bool {
				var name string
				switch e := m.(type) {
				case *ast.Ident:
					name = e.Name
				case *ast.SelectorExpr:
					name = e.Sel.Name
				}
				if strings.EqualFold(name, "pool") {
					bad = append(bad, fset.Position(m.Pos()).String()+": uses a pool inside a transaction (use the tx)")
				}
				return true
			})
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		t.Error(b)
	}
}
