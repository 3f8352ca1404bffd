//go:build remote && containers_image_openpgp

package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// fakeCP receives log batches and acknowledges them as told.
type fakeCP struct {
	mu      sync.Mutex
	batches []wsproto.Logs
	stored  map[string][]wsproto.LogLine
	down    bool // refuse to send (disconnected)
}

func (f *fakeCP) send(_ context.Context, t string, p any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return fmt.Errorf("not connected")
	}
	if t == wsproto.TypeLogs {
		f.batches = append(f.batches, p.(wsproto.Logs))
	}
	return nil
}

// ackAll acknowledges every batch received so far (retry: as refused).
func (f *fakeCP) ackAll(sh *shipper, retry bool) int {
	f.mu.Lock()
	got := f.batches
	f.batches = nil
	if f.stored == nil {
		f.stored = map[string][]wsproto.LogLine{}
	}
	if !retry {
		for _, b := range got {
			f.stored[b.Batch] = b.Lines
		}
	}
	f.mu.Unlock()
	for _, b := range got {
		sh.acked(wsproto.LogsAck{Batch: b.Batch, Retry: retry})
	}
	return len(got)
}

func (f *fakeCP) lines() map[string]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]bool{}
	for _, ls := range f.stored {
		for _, l := range ls {
			out[l.Line] = true
		}
	}
	return out
}

// A batch stays until the control plane acknowledges it: a refused batch
// and one whose ack never came are sent again under the same id.
func TestShipperKeepsBatchesUntilAcked(t *testing.T) {
	cp := &fakeCP{}
	sh := newShipper(cp.send, spoolConfig{AckTimeout: 200 * time.Millisecond, RetryDelay: 50 * time.Millisecond}, nil)
	for i := range 5 {
		sh.add(wsproto.LogLine{AppID: 1, Stream: "stdout", Line: fmt.Sprint("line ", i)})
	}
	sh.flush(context.Background())
	if len(cp.batches) != 1 {
		t.Fatalf("%d batches sent", len(cp.batches))
	}
	id := cp.batches[0].Batch
	if cp.ackAll(sh, true) != 1 || sh.pending() != 5 {
		t.Fatalf("refused batch not kept: %d pending", sh.pending())
	}
	sh.flush(context.Background()) // within the retry delay: nothing
	if len(cp.batches) != 0 {
		t.Fatal("resent before the retry delay")
	}
	time.Sleep(60 * time.Millisecond)
	sh.flush(context.Background())
	if len(cp.batches) != 1 || cp.batches[0].Batch != id {
		t.Fatalf("not resent under the same id: %+v", cp.batches)
	}
	cp.batches = nil
	time.Sleep(210 * time.Millisecond) // no ack: sent again after the timeout
	sh.flush(context.Background())
	if len(cp.batches) != 1 || cp.batches[0].Batch != id {
		t.Fatalf("not resent after the ack timeout: %d", len(cp.batches))
	}
	cp.ackAll(sh, false)
	if sh.pending() != 0 || len(cp.lines()) != 5 {
		t.Fatalf("pending %d, stored %d", sh.pending(), len(cp.lines()))
	}
}

// Beyond memory, batches wait on disk; they survive a restart of the agent
// and every line arrives once the control plane confirms.
func TestShipperSpoolsBeyondMemoryAndAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	cp := &fakeCP{down: true}
	sh := newShipper(cp.send, spoolConfig{Dir: dir, MemoryLines: 20}, nil)
	for i := range 150 {
		sh.add(wsproto.LogLine{AppID: 1, Stream: "stdout", Line: fmt.Sprint("line ", i)})
	}
	sh.flush(context.Background())
	sh.mu.Lock()
	mem, files := sh.memLines, len(sh.q)
	sh.mu.Unlock()
	entries, _ := os.ReadDir(dir)
	if mem > 20 || len(entries) == 0 {
		t.Fatalf("%d lines in memory, %d spool files, %d batches", mem, len(entries), files)
	}
	// The agent stops: what is still in memory goes to disk too.
	sh.persist()
	// A new agent process sends everything.
	cp.down = false
	sh2 := newShipper(cp.send, spoolConfig{Dir: dir, MemoryLines: 20}, nil)
	if sh2.pending() != 150 {
		t.Fatalf("restarted shipper holds %d lines", sh2.pending())
	}
	for range 20 {
		sh2.flush(context.Background())
		if cp.ackAll(sh2, false) == 0 {
			break
		}
	}
	if got := cp.lines(); len(got) != 150 || sh2.pending() != 0 {
		t.Fatalf("stored %d distinct lines, %d pending", len(got), sh2.pending())
	}
	if n := spoolFiles(dir); n != 0 {
		t.Fatalf("%d spool files left", n)
	}
}

