// Package webhooks delivers the platform's events to users' HTTPS
// endpoints and chat channels. The event relay (internal/events) writes one
// delivery row per endpoint and event (webhook_deliveries, Fanout) in the
// transaction that marks the event dispatched, so nothing is lost or
// doubled on a crash; a dispatcher claims due rows (FOR UPDATE SKIP LOCKED,
// so replicas never send one at the same time), one at a time per app and
// endpoint so an app's events arrive in order, signs them the Standard
// Webhooks way and retries failures with backoff. Every URL goes through
// the SSRF-guarded client; redirects are failures.
//
// A team's webhooks are managed here too (team.go): the events one may
// subscribe to (Subscribable), at most MaxPerTeam per team, bound to an
// app of the team or team-wide, and test deliveries.
package webhooks

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

// SecretPrefix starts every signing secret (Standard Webhooks).
const SecretPrefix = "whsec_"

// Webhook is a user's endpoint (secrets never leave the service in List).
type Webhook struct {
	ID        int64     `json:"id"`
	TeamID    int64     `json:"team_id"`
	AppID     int64     `json:"app_id,omitempty"`
	Kind      string    `json:"kind"` // http (signed) or shoutrrr (a chat channel)
	URL       string    `json:"url"`  // redacted (Redact): the full value is write-only
	Events    []string  `json:"events"`
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"created_at"`
}

// userErr is a problem the user can fix; its message is shown as is.
func userErr(msg string) error { return errs.New(errs.Invalid, msg) }

// ErrNotFound means no such webhook in the caller's team.
var ErrNotFound = errs.New(errs.NotFound, "webhook not found")

// Service manages webhooks, team-scoped.
type Service struct {
	Pool    *pgxpool.Pool
	Keyring *secrets.Keyring
}

func hookAD(teamID int64) []byte { return []byte("team:" + strconv.FormatInt(teamID, 10)) }

// NewSecret returns a fresh signing secret.
func NewSecret() string {
	var b [24]byte
	rand.Read(b[:])
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

func validURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil {
		return userErr("the webhook URL must be an http(s) URL without credentials")
	}
	return nil
}

// Create adds a webhook and returns it with its secret (shown once).
func (s *Service) Create(ctx context.Context, teamID, appID int64, rawURL string, events []string) (Webhook, string, error) {
	if err := validURL(rawURL); err != nil {
		return Webhook{}, "", err
	}
	if len(events) == 0 {
		events = []string{"*"}
	}
	secret := NewSecret()
	urlEnc, err := s.Keyring.EncryptString(secrets.PurposeWebhooks, rawURL, hookAD(teamID))
	if err != nil {
		return Webhook{}, "", err
	}
	secEnc, err := s.Keyring.EncryptString(secrets.PurposeWebhooks, secret, hookAD(teamID))
	if err != nil {
		return Webhook{}, "", err
	}
	var app any
	if appID != 0 {
		app = appID
	}
	w := Webhook{TeamID: teamID, AppID: appID, Kind: "http", URL: Redact(rawURL), Events: events, Enabled: true}
	err = s.Pool.QueryRow(ctx, `INSERT INTO webhooks (team_id, app_id, url_enc, events, secret_enc)
		SELECT $1, $2, $3, $4, $5 WHERE $2::bigint IS NULL OR EXISTS (SELECT 1 FROM apps WHERE id = $2 AND team_id = $1)
		RETURNING id, created_at`, teamID, app, urlEnc, events, secEnc).Scan(&w.ID, &w.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Webhook{}, "", ErrNotFound
	}
	return w, secret, err
}

// List returns the team's webhooks, URLs redacted (secrets never).
func (s *Service) List(ctx context.Context, teamID int64) ([]Webhook, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id, team_id, COALESCE(app_id, 0), kind, url_enc, events, enabled, created_at
		FROM webhooks WHERE team_id = $1 ORDER BY id`, teamID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Webhook, error) {
		var w Webhook
		var enc string
		if err := r.Scan(&w.ID, &w.TeamID, &w.AppID, &w.Kind, &enc, &w.Events, &w.Enabled, &w.CreatedAt); err != nil {
			return w, err
		}
		full, err := s.Keyring.DecryptString(secrets.PurposeWebhooks, enc, hookAD(w.TeamID))
		w.URL = Redact(full)
		return w, err
	})
}

