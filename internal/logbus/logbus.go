// Package logbus carries apps' runtime and build log lines from workers to
// the people watching them: each app has an in-memory ring of recent lines
// that live subscribers (WebSocket streams) follow, and every line is also
// written to Postgres (runtime_logs) in batches, so history survives a
// control-plane restart and can be searched. Old lines are swept by age.
package logbus

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/internal/logline"
	"github.com/wisehosting/wisehosting/internal/store"
)

// Line is one log line of an app.
type Line struct {
	AppID  int64     `json:"app_id"`
	TS     time.Time `json:"ts"`
	Stream string    `json:"stream"` // stdout, stderr
	Text   string    `json:"line"`
}

// MaxLineBytes bounds one stored line.
const MaxLineBytes = logline.MaxBytes

// Config tunes a Bus.
type Config struct {
	Pool   *pgxpool.Pool
	Logger *zap.Logger
	// RingSize is the lines kept in memory per app. Default 1000.
	RingSize int
	// FlushInterval and FlushLines bound how long and how many lines wait
	// before a batch insert. Defaults 200ms and 5000.
	FlushInterval time.Duration
	FlushLines    int
	// MaxPending bounds the lines waiting for the database. Default 200 000.
	MaxPending int
	// Retention: lines older than this are deleted by Sweep. Default 7 days.
	Retention time.Duration
	// OnDrop learns of lines that are never stored: reason is "invalid"
	// (the database refused the row), "deleted_app" or "overflow".
	OnDrop func(appID int64, lines int, reason string)
}

// Bus is the log bus. Publish never blocks on the database.
type Bus struct {
	cfg Config

	mu    sync.RWMutex
	rings map[int64]*ring

	pmu     sync.Mutex
	pending []entry
	kick    chan struct{}
	dropped int64
}

// entry is a line waiting for the database, with the delivery it belongs
// to (nil for lines nobody waits on).
type entry struct {
	Line
	d *delivery
}

// delivery is a set of lines published together whose publisher wants to
// know when every one of them is stored or dropped for good.
type delivery struct {
	left int
	done func()
}

type ring struct {
	mu    sync.Mutex
	lines []Line
	next  int
	full  bool
	subs  map[chan Line]struct{}
}

// New returns a bus; Run starts its writer.
func New(cfg Config) *Bus {
	if cfg.RingSize <= 0 {
		cfg.RingSize = 1000
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 200 * time.Millisecond
	}
	if cfg.FlushLines <= 0 {
		cfg.FlushLines = 5000
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 200_000
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 7 * 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Bus{cfg: cfg, rings: map[int64]*ring{}, kick: make(chan struct{}, 1)}
}

func (b *Bus) ring(app int64) *ring {
	b.mu.RLock()
	r := b.rings[app]
	b.mu.RUnlock()
	if r != nil {
		return r
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if r = b.rings[app]; r == nil {
		r = &ring{lines: make([]Line, b.cfg.RingSize), subs: map[chan Line]struct{}{}}
		b.rings[app] = r
	}
	return r
}

// Publish adds lines: to each app's ring and subscribers at once, to the
// database with the next batch. Subscribers that do not keep up miss
// lines rather than slowing the bus. Past MaxPending lines waiting for the
// database, the oldest are dropped (and counted).
func (b *Bus) Publish(lines ...Line) {
	b.publish(lines, nil)
}

// PublishStored is Publish for a sender that must know when the lines are
// in the database: stored is called (from the writer) once every line is
// committed or dropped as unstorable. It returns false, and takes nothing,
// when MaxPending lines already wait: the sender keeps its lines and
// offers them again later.
func (b *Bus) PublishStored(stored func(), lines ...Line) bool {
	if len(lines) == 0 {
		stored()
		return true
	}
	b.pmu.Lock()
	full := len(b.pending)+len(lines) > b.cfg.MaxPending
	b.pmu.Unlock()
	if full {
		return false
	}
	b.publish(lines, &delivery{left: len(lines), done: stored})
	return true
}

func (b *Bus) publish(lines []Line, d *delivery) {
	for i := range lines {
		l := &lines[i]
		l.Text = logline.Clean(l.Text, MaxLineBytes)
		l.Stream = logline.Stream(l.Stream)
		if l.TS.IsZero() {
			l.TS = time.Now()
		}
		r := b.ring(l.AppID)
		r.mu.Lock()
		r.lines[r.next] = *l
		r.next = (r.next + 1) % len(r.lines)
		if r.next == 0 {
			r.full = true
		}
		for ch := range r.subs {
			select {
			case ch <- *l:
			default:
			}
		}
		r.mu.Unlock()
	}
	b.pmu.Lock()
	for _, l := range lines {
		b.pending = append(b.pending, entry{Line: l, d: d})
	}
	var lost []entry
	if over := len(b.pending) - b.cfg.MaxPending; over > 0 {
		lost = append(lost, b.pending[:over]...)
		b.pending = b.pending[over:]
	}
	n := len(b.pending)
	b.pmu.Unlock()
	b.drop(lost, "overflow")
	if n >= b.cfg.FlushLines {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

// Recent returns up to n of the app's latest lines, oldest first.
func (b *Bus) Recent(app int64, n int) []Line {
	r := b.ring(app)
	r.mu.Lock()
	defer r.mu.Unlock()
	size := r.next
	if r.full {
		size = len(r.lines)
	}
	n = min(n, size)
	out := make([]Line, 0, n)
	for i := size - n; i < size; i++ {
		idx := i
		if r.full {
			idx = (r.next + i) % len(r.lines)
		}
		out = append(out, r.lines[idx])
	}
	return out
}

// Subscribe follows an app's new lines until cancel is called. The channel
// has room for buffer lines; a subscriber that falls behind misses lines.
func (b *Bus) Subscribe(app int64, buffer int) (<-chan Line, func()) {
	ch := make(chan Line, buffer)
	r := b.ring(app)
	r.mu.Lock()
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			r.mu.Lock()
			delete(r.subs, ch)
			r.mu.Unlock()
		})
	}
}

// Run writes batches until ctx ends, then flushes what is left.
func (b *Bus) Run(ctx context.Context) {
	t := time.NewTicker(b.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := b.Flush(fctx); err != nil {
				b.cfg.Logger.Error("logbus: lines not stored at shutdown", zap.Error(err))
			}
			cancel()
			return
		case <-t.C:
		case <-b.kick:
		}
		if err := b.Flush(ctx); err != nil && ctx.Err() == nil {
			b.cfg.Logger.Warn("logbus: writing lines; will retry", zap.Error(err))
		}
	}
}

