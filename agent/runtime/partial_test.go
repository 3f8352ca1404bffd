package runtime

import (
	"testing"
	"time"
)

// A line Podman recorded in two pieces comes out whole, with the time of
// its first piece; complete lines pass through; streams do not mix.
func TestPartialLinesAreJoined(t *testing.T) {
	var p partialLines
	t1 := "2026-12-02T05:51:12.100000000Z"
	t2 := "2026-12-02T05:51:12.200000000Z"
	if _, _, ok := p.feed("stdout", t1+" wh-line abc 3"); ok {
		t.Fatal("a partial piece came out alone")
	}
	if at, line, ok := p.feed("stderr", t2+" other\n"); !ok || line != "other" || !at.Equal(time.Date(2026, 12, 2, 5, 51, 12, 200000000, time.UTC)) {
		t.Fatalf("stderr line: %v %q %v", at, line, ok)
	}
	at, line, ok := p.feed("stdout", t2+" 39\n")
	if !ok || line != "wh-line abc 339" || !at.Equal(time.Date(2026, 12, 2, 5, 51, 12, 100000000, time.UTC)) {
		t.Fatalf("joined line: %v %q %v", at, line, ok)
	}
	if _, line, ok := p.feed("stdout", t2+" whole\n"); !ok || line != "whole" {
		t.Fatalf("complete line: %q %v", line, ok)
	}
}
