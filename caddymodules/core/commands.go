package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/wisehosting/wisehosting/internal/secrets"
	"github.com/wisehosting/wisehosting/internal/store"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "migrate",
		Usage: "status|up|down [N]|force <version> [--config <path>]",
		Short: "Shows or changes the database schema version",
		Long: `
Shows or changes the control plane's schema version. The running server
applies pending migrations on start by itself; these commands are for
operators: "status" prints the version, "up" applies pending migrations,
"down N" reverts N migrations, and "force V" marks version V as clean after
a failed migration was repaired by hand.

The database is read from the wisehosting app of --config (a Caddyfile or
JSON config), else from $WISEHOSTING_DATABASE_URL or $DATABASE_URL.`,
		CobraFunc: func(cmd *cobra.Command) {
			ConfigFlags(cmd)
			cmd.RunE = RunE("migrate", cmdMigrate)
		},
	})
}

// ConfigFlags adds --config and --adapter, which name the config an
// operator command reads its settings from (ConfigApps).
func ConfigFlags(cmd *cobra.Command) {
	cmd.Flags().StringP("config", "c", "", "Caddyfile or JSON config holding the wisehosting app")
	cmd.Flags().StringP("adapter", "a", "", "Name of config adapter (default: caddyfile for files named *Caddyfile*)")
}

// ConfigApps returns the apps of the config given with --config (a
// Caddyfile or JSON, adapted as the server would), or nil without one.
func ConfigApps(fl caddycmd.Flags) (map[string]json.RawMessage, error) {
	path := fl.String("config")
	if path == "" {
		return nil, nil
	}
	cfgJSON, _, _, err := caddycmd.LoadConfig(path, fl.String("adapter"))
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	if cfg.Apps == nil {
		cfg.Apps = map[string]json.RawMessage{}
	}
	return cfg.Apps, nil
}

// LoadConfig reads the wisehosting app's configuration for an operator
// command: from the config file given with --config, else from the
// environment. Placeholders and systemd credentials are applied.
func LoadConfig(fl caddycmd.Flags) (*App, error) {
	if err := loadDevEnv(); err != nil {
		return nil, err
	}
	a := new(App)
	apps, err := ConfigApps(fl)
	if err != nil {
		return nil, err
	}
	if apps != nil {
		raw, ok := apps[AppName]
		if !ok {
			return nil, fmt.Errorf("%s has no wisehosting app (global option block)", fl.String("config"))
		}
		if err := json.Unmarshal(raw, a); err != nil {
			return nil, fmt.Errorf("decoding the wisehosting app: %w", err)
		}
	}
	if a.DatabaseURL == "" {
		a.DatabaseURL = os.Getenv("WISEHOSTING_DATABASE_URL")
	}
	if a.DatabaseURL == "" {
		a.DatabaseURL = os.Getenv("DATABASE_URL")
	}
	if a.Secret == "" {
		a.Secret = os.Getenv("WISEHOSTING_SECRET")
	}
	if err := a.Resolve(); err != nil {
		return nil, err
	}
	if a.DatabaseURL == "" {
		return nil, errors.New("no database: pass --config /etc/wisehosting/Caddyfile, set WISEHOSTING_DATABASE_URL, or run `make run` once in a dev checkout")
	}
	return a, nil
}

// DevEnvFile is where `make run` keeps the development control plane's
// database URL and secrets, relative to the checkout.
const DevEnvFile = ".data/dev.env"

// loadDevEnv lets operator commands run in a dev checkout without flags:
// when neither WISEHOSTING_DATABASE_URL nor DATABASE_URL is set, the
// variables of the nearest .data/dev.env (this directory or a parent) are
// set where unset, so the dev Caddyfile's {env.…} placeholders resolve.
func loadDevEnv() error {
	if os.Getenv("WISEHOSTING_DATABASE_URL") != "" || os.Getenv("DATABASE_URL") != "" {
		return nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return nil
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, DevEnvFile))
		if err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
				if !ok || !strings.HasPrefix(k, "WISEHOSTING_") {
					continue
				}
				if _, set := os.LookupEnv(k); !set {
					os.Setenv(k, v)
				}
			}
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("reading %s: %w", filepath.Join(dir, DevEnvFile), err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
}

// OpenCommandDB loads the configuration of an operator command and opens
// its database; done closes the pool and ends the context.
func OpenCommandDB(fl caddycmd.Flags) (ctx context.Context, pool *pgxpool.Pool, done func(), err error) {
	_, ctx, pool, done, err = OpenCommandApp(fl)
	return ctx, pool, done, err
}

// OpenCommandApp is OpenCommandDB that also gives the configuration.
func OpenCommandApp(fl caddycmd.Flags) (a *App, ctx context.Context, pool *pgxpool.Pool, done func(), err error) {
	if a, err = LoadConfig(fl); err != nil {
		return nil, nil, nil, nil, err
	}
	ctx, cancel := CommandContext()
	if pool, err = a.OpenPool(ctx); err != nil {
		cancel()
		return nil, nil, nil, nil, err
	}
	return a, ctx, pool, func() { pool.Close(); cancel() }, nil
}

// OpenPool connects to the configured database without migrating it.
func (a *App) OpenPool(ctx context.Context) (*pgxpool.Pool, error) {
	return store.Open(ctx, a.DatabaseURL, store.Options{MaxConns: 4, Password: a.DatabasePassword, AppName: "wisehosting-cli"})
}

// OpenKeyring builds the keyring from the configured secrets.
func (a *App) OpenKeyring() (*secrets.Keyring, error) {
	return secrets.NewKeyring(a.Secret, a.PreviousSecrets...)
}

// CommandContext is a context for operator commands, cancelled on timeout.
func CommandContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute)
}

func cmdMigrate(fl caddycmd.Flags) error {
	args := fl.Args()
	if len(args) == 0 || len(args) > 2 {
		return Usagef("expected status, up, down [N] or force VERSION")
	}
	a, err := LoadConfig(fl)
	if err != nil {
		return err
	}
	ctx, cancel := CommandContext()
	defer cancel()
	pool, err := a.OpenPool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	mg, err := store.NewMigrator(pool)
	if err != nil {
		return err
	}
	defer mg.Close()

	switch args[0] {
	case "status":
	case "up":
		err = mg.Up()
	case "down":
		n := 1
		if len(args) == 2 {
			if n, err = strconv.Atoi(args[1]); err != nil || n < 1 {
				return Usagef("down: %q is not a positive number of steps", args[1])
			}
		}
		err = mg.Down(n)
	case "force":
		if len(args) != 2 {
			return Usagef("force needs a VERSION")
		}
		v, perr := strconv.Atoi(args[1])
		if perr != nil || v < -1 {
			return Usagef("force: %q is not a version", args[1])
		}
		err = mg.Force(v)
	default:
		return Usagef("unknown migrate action %q (status, up, down, force)", args[0])
	}
	if err != nil {
		return err
	}
	st, err := mg.Status()
	if err != nil {
		return err
	}
	state := "clean"
	if st.Dirty {
		state = "DIRTY"
	}
	fmt.Printf("schema version %d (%s), latest %d\n", st.Version, state, st.Latest)
	return nil
}