// Delete removes one of the team's webhooks (and its pending deliveries).
func (s *Service) Delete(ctx context.Context, teamID, id int64) error {
	tag, err := s.Pool.Exec(ctx, "DELETE FROM webhooks WHERE id = $1 AND team_id = $2", id, teamID)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return err
}

// RotateSecret makes a new secret current; the old one keeps signing
// alongside until the next rotation, so receivers can switch without
// missing a delivery.
func (s *Service) RotateSecret(ctx context.Context, teamID, id int64) (string, error) {
	secret := NewSecret()
	enc, err := s.Keyring.EncryptString(secrets.PurposeWebhooks, secret, hookAD(teamID))
	if err != nil {
		return "", err
	}
	tag, err := s.Pool.Exec(ctx, `UPDATE webhooks SET previous_secret_enc = secret_enc, secret_enc = $3
		WHERE id = $1 AND team_id = $2`, id, teamID, enc)
	if err == nil && tag.RowsAffected() == 0 {
		return "", ErrNotFound
	}
	return secret, err
}

// Event is what is delivered.
type Event struct {
	Type      string         `json:"type"`
	Timestamp time.Time      `json:"timestamp"`
	Data      map[string]any `json:"data"`
}

// Enqueue writes a delivery for every enabled webhook of the team that
// subscribes to the event (and to the app, for app-bound webhooks), in q's
// transaction. It returns the number of deliveries.
func Enqueue(ctx context.Context, q jobs.Querier, teamID, appID int64, ev Event) (int, error) {
	return enqueue(ctx, q, teamID, appID, 0, ev)
}

// Fanout is the event relay's sink (events.Relay): it writes the event's
// deliveries in the relay's transaction, at most one per webhook and event
// however often it runs, and wakes the dispatchers on commit. Events
// without a team (platform events) have no webhooks.
func Fanout(ctx context.Context, tx pgx.Tx, e events.Event) error {
	if e.TeamID == 0 {
		return nil
	}
	data := map[string]any{}
	for k, v := range e.Data {
		data[k] = v
	}
	if e.AppID != 0 {
		data["app_id"] = e.AppID
	}
	n, err := enqueue(ctx, tx, e.TeamID, e.AppID, e.ID, Event{Type: e.Kind, Timestamp: e.Time, Data: data})
	if err != nil || n == 0 {
		return err
	}
	_, err = tx.Exec(ctx, "SELECT pg_notify($1, '')", NotifyChannel)
	return err
}

// NotifyChannel is notified when deliveries are queued.
const NotifyChannel = "wisehosting_webhooks"

func enqueue(ctx context.Context, q jobs.Querier, teamID, appID, eventID int64, ev Event) (int, error) {
	if ev.Timestamp.IsZero() {
		ev.Timestamp = time.Now().UTC()
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return 0, err
	}
	var n int
	err = q.QueryRow(ctx, `WITH ins AS (
			INSERT INTO webhook_deliveries (webhook_id, event, msg_id, payload, event_id, app_id)
			SELECT w.id, $3, 'msg_' || md5(random()::text || clock_timestamp()::text || w.id), $4, $5, $6
			FROM webhooks w WHERE w.team_id = $1 AND w.enabled
				AND (w.app_id IS NULL OR w.app_id = $2) AND ($3 = ANY (w.events) OR '*' = ANY (w.events))
			ON CONFLICT (webhook_id, event_id) DO NOTHING
			RETURNING 1)
		SELECT count(*) FROM ins`, teamID, appID, ev.Type, body, nullID(eventID), nullID(appID)).Scan(&n)
	return n, err
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// Sign returns the webhook-signature header value for body: one "v1,<b64>"
// per secret, space-separated.
func Sign(msgID string, ts int64, body []byte, secrets ...string) (string, error) {
	var sigs []string
	for _, s := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
		if err != nil {
			return "", fmt.Errorf("malformed webhook secret: %w", err)
		}
		m := hmac.New(sha256.New, key)
		fmt.Fprintf(m, "%s.%d.", msgID, ts)
		m.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	return strings.Join(sigs, " "), nil
}

// Verify checks a signature header against secret (receivers, tests).
func Verify(secret, msgID string, ts int64, body []byte, header string) bool {
	want, err := Sign(msgID, ts, body, secret)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(strings.Fields(header), func(s string) bool { return hmac.Equal([]byte(s), []byte(want)) })
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
