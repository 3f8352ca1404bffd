package core

import (
	"fmt"
	"sort"
	"strings"
)

// DefaultMaxConns is the pool size when max_conns is not set: room for
// every module of the example Caddyfile and concurrent requests, well
// under Postgres's default max_connections (100) for a few replicas.
const DefaultMaxConns = 16

// requestConns are kept for request handlers (API, dashboard, hub) on top
// of what background work may hold, so a request never waits for a
// background loop to finish.
const requestConns = 2

// NeedConns records that module may hold up to n pool connections at once
// (one per goroutine that queries; no goroutine holds two). Modules call it
// in Provision; Start refuses a max_conns below the sum plus requestConns.
func (a *App) NeedConns(module string, n int) {
	a.needMu.Lock()
	defer a.needMu.Unlock()
	if a.needs == nil {
		a.needs = map[string]int{}
	}
	a.needs[module] = n
}

// ConnsNeeded is the smallest max_conns the configured modules accept.
func (a *App) ConnsNeeded() int {
	a.needMu.Lock()
	defer a.needMu.Unlock()
	n := requestConns
	for _, c := range a.needs {
		n += c
	}
	return n
}

func (a *App) checkPoolSize() error {
	need := a.ConnsNeeded()
	if int(a.MaxConns) >= need {
		return nil
	}
	a.needMu.Lock()
	parts := []string{fmt.Sprintf("requests %d", requestConns)}
	for m, c := range a.needs {
		parts = append(parts, fmt.Sprintf("%s %d", m, c))
	}
	a.needMu.Unlock()
	sort.Strings(parts[1:])
	return fmt.Errorf("max_conns %d is too small for the configured modules: set max_conns to at least %d (%s)",
		a.MaxConns, need, strings.Join(parts, ", "))
}
