package network

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"

	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/internal/workerbus"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// ZonePush sends every connected worker its zone routing document over
// the worker's WebSocket: after its hello and whenever routing changes, so
// the agent's zone router does not wait for its next poll (which it keeps
// as a fallback while no push arrives).
type ZonePush struct {
	Provider *Provider
	Workers  *workerbus.Bus
	// Render renders a worker's document (ZoneHosts set).
	Render Traefik
	// WorkerIDs lists the workers that may be connected (all of them).
	WorkerIDs func(ctx context.Context) ([]int64, error)
	Logger    *zap.Logger

	mu   sync.Mutex
	sent map[int64]string // worker → ETag last pushed on its connection
}

// Run pushes until ctx ends.
func (z *ZonePush) Run(ctx context.Context) {
	if z.Logger == nil {
		z.Logger = zap.NewNop()
	}
	z.mu.Lock()
	z.sent = map[int64]string{}
	z.mu.Unlock()
	unHello := z.Workers.Handle(wsproto.TypeHello, func(ctx context.Context, id int64, _ json.RawMessage) error {
		z.forget(id) // a new connection has no table from us yet
		return z.push(ctx, id)
	})
	defer unHello()
	unConn := z.Workers.OnConnect(func(id int64, connected bool) {
		z.forget(id)
		if connected {
			// Not on the hub's goroutine: the push reads the database.
			go func() {
				if err := z.push(ctx, id); err != nil && ctx.Err() == nil {
					z.Logger.Debug("routing: pushing a zone table", zap.Int64("worker", id), zap.Error(err))
				}
			}()
		}
	})
	defer unConn()
	for {
		changed := z.Provider.Changed()
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		z.pushAll(ctx)
	}
}

func (z *ZonePush) forget(id int64) {
	z.mu.Lock()
	delete(z.sent, id)
	z.mu.Unlock()
}

func (z *ZonePush) pushAll(ctx context.Context) {
	ids, err := z.WorkerIDs(ctx)
	if err != nil {
		if ctx.Err() == nil {
			z.Logger.Warn("routing: listing workers for zone tables", zap.Error(err))
		}
		return
	}
	for _, id := range ids {
		if err := z.push(ctx, id); err != nil && ctx.Err() == nil {
			z.Logger.Debug("routing: pushing a zone table", zap.Int64("worker", id), zap.Error(err))
		}
	}
}

// push sends worker id its document unless it already has it.
func (z *ZonePush) push(ctx context.Context, id int64) error {
	if !z.Workers.Connected(id) {
		return nil
	}
	d, err := z.Provider.Get(ctx, z.Render.Key("traefik-worker-"+strconv.FormatInt(id, 10)), z.Render,
		func(s *Snapshot) *Snapshot { return s.ForWorker(id) })
	if err != nil {
		return err
	}
	z.mu.Lock()
	same := z.sent[id] == d.ETag
	z.mu.Unlock()
	// A document too large for one frame is left to the agent's poll.
	if same || len(d.Body) > wsproto.MaxFrameBytes/2 {
		return nil
	}
	if err := z.Workers.Send(id, wsproto.TypeZoneTable, wsproto.ZoneTable{ETag: d.ETag, Doc: d.Body}); err != nil {
		return err
	}
	z.mu.Lock()
	z.sent[id] = d.ETag
	z.mu.Unlock()
	return nil
}
