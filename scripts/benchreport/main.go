// Command benchreport turns the output of `make bench` (go test -bench,
// with the machine and command in its first lines) into BENCHMARKS.md:
// each figure with what it measures, the goal where there is one, and the
// peer measured in the same run.
//
//	go run ./scripts/benchreport < bench-results.txt > BENCHMARKS.md
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// figure describes one benchmark.
type figure struct {
	bench, area, what, goal string
}

var figures = []figure{
	{"BenchmarkHub1000Agents", "Worker protocol", "1000 agents connected to one control plane over signed WebSocket envelopes: memory per connection, CPU and messages per second", ""},
	{"BenchmarkVerify", "Worker protocol", "verifying one envelope (HMAC-SHA256 + replay window)", ""},
	{"BenchmarkOpen", "Worker protocol", "decoding and verifying one envelope", ""},
	{"BenchmarkSchedulerThroughput", "Scheduler", "jobs placed per second (SKIP LOCKED placement on real Postgres)", ""},
	{"BenchmarkSchedulerLatency", "Scheduler", "enqueue → delivered to the worker (p50/p99)", ""},
	{"BenchmarkTraefikProviderEndpoint", "Routing", "serving the Traefik dynamic configuration", ""},
	{"BenchmarkPropagation", "Routing", "route change → served by the proxy: Caddy proxy mode (long-poll push) against real Traefik (5 s HTTP-provider poll), same run", ""},
	{"BenchmarkProxyThroughput", "Routing", "requests per second through the Caddy proxy mode (shipped config) against real Traefik, same backend, same run: both proxies pinned to core 1, wrk on core 0, interleaved 5 s rounds; medians, the ratio being the median of the rounds' ratios (ratio-min/-max: spread), allocations per request of the proxy mode; CPU time per request of each proxy process (cpu-efficiency-ratio: Traefik's over the proxy mode's, which a loaded machine disturbs far less than requests per second)", "throughput-ratio ≥ 1, p99-ratio ≤ 1.1"},
	{"BenchmarkProxyThroughputTLS", "Routing", "the same over TLS (HTTP/1.1 keep-alive): the proxy mode with an on-demand certificate from Caddy's internal CA, Traefik with its default certificate", "throughput-ratio ≥ 1, p99-ratio ≤ 1.1"},
	{"BenchmarkIngest", "Log bus", "log lines persisted per second (COPY batches)", ""},
	{"BenchmarkIdleControlPlane", "System", "control plane idle with 100 running apps and a proxy polling every 5 s: resident memory and CPU, against plain Caddy (same binary, one static site) in the same run", "< 80 MiB RSS, < 1% CPU (Coolify idles near 300 MiB: its published figure, not measured here)"},
	{"BenchmarkNewcomer", "System", "`make run` in a clean copy of the repository (fresh network namespace, private Postgres, Podman storage and CA) → sign in, change the password, deploy the static sample through the API → first 200 at its https://<slug>.localhost link; warm Go build cache unless NEWCOMER_COLD=1", "< 60 s warm, < 5 min cold"},
	{"BenchmarkPushToFirst200", "System", "git push webhook → first 200 with the new content through the zone router, static site, warm build cache", "< 15 s"},
}

var (
	lineRe = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)
	pkgRe  = regexp.MustCompile(`^pkg: (\S+)`)
)

type result struct {
	name, pkg string
	iters     int
	metrics   [][2]string // value, unit
}

func parse(r io.Reader) (header []string, results []result) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	pkg := ""
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# ") {
			header = append(header, strings.TrimPrefix(line, "# "))
			continue
		}
		if m := pkgRe.FindStringSubmatch(line); m != nil {
			pkg = m[1]
			continue
		}
		if strings.HasPrefix(line, "cpu: ") && len(header) > 0 && !strings.Contains(strings.Join(header, "\n"), "cpu: ") {
			header = append(header, line)
			continue
		}
		m := lineRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		res := result{name: m[1], pkg: pkg, iters: n}
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			res.metrics = append(res.metrics, [2]string{f[i], f[i+1]})
		}
		results = append(results, res)
	}
	return header, results
}

func base(name string) string {
	if i := strings.IndexByte(name, '/'); i > 0 {
		return name[:i]
	}
	return name
}

func write(w io.Writer, header []string, results []result) {
	fmt.Fprintln(w, "# Benchmarks")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Written by `make bench` (scripts/bench.sh → scripts/benchreport); every figure below comes from one run on one machine. Peers (Traefik, plain Caddy) run in the same run, on the same machine, against the same backends.")
	fmt.Fprintln(w)
	for _, h := range header {
		fmt.Fprintf(w, "- %s\n", strings.TrimPrefix(h, "cpu: "))
	}
	fmt.Fprintln(w)
	byBase := map[string][]result{}
	for _, r := range results {
		byBase[base(r.name)] = append(byBase[base(r.name)], r)
	}
	seen := map[string]bool{}
	area := ""
	for _, f := range figures {
		rs := byBase[f.bench]
		seen[f.bench] = true
		if f.area != area {
			area = f.area
			fmt.Fprintf(w, "## %s\n\n", area)
		}
		fmt.Fprintf(w, "### %s\n\n%s.", strings.TrimPrefix(f.bench, "Benchmark"), f.what)
		if f.goal != "" {
			fmt.Fprintf(w, " Goal: %s.", f.goal)
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w)
		if len(rs) == 0 {
			fmt.Fprintln(w, "_not in this run_")
			fmt.Fprintln(w)
			continue
		}
		table(w, rs)
	}
	var others []string
	for b := range byBase {
		if !seen[b] {
			others = append(others, b)
		}
	}
	sort.Strings(others)
	if len(others) > 0 {
		fmt.Fprintln(w, "## Other benchmarks")
		fmt.Fprintln(w)
		var rs []result
		for _, b := range others {
			rs = append(rs, byBase[b]...)
		}
		table(w, rs)
	}
}

func table(w io.Writer, rs []result) {
	fmt.Fprintln(w, "| benchmark | package | runs | figures |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, r := range rs {
		var parts []string
		for _, m := range r.metrics {
			parts = append(parts, m[0]+" "+m[1])
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s |\n", r.name, strings.TrimPrefix(r.pkg, "github.com/wisehosting/wisehosting/"), r.iters, strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
}

func main() {
	header, results := parse(os.Stdin)
	if len(results) == 0 {
		fmt.Fprintln(os.Stderr, "benchreport: no benchmark results on stdin")
		os.Exit(1)
	}
	write(os.Stdout, header, results)
}
