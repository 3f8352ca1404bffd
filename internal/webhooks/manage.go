package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/httpx"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

// TestEvent is the type of the deliveries SendTest queues.
const TestEvent = "webhook.test"

// CheckTarget refuses, when a webhook is saved, a URL the dispatcher could
// never reach under guard: a malformed URL, an IP literal in a blocked
// range, or a localhost name. Names that resolve to blocked addresses are
// still refused at dial time (the check that matters: DNS can change).
func CheckTarget(rawURL string, guard httpx.GuardOptions) error {
	if err := validURL(rawURL); err != nil {
		return err
	}
	u, _ := url.Parse(rawURL)
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := guard.CheckAddr(ip); err != nil {
			return userErr("the webhook URL points to an internal address (" + ip.String() + "), which is not allowed")
		}
		return nil
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return userErr("the webhook URL points to localhost, which is not allowed")
	}
	return nil
}

// Get returns one of the team's webhooks, its URL redacted.
func (s *Service) Get(ctx context.Context, teamID, id int64) (Webhook, error) {
	var w Webhook
	var enc string
	err := s.Pool.QueryRow(ctx, `SELECT id, team_id, COALESCE(app_id, 0), kind, url_enc, events, enabled, created_at
		FROM webhooks WHERE id = $1 AND team_id = $2`, id, teamID).Scan(&w.ID, &w.TeamID, &w.AppID, &w.Kind, &enc, &w.Events, &w.Enabled, &w.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return w, ErrNotFound
	}
	if err != nil {
		return w, err
	}
	full, err := s.Keyring.DecryptString(secrets.PurposeWebhooks, enc, hookAD(teamID))
	w.URL = Redact(full)
	return w, err
}

// Update turns one of the team's webhooks on or off and replaces the
// events it subscribes to; a nil argument leaves that part as it is.
func (s *Service) Update(ctx context.Context, teamID, id int64, enabled *bool, events []string) (Webhook, error) {
	var ev any
	if events != nil {
		ev = events
	}
	tag, err := s.Pool.Exec(ctx, `UPDATE webhooks SET enabled = COALESCE($3, enabled), events = COALESCE($4::text[], events)
		WHERE id = $1 AND team_id = $2`, id, teamID, enabled, ev)
	if err != nil {
		return Webhook{}, err
	}
	if tag.RowsAffected() == 0 {
		return Webhook{}, ErrNotFound
	}
	return s.Get(ctx, teamID, id)
}

// Delivery is one queued, delivered or failed event of a webhook.
type Delivery struct {
	ID            int64      `json:"id"`
	Event         string     `json:"event"`
	MsgID         string     `json:"msg_id"`
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	LastStatus    *int       `json:"last_status,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	NextAttemptAt time.Time  `json:"next_attempt_at"`
	CreatedAt     time.Time  `json:"created_at"`
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
}

// Deliveries returns a webhook's latest deliveries, newest first.
func (s *Service) Deliveries(ctx context.Context, teamID, id int64, limit int) ([]Delivery, error) {
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	rows, err := s.Pool.Query(ctx, `SELECT d.id, d.event, d.msg_id, d.state, d.attempts, d.last_status, d.last_error, d.next_attempt_at,
			d.created_at, d.delivered_at
		FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
		WHERE w.team_id = $1 AND d.webhook_id = $2 ORDER BY d.id DESC LIMIT $3`, teamID, id, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) {
		var d Delivery
		err := r.Scan(&d.ID, &d.Event, &d.MsgID, &d.State, &d.Attempts, &d.LastStatus, &d.LastError, &d.NextAttemptAt, &d.CreatedAt, &d.DeliveredAt)
		return d, err
	})
}

// EnqueueTest queues a TestEvent delivery for one of the team's webhooks,
// enabled or not, whatever events it subscribes to, and returns its id.
func EnqueueTest(ctx context.Context, q jobs.Querier, teamID, id int64) (int64, error) {
	ev := Event{Type: TestEvent, Timestamp: time.Now().UTC(), Data: map[string]any{"webhook_id": id, "team_id": teamID,
		"message": "This is a test delivery from WiseHosting."}}
	body, err := json.Marshal(ev)
	if err != nil {
		return 0, err
	}
	var did int64
	err = q.QueryRow(ctx, `INSERT INTO webhook_deliveries (webhook_id, event, msg_id, payload)
		SELECT w.id, $3, 'msg_' || md5(random()::text || clock_timestamp()::text || w.id), $4
		FROM webhooks w WHERE w.id = $2 AND w.team_id = $1
		RETURNING id`, teamID, id, TestEvent, body).Scan(&did)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ErrNotFound
	}
	return did, err
}
