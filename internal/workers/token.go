package workers

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wisehosting/wisehosting/internal/auth"
)

// TokenKeyPurpose names the key (derived from the master secret) that signs
// worker JWTs.
const TokenKeyPurpose = "worker-jwt"

const tokenAudience = "wisehosting-worker"

// IssueToken signs a JWT for workerID valid for ttl.
func IssueToken(key []byte, workerID int64, ttl time.Duration, now time.Time) (string, time.Time, error) {
	exp := now.Add(ttl)
	claims := jwt.RegisteredClaims{
		Subject:   strconv.FormatInt(workerID, 10),
		Audience:  jwt.ClaimStrings{tokenAudience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now.Add(-30 * time.Second)),
		ExpiresAt: jwt.NewNumericDate(exp),
		ID:        auth.RandomToken(12),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
	return s, exp, err
}

// ParseToken verifies a worker JWT (HS256 only) and returns its worker id
// and expiry.
func ParseToken(key []byte, token string, now time.Time) (int64, time.Time, error) {
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) { return key, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithAudience(tokenAudience), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("invalid worker token: %w", err)
	}
	id, err := strconv.ParseInt(claims.Subject, 10, 64)
	if err != nil || id <= 0 {
		return 0, time.Time{}, errors.New("invalid worker token: bad subject")
	}
	return id, claims.ExpiresAt.Time, nil
}