// spoolFiles counts the batches in a spool directory.
func spoolFiles(dir string) int {
	m, _ := filepath.Glob(filepath.Join(dir, "*.logs"))
	return len(m)
}

// A sealed batch is on disk before it is sent: an agent killed without
// stopping (no persist) leaves it to the next process, which sends it.
func TestShipperBatchesSurviveAKill(t *testing.T) {
	dir := t.TempDir()
	cp := &fakeCP{down: true}
	sh := newShipper(cp.send, spoolConfig{Dir: dir}, nil)
	for i := range 30 {
		sh.addFrom("c1", wsproto.LogLine{AppID: 1, TS: int64(1000 + i), Stream: "stdout", Line: fmt.Sprint("line ", i)})
	}
	sh.flush(context.Background()) // sealed; the control plane is away
	// Killed here: nothing else runs. A new process finds the batch, and
	// follows the container from its last line in it.
	cp.down = false
	sh2 := newShipper(cp.send, spoolConfig{Dir: dir}, nil)
	if sh2.pending() != 30 {
		t.Fatalf("after a kill the new shipper holds %d lines, want 30", sh2.pending())
	}
	if c, ok := sh2.resumeAt("c1"); !ok || c != (logCursor{TS: 1029, N: 1}) {
		t.Fatalf("cursor after a kill: %+v %v, want 1029 and 1 line", c, ok)
	}
	sh2.flush(context.Background())
	cp.ackAll(sh2, false)
	if got := cp.lines(); len(got) != 30 || sh2.pending() != 0 {
		t.Fatalf("stored %d lines, %d pending", len(got), sh2.pending())
	}
	if n := spoolFiles(dir); n != 0 {
		t.Fatalf("%d spool files left after the acks", n)
	}
}

// Past the spool's bound the oldest lines are dropped, not the newest.
func TestShipperDropsOldestPastTheBound(t *testing.T) {
	dir := t.TempDir()
	cp := &fakeCP{down: true}
	sh := newShipper(cp.send, spoolConfig{Dir: dir, MemoryLines: 10, DiskBytes: 4 << 10}, nil)
	for i := range 400 {
		sh.add(wsproto.LogLine{AppID: 1, Stream: "stdout", Line: fmt.Sprintf("line %03d", i)})
	}
	sh.mu.Lock()
	disk, dropped := sh.diskBytes, sh.dropped
	sh.mu.Unlock()
	if disk > 4<<10 || dropped == 0 || sh.pending()+dropped != 400 {
		t.Fatalf("disk %d, dropped %d, pending %d", disk, dropped, sh.pending())
	}
	cp.down = false
	for range 50 {
		sh.flush(context.Background())
		if cp.ackAll(sh, false) == 0 {
			break
		}
	}
	got := cp.lines()
	if !got["line 399"] || got["line 000"] {
		t.Fatalf("kept the wrong end: newest %v, oldest %v", got["line 399"], got["line 000"])
	}
}

// Lines that share a time (Podman may report whole seconds) are told
// apart by their count: a log read again from before the cursor's time
// gives exactly the lines after it. A cursor of the earlier form (a time
// alone) skips every line at its time.
func TestCursorCountsLinesOfOneTime(t *testing.T) {
	log := []int64{1, 1, 1, 2, 2, 2, 3}
	for shippedN := 1; shippedN <= len(log); shippedN++ {
		var c logCursor
		for _, ts := range log[:shippedN] {
			c.advance(ts)
		}
		r := resume{at: c}
		var again []int
		for i, ts := range log {
			if ts >= c.TS && !r.shipped(ts) { // read again from the cursor's time
				again = append(again, i)
			}
		}
		if len(again) != len(log)-shippedN || (len(again) > 0 && again[0] != shippedN) {
			t.Fatalf("after %d lines shipped (cursor %+v) read again: %v", shippedN, c, again)
		}
	}
	var old map[string]logCursor
	if err := json.Unmarshal([]byte(`{"c1": 1029}`), &old); err != nil || old["c1"].TS != 1029 {
		t.Fatalf("earlier cursor form: %+v %v", old, err)
	}
	r := resume{at: old["c1"]}
	if !r.shipped(1029) || !r.shipped(1029) || r.shipped(1030) {
		t.Fatal("an earlier cursor does not skip its whole time")
	}
}
