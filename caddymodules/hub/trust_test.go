package hub_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/caddymodules/hub"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/secrets"
	"github.com/wisehosting/wisehosting/internal/store"
	"github.com/wisehosting/wisehosting/internal/workers"
	"github.com/wisehosting/wisehosting/internal/wsproto"
	"github.com/wisehosting/wisehosting/migrations"
)

func sealed(t *testing.T, k wsproto.Key, typ string, seq uint64, payload any) []byte {
	t.Helper()
	e, err := wsproto.Seal(k, typ, seq, time.Now(), payload)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(e)
	return b
}

// expectNothingThenClose reads until the hub closes ws and fails on any
// data frame: a connection that has not proved the key gets nothing after
// the challenge.
func expectNothingThenClose(t *testing.T, ws *websocket.Conn, within time.Duration) {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(within))
	for {
		_, msg, err := ws.ReadMessage()
		if err == nil {
			t.Fatalf("unproven connection received a frame: %.200s", msg)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("hub kept an unproven connection open past the handshake timeout")
		}
		return
	}
}

// ping sends a ping on a registered raw connection and waits for the pong.
func ping(t *testing.T, ws *websocket.Conn, sk wsproto.Key, seq uint64) {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, sealed(t, sk, wsproto.TypePing, seq, nil)); err != nil {
		t.Fatalf("ping: %v", err)
	}
	readPong(t, ws)
}

// readPong reads until a pong, passing over what the control plane sends
// a registered worker anyway (e.g. its zone table).
func readPong(t *testing.T, ws *websocket.Conn) {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("no pong: %v", err)
		}
		if strings.Contains(string(msg), `"t":"pong"`) {
			return
		}
	}
}

// A stolen JWT without the key: the connection is sent nothing but the
// challenge (no job, no secrets), is not registered, and does not
// displace the worker's real connection.
func TestJWTAloneGetsNothing(t *testing.T) {
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{Hub: map[string]any{"handshake_timeout": "1s"}})
	w, key, _ := workers.Add(t.Context(), db.Pool, cptest.Keyring(t), "w1", "", "")
	wh := coreApp(t)
	agent, _ := startAgent(t, cp, key, nil)
	assigned := make(chan wsproto.JobAssign, 8)
	agent.Handle(wsproto.TypeJobAssign, func(ctx context.Context, p json.RawMessage) error {
		var ja wsproto.JobAssign
		json.Unmarshal(p, &ja)
		assigned <- ja
		return nil
	})
	waitFor(t, "connection", 5*time.Second, func() bool { return hub.Default().Connected(w.ID) })
	stolen, _ := agent.Token()

	attempts := map[string]func(ws *websocket.Conn, clientNonce, serverNonce string){
		"says nothing": func(*websocket.Conn, string, string) {},
		"hello signed with a key derived from the JWT": func(ws *websocket.Conn, cn, sn string) {
			fake := wsproto.SessionKey(sha256.Sum256([]byte(stolen)), cn, sn)
			ws.WriteMessage(websocket.TextMessage, sealed(t, fake, wsproto.TypeHello, 1, wsproto.Hello{}))
		},
		"hello with an empty MAC": func(ws *websocket.Conn, _, _ string) {
			ws.WriteMessage(websocket.TextMessage, []byte(`{"t":"hello","i":"x","s":1,"ts":`+
				strconv.FormatInt(time.Now().UnixMilli(), 10)+`,"p":{},"h":"`+strings.Repeat("0", 64)+`"}`))
		},
		"a job request instead of the hello": func(ws *websocket.Conn, cn, sn string) {
			ws.WriteMessage(websocket.TextMessage, sealed(t, wsproto.KeyFromAPIKey("whk_guess_guess_guess"), wsproto.TypeJobAck, 1, wsproto.JobAck{JobID: 1}))
		},
	}
	job := int64(100)
	for name, attempt := range attempts {
		t.Run(name, func(t *testing.T) {
			cn := wsproto.NewNonce()
			thief, sn := dial(t, cp, stolen, cn)
			attempt(thief, cn, sn)
			// While the thief's connection is open the control plane hands
			// the worker a job with secrets: it reaches the real agent only.
			job++
			payload, _ := json.Marshal(wsproto.DeployPayload{Slug: "shop", Env: map[string]string{"DB_PASSWORD": "tenant-secret"}})
			if err := wh.Workers().Send(w.ID, wsproto.TypeJobAssign, wsproto.JobAssign{JobID: job, Kind: "deploy", Payload: payload}); err != nil {
				t.Fatal(err)
			}
			select {
			case ja := <-assigned:
				if ja.JobID != job {
					t.Fatalf("real agent got job %d, want %d", ja.JobID, job)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the job did not reach the real agent: its connection was displaced")
			}
			expectNothingThenClose(t, thief, 5*time.Second)
			if !hub.Default().Connected(w.ID) || agent.Connects() != 1 {
				t.Fatalf("real connection disturbed: connected=%v connects=%d", hub.Default().Connected(w.ID), agent.Connects())
			}
		})
	}
}

