package logline

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClean(t *testing.T) {
	euro := "€" // 3 bytes
	for _, tc := range []struct {
		name, in string
		max      int
		want     string
	}{
		{"clean line unchanged", "GET / 200", 0, "GET / 200"},
		{"NUL removed", "a\x00b\x00", 0, "ab"},
		{"invalid byte replaced", "a\xffb", 0, "a\uFFFDb"},
		{"half a character replaced", "price: " + euro[:2], 0, "price: \uFFFD"},
		{"cut on a character boundary", strings.Repeat(euro, 10), 12, euro + euro + " …"},
		{"surrogate replaced", "x\xed\xa0\x80y", 0, "x\uFFFDy"},
		{"long line cut to max", strings.Repeat("y", MaxBytes+10), 0, strings.Repeat("y", MaxBytes-len(cutMark)) + cutMark},
	} {
		got := Clean(tc.in, tc.max)
		if got != tc.want {
			t.Errorf("%s: Clean(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
	if Stream("stderr") != "stderr" || Stream("evil\x00") != "stdout" {
		t.Fatal("stream names")
	}
}

// The agent cuts a line and the control plane cleans it again: a second
// pass must change nothing (the earlier double cut split a character).
func TestCleanTwiceIsStable(t *testing.T) {
	line := strings.Repeat("ü", MaxBytes) // 2 bytes each
	once := Clean(line, 0)
	if twice := Clean(once, 0); twice != once || len(once) > MaxBytes || !utf8.ValidString(once) {
		t.Fatalf("len %d valid %v stable %v", len(once), utf8.ValidString(once), twice == once)
	}
}

func FuzzClean(f *testing.F) {
	for _, s := range []string{"", "ok", "a\x00b", "\xff\xfe", "€€€€", "\xe2\x82", strings.Repeat("ü", 40)} {
		f.Add(s, 0)
		f.Add(s, 7)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		max %= 64
		if max < 0 {
			max = -max
		}
		limit := max
		if limit == 0 {
			limit = MaxBytes
		}
		if limit < len(cutMark) {
			return // too small to hold the cut mark
		}
		got := Clean(s, max)
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8: %q", got)
		}
		if strings.IndexByte(got, 0) >= 0 {
			t.Fatalf("NUL kept: %q", got)
		}
		if len(got) > limit {
			t.Fatalf("len %d > %d", len(got), limit)
		}
		if again := Clean(got, max); again != got {
			t.Fatalf("not idempotent: %q -> %q", got, again)
		}
		if len(s) <= limit && utf8.ValidString(s) && !strings.Contains(s, "\x00") && got != s {
			t.Fatalf("clean input changed: %q -> %q", s, got)
		}
	})
}
