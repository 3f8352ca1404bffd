package network

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/events"
)

// routeErr is a route a user asked for that cannot be; its message is
// shown as is.
func routeErr(format string, a ...any) error { return errs.Invalidf(format, a...) }

// ErrRouteNotFound means no such route on the app.
var ErrRouteNotFound = errs.New(errs.NotFound, "route not found")

// prefixRE: "/" or segments of URL-safe characters, no trailing slash, no
// empty, "." or ".." segment. Nothing here can break out of a Traefik rule
// (no backticks, quotes, spaces or parentheses).
var prefixRE = regexp.MustCompile(`^(/|(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+)$`)

// StoredRoute is a row of the routes table.
type StoredRoute struct {
	ID          int64     `json:"id"`
	AppID       int64     `json:"app_id"`
	PathPrefix  string    `json:"path_prefix"`
	Port        int       `json:"port"`
	Protocol    string    `json:"protocol"`
	Weight      int       `json:"weight"`
	StripPrefix bool      `json:"strip_prefix"`
	CreatedAt   time.Time `json:"created_at"`
}

// RouteInput is what a user sets on a route; nil fields of an update are
// kept.
type RouteInput struct {
	PathPrefix  *string `json:"path_prefix,omitempty"`
	Port        *int    `json:"port,omitempty"`
	Protocol    *string `json:"protocol,omitempty"`
	Weight      *int    `json:"weight,omitempty"`
	StripPrefix *bool   `json:"strip_prefix,omitempty"`
}

// ValidateRoute checks a complete route of an app listening on appPort.
func ValidateRoute(r StoredRoute, appPort int) error {
	if len(r.PathPrefix) > 200 || !prefixRE.MatchString(r.PathPrefix) {
		return routeErr("path prefix %q must start with / and be path segments of letters, digits and - . _ ~ without a trailing slash, e.g. /api", r.PathPrefix)
	}
	if appPort == 0 {
		return routeErr("the app's port is not known yet: set it, or deploy the app once so its port is detected, then add routes")
	}
	if r.Port < 1 || r.Port > 65535 {
		return routeErr("port %d must be between 1 and 65535", r.Port)
	}
	if r.Port != appPort {
		return routeErr("port %d is not a port of this app: it listens on %d (routes reach the app's own port only)", r.Port, appPort)
	}
	switch r.Protocol {
	case "http", "https", "h2c":
	case "tcp":
		return routeErr("protocol tcp is not supported: routes are HTTP routes (Host and path), use http, https or h2c")
	default:
		return routeErr("protocol %q must be http, https or h2c", r.Protocol)
	}
	if r.Weight < 0 || r.Weight > 100 {
		return routeErr("weight %d must be between 0 and 100", r.Weight)
	}
	if r.StripPrefix && r.PathPrefix == "/" {
		return routeErr("strip_prefix needs a path prefix other than /")
	}
	return nil
}

// Routes manages apps' routes. Every change notifies the other replicas
// and emits events.RouteChanged in its transaction.
type Routes struct {
	Pool *pgxpool.Pool
}

const routeColumns = "id, app_id, path_prefix, port, protocol, weight, strip_prefix, created_at"

func scanRoute(row pgx.Row) (StoredRoute, error) {
	var r StoredRoute
	err := row.Scan(&r.ID, &r.AppID, &r.PathPrefix, &r.Port, &r.Protocol, &r.Weight, &r.StripPrefix, &r.CreatedAt)
	return r, err
}

// List returns the app's routes by prefix.
func (s *Routes) List(ctx context.Context, appID int64) ([]StoredRoute, error) {
	rows, err := s.Pool.Query(ctx, "SELECT "+routeColumns+" FROM routes WHERE app_id = $1 ORDER BY path_prefix, id", appID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (StoredRoute, error) { return scanRoute(row) })
}

