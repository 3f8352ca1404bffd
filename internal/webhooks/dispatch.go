package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/internal/httpx"
	"github.com/wisehosting/wisehosting/internal/secrets"
	"github.com/wisehosting/wisehosting/internal/store"
)

// Dispatcher sends due deliveries.
type Dispatcher struct {
	Pool    *pgxpool.Pool
	Keyring *secrets.Keyring
	// Client must be SSRF-guarded (httpx.NewWebhookClient) and must not
	// follow redirects.
	Client *http.Client
	Logger *zap.Logger
	// MaxAttempts before a delivery fails for good. Default 8.
	MaxAttempts int
	// Backoff after attempt n (1-based). Default 10s·4^(n-1), capped at 6h.
	Backoff func(n int) time.Duration
	// Batch is how many deliveries one claim takes. Default 20.
	Batch int
	// Lease is how long a claimed delivery is held before another
	// dispatcher may take it over (its sender died mid-request): longer
	// than one request may take. Default 2 minutes.
	Lease time.Duration
	// Notify, when set, wakes the dispatcher as soon as deliveries are
	// queued (NotifyChannel) instead of at its next poll.
	Notify store.Notifier

	wake chan struct{}
	once sync.Once
}

func (d *Dispatcher) init() {
	d.once.Do(func() {
		if d.Logger == nil {
			d.Logger = zap.NewNop()
		}
		if d.MaxAttempts <= 0 {
			d.MaxAttempts = 8
		}
		if d.Backoff == nil {
			d.Backoff = func(n int) time.Duration {
				b := 10 * time.Second
				for i := 1; i < n && b < 6*time.Hour; i++ {
					b *= 4
				}
				return min(b, 6*time.Hour)
			}
		}
		if d.Batch <= 0 {
			d.Batch = 20
		}
		if d.Lease <= 0 {
			d.Lease = 2 * time.Minute
		}
		d.wake = make(chan struct{}, 1)
	})
}

// Wake asks the dispatcher to look for due deliveries now.
func (d *Dispatcher) Wake() {
	d.init()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run sends deliveries until ctx ends, then waits for the ones in flight
// (each bounded by the client's timeout): a shutdown drains, it does not
// cut deliveries off.
func (d *Dispatcher) Run(ctx context.Context) {
	d.init()
	if d.Notify != nil {
		defer d.Notify.Subscribe(NotifyChannel, func(store.Notification) { d.Wake() })()
	}
	var inflight sync.WaitGroup
	defer inflight.Wait()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			n, err := d.claimAndSend(ctx, &inflight)
			if err != nil {
				d.Logger.Warn("webhook: claiming deliveries", zap.Error(err))
			}
			if n < d.Batch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.wake:
		}
	}
}

type claimed struct {
	id, webhookID int64
	msgID, event  string
	payload       []byte
	attempts      int
}

