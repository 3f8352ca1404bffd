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
//	  - h: hex HMAC-SHA256 over "t|i|s|ts|p" with key sha256(raw worker API key)
//
// The control plane stores only sha256(raw key) (workers.api_key_hash), which
// is exactly the MAC key, so it can verify and sign without ever holding the
// raw key. A receiver rejects a frame whose MAC does not match (compared in
// constant time), whose ts is more than MaxSkew away from its own clock, or
// whose s was already seen or is older than the 256-entry sliding window
// (ReplayWindow). Transport security (TLS) and the connection's JWT come
// first; the envelope MAC binds each message to the worker's key, so a
// stolen JWT alone cannot inject messages.
//
// # Authentication
//
// A worker registers with its raw key (POST /v1/workers/register) and gets a
// short-lived JWT, which it presents as "Authorization: Bearer" when it
// opens /v1/workers/ws and refreshes 2 minutes before expiry
// (POST /v1/workers/refresh-token).
package wsproto
