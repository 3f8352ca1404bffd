package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/store"
)

// Doc is a rendered document with its validator.
type Doc struct {
	Body       []byte
	ETag       string
	Generation uint64
}

// Provider caches rendered documents. Invalidate marks them stale; the next
// Get rebuilds the snapshot once (for every document) and renders on
// demand, so a poll between changes costs a map read.
type Provider struct {
	pool          *pgxpool.Pool
	subdomainBase string
	maxAge        time.Duration
	logger        *zap.Logger

	mu      sync.Mutex
	gen     uint64 // bumped by Invalidate
	snapGen uint64
	snapAt  time.Time
	snap    *Snapshot
	docs    map[string]*Doc
	changed chan struct{} // closed and replaced on every Invalidate
}

// NewProvider returns a provider reading pool. maxAge bounds how long a
// snapshot is trusted without a change notification (0: 30s), a safety
// net for changes made behind the control plane's back.
func NewProvider(pool *pgxpool.Pool, subdomainBase string, maxAge time.Duration, logger *zap.Logger) *Provider {
	if maxAge <= 0 {
		maxAge = 30 * time.Second
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Provider{pool: pool, subdomainBase: subdomainBase, maxAge: maxAge, logger: logger,
		gen: 1, docs: map[string]*Doc{}, changed: make(chan struct{})}
}

// Invalidate marks every document stale and wakes long-polls.
func (p *Provider) Invalidate() {
	p.mu.Lock()
	p.gen++
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// Changed returns a channel closed at the next Invalidate.
func (p *Provider) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}

// Get returns the document key rendered by r, rebuilding it if stale.
func (p *Provider) Get(ctx context.Context, key string, r Router, filter func(*Snapshot) *Snapshot) (*Doc, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.snapAt) > p.maxAge && p.snapGen == p.gen {
		p.gen++ // expired: treat as changed
	}
	if d, ok := p.docs[key]; ok && d.Generation == p.gen {
		return d, nil
	}
	if p.snap == nil || p.snapGen != p.gen {
		s, err := Load(ctx, p.pool, p.subdomainBase)
		if err != nil {
			return nil, err
		}
		p.snap, p.snapGen, p.snapAt = s, p.gen, time.Now()
	}
	s := p.snap
	if filter != nil {
		s = filter(s)
	}
	body, err := r.Render(s)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:12]) + `"`
	d := &Doc{Body: body, ETag: etag, Generation: p.gen}
	p.docs[key] = d
	return d, nil
}

// Watch keeps the documents fresh until ctx ends: in-process events of
// this replica and NOTIFY from the others (through n, the process's one
// LISTEN connection; nil: events and max age only).
func (p *Provider) Watch(ctx context.Context, bus *events.Bus, n store.Notifier) {
	var cancels []func()
	if bus != nil {
		cancels = append(cancels, bus.Subscribe(func(e events.Event) {
			switch e.Kind {
			case events.RouteChanged, events.DomainVerified, events.DomainRemoved, events.AppStatusChanged,
				events.DeploymentFinished, events.WorkerOffline, events.WorkerOnline:
				p.Invalidate()
			}
		}))
	}
	if n != nil {
		cancels = append(cancels, n.Subscribe(NotifyChannel, func(store.Notification) { p.Invalidate() }))
	}
	go func() {
		<-ctx.Done()
		for _, c := range cancels {
			c()
		}
	}()
}
