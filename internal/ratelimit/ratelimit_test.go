package ratelimit

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(60, time.Minute)
	l.SetClock(func() time.Time { return now })
	for i := 0; i < 60; i++ {
		if !l.Allow("1.2.3.4") {
			t.Fatalf("event %d refused", i)
		}
	}
	if l.Allow("1.2.3.4") {
		t.Fatal("61st event in a minute allowed")
	}
	if !l.Allow("5.6.7.8") {
		t.Fatal("another key was limited")
	}
	// Half a window later the sliding estimate is still 60·0.5+0 < 60 only
	// after the window rolls; one window later about half is available.
	now = now.Add(90 * time.Second)
	allowed := 0
	for i := 0; i < 60; i++ {
		if l.Allow("1.2.3.4") {
			allowed++
		}
	}
	if allowed < 25 || allowed > 35 {
		t.Fatalf("after 1.5 windows %d allowed, want about 30", allowed)
	}
	now = now.Add(3 * time.Minute)
	if !l.Allow("1.2.3.4") {
		t.Fatal("limit did not reset")
	}
}

func TestExhaustedDoesNotCount(t *testing.T) {
	l := New(2, time.Minute)
	for i := 0; i < 10; i++ {
		if l.Exhausted("k") {
			t.Fatal("peeking used the budget")
		}
	}
	l.Allow("k")
	l.Allow("k")
	if !l.Exhausted("k") {
		t.Fatal("budget not exhausted after 2 events")
	}
}
