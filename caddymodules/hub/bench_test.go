package hub_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/caddymodules/hub"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/workers"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// The swarm of simulated agents runs in a child process (this test binary
// re-executed), so the parent's memory and CPU figures are the hub's own.
func TestMain(m *testing.M) {
	if os.Getenv("WH_AGENT_SWARM") != "" {
		runSwarm()
		return
	}
	os.Exit(m.Run())
}

// runSwarm reads "url key" lines on stdin, connects one simulated agent per
// line, prints "ready", then sends a stats message from each agent every
// second until stdin closes.
func runSwarm() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Scan()
	url := sc.Text()
	var keys []string
	for sc.Scan() {
		if sc.Text() == "go" {
			break
		}
		keys = append(keys, sc.Text())
	}
	conns := make([]*websocket.Conn, len(keys))
	sessions := make([]wsproto.Key, len(keys))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp, err := http.Post(url+"/v1/workers/register", "application/json", strings.NewReader(`{"api_key":"`+k+`"}`))
			if err != nil {
				fmt.Println("error", err)
				return
			}
			var tr struct{ Token string }
			json.NewDecoder(resp.Body).Decode(&tr)
			resp.Body.Close()
			h := http.Header{}
			h.Set("Authorization", "Bearer "+tr.Token)
			clientNonce := wsproto.NewNonce()
			h.Set(wsproto.NonceHeader, clientNonce)
			ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(url, "http", "ws", 1)+hub.Path, h)
			if err != nil {
				fmt.Println("error", err)
				return
			}
			// Handshake: the challenge, answered by the signed hello.
			_, msg, err := ws.ReadMessage()
			env, derr := wsproto.Decode(msg)
			if err != nil || derr != nil {
				fmt.Println("error: no challenge", err, derr)
				return
			}
			var ch wsproto.Challenge
			json.Unmarshal(env.P, &ch)
			sk := wsproto.SessionKey(wsproto.KeyFromAPIKey(k), clientNonce, ch.Nonce)
			hello, _ := wsproto.Seal(sk, wsproto.TypeHello, 1, time.Now(), wsproto.Hello{Version: "swarm"})
			b, _ := json.Marshal(hello)
			if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
				fmt.Println("error", err)
				return
			}
			conns[i], sessions[i] = ws, sk
			go func() { // answer pings, drain
				for {
					if _, _, err := ws.ReadMessage(); err != nil {
						return
					}
				}
			}()
		}()
	}
	wg.Wait()
	fmt.Println("ready")
	stop := make(chan struct{})
	go func() {
		for sc.Scan() {
		}
		close(stop)
	}()
	// Each agent sends stats once a second, spread over the second.
	for i, ws := range conns {
		if ws == nil {
			continue
		}
		key := sessions[i]
		go func() {
			time.Sleep(time.Duration(i) * time.Second / time.Duration(len(conns)))
			t := time.NewTicker(time.Second)
			seq := uint64(1) // the hello was 1
			for {
				select {
				case <-stop:
					ws.Close()
					return
				case now := <-t.C:
					seq++
					e, _ := wsproto.Seal(key, wsproto.TypeStats, seq, now, wsproto.Stats{TS: now.Unix(), Apps: []wsproto.AppStats{
						{AppID: int64(i), CPUPercent: 3.5, MemBytes: 64 << 20, NetRxBytes: 1000, NetTxBytes: 2000, DiskBytes: 1 << 30}}})
					b, _ := json.Marshal(e)
					ws.WriteMessage(websocket.TextMessage, b)
				}
			}
		}()
	}
	<-stop
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func liveBytes() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// BenchmarkHub1000Agents connects 1,000 simulated agents (in a child
// process) that each send a signed stats message every second, and reports
// the hub's memory per idle connection and CPU use under that load.
func BenchmarkHub1000Agents(b *testing.B) {
	const agents = 1000
	db := pgtest.New(b)
	cp := cptest.Start(b, db, cptest.Options{})
	var received atomic.Int64
	cancel := coreAppB(b).Workers().Handle(wsproto.TypeStats, func(ctx context.Context, id int64, p json.RawMessage) error {
		var s wsproto.Stats
		json.Unmarshal(p, &s)
		received.Add(1)
		return nil
	})
	defer cancel()
	keys := make([]string, agents)
	for i := range keys {
		_, k, err := workers.Add(context.Background(), db.Pool, cptest.Keyring(b), "w"+strconv.Itoa(i), "", "")
		if err != nil {
			b.Fatal(err)
		}
		keys[i] = k
	}
	before := liveBytes()

	exe, _ := os.Executable()
	child := exec.Command(exe, "-test.run=^$")
	child.Env = append(os.Environ(), "WH_AGENT_SWARM=1")
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer child.Wait()
	defer stdin.Close()
	fmt.Fprintln(stdin, cp.URL)
	for _, k := range keys {
		fmt.Fprintln(stdin, k)
	}
	fmt.Fprintln(stdin, "go")
	out := bufio.NewScanner(stdout)
	for out.Scan() && out.Text() != "ready" {
		b.Logf("swarm: %s", out.Text())
	}
	deadline := time.Now().Add(30 * time.Second)
	for hub.Default().Count() < agents && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := hub.Default().Count(); n < agents {
		b.Fatalf("only %d of %d agents connected", n, agents)
	}
	// Idle memory: before the first stats tick lands on most connections.
	perConn := float64(liveBytes()-before) / agents
	if p := os.Getenv("WH_HEAP_PROFILE"); p != "" {
		f, _ := os.Create(p)
		pprof.WriteHeapProfile(f)
		f.Close()
	}

	b.ResetTimer()
	window := 10 * time.Second
	start, cpu0, recv0 := time.Now(), cpuTime(), received.Load()
	time.Sleep(window)
	elapsed, cpu, recv := time.Since(start), cpuTime()-cpu0, received.Load()-recv0
	b.StopTimer()

	b.ReportMetric(perConn/1024, "KiB/conn")
	b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "cpu%")
	b.ReportMetric(float64(recv)/elapsed.Seconds(), "msgs/s")
	if recv < int64(agents*window/time.Second)/2 {
		b.Fatalf("only %d stats messages in %s from %d agents", recv, window, agents)
	}
}

func coreAppB(b *testing.B) *core.App {
	a, err := cpActiveCore()
	if err != nil {
		b.Fatal(err)
	}
	return a
}