// A frame captured on one connection is refused on another, even when the
// attacker reuses the client nonce: the server nonce is fresh and the MAC
// covers it.
func TestFramesDoNotCrossConnections(t *testing.T) {
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{})
	w, key, _ := workers.Add(t.Context(), db.Pool, cptest.Keyring(t), "w1", "", "")
	token := register(t, cp, key)
	wk := wsproto.KeyFromAPIKey(key)

	cn := wsproto.NewNonce()
	a, snA := dial(t, cp, token, cn)
	skA := wsproto.SessionKey(wk, cn, snA)
	hello := sealed(t, skA, wsproto.TypeHello, 1, wsproto.Hello{Version: "real"})
	pingFrame := sealed(t, skA, wsproto.TypePing, 2, nil)
	a.WriteMessage(websocket.TextMessage, hello)
	a.WriteMessage(websocket.TextMessage, pingFrame)
	readPong(t, a)
	waitFor(t, "registration", 5*time.Second, func() bool { return hub.Default().Connected(w.ID) })

	for name, replay := range map[string][][]byte{
		"captured hello":           {hello},
		"captured ping":            {pingFrame},
		"captured hello then ping": {hello, pingFrame},
	} {
		t.Run(name, func(t *testing.T) {
			b, snB := dial(t, cp, token, cn) // same client nonce as the victim
			if snB == snA {
				t.Fatal("server nonce repeated")
			}
			for _, f := range replay {
				b.WriteMessage(websocket.TextMessage, f)
			}
			expectNothingThenClose(t, b, 5*time.Second)
		})
	}
	// The real connection was never displaced.
	ping(t, a, skA, 3)
}

// A second connection of a worker replaces the first only once it has
// proved the key; until then the first keeps working.
func TestSecondConnectionReplacesOnlyAfterProof(t *testing.T) {
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{})
	_, key, _ := workers.Add(t.Context(), db.Pool, cptest.Keyring(t), "w1", "", "")
	first, sk1 := rawConn(t, cp, key)
	ping(t, first, sk1, 2)

	cn := wsproto.NewNonce()
	second, sn := dial(t, cp, register(t, cp, key), cn)
	ping(t, first, sk1, 3) // challenge sent, no proof yet: the first one stays

	sk2 := wsproto.SessionKey(wsproto.KeyFromAPIKey(key), cn, sn)
	second.WriteMessage(websocket.TextMessage, sealed(t, sk2, wsproto.TypeHello, 1, wsproto.Hello{}))
	ping(t, second, sk2, 2)
	first.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := first.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || !strings.Contains(ce.Text, "replaced") {
			t.Fatalf("first connection ended with %v, want a close naming its replacement", err)
		}
		break
	}
}

// refreshClient posts from an address of its own in 127/8, so the failure
// limit it trips is not shared with other tests.
func refreshClient() *http.Client {
	src := &net.TCPAddr{IP: net.IPv4(127, 1+byte(rand.IntN(250)), byte(rand.IntN(250)), byte(rand.IntN(250)+2))}
	return &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: src}).DialContext}}
}

