// Package migrations embeds the SQL schema migrations of the control plane.
//
// Files are named NNNN_name.up.sql / NNNN_name.down.sql (golang-migrate's
// layout). They are applied on start by the core app and by
// `wisehosting migrate up`.
package migrations

import "embed"

// FS holds every *.sql migration file.
//
//go:embed *.sql
var FS embed.FS
