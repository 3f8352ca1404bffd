package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	in := `# 2026-11-23T05:00:00Z Linux 6.1 x86_64, 2 cores, go1.26.8
# go test -run '^$' -bench . ./...
goos: linux
pkg: github.com/wisehosting/wisehosting/caddymodules/proxy
cpu: Some CPU
BenchmarkProxyThroughput-2   	       1	10000 ns/op	 21000 caddy-req/s	 28000 traefik-req/s	 0.75 throughput-ratio
pkg: github.com/wisehosting/wisehosting/internal/foo
BenchmarkSomethingElse/case-2   	  100	 55.5 ns/op
`
	h, rs := parse(strings.NewReader(in))
	if len(h) != 3 || len(rs) != 2 {
		t.Fatalf("header %q results %+v", h, rs)
	}
	if rs[0].name != "BenchmarkProxyThroughput" || rs[0].pkg != "github.com/wisehosting/wisehosting/caddymodules/proxy" || len(rs[0].metrics) != 4 {
		t.Fatalf("%+v", rs[0])
	}
	var out bytes.Buffer
	write(&out, h, rs)
	s := out.String()
	for _, want := range []string{"Some CPU", "0.75 throughput-ratio", "### ProxyThroughput", "## Other benchmarks", "BenchmarkSomethingElse/case", "_not in this run_"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
}