// postRefresh asks for a new JWT with tok and the signature header sig
// ("" for none) and returns the status.
func postRefresh(t *testing.T, client *http.Client, cp *cptest.CP, tok, sig string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", cp.URL+"/v1/workers/refresh-token", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if sig != "" {
		req.Header.Set(wsproto.SignatureHeader, sig)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The refresh endpoint needs a proof of the key over the very token being
// refreshed, not the JWT alone.
func TestRefreshNeedsKeyProof(t *testing.T) {
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{})
	_, key, _ := workers.Add(t.Context(), db.Pool, cptest.Keyring(t), "w1", "", "")
	token, other := register(t, cp, key), register(t, cp, key)
	wk := wsproto.KeyFromAPIKey(key)
	client := refreshClient()
	now := time.Now()
	for name, c := range map[string]struct {
		sig  string
		want int
	}{
		"JWT alone":                  {"", http.StatusUnauthorized},
		"signed with another key":    {wsproto.SignRefresh(wsproto.KeyFromAPIKey("whk_another_key_entirely"), token, now), http.StatusUnauthorized},
		"signature of another token": {wsproto.SignRefresh(wk, other, now), http.StatusUnauthorized},
		"stale signature":            {wsproto.SignRefresh(wk, token, now.Add(-10*time.Minute)), http.StatusUnauthorized},
		"garbage":                    {"123.zz", http.StatusUnauthorized},
		"proof of the key":           {wsproto.SignRefresh(wk, token, now), http.StatusOK},
	} {
		if got := postRefresh(t, client, cp, token, c.sig); got != c.want {
			t.Errorf("%s: %d, want %d", name, got, c.want)
		}
	}
}

// tableValues is every column of the worker's row as bytes: what a
// read-only leak of the workers table gives an attacker.
func tableValues(t *testing.T, db *pgtest.DB, id int64) map[string][]byte {
	t.Helper()
	rows, err := db.Pool.Query(t.Context(), "SELECT * FROM workers WHERE id = $1", id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	if !rows.Next() {
		t.Fatal("worker row missing")
	}
	vals, err := rows.Values()
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range rows.FieldDescriptions() {
		switch v := vals[i].(type) {
		case []byte:
			out[f.Name] = v
		case string:
			out[f.Name] = []byte(v)
		case nil:
		default:
			out[f.Name] = fmt.Append(nil, v)
		}
	}
	return out
}

// A read-only copy of the workers table holds no copy of the worker key,
// and nothing in it completes the handshake.
func TestWorkersTableLeakCannotSign(t *testing.T) {
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{})
	w, key, _ := workers.Add(t.Context(), db.Pool, cptest.Keyring(t), "w1", "", "")
	token := register(t, cp, key) // the attacker holds a JWT as well
	wk := wsproto.KeyFromAPIKey(key)
	leak := tableValues(t, db, w.ID)
	if len(leak) < 5 {
		t.Fatalf("read only %d columns", len(leak))
	}
	var candidates []wsproto.Key
	for col, v := range leak {
		if bytes.Contains(v, wk[:]) || bytes.Contains(v, []byte(hex.EncodeToString(wk[:]))) || bytes.Contains(v, []byte(key)) {
			t.Fatalf("column %s holds the worker key", col)
		}
		if k, err := wsproto.KeyFromBytes(v); err == nil {
			candidates = append(candidates, k)
		}
		if b, err := hex.DecodeString(string(v)); err == nil && len(b) == 32 {
			candidates = append(candidates, wsproto.Key(b))
		}
		candidates = append(candidates, sha256.Sum256(v))
	}
	for i, k := range candidates {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			cn := wsproto.NewNonce()
			ws, sn := dial(t, cp, token, cn)
			ws.WriteMessage(websocket.TextMessage, sealed(t, wsproto.SessionKey(k, cn, sn), wsproto.TypeHello, 1, wsproto.Hello{}))
			expectNothingThenClose(t, ws, 5*time.Second)
		})
	}
	if hub.Default().Connected(w.ID) {
		t.Fatal("a key from the table registered a connection")
	}
	// The real key does (the check above can fail).
	ws, sk := rawConn(t, cp, key)
	ping(t, ws, sk, 2)
}

