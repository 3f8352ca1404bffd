// Package certs keeps the certificates table in step with the certificates
// the proxies hold in the shared certmagic storage (certmagic_data), and
// reports what changed: a certificate issued or renewed
// (events.CertProvisioned) and one close to expiry (events.CertExpiring),
// which means its proxy failed to renew it in time (certmagic renews with a
// third of the lifetime left).
package certs

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"path"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/store"
)

// Cert is a row of the certificates table.
type Cert struct {
	Hostname  string
	Issuer    string
	NotBefore time.Time
	NotAfter  time.Time
}

// Changes is the outcome of a Sync.
type Changes struct {
	Provisioned []Cert // new, or renewed (later expiry than recorded)
	Expiring    []Cert // newly inside the warning window
}

// Sync reads every certificate in certmagic storage, updates the
// certificates table and emits the changes' events, each with the team and
// app its hostname belongs to (a custom domain, or an app's subdomain of
// subdomainBase), so that team's webhooks receive it. warn is the expiry
// warning window. One replica syncs at a time: the others return no
// changes. All of it runs in one transaction, on one connection (the lock
// is the transaction's).
func Sync(ctx context.Context, pool *pgxpool.Pool, now time.Time, warn time.Duration, subdomainBase string) (Changes, error) {
	var ch Changes
	_, err := store.Exclusive(ctx, pool, "wisehosting.certs", func(tx pgx.Tx) error {
		ch = Changes{}
		if err := syncTx(ctx, tx, now, warn, &ch); err != nil {
			return err
		}
		for _, c := range ch.Provisioned {
			if err := emit(ctx, tx, events.CertProvisioned, c, subdomainBase); err != nil {
				return err
			}
		}
		for _, c := range ch.Expiring {
			if err := emit(ctx, tx, events.CertExpiring, c, subdomainBase); err != nil {
				return err
			}
		}
		return nil
	})
	return ch, err
}

// emit records a certificate event for the team and app of its hostname
// (none for the platform's own names and wildcards).
func emit(ctx context.Context, tx pgx.Tx, kind string, c Cert, subdomainBase string) error {
	var team, app int64
	err := tx.QueryRow(ctx, `SELECT a.team_id, a.id FROM domains d JOIN apps a ON a.id = d.app_id WHERE d.hostname = $1
		UNION ALL
		SELECT a.team_id, a.id FROM apps a WHERE $2 <> '' AND a.slug || '.' || $2 = $1
		LIMIT 1`, c.Hostname, subdomainBase).Scan(&team, &app)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	return events.Emit(ctx, tx, events.Event{Kind: kind, TeamID: team, AppID: app,
		Data: map[string]any{"hostname": c.Hostname, "not_after": c.NotAfter}})
}

func syncTx(ctx context.Context, tx pgx.Tx, now time.Time, warn time.Duration, ch *Changes) error {
	rows, err := tx.Query(ctx, "SELECT key, value FROM certmagic_data WHERE key LIKE 'certificates/%.crt'")
	if err != nil {
		return err
	}
	var found []Cert
	for rows.Next() {
		var key string
		var val []byte
		if err := rows.Scan(&key, &val); err != nil {
			rows.Close()
			return err
		}
		block, _ := pem.Decode(val)
		if block == nil {
			continue
		}
		leaf, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			continue
		}
		// certificates/<issuer>/<name>/<name>.crt; wildcards are stored as
		// "wildcard_.example.com".
		name := strings.TrimSuffix(path.Base(key), ".crt")
		name = strings.Replace(name, "wildcard_", "*", 1)
		issuer := leaf.Issuer.CommonName
		if issuer == "" && len(leaf.Issuer.Organization) > 0 {
			issuer = leaf.Issuer.Organization[0]
		}
		found = append(found, Cert{Hostname: strings.ToLower(name), Issuer: issuer, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	type prev struct {
		notAfter *time.Time
		status   string
	}
	// One read of the table, then writes only for what changed: a
	// steady-state sync is a single query.
	rows, err = tx.Query(ctx, "SELECT hostname, not_after, status FROM certificates FOR UPDATE")
	if err != nil {
		return err
	}
	known := map[string]prev{}
	for rows.Next() {
		var h string
		var p prev
		if err := rows.Scan(&h, &p.notAfter, &p.status); err != nil {
			rows.Close()
			return err
		}
		known[h] = p
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, c := range found {
		p, seen := known[c.Hostname]
		status := "valid"
		switch {
		case !c.NotAfter.After(now):
			status = "expired"
		case c.NotAfter.Sub(now) < warn:
			status = "expiring"
		}
		if seen && p.status == status && p.notAfter != nil && p.notAfter.Equal(c.NotAfter) {
			continue
		}
		if _, err := tx.Exec(ctx, `INSERT INTO certificates (hostname, issuer, not_before, not_after, status, updated_at)
			VALUES ($1, $2, $3, $4, $5, now())
			ON CONFLICT (hostname) DO UPDATE SET issuer = $2, not_before = $3, not_after = $4, status = $5, updated_at = now()`,
			c.Hostname, c.Issuer, c.NotBefore, c.NotAfter, status); err != nil {
			return err
		}
		if p.notAfter == nil || c.NotAfter.After(*p.notAfter) {
			ch.Provisioned = append(ch.Provisioned, c)
		}
		if status != "valid" && (p.status == "valid" || p.notAfter == nil) {
			ch.Expiring = append(ch.Expiring, c)
		}
		known[c.Hostname] = prev{notAfter: &c.NotAfter, status: status}
	}
	return nil
}
