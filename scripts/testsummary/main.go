// Command testsummary reads `go test -json` on stdin, prints the package
// results and the output of failed tests, and ends with a totals line
// ("tests: N passed, N failed, N skipped"). It exits 1 if anything failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

func main() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	outputs := map[string][]string{} // package/test → output lines
	var passed, failed, skipped int
	var failedNames []string
	pkgFailed := false
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Println(sc.Text()) // build errors are not JSON
			continue
		}
		key := e.Package + "/" + e.Test
		switch e.Action {
		case "output":
			outputs[key] = append(outputs[key], e.Output)
		case "pass", "fail", "skip":
			if e.Test == "" {
				status := map[string]string{"pass": "ok  ", "fail": "FAIL", "skip": "?   "}[e.Action]
				fmt.Printf("%s\t%s\t%.3fs\n", status, e.Package, e.Elapsed)
				if e.Action == "fail" {
					pkgFailed = true
					for _, l := range outputs[key] {
						fmt.Print("    ", l)
					}
				}
				continue
			}
			if strings.Contains(e.Test, "/") {
				continue // subtests are counted through their parent
			}
			switch e.Action {
			case "pass":
				passed++
			case "skip":
				skipped++
			case "fail":
				failed++
				failedNames = append(failedNames, key)
			}
		}
	}
	for _, k := range failedNames {
		fmt.Printf("--- FAIL: %s\n", k)
		for _, l := range outputs[k] {
			fmt.Print("    ", l)
		}
	}
	fmt.Printf("tests: %d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if failed > 0 || pkgFailed {
		os.Exit(1)
	}
}