// Flush writes pending lines with COPY. Rows the database refuses are
// found by splitting the batch, dropped and counted; the rest is stored,
// so no line can hold up the others. When the database cannot be reached,
// the lines not yet written stay pending for the next attempt.
func (b *Bus) Flush(ctx context.Context) error {
	b.pmu.Lock()
	batch := b.pending
	b.pending = nil
	b.pmu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	left, err := b.store(ctx, batch)
	if len(left) > 0 {
		b.pmu.Lock()
		b.pending = append(left, b.pending...)
		b.pmu.Unlock()
	}
	return err
}

// store writes batch and returns the entries it could not write because
// of err (a failure that is not about the rows themselves).
func (b *Bus) store(ctx context.Context, batch []entry) ([]entry, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	err := b.copy(ctx, batch)
	if err == nil {
		b.settle(batch)
		return nil, nil
	}
	if !RowError(err) {
		return batch, err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23503" {
		// Lines of an app deleted meanwhile: drop them in one query
		// rather than one split per line.
		kept, gone, qerr := b.withoutDeletedApps(ctx, batch)
		if qerr != nil {
			return batch, qerr
		}
		b.drop(gone, "deleted_app")
		if len(gone) > 0 {
			return b.store(ctx, kept)
		}
	}
	if len(batch) == 1 {
		b.drop(batch, "invalid")
		b.cfg.Logger.Warn("logbus: dropped a log line the database refused", zap.Int64("app", batch[0].AppID), zap.Error(err))
		return nil, nil
	}
	half := len(batch) / 2
	left, err := b.store(ctx, batch[:half])
	if err != nil {
		return append(left, batch[half:]...), err
	}
	return b.store(ctx, batch[half:])
}

// RowError reports whether err is about the data of some rows (a data
// exception or an integrity violation) rather than the database being
// unreachable or busy.
func RowError(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) != 5 {
		return false
	}
	switch pe.Code[:2] {
	case "22", "23":
		return true
	}
	return false
}

// settle marks entries as stored or dropped for good and calls the
// callbacks of the deliveries they complete.
func (b *Bus) settle(es []entry) {
	var done []func()
	b.pmu.Lock()
	for _, e := range es {
		if e.d == nil {
			continue
		}
		if e.d.left--; e.d.left == 0 {
			done = append(done, e.d.done)
		}
	}
	b.pmu.Unlock()
	for _, fn := range done {
		fn()
	}
}

// drop counts lines that will never be stored.
func (b *Bus) drop(es []entry, reason string) {
	if len(es) == 0 {
		return
	}
	b.pmu.Lock()
	b.dropped += int64(len(es))
	b.pmu.Unlock()
	if b.cfg.OnDrop != nil {
		per := map[int64]int{}
		for _, e := range es {
			per[e.AppID]++
		}
		for app, n := range per {
			b.cfg.OnDrop(app, n, reason)
		}
	}
	if reason == "overflow" {
		b.cfg.Logger.Warn("logbus: backlog full, oldest lines dropped", zap.Int("lines", len(es)))
	}
	b.settle(es)
}

func (b *Bus) copy(ctx context.Context, batch []entry) error {
	_, err := b.cfg.Pool.CopyFrom(ctx, pgx.Identifier{"runtime_logs"}, []string{"app_id", "ts", "stream", "line"},
		pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) {
			l := batch[i]
			return []any{l.AppID, l.TS, l.Stream, l.Text}, nil
		}))
	return err
}

func (b *Bus) withoutDeletedApps(ctx context.Context, batch []entry) (kept, gone []entry, err error) {
	ids := map[int64]bool{}
	var list []int64
	for _, l := range batch {
		if !ids[l.AppID] {
			ids[l.AppID] = true
			list = append(list, l.AppID)
		}
	}
	rows, err := b.cfg.Pool.Query(ctx, "SELECT id FROM apps WHERE id = ANY($1)", list)
	if err != nil {
		return nil, nil, err
	}
	live, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, nil, err
	}
	keep := map[int64]bool{}
	for _, id := range live {
		keep[id] = true
	}
	for _, l := range batch {
		if keep[l.AppID] {
			kept = append(kept, l)
		} else {
			gone = append(gone, l)
		}
	}
	return kept, gone, nil
}

// Dropped counts lines never stored (backlog overflow, deleted apps, rows
// the database refused).
func (b *Bus) Dropped() int64 {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	return b.dropped
}

// Sweep deletes lines older than the retention and returns how many.
// It runs on q: the caller's transaction holding the sweep lock.
func (b *Bus) Sweep(ctx context.Context, q store.Execer) (int64, error) {
	tag, err := q.Exec(ctx, "DELETE FROM runtime_logs WHERE ts < now() - $1::interval", b.cfg.Retention.String())
	return tag.RowsAffected(), err
}
