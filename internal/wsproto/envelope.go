package wsproto

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Limits of the protocol.
const (
	// MaxSkew is the largest accepted difference between a frame's ts and
	// the receiver's clock.
	MaxSkew = 5 * time.Minute
	// MaxFrameBytes bounds one frame; larger frames close the connection.
	MaxFrameBytes = 1 << 20
	// ReplayWindow is how many sequence numbers behind the highest seen are
	// still accepted (once each).
	ReplayWindow = 256
)

// Envelope is one signed frame.
type Envelope struct {
	T  string          `json:"t"`
	I  string          `json:"i"`
	S  uint64          `json:"s"`
	TS int64           `json:"ts"`
	P  json.RawMessage `json:"p"`
	H  string          `json:"h"`
}

// Errors of Verify and Window.Check. Their text is logged by receivers.
var (
	ErrMalformed = errors.New("malformed envelope")
	ErrSignature = errors.New("envelope signature mismatch")
	ErrSkew      = errors.New("envelope timestamp outside the allowed clock skew")
	ErrReplay    = errors.New("envelope sequence number replayed or too old")
)

// Key is a MAC key: a worker key (sha256 of the raw API key) or a session
// key derived from it.
type Key [32]byte

// KeyFromAPIKey derives the worker key from a raw API key.
func KeyFromAPIKey(raw string) Key { return sha256.Sum256([]byte(raw)) }

// KeyFromBytes wraps 32 bytes of key material.
func KeyFromBytes(b []byte) (Key, error) {
	var k Key
	if len(b) != len(k) {
		return k, fmt.Errorf("worker key has %d bytes, want %d", len(b), len(k))
	}
	copy(k[:], b)
	return k, nil
}

func mac(k Key, t, i string, s uint64, ts int64, p []byte) []byte {
	m := hmac.New(sha256.New, k[:])
	var buf [64]byte
	m.Write([]byte(t))
	m.Write([]byte{'|'})
	m.Write([]byte(i))
	m.Write([]byte{'|'})
	m.Write(strconv.AppendUint(buf[:0], s, 10))
	m.Write([]byte{'|'})
	m.Write(strconv.AppendInt(buf[:0], ts, 10))
	m.Write([]byte{'|'})
	m.Write(p)
	return m.Sum(nil)
}

// NewID returns a random message id.
func NewID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Seal builds and signs an envelope carrying payload.
func Seal(k Key, msgType string, seq uint64, now time.Time, payload any) (*Envelope, error) {
	p, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encoding %s payload: %w", msgType, err)
	}
	e := &Envelope{T: msgType, I: NewID(), S: seq, TS: now.UnixMilli(), P: p}
	e.H = hex.EncodeToString(mac(k, e.T, e.I, e.S, e.TS, e.P))
	return e, nil
}

// Decode parses one frame without verifying it.
func Decode(frame []byte) (*Envelope, error) {
	if len(frame) > MaxFrameBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(frame))
	}
	var e Envelope
	if err := json.Unmarshal(frame, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if e.T == "" || len(e.T) > 64 || e.I == "" || len(e.I) > 64 || len(e.H) != 64 || e.S == 0 {
		return nil, ErrMalformed
	}
	if len(e.P) == 0 {
		e.P = json.RawMessage("null")
	}
	return &e, nil
}

// Verify checks the MAC (constant time) and the clock skew against now.
func (e *Envelope) Verify(k Key, now time.Time) error {
	want := mac(k, e.T, e.I, e.S, e.TS, e.P)
	got, err := hex.DecodeString(e.H)
	if err != nil || !hmac.Equal(got, want) {
		return ErrSignature
	}
	d := now.Sub(time.UnixMilli(e.TS))
	if d > MaxSkew || d < -MaxSkew {
		return fmt.Errorf("%w (%s)", ErrSkew, d.Round(time.Second))
	}
	return nil
}

// Window is a sliding anti-replay window over sequence numbers (as in
// IPsec): the highest seen number and a bitmap of the ReplayWindow numbers
// below it. One Window per direction of a connection.
type Window struct {
	mu      sync.Mutex
	highest uint64
	bits    [ReplayWindow / 64]uint64
}

// Check accepts seq once: it fails for a number seen before or one that
// has fallen behind the window.
func (w *Window) Check(seq uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if seq == 0 {
		return ErrReplay
	}
	if seq > w.highest {
		shift := seq - w.highest
		if shift >= ReplayWindow {
			w.bits = [ReplayWindow / 64]uint64{}
		} else {
			for ; shift > 0; shift-- {
				w.shiftOne()
			}
		}
		w.highest = seq
		w.bits[0] |= 1
		return nil
	}
	off := w.highest - seq
	if off >= ReplayWindow {
		return ErrReplay
	}
	word, bit := off/64, off%64
	if w.bits[word]&(1<<bit) != 0 {
		return ErrReplay
	}
	w.bits[word] |= 1 << bit
	return nil
}

// shiftOne moves the bitmap one position: bit n becomes bit n+1.
func (w *Window) shiftOne() {
	for i := len(w.bits) - 1; i > 0; i-- {
		w.bits[i] = w.bits[i]<<1 | w.bits[i-1]>>63
	}
	w.bits[0] <<= 1
}

// Open decodes, verifies and replay-checks a frame in one step.
func Open(k Key, w *Window, frame []byte, now time.Time) (*Envelope, error) {
	e, err := Decode(frame)
	if err != nil {
		return nil, err
	}
	if err := e.Verify(k, now); err != nil {
		return nil, err
	}
	if err := w.Check(e.S); err != nil {
		return nil, err
	}
	return e, nil
}

// Dedup remembers the last n message ids, to drop redelivered messages.
type Dedup struct {
	mu   sync.Mutex
	seen map[string]struct{}
	ring []string
	next int
	max  int
}

// NewDedup remembers up to n ids. Memory grows with use, not with n, so
// an idle connection's Dedup costs almost nothing.
func NewDedup(n int) *Dedup {
	return &Dedup{seen: make(map[string]struct{}), ring: make([]string, 0, 0), max: n}
}

// First reports whether id is new, and remembers it.
func (d *Dedup) First(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.seen[id]; ok {
		return false
	}
	if len(d.ring) < d.max {
		d.ring = append(d.ring, id)
	} else {
		delete(d.seen, d.ring[d.next])
		d.ring[d.next] = id
		d.next = (d.next + 1) % d.max
	}
	d.seen[id] = struct{}{}
	return true
}
