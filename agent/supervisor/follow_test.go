//go:build remote && containers_image_openpgp

package supervisor

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/agent/runtime"
	"github.com/wisehosting/wisehosting/agent/runtime/podmantest"
)

// A container's output is shipped without a gap when its log stream is
// followed again: after the stream ends (a Podman hiccup) and after the
// agent is killed (a new process resumes from the cursors on disk).
// Podman may report whole seconds as the time of a line, so many lines
// share one: where the output resumes is not a time alone.
func TestFollowResumesWithoutLosingLines(t *testing.T) {
	svc := podmantest.Start(t)
	ctx := context.Background()
	rt, err := runtime.New(ctx, runtime.Config{Socket: svc.URL, Instance: fmt.Sprintf("f%d", time.Now().UnixNano()%1e9), StopTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Twenty lines a second on stdout, every other one also on stderr.
	c, err := rt.Run(ctx, runtime.RunSpec{AppID: 1, DeploymentID: 1, Slug: "chatty", Image: podmantest.BaseImage, Port: 8080,
		Command: []string{"sh", "-c", `i=0; while :; do i=$((i+1)); echo "out $i"; [ $((i%2)) = 0 ] && echo "err $i" >&2; sleep 0.05; done`}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Remove(context.Background(), c.ID) })

	spool := t.TempDir()
	cp := &fakeCP{}
	newSup := func() *Supervisor {
		s, err := New(Config{Runtime: rt, Send: cp.send, WorkDir: t.TempDir(), LogSpoolDir: spool})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// The control plane takes every batch sent and acknowledges it.
	var mu sync.Mutex
	s := newSup()
	shipCtx, stopShipping := context.WithCancel(ctx)
	shipped := make(chan struct{})
	go func() {
		defer close(shipped)
		for shipCtx.Err() == nil {
			mu.Lock()
			s.logs.flush(shipCtx)
			cp.ackAll(s.logs, false)
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	stopped := func(s *Supervisor) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		_, ok := s.following[c.ID]
		return !ok
	}
	waitStopped := func(s *Supervisor) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !stopped(s); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the log stream did not end within 30 s")
			}
		}
	}
	waitLines := func() {
		t.Helper()
		before := len(cp.lines())
		for deadline := time.Now().Add(30 * time.Second); len(cp.lines()) < before+10; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no new lines shipped within 30 s")
			}
		}
	}

	s.follow(c, time.Time{})
	for round := range 8 {
		waitLines()
		// At a different point of a second each time.
		time.Sleep(time.Duration(130*round) * time.Millisecond % time.Second)
		if round%2 == 0 {
			// The stream ends; the next reconcile pass follows again.
			s.unfollow(c.ID)
			waitStopped(s)
			s.follow(c, time.Time{})
			continue
		}
		// The agent is killed: lines not in a batch on disk are gone with
		// it, and a new process follows from the cursors the spool holds.
		mu.Lock()
		s.logs.mu.Lock()
		s.logs.seal()
		s.logs.mu.Unlock()
		s.unfollow(c.ID)
		waitStopped(s)
		s = newSup()
		mu.Unlock()
		s.follow(c, time.Time{})
	}
	waitLines()
	if err := rt.Stop(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	waitStopped(s) // the stream ends with the container's output
	for deadline := time.Now().Add(30 * time.Second); s.logs.pending() > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d lines not acknowledged within 30 s", s.logs.pending())
		}
	}
	stopShipping()
	<-shipped

	// Every line the container printed was shipped.
	out, err := svc.Podman(ctx, "logs", "--timestamps", c.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	cp.mu.Lock()
	for _, ls := range cp.stored {
		for _, l := range ls {
			got[l.Line]++
		}
	}
	cp.mu.Unlock()
	lineRE := regexp.MustCompile(`^(\S+) (out|err) (\d+)$`)
	produced, at := 0, map[string]string{}
	var missing, twice []string
	for _, l := range strings.Split(out, "\n") {
		m := lineRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		text := m[2] + " " + m[3]
		at[text] = m[1]
		produced++
		switch got[text] {
		case 0:
			missing = append(missing, text)
		case 1:
		default:
			twice = append(twice, text)
		}
	}
	if produced < 50 {
		t.Fatalf("only %d lines produced: %q", produced, out)
	}
	if len(missing) > 0 {
		sort.Slice(missing, func(i, j int) bool { return num(missing[i]) < num(missing[j]) })
		var desc []string
		for _, m := range missing[:min(len(missing), 20)] {
			desc = append(desc, m+" at "+at[m])
		}
		t.Fatalf("%d of %d lines not shipped across 4 stream restarts and 4 agent kills: %s", len(missing), produced, strings.Join(desc, ", "))
	}
	if len(twice) > 0 {
		t.Fatalf("%d of %d lines shipped more than once: %v", len(twice), produced, twice[:min(len(twice), 20)])
	}
	t.Logf("%d lines produced, all shipped once", produced)
}

func num(s string) int {
	n, _ := strconv.Atoi(s[strings.IndexByte(s, ' ')+1:])
	return n
}
