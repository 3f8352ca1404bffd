package webhooks

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"

	"github.com/nicholas-fedor/shoutrrr/pkg/router"
	"github.com/nicholas-fedor/shoutrrr/pkg/types"

	"github.com/wisehosting/wisehosting/internal/httpx"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

// Channels are notification services (Discord, Slack, Telegram, ntfy,
// Matrix, Teams, …) addressed by Shoutrrr URLs such as
// discord://token@id or ntfy://ntfy.sh/topic. Only services whose HTTP
// client can be replaced are accepted, so every one of them sends through
// the SSRF-guarded client, even to hosts the user chose.

// locate parses a Shoutrrr URL into its service, with client installed.
func locate(rawURL string, client *http.Client) (types.Service, error) {
	r, err := router.New(log.New(io.Discard, "", 0))
	if err != nil {
		return nil, err
	}
	svc, err := r.Locate(rawURL)
	if err != nil {
		return nil, &UserError{fmt.Sprintf("not a valid notification URL: %v", err)}
	}
	setter, ok := svc.(types.HTTPClientSetter)
	if !ok {
		scheme, _, _ := strings.Cut(rawURL, "://")
		return nil, &UserError{fmt.Sprintf("%s notifications are not supported; use an HTTPS webhook instead", scheme)}
	}
	if client != nil {
		setter.SetHTTPClient(client)
	}
	return svc, nil
}

// CreateChannel adds a notification channel (a Shoutrrr URL, stored
// encrypted: it contains the service's token).
func (s *Service) CreateChannel(ctx context.Context, teamID, appID int64, shoutrrrURL string, events []string) (Webhook, error) {
	if _, err := locate(shoutrrrURL, nil); err != nil {
		return Webhook{}, err
	}
	if len(events) == 0 {
		events = []string{"*"}
	}
	urlEnc, err := s.Keyring.EncryptString(secrets.PurposeWebhooks, shoutrrrURL, hookAD(teamID))
	if err != nil {
		return Webhook{}, err
	}
	// Channels are not signed; the secret column still holds one so a
	// channel can be turned into nothing else by mistake.
	secEnc, err := s.Keyring.EncryptString(secrets.PurposeWebhooks, NewSecret(), hookAD(teamID))
	if err != nil {
		return Webhook{}, err
	}
	var app any
	if appID != 0 {
		app = appID
	}
	w := Webhook{TeamID: teamID, AppID: appID, Kind: "shoutrrr", URL: shoutrrrURL, Events: events, Enabled: true}
	err = s.Pool.QueryRow(ctx, `INSERT INTO webhooks (team_id, app_id, kind, url_enc, events, secret_enc)
		SELECT $1, $2, 'shoutrrr', $3, $4, $5 WHERE $2::bigint IS NULL OR EXISTS (SELECT 1 FROM apps WHERE id = $2 AND team_id = $1)
		RETURNING id, created_at`, teamID, app, urlEnc, events, secEnc).Scan(&w.ID, &w.CreatedAt)
	if err != nil {
		return Webhook{}, fmt.Errorf("creating channel: %w", err)
	}
	return w, nil
}

// message renders an event for a chat channel.
func message(event string, payload []byte) string {
	var ev Event
	if err := jsonUnmarshal(payload, &ev); err != nil {
		return "WiseHosting: " + event
	}
	var parts []string
	for _, k := range []string{"message", "error", "hostname", "kind"} {
		if v, ok := ev.Data[k]; ok && v != "" {
			parts = append(parts, fmt.Sprint(v))
		}
	}
	msg := "WiseHosting: " + event
	if id, ok := ev.Data["app_id"]; ok {
		msg += fmt.Sprintf(" (app %v)", id)
	}
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, "; ")
	}
	return msg
}

// sendChannel delivers one event through a Shoutrrr service.
func (d *Dispatcher) sendChannel(rawURL, event string, payload []byte) error {
	svc, err := locate(rawURL, d.Client)
	if err != nil {
		return err
	}
	err = svc.Send(message(event, payload), nil)
	if err != nil && strings.Contains(err.Error(), httpx.ErrBlockedAddress.Error()) {
		// Shoutrrr flattens errors to text; keep the guard's verdict typed.
		return fmt.Errorf("%w: %v", httpx.ErrBlockedAddress, err)
	}
	return err
}

// TestDeliver queues a test event for one of the team's webhooks or
// channels and sends it now, through the same path as real events.
func (s *Service) TestDeliver(ctx context.Context, d *Dispatcher, teamID, id int64) error {
	var deliveryID int64
	err := s.Pool.QueryRow(ctx, `INSERT INTO webhook_deliveries (webhook_id, event, msg_id, payload)
		SELECT id, 'webhook.test', 'msg_' || md5(random()::text || clock_timestamp()::text), $3
		FROM webhooks WHERE id = $1 AND team_id = $2 RETURNING id`,
		id, teamID, `{"type":"webhook.test","data":{"message":"test delivery"}}`).Scan(&deliveryID)
	if err != nil {
		return ErrNotFound
	}
	return d.DeliverNow(ctx, deliveryID)
}
