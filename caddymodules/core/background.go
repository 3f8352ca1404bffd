package core

import (
	"context"
	"sync"
)

// Background is the goroutines a module starts in Start and ends in Stop:
// Go starts one, Stop cancels their context and waits for them all. Its
// zero value is ready; after Stop it can start again (a new context).
type Background struct {
	mu     sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Go runs fn in a goroutine until the next Stop.
func (b *Background) Go(fn func(ctx context.Context)) {
	b.mu.Lock()
	if b.ctx == nil {
		b.ctx, b.cancel = context.WithCancel(context.Background())
	}
	ctx := b.ctx
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		fn(ctx)
	}()
}

// Stop cancels the goroutines' context and waits for them.
func (b *Background) Stop() {
	b.mu.Lock()
	if b.cancel != nil {
		b.cancel()
	}
	b.ctx, b.cancel = nil, nil
	b.mu.Unlock()
	b.wg.Wait()
}