func (d *Dispatcher) claim(ctx context.Context, where string, args ...any) ([]claimed, error) {
	// A claim cancelled after its UPDATE committed would leave the rows
	// held for a whole lease with nobody sending them: once asked, the
	// claim completes, and what it took is sent (sends finish during
	// shutdown too).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	rows, err := d.Pool.Query(ctx, `UPDATE webhook_deliveries d SET state = 'delivering', attempts = attempts + 1,
			locked_until = now() + `+strconv.FormatInt(d.Lease.Milliseconds(), 10)+` * interval '1 millisecond'
		WHERE d.id IN (SELECT id FROM webhook_deliveries w WHERE `+where+` FOR UPDATE SKIP LOCKED)
		RETURNING d.id, d.webhook_id, d.msg_id, d.event, d.payload::text, d.attempts`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []claimed
	for rows.Next() {
		var c claimed
		var payload string
		if err := rows.Scan(&c.id, &c.webhookID, &c.msgID, &c.event, &payload, &c.attempts); err != nil {
			return nil, err
		}
		c.payload = []byte(payload)
		out = append(out, c)
	}
	return out, rows.Err()
}

func (d *Dispatcher) claimAndSend(ctx context.Context, inflight *sync.WaitGroup) (int, error) {
	// An app's deliveries to one endpoint go one at a time, oldest first:
	// a delivery waits while an earlier one of its app and webhook is not
	// done (delivered, or failed for good).
	batch, err := d.claim(ctx, `state IN ('pending', 'delivering') AND next_attempt_at <= now()
		AND (locked_until IS NULL OR locked_until < now())
		AND (app_id IS NULL OR NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.webhook_id = w.webhook_id
			AND e.app_id = w.app_id AND e.id < w.id AND e.state IN ('pending', 'delivering')))
		ORDER BY next_attempt_at, id LIMIT $1`, d.Batch)
	if err != nil {
		return 0, err
	}
	for _, c := range batch {
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			// Not ctx: a delivery under way finishes during shutdown.
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			d.send(sctx, c)
		}()
	}
	return len(batch), nil
}

// DeliverNow sends one delivery immediately (test deliveries) through the
// same path as every other, and reports the outcome.
func (d *Dispatcher) DeliverNow(ctx context.Context, deliveryID int64) error {
	d.init()
	batch, err := d.claim(ctx, "id = $1 AND state IN ('pending', 'delivering')", deliveryID)
	if err != nil {
		return err
	}
	if len(batch) == 0 {
		return ErrNotFound
	}
	return d.send(ctx, batch[0])
}

func (d *Dispatcher) send(ctx context.Context, c claimed) error {
	var urlEnc, secEnc, kind string
	var prevEnc *string
	var teamID int64
	err := d.Pool.QueryRow(ctx, "SELECT team_id, kind, url_enc, secret_enc, previous_secret_enc FROM webhooks WHERE id = $1", c.webhookID).
		Scan(&teamID, &kind, &urlEnc, &secEnc, &prevEnc)
	if err != nil {
		return d.record(ctx, c, 0, fmt.Errorf("loading webhook: %w", err))
	}
	target, err := d.Keyring.DecryptString(secrets.PurposeWebhooks, urlEnc, hookAD(teamID))
	if err != nil {
		return d.record(ctx, c, 0, err)
	}
	if kind == "shoutrrr" {
		return d.record(ctx, c, 0, d.sendChannel(target, c.event, c.payload))
	}
	keys := []string{}
	for _, enc := range []*string{&secEnc, prevEnc} {
		if enc == nil {
			continue
		}
		s, err := d.Keyring.DecryptString(secrets.PurposeWebhooks, *enc, hookAD(teamID))
		if err != nil {
			return d.record(ctx, c, 0, err)
		}
		keys = append(keys, s)
	}
	ts := time.Now().Unix()
	sig, err := Sign(c.msgID, ts, c.payload, keys...)
	if err != nil {
		return d.record(ctx, c, 0, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(c.payload))
	if err != nil {
		return d.record(ctx, c, 0, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "WiseHosting-Webhooks")
	req.Header.Set("webhook-id", c.msgID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := d.Client.Do(req)
	if err != nil {
		// The client's error text carries the whole URL, which is
		// write-only: name the host and the guard's verdict only.
		return d.record(ctx, c, 0, reachFailure(req.URL.Hostname(), err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Redirects are failures too: following one would send the signed
		// payload somewhere the user did not configure.
		return d.record(ctx, c, resp.StatusCode, fmt.Errorf("endpoint answered %d", resp.StatusCode))
	}
	return d.record(ctx, c, resp.StatusCode, nil)
}

// record stores the attempt's outcome: success, a retry later, or failure
// after MaxAttempts.
func (d *Dispatcher) record(ctx context.Context, c claimed, status int, sendErr error) error {
	var st any
	if status != 0 {
		st = status
	}
	if sendErr == nil {
		d.Logger.Info(fmt.Sprintf("webhook: delivery %d succeeded", c.id), zap.String("event", c.event), zap.Int("status", status), zap.Int("attempt", c.attempts))
		_, err := d.Pool.Exec(ctx, `UPDATE webhook_deliveries SET state = 'succeeded', delivered_at = now(), last_status = $2,
			last_error = '', locked_until = NULL WHERE id = $1`, c.id, st)
		return err
	}
	final := c.attempts >= d.MaxAttempts
	state := "pending"
	if final {
		state = "failed"
	}
	next := d.Backoff(c.attempts)
	d.Logger.Warn(fmt.Sprintf("webhook: delivery %d failed", c.id), zap.String("event", c.event), zap.Int("attempt", c.attempts),
		zap.Bool("final", final), zap.Duration("retry_in", next), zap.Error(sendErr))
	_, err := d.Pool.Exec(ctx, `UPDATE webhook_deliveries SET state = $2, last_status = $3, last_error = $4, locked_until = NULL,
		next_attempt_at = now() + $5::interval WHERE id = $1`, c.id, state, st, truncate(sendErr.Error(), 1000), next.String())
	if err != nil {
		return err
	}
	return sendErr
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// reachFailure describes a request that got no answer by its host, keeping
// the guard's verdict typed.
func reachFailure(host string, err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, httpx.ErrBlockedAddress):
		return fmt.Errorf("%w: %s", httpx.ErrBlockedAddress, host)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("timed out reaching %s", host)
	}
	return fmt.Errorf("could not reach %s", host)
}
