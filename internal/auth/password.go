// Package auth holds the account primitives shared by the dashboard and the
// operator commands: password hashing and random tokens.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// argon2id parameters: the OWASP password-storage profile m=19 MiB, t=2,
// p=1, which keeps the cost per guess of 64 MiB, t=1 while each hash holds
// less than a third of the memory. Hashes made with other parameters still
// verify and are replaced on the next sign-in (Check reports Rehash).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
)

// MaxPasswordLen bounds the work an attacker can ask of the hasher.
const MaxPasswordLen = 1024

// HashSlots is how many argon2id computations run at once in a process:
// each holds argon's memory (19 MiB, up to 64 MiB for an old hash), so a
// burst of sign-ins from many addresses costs at most HashSlots times that.
// Excess callers wait up to HashWait for a slot and then get ErrBusy.
const (
	HashSlots = 2
	HashWait  = 10 * time.Second
)

// ErrBusy: every hashing slot stayed taken for HashWait.
var ErrBusy = errors.New("too many sign-ins at once; try again in a few seconds")

// slots is process-wide on purpose: it bounds this process's memory,
// whichever service asks for a hash.
var slots = make(chan struct{}, HashSlots)

func acquire(ctx context.Context) (release func(), err error) {
	t := time.NewTimer(HashWait)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, ErrBusy
	}
}

// HashPassword returns an encoded argon2id hash of pw.
func HashPassword(ctx context.Context, pw string) (string, error) {
	if len(pw) > MaxPasswordLen {
		return "", errors.New("password too long")
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	release, err := acquire(ctx)
	if err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	release()
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Match is the outcome of Check.
type Match struct {
	// OK: the password is right.
	OK bool
	// Rehash: the hash was made with other parameters; store a new one.
	Rehash bool
}

// Check compares pw with encoded in constant time, waiting for a hashing
// slot (ErrBusy after HashWait). A malformed hash never matches.
func Check(ctx context.Context, encoded, pw string) (Match, error) {
	if len(pw) > MaxPasswordLen {
		return Match{}, nil
	}
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return Match{}, nil
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m > 256*1024 || t > 10 || p == 0 {
		return Match{}, nil
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return Match{}, nil
	}
	release, err := acquire(ctx)
	if err != nil {
		return Match{}, err
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	release()
	ok := subtle.ConstantTimeCompare(got, want) == 1
	return Match{OK: ok, Rehash: ok && (m != argonMemory || t != argonTime || p != argonThreads || len(want) != argonKeyLen)}, nil
}

// RandomToken returns n random bytes, base64url-encoded.
func RandomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
