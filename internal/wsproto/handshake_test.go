package wsproto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSessionKeysDiffer(t *testing.T) {
	a, b := NewNonce(), NewNonce()
	if a == b || CheckNonce(a) != nil {
		t.Fatalf("nonces %s %s", a, b)
	}
	k := SessionKey(testKey, a, b)
	for name, other := range map[string]Key{
		"other server nonce": SessionKey(testKey, a, NewNonce()),
		"other client nonce": SessionKey(testKey, NewNonce(), b),
		"nonces swapped":     SessionKey(testKey, b, a),
		"other worker":       SessionKey(KeyFromAPIKey("whk_other"), a, b),
	} {
		if other == k {
			t.Errorf("%s: same session key", name)
		}
	}
	if k == testKey || SessionKey(testKey, a, b) != k {
		t.Fatal("session key is the worker key or not deterministic")
	}
	for _, bad := range []string{"", "00", a + "00", a[:62] + "zz", "AB" + a[2:]} {
		if CheckNonce(bad) == nil {
			t.Errorf("nonce %q accepted", bad)
		}
	}
}

func TestRefreshSignature(t *testing.T) {
	now := time.Now()
	sig := SignRefresh(testKey, "tok", now)
	if err := VerifyRefresh(testKey, "tok", sig, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		key       Key
		tok, sig  string
		now       time.Time
		wantError error
	}{
		"other token": {testKey, "tok2", sig, now, ErrSignature},
		"other key":   {KeyFromAPIKey("whk_x"), "tok", sig, now, ErrSignature},
		"stale":       {testKey, "tok", sig, now.Add(6 * time.Minute), ErrSkew},
		"empty":       {testKey, "tok", "", now, ErrSignature},
		"no mac":      {testKey, "tok", "123.", now, ErrSignature},
	} {
		if err := VerifyRefresh(c.key, c.tok, c.sig, c.now); !errors.Is(err, c.wantError) {
			t.Errorf("%s: %v, want %v", name, err, c.wantError)
		}
	}
}

func FuzzVerifyRefresh(f *testing.F) {
	now := time.Unix(1767225600, 0)
	f.Add("tok", SignRefresh(testKey, "tok", now))
	f.Add("", "1.")
	f.Add("t", "-9223372036854775808.00")
	f.Fuzz(func(t *testing.T, tok, sig string) {
		if VerifyRefresh(testKey, tok, sig, now) != nil {
			return
		}
		// Whatever is accepted carries the key's MAC over its own time.
		tsText, macText, _ := strings.Cut(sig, ".")
		ts, err := strconv.ParseInt(tsText, 10, 64)
		mac, _ := hex.DecodeString(macText)
		if err != nil || !bytes.Equal(mac, refreshMAC(testKey, tok, ts)) {
			t.Fatalf("accepted a signature not made with the key: %q", sig)
		}
	})
}
