package core

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/internal/credentials"
	"github.com/wisehosting/wisehosting/internal/domains"
	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/plans"
	"github.com/wisehosting/wisehosting/internal/secrets"
	"github.com/wisehosting/wisehosting/internal/store"
	"github.com/wisehosting/wisehosting/internal/webhooks"
	"github.com/wisehosting/wisehosting/internal/workerbus"
	workerkeys "github.com/wisehosting/wisehosting/internal/workers"
)

func init() {
	caddy.RegisterModule(new(App))
}

// AppName is the module ID of the core app.
const AppName = "wisehosting"

// App is the `wisehosting` app: configuration and shared resources of the
// control plane.
type App struct {
	// PostgreSQL connection URL, e.g.
	// `postgres://wisehosting@127.0.0.1:5432/wisehosting?sslmode=disable`.
	// Credential `database_url` overrides it.
	DatabaseURL string `json:"database_url,omitempty"`

	// Database password, replacing the one in DatabaseURL. Prefer the
	// systemd credential `database_password`, which overrides it.
	DatabasePassword string `json:"database_password,omitempty"`

	// Maximum connections in the pool. Default: 16. The control plane
	// refuses to start when it is below what the configured modules need
	// (the error names the number); database notifications use one more
	// connection of their own, outside the pool.
	MaxConns int32 `json:"max_conns,omitempty"`

	// Master secret (at least 32 bytes) from which per-purpose encryption
	// and signing keys are derived. Credential `api_server_secret`
	// overrides it. Changing it without listing the old one in
	// PreviousSecrets makes stored secrets unreadable.
	Secret string `json:"secret,omitempty"`

	// Earlier master secrets that still decrypt (but never encrypt) during
	// a rotation. Credential `api_server_previous_secrets` (one per line)
	// overrides it.
	PreviousSecrets []string `json:"previous_secrets,omitempty"`

	// Bearer token that proxies (Traefik's HTTP provider or the Caddy
	// proxy mode) present to read routing configuration. Credential
	// `proxy_token` overrides it.
	ProxyToken string `json:"proxy_token,omitempty"`

	// Bearer token of the loopback internal API; when empty that API is
	// off. Credential `internal_token` overrides it.
	InternalToken string `json:"internal_token,omitempty"`

	// Apps are served at <slug>.<subdomain_base>, e.g. `apps.example.com`.
	SubdomainBase string `json:"subdomain_base,omitempty"`

	// DNS servers (IP or IP:port, port 53 by default) asked for custom
	// domains' TXT verification records. Default: public resolvers
	// (1.1.1.1, 8.8.8.8, 9.9.9.9), asked directly so a stale local cache
	// cannot delay a verification; set it where those are unreachable.
	DomainResolvers []string `json:"domain_resolvers,omitempty"`

	// The HTTPS port apps' URLs name, when the entry point serving
	// <slug>.<subdomain_base> is not on 443 (a development server on
	// https://<slug>.localhost:8443). Default: 443, left out of URLs.
	AppsPort int `json:"apps_port,omitempty"`

	// The URL users and workers reach the control plane at, e.g.
	// `https://cp.example.com`. Used in links, OAuth callbacks and webhook
	// URLs.
	PublicURL string `json:"public_url,omitempty"`

	// E-mail of the first admin account, created with a one-time password
	// (printed to the log once) when the database has no users. Default:
	// `admin@localhost`. Set to `off` to disable.
	AdminEmail string `json:"admin_email,omitempty"`

	// Lifetime of the JWTs workers get when they register; they refresh 2
	// minutes before expiry. Default: 15m.
	WorkerTokenTTL caddy.Duration `json:"worker_token_ttl,omitempty"`

	// Accept local paths and file:// URLs as app repositories (single-host
	// installs whose agents run with -allow-local-git). Off by default: a
	// repository is an https:// URL.
	AllowLocalGit bool `json:"allow_local_git,omitempty"`

	// How long a released volume (its app or the volume itself was
	// deleted) keeps its data before the worker removes it. The API shows
	// each released volume's removal time. Default: 168h (7 days).
	VolumeGrace caddy.Duration `json:"volume_grace,omitempty"`

	// Plans by name: per-app CPU, memory, disk and bandwidth limits, the
	// number of apps, and whether custom domains and previews are
	// included. Default: the built-in free and pro plans.
	Plans map[string]plans.Plan `json:"plans,omitempty"`

	// DefaultPlan is the plan of new teams. Default: free.
	DefaultPlan string `json:"default_plan,omitempty"`

	pool    *pgxpool.Pool
	db      *dbState
	notify  *store.Listener
	plans   *plans.Registry
	poolKey string
	keyring *secrets.Keyring
	bus     *events.Bus
	logger  *zap.Logger
	ctx     caddy.Context

	startCancel context.CancelFunc // the start work waiting for the database
	startWG     sync.WaitGroup

	needMu sync.Mutex
	needs  map[string]int // NeedConns

	routingOnce sync.Once
	routing     *network.Provider
	zoneOnce    sync.Once
	zoneRender  *network.Traefik // PushZoneTables
	zoneStop    context.CancelFunc
	zoneDone    chan struct{}

	relay     *events.Relay
	relayStop context.CancelFunc
	relayDone chan struct{}
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  AppName,
		New: func() caddy.Module { return new(App) },
	}
}

