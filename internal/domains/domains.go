// Package domains manages users' custom domains: strict validation, a
// verification token published as a TXT record at _wisehosting.<hostname>,
// and the lookup that proves ownership. Every operation is scoped by team.
// A verified domain enters the routing table (and so may get certificates);
// an unverified one never does.
package domains

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/net/idna"

	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/plans"
)

// userErr is a problem the user can fix; its message is shown as is.
func userErr(format string, a ...any) error { return errs.Invalidf(format, a...) }

// ErrNotFound means no such domain in the caller's team.
var ErrNotFound = errs.New(errs.NotFound, "domain not found")

var profile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.Transitional(false), idna.StrictDomainName(true), idna.ValidateLabels(true), idna.VerifyDNSLength(true))

// Normalize validates a hostname a user typed and returns its ASCII
// (punycode) lowercase form. subdomainBase and names below it belong to
// the platform and are refused.
func Normalize(host, subdomainBase string) (string, error) {
	h := strings.TrimSpace(host)
	h = strings.TrimSuffix(h, ".")
	if h == "" {
		return "", userErr("enter a domain name such as www.example.com")
	}
	if strings.ContainsAny(h, "/:@ ") || strings.Contains(h, "://") {
		return "", userErr("%q is not a domain name: leave out the scheme, port and path", host)
	}
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return "", userErr("%q is an IP address; custom domains must be names", host)
	}
	if strings.HasPrefix(h, "*.") {
		return "", userErr("wildcard domains are not supported; add each name")
	}
	if !utf8.ValidString(h) {
		return "", userErr("%q is not valid text", host)
	}
	ascii, err := profile.ToASCII(h)
	if err != nil {
		return "", userErr("%q is not a valid domain name: %v", host, err)
	}
	// Punycode labels (xn--…) must decode to a valid name too.
	if _, err := profile.ToASCII(ascii); err != nil {
		return "", userErr("%q is not a valid domain name: %v", host, err)
	}
	ascii = strings.ToLower(ascii)
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		return "", userErr("%q needs at least two labels, like example.com", host)
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
			return "", userErr("%q has an invalid label %q", host, l)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", userErr("%q has an invalid character in %q", host, l)
			}
		}
	}
	tld := labels[len(labels)-1]
	if tld[0] >= '0' && tld[0] <= '9' {
		return "", userErr("%q has a numeric top-level domain", host)
	}
	if base := strings.ToLower(strings.Trim(subdomainBase, ".")); base != "" && (ascii == base || strings.HasSuffix(ascii, "."+base)) {
		return "", userErr("%s belongs to the platform: apps already get <name>.%s", ascii, base)
	}
	return ascii, nil
}