// Add creates a route on app appID (listening on appPort). Missing fields
// take defaults: prefix /, the app's port, http, weight 100.
func (s *Routes) Add(ctx context.Context, teamID, appID int64, appPort int, in RouteInput, audit accounts.Hook[StoredRoute]) (StoredRoute, error) {
	r := StoredRoute{AppID: appID, PathPrefix: "/", Port: appPort, Protocol: "http", Weight: 100}
	apply(&r, in)
	if err := ValidateRoute(r, appPort); err != nil {
		return r, err
	}
	err := s.change(ctx, appID, func(tx pgx.Tx) error {
		if err := s.checkGroup(ctx, tx, r); err != nil {
			return err
		}
		var err error
		r, err = scanRoute(tx.QueryRow(ctx, `INSERT INTO routes (app_id, path_prefix, port, protocol, weight, strip_prefix)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+routeColumns, appID, r.PathPrefix, r.Port, r.Protocol, r.Weight, r.StripPrefix))
		if err != nil {
			return err
		}
		if err := audit.Write(ctx, tx, r); err != nil {
			return err
		}
		return emitRoute(ctx, tx, teamID, r, "added")
	})
	if err != nil {
		return r, err
	}
	return r, nil
}

// Update changes the set fields of route id of app appID.
func (s *Routes) Update(ctx context.Context, teamID, appID int64, appPort int, id int64, in RouteInput, audit accounts.Hook[StoredRoute]) (StoredRoute, error) {
	var r StoredRoute
	err := s.change(ctx, appID, func(tx pgx.Tx) error {
		var err error
		r, err = scanRoute(tx.QueryRow(ctx, "SELECT "+routeColumns+" FROM routes WHERE id = $1 AND app_id = $2", id, appID))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrRouteNotFound
		}
		if err != nil {
			return err
		}
		old := r
		apply(&r, in)
		if err := ValidateRoute(r, appPort); err != nil {
			return err
		}
		if err := s.checkGroup(ctx, tx, r); err != nil {
			return err
		}
		if old.PathPrefix != r.PathPrefix {
			var others, live int
			if err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE weight > 0) FROM routes WHERE app_id = $1 AND path_prefix = $2 AND id <> $3`,
				appID, old.PathPrefix, r.ID).Scan(&others, &live); err != nil {
				return err
			}
			if others > 0 && live == 0 {
				return routeErr("moving this route leaves the routes of %s with weight 0 only: raise another one's weight first", old.PathPrefix)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE routes SET path_prefix = $2, port = $3, protocol = $4, weight = $5, strip_prefix = $6 WHERE id = $1`,
			r.ID, r.PathPrefix, r.Port, r.Protocol, r.Weight, r.StripPrefix); err != nil {
			return err
		}
		if err := audit.Write(ctx, tx, r); err != nil {
			return err
		}
		return emitRoute(ctx, tx, teamID, r, "updated")
	})
	if err != nil {
		return r, err
	}
	return r, nil
}

// Remove deletes route id of app appID.
func (s *Routes) Remove(ctx context.Context, teamID, appID, id int64, audit accounts.Hook[StoredRoute]) error {
	var r StoredRoute
	err := s.change(ctx, appID, func(tx pgx.Tx) error {
		var err error
		r, err = scanRoute(tx.QueryRow(ctx, "DELETE FROM routes WHERE id = $1 AND app_id = $2 RETURNING "+routeColumns, id, appID))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrRouteNotFound
		}
		if err != nil {
			return err
		}
		var others, live int
		if err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE weight > 0) FROM routes WHERE app_id = $1 AND path_prefix = $2`,
			appID, r.PathPrefix).Scan(&others, &live); err != nil {
			return err
		}
		if others > 0 && live == 0 {
			return routeErr("removing this route leaves the routes of %s with weight 0 only: raise another one's weight first", r.PathPrefix)
		}
		if err := audit.Write(ctx, tx, r); err != nil {
			return err
		}
		return emitRoute(ctx, tx, teamID, r, "removed")
	})
	if err != nil {
		return err
	}
	return nil
}

// change runs fn in a transaction holding the app's row lock (one route
// change of an app at a time, so group checks see every sibling) and
// notifies the other replicas on commit.
func (s *Routes) change(ctx context.Context, appID int64, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT 1 FROM apps WHERE id = $1 FOR UPDATE", appID); err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			return err
		}
		return NotifyChanged(ctx, tx)
	})
}

// checkGroup: the routes of one prefix share strip_prefix (one router) and
// keep at least one route with a weight above 0.
func (s *Routes) checkGroup(ctx context.Context, tx pgx.Tx, r StoredRoute) error {
	rows, err := tx.Query(ctx, "SELECT "+routeColumns+" FROM routes WHERE app_id = $1 AND path_prefix = $2 AND id <> $3", r.AppID, r.PathPrefix, r.ID)
	if err != nil {
		return err
	}
	sibs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StoredRoute, error) { return scanRoute(row) })
	if err != nil {
		return err
	}
	if len(sibs) >= 20 {
		return routeErr("%s already has 20 routes", r.PathPrefix)
	}
	live := r.Weight > 0
	for _, o := range sibs {
		if o.StripPrefix != r.StripPrefix {
			return routeErr("the routes of %s must agree on strip_prefix (the others have %t)", r.PathPrefix, o.StripPrefix)
		}
		live = live || o.Weight > 0
	}
	if !live {
		return routeErr("the routes of %s would all have weight 0: at least one needs a weight above 0", r.PathPrefix)
	}
	return nil
}

func emitRoute(ctx context.Context, tx pgx.Tx, teamID int64, r StoredRoute, change string) error {
	return events.Emit(ctx, tx, events.Event{Kind: events.RouteChanged, TeamID: teamID, AppID: r.AppID, Data: map[string]any{
		"route_id": r.ID, "change": change, "path_prefix": r.PathPrefix, "port": r.Port, "protocol": r.Protocol,
		"weight": r.Weight, "strip_prefix": r.StripPrefix}})
}

func apply(r *StoredRoute, in RouteInput) {
	if in.PathPrefix != nil {
		r.PathPrefix = *in.PathPrefix
	}
	if in.Port != nil {
		r.Port = *in.Port
	}
	if in.Protocol != nil {
		r.Protocol = *in.Protocol
	}
	if in.Weight != nil {
		r.Weight = *in.Weight
	}
	if in.StripPrefix != nil {
		r.StripPrefix = *in.StripPrefix
	}
}