// pools shares database pools across config reloads: a reload that keeps the
// same DSN reuses the open pool, and migrations run only when a pool is
// first created.
var pools = caddy.NewUsagePool()

// sharedPool is a pool with the process's one LISTEN connection.
type sharedPool struct {
	*pgxpool.Pool
	listener *store.Listener
	db       *dbState
	stop     context.CancelFunc
	done     chan struct{}
}

func (p sharedPool) Destruct() error {
	p.stop()
	<-p.done
	p.Close()
	return nil
}

// bus and workers are process-wide, like the pool: subscribers survive a
// reload of the modules that publish.
var (
	bus     = new(events.Bus)
	workers = new(workerbus.Bus)
)

// Resolve applies placeholders ({env.X}, {file.X}) and systemd credentials
// to the configuration. It is exported for operator commands that read the
// same config outside a running server.
func (a *App) Resolve() error {
	repl := caddy.NewReplacer()
	for _, s := range []*string{&a.DatabaseURL, &a.DatabasePassword, &a.Secret, &a.ProxyToken,
		&a.InternalToken, &a.SubdomainBase, &a.PublicURL, &a.AdminEmail} {
		*s = repl.ReplaceKnown(*s, "")
	}
	for i, s := range a.PreviousSecrets {
		a.PreviousSecrets[i] = repl.ReplaceKnown(s, "")
	}
	for name, dst := range map[string]*string{
		credentials.DatabaseURL:      &a.DatabaseURL,
		credentials.DatabasePassword: &a.DatabasePassword,
		credentials.APIServerSecret:  &a.Secret,
		credentials.ProxyToken:       &a.ProxyToken,
		credentials.InternalToken:    &a.InternalToken,
	} {
		if err := credentials.Apply(name, dst); err != nil {
			return err
		}
	}
	prev, ok, err := credentials.Lookup(credentials.PreviousSecrets)
	if err != nil {
		return err
	}
	if ok {
		a.PreviousSecrets = strings.Fields(prev)
	}
	a.SubdomainBase = strings.ToLower(strings.Trim(a.SubdomainBase, "."))
	if a.WorkerTokenTTL <= 0 {
		a.WorkerTokenTTL = caddy.Duration(15 * time.Minute)
	}
	if a.AdminEmail == "" {
		a.AdminEmail = "admin@localhost"
	}
	return nil
}

// AppURL is the URL an app is served at under subdomain_base ("" without
// one): https://<slug>.<subdomain_base>, with apps_port when it is not 443.
func (a *App) AppURL(slug string) string {
	if a.SubdomainBase == "" {
		return ""
	}
	u := "https://" + slug + "." + a.SubdomainBase
	if a.AppsPort != 0 && a.AppsPort != 443 {
		u += ":" + strconv.Itoa(a.AppsPort)
	}
	return u
}

// Validate checks the resolved configuration.
func (a *App) Validate() error {
	var errs []error
	if a.DatabaseURL == "" {
		errs = append(errs, errors.New("database_url is required"))
	}
	if len(a.Secret) < secrets.MinSecretLen {
		errs = append(errs, fmt.Errorf("secret must be at least %d characters (generate one with `openssl rand -hex 32`)", secrets.MinSecretLen))
	}
	if a.ProxyToken != "" && len(a.ProxyToken) < 16 {
		errs = append(errs, errors.New("proxy_token must be at least 16 characters"))
	}
	if a.InternalToken != "" && len(a.InternalToken) < 16 {
		errs = append(errs, errors.New("internal_token must be at least 16 characters"))
	}
	if a.PublicURL != "" {
		u, err := url.Parse(a.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("public_url %q must be an absolute http(s) URL", a.PublicURL))
		}
	}
	// Every app's host name is built on it, and host names go into proxy
	// rules: a valid host name only.
	if a.SubdomainBase != "" && (network.CheckHostname(a.SubdomainBase) != nil || !strings.Contains(a.SubdomainBase, ".") && a.SubdomainBase != "localhost") {
		errs = append(errs, fmt.Errorf("subdomain_base %q must be a domain name such as apps.example.com", a.SubdomainBase))
	}
	if _, err := domains.ParseResolvers(strings.Join(a.DomainResolvers, " ")); err != nil {
		errs = append(errs, fmt.Errorf("domain_resolvers: %w", err))
	}
	if a.AppsPort < 0 || a.AppsPort > 65535 {
		errs = append(errs, fmt.Errorf("apps_port %d is not a TCP port", a.AppsPort))
	}
	if _, err := plans.NewRegistry(a.Plans, a.DefaultPlan); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("wisehosting: %w", errors.Join(errs...))
	}
	return nil
}

