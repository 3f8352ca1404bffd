package webhooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/nicholas-fedor/shoutrrr/pkg/router"
	"github.com/nicholas-fedor/shoutrrr/pkg/types"

	"github.com/wisehosting/wisehosting/internal/secrets"
)

// Channels are notification services (Discord, Slack, Telegram, ntfy,
// Matrix, Teams, …) addressed by Shoutrrr URLs such as
// discord://token@id or ntfy://ntfy.sh/topic.
//
// Saving or parsing a channel never touches the network: the service is
// built with a client that refuses every request, so a service that would
// log in while it parses (matrix://user:pass@host) cannot reach anything.
// When a message is sent, the only client a service holds is the
// SSRF-guarded one, given before the service initializes (so a login goes
// through it too) and again after (services that replace their client while
// initializing). Services are accepted only from channelServices, the ones
// whose every request uses the given client; the rest are refused.

// channelServices are the Shoutrrr services (v0.18) that send every request,
// login included, through the client they are given.
var channelServices = map[string]bool{
	"discord": true, "slack": true, "telegram": true, "teams": true, "matrix": true, "ntfy": true,
	"gotify": true, "mattermost": true, "googlechat": true, "hangouts": true, "pushover": true,
	"zulip": true, "generic": true,
}

// errNoNetwork is what a service that tries to send while it is only being
// parsed gets.
var errNoNetwork = errors.New("no network access while a channel is parsed")

// channelClient is the one HTTP client a channel service holds. It sends
// through the guarded client (or nowhere, while parsing) and remembers the
// last host and answer, so a failure is told by status and host and never
// in the target's own words.
type channelClient struct {
	http *http.Client // nil: refuse every request

	mu     sync.Mutex
	host   string
	status int
	err    error
}

func (c *channelClient) Do(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.host = req.URL.Hostname()
	c.mu.Unlock()
	if c.http == nil {
		return nil, errNoNetwork
	}
	resp, err := c.http.Do(req)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err, c.status = err, 0
	if err != nil {
		return nil, err
	}
	c.host = resp.Request.URL.Hostname()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		c.status = resp.StatusCode
	}
	return resp, nil
}

// failed reports whether the last request got no answer or a non-2xx
// one: some services (telegram) return no error when their request fails.
func (c *channelClient) failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil || c.status != 0
}

// failure describes a failed send by host and status (or the guard's
// verdict), never with the body or error text the target sent.
func (c *channelClient) failure(scheme string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.host == "":
		return fmt.Errorf("the %s service sent nothing: check the notification URL", scheme)
	case c.err != nil:
		return reachFailure(c.host, c.err)
	case c.status != 0:
		return fmt.Errorf("%s answered HTTP %d", c.host, c.status)
	}
	return fmt.Errorf("%s did not accept the message", c.host)
}

// locate builds the service of a Shoutrrr URL with client installed
// before and after it initializes.
func locate(rawURL string, client *channelClient) (types.Service, string, error) {
	scheme, _, _ := strings.Cut(rawURL, "://")
	scheme, _, _ = strings.Cut(strings.ToLower(scheme), "+")
	u, err := url.Parse(rawURL)
	if err != nil || scheme == "" {
		return nil, "", userErr("not a valid notification URL")
	}
	if !channelServices[scheme] {
		return nil, "", userErr(fmt.Sprintf("%s notifications are not supported; use an HTTPS webhook instead", scheme))
	}
	r, err := router.New(log.New(io.Discard, "", 0))
	if err != nil {
		return nil, "", err
	}
	svc, err := r.NewService(scheme)
	if err != nil {
		return nil, "", userErr(fmt.Sprintf("%s notifications are not supported; use an HTTPS webhook instead", scheme))
	}
	if u.Scheme != scheme {
		custom, ok := svc.(types.CustomURLService)
		if !ok {
			return nil, "", userErr(fmt.Sprintf("%s notifications take no custom URL", scheme))
		}
		if u, err = custom.GetServiceURLFromCustom(u); err != nil {
			return nil, "", userErr("not a valid notification URL")
		}
	}
	setter := svc.(types.HTTPClientSetter)
	setter.SetHTTPClient(client)
	err = svc.Initialize(u, log.New(io.Discard, "", 0))
	// A service that tried to log in while parsing had parsed its URL;
	// it logs in again, through the guard, when it sends.
	if err != nil && !(client.http == nil && errors.Is(err, errNoNetwork)) {
		if client.http == nil {
			return nil, "", userErr(fmt.Sprintf("not a valid %s notification URL", scheme))
		}
		return nil, "", client.failure(scheme)
	}
	setter.SetHTTPClient(client)
	return svc, scheme, nil
}

// CreateChannel adds a notification channel (a Shoutrrr URL, stored
// encrypted: it contains the service's token).
func (s *Service) CreateChannel(ctx context.Context, teamID, appID int64, shoutrrrURL string, events []string) (Webhook, error) {
	if _, _, err := locate(shoutrrrURL, &channelClient{}); err != nil {
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
	w := Webhook{TeamID: teamID, AppID: appID, Kind: "shoutrrr", URL: Redact(shoutrrrURL), Events: events, Enabled: true}
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
	client := &channelClient{http: d.Client}
	svc, scheme, err := locate(rawURL, client)
	if err != nil {
		return err
	}
	if err := svc.Send(message(event, payload), nil); err != nil || client.failed() {
		return client.failure(scheme)
	}
	return nil
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
