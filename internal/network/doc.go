// Package network turns the control plane's state (running apps, their
// routes and verified custom domains) into routing tables for the proxies:
// Traefik dynamic configuration for Traefik's HTTP provider, and the table
// of the built-in Caddy proxy mode. Both are built from one Snapshot, read
// with a fixed number of queries whatever the number of apps.
//
// Documents are cached and rebuilt only after something changed: features
// that change routing call NotifyChanged in their transaction, so every
// replica learns of it through Postgres NOTIFY at commit, and emit
// events.RouteChanged (or DomainVerified, DomainRemoved, AppStatusChanged),
// which the event relay hands to the in-process bus too.
package network
