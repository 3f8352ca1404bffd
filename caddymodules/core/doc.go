// Package core is the `wisehosting` Caddy app: the control plane's shared
// state. It holds the configuration every other module reads (database,
// master secret, proxy token, subdomain base, public URL), owns the pgx pool
// (shared across config reloads through a caddy.UsagePool, so a reload does
// not reconnect), applies the embedded schema migrations when the pool is
// first opened, and provides the secrets keyring, the event bus and the
// plan registry (PlanRegistry: the configured plans, validated at
// Provision; every team's plan is checked against it at Start).
//
// Other modules find it during Provision:
//
//	wh, err := core.FromContext(ctx)
//	pool := wh.Pool()
//
// Secrets may come from systemd credentials ($CREDENTIALS_DIRECTORY/<name>),
// which win over config values: api_server_secret,
// api_server_previous_secrets, database_url, database_password, proxy_token,
// internal_token.
//
// A Caddyfile sets it with a global option block:
//
//	{
//		wisehosting {
//			database_url   postgres://wisehosting@127.0.0.1:5432/wisehosting
//			secret         {env.WISEHOSTING_SECRET}
//			proxy_token    {env.WISEHOSTING_PROXY_TOKEN}
//			subdomain_base apps.example.com
//			public_url     https://cp.example.com
//			default_plan   hobby
//			plan hobby {
//				memory_mb 512
//				apps      3
//			}
//		}
//	}
package core
