package proxy_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/peers"
)

func percentile(d []time.Duration, p int) float64 {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	i := min(len(d)*p/100, len(d)-1)
	return float64(d[i].Microseconds()) / 1000
}

// propagation measures app running → first 200 through a proxy.
func propagation(b *testing.B, f *fixture, proxy string, n int, prefix string) []time.Duration {
	var lat []time.Duration
	for i := 0; i < n; i++ {
		be := backend(b, "x", nil)
		slug := fmt.Sprintf("%s%d", prefix, i)
		start := time.Now()
		f.addApp(b, slug, port(be))
		for {
			if c, _ := hit(b, proxy, slug+".apps.test", "/"); c == 200 {
				break
			}
			if time.Since(start) > 30*time.Second {
				b.Fatalf("%s never routed", slug)
			}
			time.Sleep(2 * time.Millisecond)
		}
		lat = append(lat, time.Since(start))
	}
	return lat
}

// BenchmarkPropagation: from "app running" (committed, with its NOTIFY) to
// the first 200 through the proxy — the proxy mode's long-poll push versus
// Traefik's HTTP provider polling every 5 s, measured in one run.
func BenchmarkPropagation(b *testing.B) {
	f := setup(b)
	proxy, _ := startProxy(b, f.cpURL, b.TempDir())
	traefik := startTraefik(b, fmt.Sprintf("%s/v1/traefik/config?worker_id=%d", f.cpURL, f.wrk), "web", 5*time.Second)
	seed := backend(b, "seed", nil)
	f.addApp(b, "seed", port(seed))
	waitFor(b, "proxies ready", 30*time.Second, func() bool {
		c1, _ := hit(b, proxy, "seed.apps.test", "/")
		c2, _ := hit(b, traefik, "seed.apps.test", "/")
		return c1 == 200 && c2 == 200
	})
	b.ResetTimer()
	push := propagation(b, f, proxy, max(b.N, 50), "push")
	poll := propagation(b, f, traefik, max(b.N, 8), "poll")
	b.StopTimer()
	b.ReportMetric(percentile(push, 50), "push-p50-ms")
	b.ReportMetric(percentile(push, 99), "push-p99-ms")
	b.ReportMetric(percentile(poll, 50), "traefik-p50-ms")
	b.ReportMetric(percentile(poll, 99), "traefik-p99-ms")
}

var (
	wrkRPS  = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkP99  = regexp.MustCompile(`\s99%\s+([0-9.]+)(us|ms|s)`)
	wrkReqs = regexp.MustCompile(`(\d+) requests in`)
)

// wrkRun is one wrk run: requests per second, p99 in ms, requests served.
type wrkRun struct{ rps, p99ms, n float64 }

// wrk loads url for d, on the core the proxies are not pinned to.
func wrk(b *testing.B, url, host string, d time.Duration) wrkRun {
	out, err := exec.Command("taskset", "-c", "0", "wrk", "-t2", "-c64", "-d"+d.String(), "--latency", "-H", "Host: "+host, url).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk (apt-get install wrk): %v\n%s", err, out)
	}
	m := wrkRPS.FindSubmatch(out)
	l := wrkP99.FindSubmatch(out)
	n := wrkReqs.FindSubmatch(out)
	if m == nil || l == nil || n == nil {
		b.Fatalf("unexpected wrk output:\n%s", out)
	}
	var r wrkRun
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	r.p99ms, _ = strconv.ParseFloat(string(l[1]), 64)
	r.n, _ = strconv.ParseFloat(string(n[1]), 64)
	if r.n == 0 || strings.Contains(string(out), "Non-2xx") {
		b.Fatalf("requests failed:\n%s", out)
	}
	switch string(l[2]) {
	case "us":
		r.p99ms /= 1000
	case "s":
		r.p99ms *= 1000
	}
	return r
}

