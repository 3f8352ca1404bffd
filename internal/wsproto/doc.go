// Package wsproto is the signed message protocol between worker agents and
// the control plane, carried over a WebSocket (WSS) connection.
//
// # Envelope
//
// Every frame is one JSON envelope:
//
//		{"t": "stats", "i": "4f1c…", "s": 42, "ts": 1767225600123, "p": {…}, "h": "9a0b…"}
//
//	  - t: message type (TypeStats, TypeJobAssign, …; payload structs in messages.go)
//	  - i: message id, unique per message; receivers drop a message id they
//	    have already processed (redelivery after a reconnect)
//	  - s: sequence number, strictly per sender and direction
//	  - ts: sender's clock, Unix milliseconds
//	  - p: the payload, raw JSON
//	  - h: hex HMAC-SHA256 over "t|i|s|ts|p" with the connection's session key
//
// A receiver rejects a frame whose MAC does not match (compared in constant
// time), whose ts is more than MaxSkew away from its own clock, or whose s
// was already seen or is older than the 256-entry sliding window
// (ReplayWindow).
//
// # Keys
//
// The worker key is sha256(raw worker API key). The session key of one
// connection is SessionKey(worker key, client nonce, server nonce); every
// frame of that connection is signed with it, so a frame captured on one
// connection is refused on every other. The control plane keeps the worker
// key only sealed under its master secret (internal/secrets) and looks
// workers up by a different one-way derivation, so a read-only copy of the
// workers table cannot sign anything.
//
// # Handshake
//
// A worker registers with its raw key (POST /v1/workers/register) and gets a
// short-lived JWT. It opens /v1/workers/ws with "Authorization: Bearer
// <JWT>" and a fresh nonce in NonceHeader. The control plane answers with a
// TypeChallenge frame carrying its own fresh nonce (signed with the session
// key, which proves to the worker that the control plane holds its key);
// the worker answers with a TypeHello frame signed with the session key.
// Only a verified hello registers the connection: before it the control
// plane sends nothing else, and a connection that presents a JWT but cannot
// sign the hello never displaces the worker's live connection.
//
// The JWT is refreshed 2 minutes before expiry with POST
// /v1/workers/refresh-token, which needs the current JWT and a SignRefresh
// proof of the worker key in SignatureHeader: a stolen JWT alone can
// neither connect nor be renewed.
package wsproto
