package wsproto

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var testKey = KeyFromAPIKey("whk_test_key")

func sealFrame(t testing.TB, k Key, seq uint64, now time.Time) []byte {
	t.Helper()
	e, err := Seal(k, TypeStats, seq, now, Stats{TS: now.Unix(), Apps: []AppStats{{AppID: 1, CPUPercent: 12.5}}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(e)
	return b
}

func TestSealOpen(t *testing.T) {
	now := time.Now()
	var w Window
	e, err := Open(testKey, &w, sealFrame(t, testKey, 1, now), now)
	if err != nil {
		t.Fatal(err)
	}
	var st Stats
	if err := json.Unmarshal(e.P, &st); err != nil || st.Apps[0].CPUPercent != 12.5 {
		t.Fatalf("payload %s %v", e.P, err)
	}
}

func TestVerifyRejections(t *testing.T) {
	now := time.Now()
	frame := sealFrame(t, testKey, 7, now)
	cases := map[string]struct {
		frame []byte
		key   Key
		now   time.Time
		want  error
	}{
		"wrong key":    {frame, KeyFromAPIKey("other"), now, ErrSignature},
		"old":          {frame, testKey, now.Add(6 * time.Minute), ErrSkew},
		"future":       {frame, testKey, now.Add(-6 * time.Minute), ErrSkew},
		"malformed":    {[]byte(`{"t":`), testKey, now, ErrMalformed},
		"not json":     {[]byte("hello"), testKey, now, ErrMalformed},
		"missing mac":  {[]byte(`{"t":"x","i":"a","s":1,"ts":1,"p":{}}`), testKey, now, ErrMalformed},
		"oversized":    {[]byte(`{"t":"x","p":"` + strings.Repeat("a", MaxFrameBytes) + `"}`), testKey, now, ErrMalformed},
		"tampered p":   {[]byte(strings.Replace(string(frame), "12.5", "99.5", 1)), testKey, now, ErrSignature},
		"tampered t":   {[]byte(strings.Replace(string(frame), `"t":"stats"`, `"t":"logs"`, 1)), testKey, now, ErrSignature},
		"tampered seq": {[]byte(strings.Replace(string(frame), `"s":7`, `"s":8`, 1)), testKey, now, ErrSignature},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var w Window
			if _, err := Open(c.key, &w, c.frame, c.now); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	// Within the skew limit is fine.
	var w Window
	if _, err := Open(testKey, &w, frame, now.Add(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
}

func TestReplayWindow(t *testing.T) {
	var w Window
	for _, s := range []uint64{1, 2, 3, 10, 5, 4} {
		if err := w.Check(s); err != nil {
			t.Fatalf("fresh %d rejected: %v", s, err)
		}
	}
	for _, s := range []uint64{1, 3, 10, 4, 0} {
		if err := w.Check(s); !errors.Is(err, ErrReplay) {
			t.Fatalf("replayed %d accepted", s)
		}
	}
	// Out of order within the window: accepted once.
	if err := w.Check(9); err != nil {
		t.Fatal(err)
	}
	if err := w.Check(9); err == nil {
		t.Fatal("9 accepted twice")
	}
	// Jump ahead: numbers more than 256 behind are refused.
	if err := w.Check(1000); err != nil {
		t.Fatal(err)
	}
	if err := w.Check(1000 - ReplayWindow); !errors.Is(err, ErrReplay) {
		t.Fatal("number behind the window accepted")
	}
	if err := w.Check(1000 - ReplayWindow + 1); err != nil {
		t.Fatalf("oldest number inside the window refused: %v", err)
	}
	// Bits survive word boundaries while shifting.
	var w2 Window
	w2.Check(100)
	for i := uint64(101); i < 300; i++ {
		w2.Check(i)
	}
	if err := w2.Check(100); !errors.Is(err, ErrReplay) {
		t.Fatal("100 forgotten after 199 shifts")
	}
}

func TestDedup(t *testing.T) {
	d := NewDedup(2)
	if !d.First("a") || d.First("a") || !d.First("b") || !d.First("c") {
		t.Fatal("dedup basics")
	}
	if !d.First("a") { // evicted after two newer ids
		t.Fatal("old id not evicted")
	}
}

func FuzzOpen(f *testing.F) {
	now := time.Unix(1767225600, 0)
	f.Add(sealFrame(f, testKey, 1, now))
	f.Add([]byte(`{"t":"x","i":"y","s":1,"ts":1767225600000,"p":null,"h":"00"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		var w Window
		e, err := Open(testKey, &w, frame, now)
		if err != nil {
			return
		}
		// Anything that opens must carry a MAC made with the key.
		want := mac(testKey, e.T, e.I, e.S, e.TS, e.P)
		if e.H != string(hexEncode(want)) {
			t.Fatalf("opened an envelope with a foreign MAC: %s", frame)
		}
	})
}

func hexEncode(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, len(b)*2)
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return out
}

func BenchmarkVerify(b *testing.B) {
	now := time.Now()
	frame := sealFrame(b, testKey, 1, now)
	e, _ := Decode(frame)
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Verify(testKey, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	now := time.Now()
	frame := sealFrame(b, testKey, 1, now)
	b.ReportAllocs()
	var seq uint64
	for b.Loop() {
		seq++
		var w Window
		w.highest = seq - 1
		if _, err := Open(testKey, &w, frame, now); err != nil && !errors.Is(err, ErrReplay) {
			b.Fatal(err)
		}
	}
}