// memStats reads the proxy's allocation counters from its admin endpoint.
func memStats(b *testing.B, admin string) (mallocs, bytes float64) {
	resp, err := http.Get("http://" + admin + "/debug/vars")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Memstats struct{ Mallocs, TotalAlloc float64 }
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		b.Fatal(err)
	}
	return v.Memstats.Mallocs, v.Memstats.TotalAlloc
}

// cpuTime is a process's user and system CPU time so far, in seconds
// (/proc/<pid>/stat, clock ticks of 1/100 s).
func cpuTime(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from the 3rd on
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkProxyThroughput: wrk through the proxy mode and through Traefik
// to the same loopback backend, both proxies pinned to core 1 and wrk to
// core 0, in interleaved rounds (WH_BENCH_ROUNDS, default 3, 5 s each);
// figures are medians, the ratio is the median of the rounds' ratios.
// With WH_PROXY_PPROF=dir, a last round under load writes the proxy mode's
// CPU and allocation profiles to dir.
func BenchmarkProxyThroughput(b *testing.B) {
	f := setup(b)
	site := backend(b, "site", nil)
	f.addApp(b, "site", port(site))
	pinCPU, proxyAdmin = "1", cptest.FreeAddr(b)
	defer func() { pinCPU, proxyAdmin = "", "" }()
	admin := proxyAdmin
	proxy, _ := startProxy(b, f.cpURL, b.TempDir())
	traefik := startTraefik(b, fmt.Sprintf("%s/v1/traefik/config?worker_id=%d", f.cpURL, f.wrk), "web", time.Second)
	waitFor(b, "proxies ready", 30*time.Second, func() bool {
		c1, _ := hit(b, proxy, "site.apps.test", "/")
		c2, _ := hit(b, traefik, "site.apps.test", "/")
		return c1 == 200 && c2 == 200
	})
	compare(b, proxy, traefik, admin)
}

// compare runs the interleaved wrk rounds against both proxies and reports
// the figures (see BenchmarkProxyThroughput).
func compare(b *testing.B, proxy, traefik, admin string) {
	rounds := 3
	if n, err := strconv.Atoi(os.Getenv("WH_BENCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	var crps, cp99, trps, tp99, ratio, allocs, bytes, ccpu, tcpu, cpuRatio []float64
	cpid, tpid := proxyPID, traefikPID
	b.ResetTimer()
	for i := 0; i < rounds; i++ {
		m0, b0 := memStats(b, admin)
		cc0 := cpuTime(b, cpid)
		c := wrk(b, proxy+"/", "site.apps.test", 5*time.Second)
		cc1 := cpuTime(b, cpid)
		m1, b1 := memStats(b, admin)
		tc0 := cpuTime(b, tpid)
		t := wrk(b, traefik+"/", "site.apps.test", 5*time.Second)
		tc1 := cpuTime(b, tpid)
		crps, cp99 = append(crps, c.rps), append(cp99, c.p99ms)
		trps, tp99 = append(trps, t.rps), append(tp99, t.p99ms)
		ratio = append(ratio, c.rps/t.rps)
		allocs, bytes = append(allocs, (m1-m0)/c.n), append(bytes, (b1-b0)/c.n)
		cu, tu := (cc1-cc0)/c.n*1e6, (tc1-tc0)/t.n*1e6
		ccpu, tcpu, cpuRatio = append(ccpu, cu), append(tcpu, tu), append(cpuRatio, tu/cu)
		fmt.Fprintf(os.Stderr, "round %d: proxy mode %.0f req/s p99 %.2f ms %.0f allocs/req %.1f cpu-us/req; traefik %.0f req/s p99 %.2f ms %.1f cpu-us/req; ratio %.3f, cpu ratio %.3f\n",
			i+1, c.rps, c.p99ms, (m1-m0)/c.n, cu, t.rps, t.p99ms, tu, c.rps/t.rps, tu/cu)
	}
	b.StopTimer()
	if dir := os.Getenv("WH_PROXY_PPROF"); dir != "" {
		done := make(chan struct{})
		go func() {
			defer close(done)
			exec.Command("taskset", "-c", "0", "wrk", "-t2", "-c64", "-d6s", "-H", "Host: site.apps.test", proxy+"/").Run()
		}()
		for _, p := range []string{"profile?seconds=5", "allocs"} {
			resp, err := http.Get("http://" + admin + "/debug/pprof/" + p)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			os.WriteFile(filepath.Join(dir, strings.SplitN(p, "?", 2)[0]+".pprof"), body, 0o644)
		}
		<-done
	}
	b.ReportMetric(median(crps), "caddy-req/s")
	b.ReportMetric(median(trps), "traefik-req/s")
	b.ReportMetric(median(ratio), "throughput-ratio")
	b.ReportMetric(slices.Min(ratio), "ratio-min")
	b.ReportMetric(slices.Max(ratio), "ratio-max")
	b.ReportMetric(median(cp99), "caddy-p99-ms")
	b.ReportMetric(median(tp99), "traefik-p99-ms")
	b.ReportMetric(median(cp99)/median(tp99), "p99-ratio")
	b.ReportMetric(median(allocs), "caddy-allocs/req")
	b.ReportMetric(median(ccpu), "caddy-cpu-us/req")
	b.ReportMetric(median(tcpu), "traefik-cpu-us/req")
	b.ReportMetric(median(cpuRatio), "cpu-efficiency-ratio")
	b.ReportMetric(median(bytes), "caddy-B/req")
}

// BenchmarkProxyThroughputTLS: the same comparison over TLS (HTTP/1.1,
// keep-alive): the proxy mode with an on-demand certificate from Caddy's
// internal CA, Traefik with its default certificate on a TLS entry point.
func BenchmarkProxyThroughputTLS(b *testing.B) {
	f := setup(b)
	site := backend(b, "site", nil)
	f.addApp(b, "site", port(site))
	pinCPU = "1"
	defer func() { pinCPU = "" }()
	dir := b.TempDir()
	addr, admin := cptest.FreeAddr(b), cptest.FreeAddr(b)
	cfg := fmt.Sprintf(`{
	admin %[6]s
	storage file_system %[1]s/data
	skip_install_trust
	default_sni site.apps.test
	log default {
		exclude http.handlers.reverse_proxy
	}
	on_demand_tls {
		permission wisehosting
	}
	wisehosting_proxy {
		control_plane %[2]s
		token %[3]s
		cache_file %[1]s/routes.json
		poll_interval 200ms
	}
}
https://:%[5]s {
	bind 127.0.0.1
	tls internal {
		on_demand
	}
	wisehosting_route {
		forward
	}
	reverse_proxy {
		dynamic wisehosting
		lb_policy first
	}
}
# wrk sends the address as SNI: a certificate for it; requests still
# route by Host through the site above
https://127.0.0.1:%[5]s {
	bind 127.0.0.1
	tls internal
	respond 421
}
`, dir, f.cpURL, cptest.ProxyToken, addr, addr[strings.LastIndex(addr, ":")+1:], admin)
	runProxy(b, dir, cfg, addr)
	taddr := cptest.FreeAddr(b)
	runTraefik(b, exec.Command(peers.TraefikBin(b),
		"--entryPoints.web.address="+taddr, "--entryPoints.web.http.tls=true",
		fmt.Sprintf("--providers.http.endpoint=%s/v1/traefik/config?worker_id=%d", f.cpURL, f.wrk),
		"--providers.http.pollInterval=1s",
		"--providers.http.headers.Authorization=Bearer "+cptest.ProxyToken,
		"--global.checkNewVersion=false", "--global.sendAnonymousUsage=false"), b.TempDir())
	proxy, traefik := "https://"+addr, "https://"+taddr
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(u string) int {
		req, _ := http.NewRequest("GET", u+"/", nil)
		req.Host = "site.apps.test"
		resp, err := c.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(b, "proxies ready over TLS", 60*time.Second, func() bool { return get(proxy) == 200 && get(traefik) == 200 })
	compare(b, proxy, traefik, admin)
}