// Domain is a custom domain of an app.
type Domain struct {
	ID         int64      `json:"id"`
	AppID      int64      `json:"app_id"`
	Hostname   string     `json:"hostname"`
	Token      string     `json:"token"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	// ExpiresAt: an unverified claim lapses then (ClaimTTL after it was
	// added) and the hostname is free for anyone.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// ClaimTTL is how long an unverified claim holds its hostname: nobody can
// keep a hostname from its owner by adding it and never verifying.
// Verified domains do not expire and stay unique.
const ClaimTTL = 7 * 24 * time.Hour

// RecordName is where the verification TXT record goes.
func (d Domain) RecordName() string { return "_wisehosting." + d.Hostname }

// Instructions tell the user what to publish.
func (d Domain) Instructions() string {
	return fmt.Sprintf("Add a TXT record named %s with the value %s, then verify. Point %s at the proxy with a CNAME or A record.",
		d.RecordName(), d.Token, d.Hostname)
}

// Service adds, verifies, lists and removes domains.
type Service struct {
	Pool          *pgxpool.Pool
	SubdomainBase string
	// Verifier does the lookups; nil means public resolvers, 8 seconds.
	Verifier *Verifier
	// Allow, when set, is asked in the transaction that adds a domain
	// (e.g. whether the team's plan includes custom domains).
	Allow func(ctx context.Context, tx plans.Querier, teamID int64) error
}

const cols = "d.id, d.app_id, d.hostname, d.token, d.verified_at, d.last_error, d.created_at"

func scan(row pgx.Row) (Domain, error) {
	var d Domain
	err := row.Scan(&d.ID, &d.AppID, &d.Hostname, &d.Token, &d.VerifiedAt, &d.LastError, &d.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, ErrNotFound
	}
	if err == nil && d.VerifiedAt == nil {
		exp := d.CreatedAt.Add(ClaimTTL)
		d.ExpiresAt = &exp
	}
	return d, err
}

func newToken() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Add attaches hostname to the team's app, unverified.
func (s *Service) Add(ctx context.Context, teamID, appID int64, hostname string) (Domain, error) {
	host, err := Normalize(hostname, s.SubdomainBase)
	if err != nil {
		return Domain{}, err
	}
	var d Domain
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		if s.Allow != nil {
			if err := s.Allow(ctx, tx, teamID); err != nil {
				return err
			}
		}
		// Lapsed claims free their hostnames first.
		if _, err := tx.Exec(ctx, "DELETE FROM domains WHERE verified_at IS NULL AND created_at < now() - $1::interval", ClaimTTL.String()); err != nil {
			return err
		}
		var err error
		d, err = scan(tx.QueryRow(ctx, `INSERT INTO domains (app_id, hostname, token)
			SELECT a.id, $3, $4 FROM apps a WHERE a.id = $2 AND a.team_id = $1
			RETURNING id, app_id, hostname, token, verified_at, last_error, created_at`, teamID, appID, host, newToken()))
		if err != nil {
			return err
		}
		return events.Emit(ctx, tx, events.Event{Kind: events.DomainAdded, TeamID: teamID, AppID: appID, Data: map[string]any{"hostname": host, "domain_id": d.ID}})
	})
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "23505":
		return Domain{}, userErr("%s is already used by another app", host)
	case errors.Is(err, ErrNotFound):
		return Domain{}, fmt.Errorf("app %d: %w", appID, ErrNotFound)
	case err != nil:
		return Domain{}, err
	}
	return d, nil
}

// Get reads one of the team's domains.
func (s *Service) Get(ctx context.Context, teamID, domainID int64) (Domain, error) {
	return scan(s.Pool.QueryRow(ctx, "SELECT "+cols+" FROM domains d JOIN apps a ON a.id = d.app_id WHERE d.id = $2 AND a.team_id = $1", teamID, domainID))
}

// List returns the domains of the team's app.
func (s *Service) List(ctx context.Context, teamID, appID int64) ([]Domain, error) {
	rows, err := s.Pool.Query(ctx, "SELECT "+cols+" FROM domains d JOIN apps a ON a.id = d.app_id WHERE a.team_id = $1 AND a.id = $2 ORDER BY d.hostname", teamID, appID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Domain, error) { return scan(r) })
}

// Verify looks the TXT record up and marks the domain verified when it
// holds the token. The lookup result is recorded either way.
func (s *Service) Verify(ctx context.Context, teamID, domainID int64) (Domain, error) {
	d, err := s.Get(ctx, teamID, domainID)
	if err != nil {
		return d, err
	}
	if d.VerifiedAt != nil {
		return d, nil
	}
	if d.ExpiresAt != nil && time.Now().After(*d.ExpiresAt) {
		return d, userErr("the claim on %s lapsed 7 days after it was added without being verified; remove it and add it again", d.Hostname)
	}
	v := s.Verifier
	if v == nil {
		v = new(Verifier)
	}
	verr := v.Check(ctx, d.Hostname, d.Token)
	if verr != nil {
		if _, err := s.Pool.Exec(ctx, "UPDATE domains SET last_check_at = now(), last_error = $2 WHERE id = $1 AND verified_at IS NULL", d.ID, verr.Error()); err != nil {
			return d, fmt.Errorf("recording verification result: %w", err)
		}
		d.LastError = verr.Error()
		return d, verr
	}
	// Only the call that flips verified_at reports it: concurrent
	// verifications publish one event.
	var flipped bool
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE domains SET verified_at = now(), last_check_at = now(), last_error = '' WHERE id = $1 AND verified_at IS NULL
			RETURNING verified_at`, d.ID).Scan(&d.VerifiedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		flipped, d.LastError, d.ExpiresAt = true, "", nil
		if err := events.Emit(ctx, tx, events.Event{Kind: events.DomainVerified, TeamID: teamID, AppID: d.AppID,
			Data: map[string]any{"hostname": d.Hostname, "domain_id": d.ID}}); err != nil {
			return err
		}
		return network.NotifyChanged(ctx, tx)
	})
	if err != nil {
		return d, err
	}
	if !flipped {
		return s.Get(ctx, teamID, domainID)
	}
	return d, nil
}

// Remove detaches one of the team's domains.
func (s *Service) Remove(ctx context.Context, teamID, domainID int64) error {
	var d Domain
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		d, err = scan(tx.QueryRow(ctx, `DELETE FROM domains d USING apps a WHERE a.id = d.app_id AND d.id = $2 AND a.team_id = $1
			RETURNING `+cols, teamID, domainID))
		if err != nil {
			return err
		}
		if err := events.Emit(ctx, tx, events.Event{Kind: events.DomainRemoved, TeamID: teamID, AppID: d.AppID,
			Data: map[string]any{"hostname": d.Hostname}}); err != nil {
			return err
		}
		return network.NotifyChanged(ctx, tx)
	})
	return err
}
