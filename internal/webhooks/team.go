package webhooks

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/httpx"
)

// MaxPerTeam is how many webhooks and channels a team may have.
const MaxPerTeam = 50

// Subscribable is what a webhook may subscribe to, "*" (all) first.
var Subscribable = append([]string{events.AllTeamEvents}, events.TeamEvents...)

// CheckEvents checks a webhook's event list (nil or empty: all events).
func CheckEvents(evs []string) error {
	if len(evs) > len(Subscribable) {
		return errs.Invalidf("too many events")
	}
	for _, e := range evs {
		if !events.Subscribable(e) {
			return errs.Invalidf("unknown event %s; known: %s", strconv.Quote(e), strings.Join(Subscribable, ", "))
		}
	}
	return nil
}

// New is a webhook to add: an endpoint (kind http, signed) or a chat
// channel (kind shoutrrr), team-wide or bound to one of the team's apps.
type New struct {
	URL    string   `json:"url"`
	Kind   string   `json:"kind"`
	Events []string `json:"events"`
	AppID  int64    `json:"app_id"`
}

// Add checks n and adds it to the team; an http endpoint's address must
// pass guard, and its signing secret is returned this once.
func (s *Service) Add(ctx context.Context, teamID int64, n New, guard httpx.GuardOptions) (Webhook, string, error) {
	if err := CheckEvents(n.Events); err != nil {
		return Webhook{}, "", err
	}
	if len(n.URL) > 2000 {
		return Webhook{}, "", errs.Invalidf("the URL has at most 2000 characters")
	}
	var count int
	if n.AppID != 0 {
		// Another team's app looks like no app.
		if err := s.Pool.QueryRow(ctx, "SELECT 1 FROM apps WHERE id = $1 AND team_id = $2", n.AppID, teamID).Scan(&count); err != nil {
			return Webhook{}, "", err
		}
	}
	if err := s.Pool.QueryRow(ctx, "SELECT count(*) FROM webhooks WHERE team_id = $1", teamID).Scan(&count); err != nil {
		return Webhook{}, "", err
	}
	if count >= MaxPerTeam {
		return Webhook{}, "", errs.Invalidf("a team has at most %d webhooks", MaxPerTeam)
	}
	switch n.Kind {
	case "", "http":
		if err := CheckTarget(n.URL, guard); err != nil {
			return Webhook{}, "", err
		}
		return s.Create(ctx, teamID, n.AppID, n.URL, n.Events)
	case "shoutrrr":
		w, err := s.CreateChannel(ctx, teamID, n.AppID, n.URL, n.Events)
		if err != nil && !errs.Is(err, errs.Invalid) {
			err = errs.Wrap(errs.Invalid, "not a usable notification URL: "+err.Error(), err)
		}
		return w, "", err
	}
	return Webhook{}, "", errs.Field("kind", "kind is http or shoutrrr")
}

// Change turns a webhook on or off (enabled nil: unchanged) or sets its
// events (nil: unchanged; not empty).
func (s *Service) Change(ctx context.Context, teamID, id int64, enabled *bool, evs []string) (Webhook, error) {
	if err := CheckEvents(evs); err != nil {
		return Webhook{}, err
	}
	if evs != nil && len(evs) == 0 {
		return Webhook{}, errs.Invalidf(`events must name at least one event (or "*")`)
	}
	return s.Update(ctx, teamID, id, enabled, evs)
}

// Remove deletes one of the team's webhooks and returns what it was.
func (s *Service) Remove(ctx context.Context, teamID, id int64) (Webhook, error) {
	w, err := s.Get(ctx, teamID, id)
	if err == nil {
		err = s.Delete(ctx, teamID, id)
	}
	return w, err
}

// Rotate gives an http webhook a new signing secret (returned once); the
// previous one keeps signing alongside until the next rotation.
func (s *Service) Rotate(ctx context.Context, teamID, id int64) (Webhook, string, error) {
	w, err := s.Get(ctx, teamID, id)
	if err == nil && w.Kind != "http" {
		err = errs.New(errs.Invalid, "only http webhooks are signed")
	}
	if err != nil {
		return w, "", err
	}
	secret, err := s.RotateSecret(ctx, teamID, id)
	return w, secret, err
}

// History lists the newest deliveries of one of the team's webhooks
// (never nil).
func (s *Service) History(ctx context.Context, teamID, id int64, limit int) ([]Delivery, error) {
	if _, err := s.Get(ctx, teamID, id); err != nil {
		return nil, err
	}
	ds, err := s.Deliveries(ctx, teamID, id, limit)
	if ds == nil {
		ds = []Delivery{}
	}
	return ds, err
}

// TestResult is how an endpoint answered a test delivery.
type TestResult struct {
	Webhook    Webhook
	DeliveryID int64
	// Err is why the delivery failed (nil: it succeeded); it is retried
	// like any delivery.
	Err error
	// Status is the endpoint's HTTP status, when it answered.
	Status *int
}

// Test queues a test delivery to one of the team's webhooks (its audit
// record in the same transaction) and sends it at once through d, with
// the same signing and SSRF guard as every delivery.
func (s *Service) Test(ctx context.Context, d *Dispatcher, teamID, id int64, audit accounts.Hook[TestResult]) (TestResult, error) {
	w, err := s.Get(ctx, teamID, id)
	if err != nil {
		return TestResult{}, err
	}
	res, err := accounts.Change(ctx, s.Pool, audit, func(tx pgx.Tx) (TestResult, error) {
		did, err := EnqueueTest(ctx, tx, teamID, id)
		return TestResult{Webhook: w, DeliveryID: did}, err
	})
	if err != nil {
		return res, err
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res.Err = d.DeliverNow(dctx, res.DeliveryID)
	var status *int
	if err := s.Pool.QueryRow(ctx, "SELECT last_status FROM webhook_deliveries WHERE id = $1", res.DeliveryID).Scan(&status); err == nil {
		res.Status = status
	}
	return res, nil
}
