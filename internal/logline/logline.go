// Package logline makes a log line storable before it travels or is
// stored: valid UTF-8 (invalid bytes become U+FFFD), no NUL bytes (Postgres
// text cannot hold them), and at most a given length, cut on a character
// boundary. Workers apply it where lines are read and the control plane
// again where they arrive, so one bad line can never fail a batch insert.
package logline

import (
	"strings"
	"unicode/utf8"
)

// MaxBytes bounds one line (a minified bundle printed by a build must not
// become a 10 MB message).
const MaxBytes = 8 << 10

// cutMark ends a line that was cut.
const cutMark = " …"

// Clean returns s as valid UTF-8 without NUL bytes, at most max bytes long
// (MaxBytes when max <= 0); a cut line ends with " …". Clean is idempotent
// and returns s itself when it is already clean.
func Clean(s string, max int) string {
	if max <= 0 {
		max = MaxBytes
	}
	if len(s) <= max && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) <= max {
		return s
	}
	return cut(s, max-len(cutMark)) + cutMark
}

// cut returns the longest prefix of valid s of at most n bytes that ends on
// a character boundary.
func cut(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Stream returns a known stream name: stdout, stderr or build; anything
// else is stdout.
func Stream(s string) string {
	switch s {
	case "stdout", "stderr", "build":
		return s
	}
	return "stdout"
}
