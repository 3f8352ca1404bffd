package proxy_test

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"testing"
	"time"
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
	wrkRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkP99 = regexp.MustCompile(`\s99%\s+([0-9.]+)(us|ms|s)`)
)

func wrk(b *testing.B, url, host string) (rps, p99ms float64) {
	out, err := exec.Command("wrk", "-t2", "-c64", "-d5s", "--latency", "-H", "Host: "+host, url).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk (apt-get install wrk): %v\n%s", err, out)
	}
	m := wrkRPS.FindSubmatch(out)
	l := wrkP99.FindSubmatch(out)
	if m == nil || l == nil {
		b.Fatalf("unexpected wrk output:\n%s", out)
	}
	rps, _ = strconv.ParseFloat(string(m[1]), 64)
	p99ms, _ = strconv.ParseFloat(string(l[1]), 64)
	switch string(l[2]) {
	case "us":
		p99ms /= 1000
	case "s":
		p99ms *= 1000
	}
	return rps, p99ms
}

// BenchmarkProxyThroughput: wrk through the proxy mode and through Traefik
// to the same loopback backend, one after the other in one run.
func BenchmarkProxyThroughput(b *testing.B) {
	f := setup(b)
	site := backend(b, "site", nil)
	f.addApp(b, "site", port(site))
	proxy, _ := startProxy(b, f.cpURL, b.TempDir())
	traefik := startTraefik(b, fmt.Sprintf("%s/v1/traefik/config?worker_id=%d", f.cpURL, f.wrk), "web", time.Second)
	waitFor(b, "proxies ready", 30*time.Second, func() bool {
		c1, _ := hit(b, proxy, "site.apps.test", "/")
		c2, _ := hit(b, traefik, "site.apps.test", "/")
		return c1 == 200 && c2 == 200
	})
	b.ResetTimer()
	crps, cp99 := wrk(b, proxy+"/", "site.apps.test")
	trps, tp99 := wrk(b, traefik+"/", "site.apps.test")
	b.StopTimer()
	b.ReportMetric(crps, "caddy-req/s")
	b.ReportMetric(trps, "traefik-req/s")
	b.ReportMetric(crps/trps, "throughput-ratio")
	b.ReportMetric(cp99, "caddy-p99-ms")
	b.ReportMetric(tp99, "traefik-p99-ms")
	fmt.Fprintf(os.Stderr, "proxy mode %.0f req/s p99 %.2f ms; traefik %.0f req/s p99 %.2f ms; ratio %.2f\n", crps, cp99, trps, tp99, crps/trps)
}