// Provision resolves secrets, builds the keyring and opens (or reuses) the
// database pool, migrating a newly opened database.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.logger = ctx.Logger()
	a.bus = bus
	if err := a.Resolve(); err != nil {
		return err
	}
	if err := a.Validate(); err != nil {
		return err
	}
	kr, err := secrets.NewKeyring(a.Secret, a.PreviousSecrets...)
	if err != nil {
		return err
	}
	a.keyring = kr
	if a.plans, err = plans.NewRegistry(a.Plans, a.DefaultPlan); err != nil {
		return err
	}

	if a.MaxConns <= 0 {
		a.MaxConns = DefaultMaxConns
	}
	a.poolKey = a.DatabaseURL + "\x00" + a.DatabasePassword + "\x00" + strconv.Itoa(int(a.MaxConns))
	val, loaded, err := pools.LoadOrNew(a.poolKey, func() (caddy.Destructor, error) {
		p, err := store.NewPool(a.DatabaseURL, store.Options{MaxConns: a.MaxConns, Password: a.DatabasePassword})
		if err != nil {
			return nil, err
		}
		// The database is tried once now: one that answers but cannot be
		// migrated stops the start. One that does not answer is retried in
		// the background while the server starts (health: 503).
		st := newDBState()
		octx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err = bringUp(octx, p, kr, a.logger)
		cancel()
		var ue *unreachableError
		switch {
		case err == nil:
			close(st.ready)
		case errors.As(err, &ue):
			st.setReason("database unreachable")
			a.logger.Warn("database unreachable at start; serving health 503 and retrying", zap.Error(err))
		default:
			p.Close()
			return nil, err
		}
		l := store.NewListener(p.Config().ConnConfig, a.logger)
		lctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		logger := a.logger
		go func() {
			defer close(done)
			if !st.isReady() && !retryBringUp(lctx, st, p, kr, logger) {
				return
			}
			l.Run(lctx)
		}()
		return sharedPool{Pool: p, listener: l, db: st, stop: stop, done: done}, nil
	})
	if err != nil {
		return fmt.Errorf("wisehosting: %w", err)
	}
	sp := val.(sharedPool)
	a.pool, a.notify, a.db = sp.Pool, sp.listener, sp.db
	a.relay = &events.Relay{Pool: a.pool, Notify: a.notify, Bus: a.bus, Logger: a.logger,
		Sinks: []events.Sink{webhooks.Fanout}}
	a.NeedConns("events", 1)
	if loaded {
		a.logger.Debug("reusing database pool")
	}
	return nil
}

func migrate(p *pgxpool.Pool, logger *zap.Logger) error {
	mg, err := store.NewMigrator(p)
	if err != nil {
		return err
	}
	defer mg.Close()
	before, err := mg.Status()
	if err != nil {
		return err
	}
	if err := mg.Up(); err != nil {
		return err
	}
	after, err := mg.Status()
	if err != nil {
		return err
	}
	if after.Version != before.Version {
		logger.Info("database migrated", zap.Uint("from", before.Version), zap.Uint("to", after.Version))
	} else {
		logger.Info("database schema up to date", zap.Uint("version", after.Version))
	}
	return nil
}

// Start checks that the pool is large enough for the configured modules
// and that every team is on a configured plan, creates the first admin
// account if the database has no users, and starts the event relay.
func (a *App) Start() error {
	if err := a.checkPoolSize(); err != nil {
		return fmt.Errorf("wisehosting: %w", err)
	}
	a.startZonePush()
	if ok, _ := a.Ready(); ok {
		return a.startChecks()
	}
	// The database is down: the checks run when it is up, and their
	// failure is logged (the server is already serving).
	ctx, cancel := context.WithCancel(context.Background())
	a.startCancel = cancel
	a.whenReady(ctx, func() {
		if err := a.startChecks(); err != nil {
			a.logger.Error("checks after the database became ready", zap.Error(err))
		}
	})
	return nil
}

// startChecks checks that every team is on a configured plan, creates the
// first admin account if the database has no users, and starts the event
// relay.
func (a *App) startChecks() error {
	ctx, cancel := context.WithTimeout(a.ctx, 15*time.Second)
	defer cancel()
	if err := a.plans.CheckTeams(ctx, a.pool); err != nil {
		return fmt.Errorf("wisehosting: %w", err)
	}
	if err := a.bootstrapAdmin(ctx); err != nil {
		return err
	}
	rctx, stop := context.WithCancel(context.Background())
	a.relayStop, a.relayDone = stop, make(chan struct{})
	go func() {
		defer close(a.relayDone)
		a.relay.Run(rctx)
	}()
	return nil
}