// Workers added before keys were sealed keep their keys: the migration
// moves the key out of api_key_hash and the control plane seals it on
// start.
func TestWorkersAddedBeforeKeySealingKeepWorking(t *testing.T) {
	db := pgtest.New(t)
	// Back to the schema before migration 0012.
	names, err := fs.Glob(migrations.FS, "*.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	newer := 0
	for _, n := range names {
		if v, _ := strconv.Atoi(n[:strings.IndexByte(n, '_')]); v >= 12 {
			newer++
		}
	}
	mg, err := store.NewMigrator(db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := mg.Down(newer); err != nil {
		t.Fatal(err)
	}
	if st, _ := mg.Status(); st.Version >= 12 {
		t.Fatalf("schema at %d after going back", st.Version)
	}
	mg.Close()
	raw := workers.KeyPrefix + "a-worker-key-from-an-older-version-0123"
	wk := wsproto.KeyFromAPIKey(raw)
	var id int64
	if err := db.Pool.QueryRow(t.Context(), "INSERT INTO workers (name, api_key_hash, wg_ip) VALUES ('old', $1, '127.0.0.1') RETURNING id", wk[:]).Scan(&id); err != nil {
		t.Fatal(err)
	}

	cp := cptest.Start(t, db, cptest.Options{}) // migrates and seals
	for col, v := range tableValues(t, db, id) {
		if bytes.Contains(v, wk[:]) {
			t.Fatalf("column %s still holds the worker key after the start", col)
		}
	}
	agent, _ := startAgent(t, cp, raw, nil)
	waitFor(t, "the old worker's connection", 5*time.Second, func() bool { return hub.Default().Connected(id) })
	tok, _ := agent.Token()
	if code := postRefresh(t, refreshClient(), cp, tok, wsproto.SignRefresh(wk, tok, time.Now())); code != http.StatusOK {
		t.Fatalf("refresh of the old worker: %d", code)
	}
}

// Sealed worker keys follow a rotation of the master secret: the control
// plane re-seals them with the new secret on start.
func TestWorkerKeysFollowSecretRotation(t *testing.T) {
	db := pgtest.New(t)
	w, key, _ := workers.Add(t.Context(), db.Pool, cptest.Keyring(t), "w1", "", "")
	const next = "the-next-master-secret-0123456789abcdef"
	cp := cptest.Start(t, db, cptest.Options{Core: map[string]any{"secret": next, "previous_secrets": []string{cptest.Secret}}})
	kr, _ := secrets.NewKeyring(next)
	got, _ := workers.Get(t.Context(), db.Pool, w.ID)
	if kr.NeedsRotation(got.SealedKey) {
		t.Fatal("worker key still sealed under the previous secret after the start")
	}
	startAgent(t, cp, key, nil)
	waitFor(t, "connection", 5*time.Second, func() bool { return hub.Default().Connected(w.ID) })
}

// Refusals are JSON errors like every other answer, and a refresh the
// database cannot answer is a 500 with a generic sentence, not a 403 that
// would call the worker revoked.
func TestRefusalsAndDatabaseFailure(t *testing.T) {
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{})
	_, key, _ := workers.Add(t.Context(), db.Pool, cptest.Keyring(t), "w1", "", "")
	token := register(t, cp, key)

	_, resp, err := websocket.DefaultDialer.Dial(strings.Replace(cp.URL, "http", "ws", 1)+hub.Path, nil)
	if err == nil || resp == nil {
		t.Fatalf("tokenless connection: %v", err)
	}
	var body map[string]string
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusUnauthorized || body["error"] != "invalid worker token" {
		t.Fatalf("tokenless connection: %d %v", resp.StatusCode, body)
	}

	if _, err := db.Pool.Exec(t.Context(), "ALTER TABLE workers RENAME TO workers_away"); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", cp.URL+"/v1/workers/refresh-token", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(wsproto.SignatureHeader, wsproto.SignRefresh(wsproto.KeyFromAPIKey(key), token, time.Now()))
	resp, err = refreshClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body = nil
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusInternalServerError || body["error"] != "worker token refresh failed" {
		t.Fatalf("refresh without a database: %d %v", resp.StatusCode, body)
	}
}
