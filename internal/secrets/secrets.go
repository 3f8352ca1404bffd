// Package secrets encrypts values at rest with AES-256-GCM under per-purpose
// keys derived by HKDF-SHA256 from the control plane's master secret.
//
// Every ciphertext names the key that sealed it, so the master secret can be
// rotated: a Keyring holds the current secret (which encrypts) and any number
// of previous ones (which still decrypt). A wrong key or a modified
// ciphertext is an error, never garbage.
//
// Wire form: "whs1." + base64url(keyID[4] || nonce[12] || sealed). The
// purpose and the optional associated data are bound into the GCM tag, so a
// value sealed for one purpose (or one row) cannot be replayed as another.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Purposes name the keys derived from the master secret. A key is never
// shared between two purposes.
const (
	PurposeEnvVars     = "env-vars"
	PurposeGitTokens   = "git-tokens"
	PurposeWebhooks    = "webhooks"
	PurposeTOTP        = "totp"
	PurposeOAuthTokens = "oauth-tokens"
	PurposeDNS         = "dns-credentials"
	PurposeGitHooks    = "git-webhooks"
	PurposeWorkerKeys  = "worker-keys"
	PurposeRegistry    = "registry-credentials"
)

const prefix = "whs1."

// MinSecretLen is the shortest master secret accepted.
const MinSecretLen = 32

var (
	// ErrUnknownKey means the ciphertext was sealed by a master secret this
	// keyring does not hold.
	ErrUnknownKey = errors.New("secrets: ciphertext sealed by an unknown key")
	// ErrInvalid means the ciphertext is malformed, was modified, or belongs
	// to another purpose or associated data.
	ErrInvalid = errors.New("secrets: invalid or tampered ciphertext")
)

// Keyring encrypts with its current master secret and decrypts with any of
// the ones it holds. It is safe for concurrent use.
type Keyring struct {
	current uint32
	masters map[uint32][]byte

	mu    sync.RWMutex
	aeads map[aeadKey]cipher.AEAD
}

type aeadKey struct {
	id      uint32
	purpose string
}

// NewKeyring returns a keyring that encrypts with current and also
// decrypts values sealed under any of previous.
func NewKeyring(current string, previous ...string) (*Keyring, error) {
	if len(current) < MinSecretLen {
		return nil, fmt.Errorf("secrets: master secret must be at least %d bytes, got %d", MinSecretLen, len(current))
	}
	k := &Keyring{masters: make(map[uint32][]byte), aeads: make(map[aeadKey]cipher.AEAD)}
	k.current = KeyID(current)
	k.masters[k.current] = []byte(current)
	for _, p := range previous {
		if p == "" {
			continue
		}
		id := KeyID(p)
		if _, dup := k.masters[id]; dup {
			continue
		}
		k.masters[id] = []byte(p)
	}
	return k, nil
}

// KeyID is the public 32-bit identifier of a master secret. It is derived
// with HKDF and reveals nothing useful about the secret.
func KeyID(master string) uint32 {
	b, err := hkdf.Key(sha256.New, []byte(master), nil, "wisehosting/key-id", 4)
	if err != nil {
		panic(err) // only for absurd lengths
	}
	return binary.BigEndian.Uint32(b)
}

// CurrentKeyID reports the id of the key that encrypts.
func (k *Keyring) CurrentKeyID() uint32 { return k.current }

func (k *Keyring) aead(id uint32, purpose string) (cipher.AEAD, error) {
	ak := aeadKey{id, purpose}
	k.mu.RLock()
	a, ok := k.aeads[ak]
	k.mu.RUnlock()
	if ok {
		return a, nil
	}
	master, ok := k.masters[id]
	if !ok {
		return nil, ErrUnknownKey
	}
	key, err := hkdf.Key(sha256.New, master, nil, "wisehosting/purpose/"+purpose, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	a, err = cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.aeads[ak] = a
	k.mu.Unlock()
	return a, nil
}

func additional(purpose string, ad []byte) []byte {
	out := make([]byte, 0, len(purpose)+1+len(ad))
	out = append(out, purpose...)
	out = append(out, 0)
	return append(out, ad...)
}

// Encrypt seals plaintext for purpose under the current key. ad (may be
// nil) is authenticated but not stored: pass the same bytes to Decrypt,
// e.g. the owning row's identity.
func (k *Keyring) Encrypt(purpose string, plaintext, ad []byte) (string, error) {
	a, err := k.aead(k.current, purpose)
	if err != nil {
		return "", err
	}
	buf := make([]byte, 4+a.NonceSize(), 4+a.NonceSize()+len(plaintext)+a.Overhead())
	binary.BigEndian.PutUint32(buf, k.current)
	if _, err := rand.Read(buf[4:]); err != nil {
		return "", fmt.Errorf("secrets: reading nonce: %w", err)
	}
	sealed := a.Seal(buf, buf[4:], plaintext, additional(purpose, ad))
	return prefix + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// EncryptString is Encrypt for strings.
func (k *Keyring) EncryptString(purpose, plaintext string, ad []byte) (string, error) {
	return k.Encrypt(purpose, []byte(plaintext), ad)
}

// Decrypt opens a value sealed by Encrypt with the same purpose and ad.
func (k *Keyring) Decrypt(purpose, ciphertext string, ad []byte) ([]byte, error) {
	raw, ok := strings.CutPrefix(ciphertext, prefix)
	if !ok {
		return nil, ErrInvalid
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return nil, ErrInvalid
	}
	if len(b) < 4 {
		return nil, ErrInvalid
	}
	a, err := k.aead(binary.BigEndian.Uint32(b), purpose)
	if err != nil {
		return nil, err
	}
	if len(b) < 4+a.NonceSize()+a.Overhead() {
		return nil, ErrInvalid
	}
	nonce := b[4 : 4+a.NonceSize()]
	pt, err := a.Open(nil, nonce, b[4+a.NonceSize():], additional(purpose, ad))
	if err != nil {
		return nil, ErrInvalid
	}
	return pt, nil
}

// DecryptString is Decrypt for strings.
func (k *Keyring) DecryptString(purpose, ciphertext string, ad []byte) (string, error) {
	b, err := k.Decrypt(purpose, ciphertext, ad)
	return string(b), err
}

// NeedsRotation reports whether ciphertext was sealed by a key other than
// the current one (or cannot be parsed).
func (k *Keyring) NeedsRotation(ciphertext string) bool {
	raw, ok := strings.CutPrefix(ciphertext, prefix)
	if !ok {
		return true
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(b) < 4 {
		return true
	}
	return binary.BigEndian.Uint32(b) != k.current
}

// Rotate decrypts ciphertext with whichever key sealed it and re-encrypts
// it under the current key.
func (k *Keyring) Rotate(purpose, ciphertext string, ad []byte) (string, error) {
	pt, err := k.Decrypt(purpose, ciphertext, ad)
	if err != nil {
		return "", err
	}
	return k.Encrypt(purpose, pt, ad)
}

// DeriveKey returns an n-byte key for purpose derived from the current
// master secret (for MACs and token signing, not for Encrypt). Keys change
// when the master secret is rotated.
func (k *Keyring) DeriveKey(purpose string, n int) []byte {
	b, err := hkdf.Key(sha256.New, k.masters[k.current], nil, "wisehosting/derive/"+purpose, n)
	if err != nil {
		panic(err)
	}
	return b
}
