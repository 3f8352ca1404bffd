package wsproto

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// NonceHeader carries the worker's nonce on the WebSocket upgrade request.
const NonceHeader = "X-WiseHosting-Nonce"

// SignatureHeader carries the key proof of a refresh-token request.
const SignatureHeader = "X-WiseHosting-Signature"

// NonceBytes is the size of both handshake nonces.
const NonceBytes = 32

// ErrHandshake means a peer did not complete the challenge-response.
var ErrHandshake = errors.New("worker handshake failed")

// Challenge is the payload of the control plane's first frame: its fresh
// nonce for this connection. It carries nothing else.
type Challenge struct {
	Nonce string `json:"nonce"`
}

// NewNonce returns a fresh random nonce, hex-encoded.
func NewNonce() string {
	var b [NonceBytes]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// CheckNonce reports whether n has the form NewNonce returns.
func CheckNonce(n string) error {
	b, err := hex.DecodeString(n)
	if err != nil || len(b) != NonceBytes || n != strings.ToLower(n) {
		return fmt.Errorf("%w: nonce must be %d hex-encoded bytes", ErrHandshake, NonceBytes)
	}
	return nil
}

// SessionKey is the MAC key of one connection: HMAC-SHA256 under the
// worker's key over both nonces. Every frame of the connection (the
// challenge and the hello included) is signed with it, so a frame captured
// on one connection fails verification on any other, and only a holder of
// the worker key can produce the hello that registers a connection.
func SessionKey(k Key, clientNonce, serverNonce string) Key {
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte("wisehosting/session/v1\x00"))
	m.Write([]byte(clientNonce))
	m.Write([]byte{0})
	m.Write([]byte(serverNonce))
	var s Key
	copy(s[:], m.Sum(nil))
	return s
}

func refreshMAC(k Key, token string, ts int64) []byte {
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte("wisehosting/refresh/v1\x00"))
	m.Write([]byte(token))
	m.Write([]byte{0})
	m.Write(strconv.AppendInt(nil, ts, 10))
	return m.Sum(nil)
}

// SignRefresh proves possession of the worker key for a refresh of token:
// "<unix ms>.<hex HMAC>" for the SignatureHeader.
func SignRefresh(k Key, token string, now time.Time) string {
	ts := now.UnixMilli()
	return strconv.FormatInt(ts, 10) + "." + hex.EncodeToString(refreshMAC(k, token, ts))
}

// VerifyRefresh checks a SignRefresh value for token: the MAC (constant
// time) and its age (MaxSkew either way).
func VerifyRefresh(k Key, token, sig string, now time.Time) error {
	tsText, macText, ok := strings.Cut(sig, ".")
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if !ok || err != nil {
		return ErrSignature
	}
	got, err := hex.DecodeString(macText)
	if err != nil || !hmac.Equal(got, refreshMAC(k, token, ts)) {
		return ErrSignature
	}
	if d := now.Sub(time.UnixMilli(ts)); d > MaxSkew || d < -MaxSkew {
		return fmt.Errorf("%w (%s)", ErrSkew, d.Round(time.Second))
	}
	return nil
}