// Stop ends the start work still waiting for the database and stops the
// event relay (what it has not dispatched stays in the outbox for the next
// one). The pool lives until Cleanup so other apps can still use it while
// they stop.
func (a *App) Stop() error {
	if a.startCancel != nil {
		a.startCancel()
		a.startWG.Wait()
	}
	if a.relayStop != nil {
		a.relayStop()
		<-a.relayDone
	}
	if a.zoneStop != nil {
		a.zoneStop()
		<-a.zoneDone
	}
	return nil
}

// Cleanup releases this config's use of the shared pool.
func (a *App) Cleanup() error {
	if a.poolKey == "" {
		return nil
	}
	_, err := pools.Delete(a.poolKey)
	return err
}

// Pool is the shared database pool.
func (a *App) Pool() *pgxpool.Pool { return a.pool }

// Notifications is the process's one LISTEN connection: subscribe to a
// NOTIFY channel rather than holding a pool connection to LISTEN on.
func (a *App) Notifications() store.Notifier { return a.notify }

// Routing is the config's one routing provider (cached proxy documents),
// however many sites serve the routing endpoints. It is created on first
// use and kept fresh by in-process events and NOTIFY from other replicas
// until the config is unloaded.
func (a *App) Routing() *network.Provider {
	a.routingOnce.Do(func() {
		a.NeedConns("routing", 1)
		a.routing = network.NewProvider(a.pool, a.SubdomainBase, 30*time.Second, a.logger)
		a.routing.Watch(a.ctx, a.bus, a.notify)
	})
	return a.routing
}

// PushZoneTables has the control plane send connected workers their zone
// routing document (rendered by t) over their WebSocket, after each hello
// and on every change, from Start until Stop. Handlers call it while they
// are provisioned; the first call of a config wins, however many sites
// serve the API.
func (a *App) PushZoneTables(t network.Traefik) {
	a.zoneOnce.Do(func() { a.zoneRender = &t })
}

// startZonePush starts what PushZoneTables asked for.
func (a *App) startZonePush() {
	if a.zoneRender == nil {
		return
	}
	ctx, stop := context.WithCancel(a.ctx)
	a.zoneStop, a.zoneDone = stop, make(chan struct{})
	z := &network.ZonePush{Provider: a.Routing(), Workers: workers, Render: *a.zoneRender, Logger: a.logger,
		WorkerIDs: func(ctx context.Context) ([]int64, error) {
			ws, err := workerkeys.List(ctx, a.pool)
			ids := make([]int64, 0, len(ws))
			for _, w := range ws {
				if !w.Revoked() {
					ids = append(ids, w.ID)
				}
			}
			return ids, err
		}}
	go func() {
		defer close(a.zoneDone)
		z.Run(ctx)
	}()
}

// Keyring encrypts and decrypts secrets at rest.
func (a *App) Keyring() *secrets.Keyring { return a.keyring }

// PlanRegistry is the plan registry.
func (a *App) PlanRegistry() *plans.Registry { return a.plans }

// Events is the process-wide event bus.
func (a *App) Events() *events.Bus { return a.bus }

// Context is the config's context: done when this config is unloaded.
func (a *App) Context() caddy.Context { return a.ctx }

// Workers routes messages to and from connected worker agents.
func (a *App) Workers() *workerbus.Bus { return workers }

// FromContext returns the core app of the running config, loading it if
// needed. Modules call it in Provision.
func FromContext(ctx caddy.Context) (*App, error) {
	v, err := ctx.App(AppName)
	if err != nil {
		return nil, fmt.Errorf("loading the %s app (add a `%s { … }` global option block): %w", AppName, AppName, err)
	}
	return v.(*App), nil
}

// Use is how a module's Provision starts: it returns the core app (the
// pool, keyring and services the module calls) and the module's logger.
func Use(ctx caddy.Context) (*App, *zap.Logger, error) {
	wh, err := FromContext(ctx)
	if err != nil {
		return nil, nil, err
	}
	return wh, ctx.Logger(), nil
}

// Interface guards.
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)

// DefaultVolumeGrace is VolumeGrace's default.
const DefaultVolumeGrace = 7 * 24 * time.Hour

// VolumeGracePeriod is how long released volumes keep their data.
func (a *App) VolumeGracePeriod() time.Duration {
	if a.VolumeGrace > 0 {
		return time.Duration(a.VolumeGrace)
	}
	return DefaultVolumeGrace
}
