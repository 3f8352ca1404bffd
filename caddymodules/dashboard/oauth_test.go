package dashboard_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/caddymodules/dashboard"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// fakeUser is who a fake provider says signed in.
type fakeUser struct {
	id       int // numeric account id (Bitbucket: part of the uuid)
	email    string
	verified bool
	name     string
}

// fakeIdP is a loopback OAuth provider speaking one real provider's wire
// format: its paths, its token endpoint (form-encoded request; JSON
// answer, or form-encoded for GitHub unless JSON is asked for) and its
// userinfo JSON. It checks client credentials, redirect_uri, the one-time
// code and that the PKCE verifier matches the S256 challenge.
type fakeIdP struct {
	t      *testing.T
	kind   string
	srv    *httptest.Server
	secret string

	mu     sync.Mutex
	user   fakeUser
	codes  map[string]authRequest
	tokens map[string]bool
	// pkceOK counts token requests whose verifier matched; states are the
	// state values seen at the authorization endpoint.
	pkceOK int
	states []string
	issued int
}

type authRequest struct{ challenge, redirect, state string }

var fakePaths = map[string]struct{ auth, token, user string }{
	"google":    {"/o/oauth2/v2/auth", "/token", "/v1/userinfo"},
	"github":    {"/login/oauth/authorize", "/login/oauth/access_token", "/api/v3/user"},
	"gitlab":    {"/oauth/authorize", "/oauth/token", "/api/v4/user"},
	"bitbucket": {"/site/oauth2/authorize", "/site/oauth2/access_token", "/2.0/user"},
	"codeberg":  {"/login/oauth/authorize", "/login/oauth/access_token", "/api/v1/user"},
}

func newFakeIdP(t *testing.T, kind string) *fakeIdP {
	p := &fakeIdP{t: t, kind: kind, secret: "secret-" + kind, codes: map[string]authRequest{}, tokens: map[string]bool{}}
	paths := fakePaths[kind]
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+paths.auth, p.authorize)
	mux.HandleFunc("POST "+paths.token, p.token)
	mux.HandleFunc("GET "+paths.user, p.userinfo)
	mux.HandleFunc("GET "+paths.user+"/emails", p.emails)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *fakeIdP) setUser(u fakeUser) {
	p.mu.Lock()
	p.user = u
	p.mu.Unlock()
}

// authorize plays the person approving the sign-in at once.
func (p *fakeIdP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != "client-"+p.kind || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || q.Get("state") == "" || q.Get("scope") == "" {
		http.Error(w, "bad authorization request: "+r.URL.RawQuery, http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.issued++
	code := fmt.Sprintf("code-%s-%d", p.kind, p.issued)
	p.codes[code] = authRequest{challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri"), state: q.Get("state")}
	p.states = append(p.states, q.Get("state"))
	p.mu.Unlock()
	back, _ := url.Parse(q.Get("redirect_uri"))
	bq := back.Query()
	bq.Set("code", code)
	bq.Set("state", q.Get("state"))
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (p *fakeIdP) tokenError(w http.ResponseWriter, msg string) {
	p.t.Errorf("%s token endpoint: %s", p.kind, msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": msg})
}

func (p *fakeIdP) token(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		p.tokenError(w, "not form-encoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		p.tokenError(w, err.Error())
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != "client-"+p.kind || secret != p.secret {
		p.tokenError(w, "wrong client credentials")
		return
	}
	if p.kind == "bitbucket" && !basic {
		p.tokenError(w, "Bitbucket consumers authenticate with HTTP Basic")
		return
	}
	p.mu.Lock()
	req, ok := p.codes[r.PostForm.Get("code")]
	delete(p.codes, r.PostForm.Get("code"))
	p.mu.Unlock()
	if r.PostForm.Get("grant_type") != "authorization_code" || !ok {
		p.tokenError(w, "unknown or used code")
		return
	}
	if r.PostForm.Get("redirect_uri") != req.redirect {
		p.tokenError(w, "redirect_uri differs from the authorization request")
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if r.PostForm.Get("code_verifier") == "" || base64.RawURLEncoding.EncodeToString(sum[:]) != req.challenge {
		p.tokenError(w, "PKCE verifier does not match the challenge")
		return
	}
	tok := "tok-" + p.kind + "-" + strconv.Itoa(len(p.tokens)+1)
	p.mu.Lock()
	p.pkceOK++
	p.tokens[tok] = true
	p.mu.Unlock()
	if p.kind == "github" && !strings.Contains(r.Header.Get("Accept"), "application/json") {
		// GitHub's default answer.
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		io.WriteString(w, url.Values{"access_token": {tok}, "scope": {"read:user,user:email"}, "token_type": {"bearer"}}.Encode())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600, "scope": r.PostForm.Get("scope")})
}

func (p *fakeIdP) authorized(w http.ResponseWriter, r *http.Request) (fakeUser, bool) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tokens[tok] {
		http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
		return fakeUser{}, false
	}
	return p.user, true
}

func (p *fakeIdP) userinfo(w http.ResponseWriter, r *http.Request) {
	u, ok := p.authorized(w, r)
	if !ok {
		return
	}
	login := strings.Split(u.email, "@")[0]
	var body any
	switch p.kind {
	case "google":
		body = map[string]any{"sub": strconv.Itoa(u.id), "email": u.email, "email_verified": u.verified, "name": u.name, "picture": "https://example.invalid/p.png"}
	case "github":
		body = map[string]any{"login": login, "id": u.id, "node_id": "MDQ6VXNlcjE=", "name": u.name, "email": nil, "type": "User"}
	case "gitlab":
		var confirmed any
		if u.verified {
			confirmed = "2021-03-04T05:06:07.000Z"
		}
		body = map[string]any{"id": u.id, "username": login, "name": u.name, "state": "active", "email": u.email, "confirmed_at": confirmed}
	case "bitbucket":
		body = map[string]any{"type": "user", "uuid": fmt.Sprintf("{00000000-0000-0000-0000-%012d}", u.id), "account_id": "557058:" + strconv.Itoa(u.id),
			"username": login, "display_name": u.name}
	case "codeberg":
		body = map[string]any{"id": u.id, "login": login, "full_name": u.name, "email": u.email, "is_admin": false}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}

func (p *fakeIdP) emails(w http.ResponseWriter, r *http.Request) {
	u, ok := p.authorized(w, r)
	if !ok {
		return
	}
	var body any
	switch p.kind {
	case "github":
		body = []map[string]any{{"email": "noreply+" + strconv.Itoa(u.id) + "@users.noreply.github.test", "primary": false, "verified": true, "visibility": nil},
			{"email": u.email, "primary": true, "verified": u.verified, "visibility": "private"}}
	case "bitbucket":
		body = map[string]any{"pagelen": 10, "page": 1, "size": 1,
			"values": []map[string]any{{"type": "email", "email": u.email, "is_primary": true, "is_confirmed": u.verified}}}
	case "codeberg":
		body = []map[string]any{{"email": u.email, "verified": u.verified, "primary": true}}
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}

var providerKinds = []string{"google", "github", "gitlab", "bitbucket", "codeberg"}

// startOAuth starts a control plane whose dashboard knows a fake of every
// provider. Client secrets come from an {env.…} placeholder.
func startOAuth(t *testing.T, allowSignup bool) (*fixture, map[string]*fakeIdP) {
	t.Helper()
	idps := map[string]*fakeIdP{}
	oauth := map[string]any{}
	for _, k := range providerKinds {
		idps[k] = newFakeIdP(t, k)
		env := "WH_TEST_OAUTH_SECRET_" + strings.ToUpper(k)
		t.Setenv(env, idps[k].secret)
		oauth[k] = map[string]any{"client_id": "client-" + k, "client_secret": "{env." + env + "}", "base_url": idps[k].srv.URL}
	}
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{Handlers: []map[string]any{{"handler": "wisehosting_dashboard", "insecure_cookie": true,
		"oauth": oauth, "allow_signup": allowSignup}}})
	return &fixture{t: t, db: db, base: cp.URL}, idps
}

// browser follows redirects and keeps cookies, like a person's browser.
type browser struct {
	f   *fixture
	jar *cookiejar.Jar
	c   *http.Client
}

func (f *fixture) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{f: f, jar: jar, c: &http.Client{Jar: jar}}
}

// noFollow is the same browser stopping at every redirect.
func (b *browser) noFollow() *http.Client {
	return &http.Client{Jar: b.jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (b *browser) get(c *http.Client, u string) (*http.Response, string) {
	b.f.t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		b.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// signIn runs a whole OAuth sign-in and returns the final answer.
func (b *browser) signIn(provider string) (*http.Response, string) {
	return b.get(b.c, b.f.base+"/oauth/"+provider+"/start")
}

// session turns the browser's session cookie into an API client.
func (b *browser) session() *client {
	b.f.t.Helper()
	u, _ := url.Parse(b.f.base)
	c := &client{f: b.f}
	for _, ck := range b.jar.Cookies(u) {
		if ck.Name == dashboard.CookieName {
			c.cookie = ck.Value
		}
	}
	if c.cookie == "" {
		b.f.t.Fatal("no session cookie after the sign-in")
	}
	code, out, _ := c.do("GET", "/api/me", nil)
	if tok, ok := out["csrf_token"].(string); ok {
		c.csrf = tok
	} else {
		b.f.t.Fatalf("/api/me: %d %v", code, out)
	}
	return c
}

// Every provider: a verified e-mail links the existing account, the next
// sign-in finds it by the identity alone, the provider token is not kept,
// and every request carried the state and a PKCE pair that matched.
func TestOAuthSignInEveryProvider(t *testing.T) {
	f, idps := startOAuth(t, false)
	ctx := context.Background()
	out := (&client{f: f}).want(200, "GET", "/api/auth/providers", nil)
	if got := fmt.Sprint(out["providers"]); !strings.Contains(got, "/oauth/bitbucket/start") || strings.Contains(got, "secret") || len(out["providers"].([]any)) != 5 {
		t.Fatalf("providers: %v", out)
	}
	for i, kind := range providerKinds {
		t.Run(kind, func(t *testing.T) {
			f.t = t
			idp := idps[kind]
			email := kind + "-user@example.test"
			uid := f.user(email, "irrelevant-password-1", nil)
			idp.setUser(fakeUser{id: 1000 + i, email: email, verified: true, name: "Person " + kind})

			b := f.browser()
			resp, body := b.signIn(kind)
			if resp.StatusCode != 200 || resp.Request.URL.Path != "/" {
				t.Fatalf("sign-in ended at %s with %d: %.300s", resp.Request.URL, resp.StatusCode, body)
			}
			me := b.session().want(200, "GET", "/api/me", nil)
			if me["user"].(map[string]any)["email"] != email {
				t.Fatalf("signed in as %v", me["user"])
			}
			var linked int64
			var tokenEnc *string
			if err := f.db.Pool.QueryRow(ctx, "SELECT user_id, token_enc FROM oauth_identities WHERE provider = $1", kind).Scan(&linked, &tokenEnc); err != nil || linked != uid || tokenEnc != nil {
				t.Fatalf("identity row: user %d token %v %v", linked, tokenEnc, err)
			}

			// The provider now reports another address: the identity,
			// not the e-mail, finds the account.
			idp.setUser(fakeUser{id: 1000 + i, email: "changed-" + email, verified: true})
			b2 := f.browser()
			if resp, body := b2.signIn(kind); resp.StatusCode != 200 {
				t.Fatalf("second sign-in: %d %.300s", resp.StatusCode, body)
			}
			if me := b2.session().want(200, "GET", "/api/me", nil); me["user"].(map[string]any)["email"] != email {
				t.Fatalf("second sign-in as %v", me["user"])
			}
			idp.mu.Lock()
			pkce, states := idp.pkceOK, idp.states
			idp.mu.Unlock()
			if pkce != 2 || len(states) != 2 || states[0] == states[1] || len(states[0]) < 40 {
				t.Fatalf("PKCE checks %d, states %q", pkce, states)
			}
			var actions []string
			rows, _ := f.db.Pool.Query(ctx, "SELECT action || ':' || target FROM audit_events WHERE user_id = $1 ORDER BY id", uid)
			for rows.Next() {
				var a string
				rows.Scan(&a)
				actions = append(actions, a)
			}
			if got := strings.Join(actions, " "); got != "user.oauth_link:"+kind+" session.login:"+kind+" session.login:"+kind {
				t.Fatalf("audit: %s", got)
			}
		})
	}
}

// A provider's unverified address never links an account, and without
// allow_signup an unknown person gets a clear refusal.
func TestOAuthUnverifiedEmailNotLinked(t *testing.T) {
	f, idps := startOAuth(t, false)
	ctx := context.Background()
	f.user("victim@example.test", "victim-password-1", nil)
	for _, kind := range []string{"github", "gitlab", "bitbucket", "codeberg", "google"} {
		idps[kind].setUser(fakeUser{id: 77, email: "victim@example.test", verified: false})
		resp, body := f.browser().signIn(kind)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "sign-ups are closed") {
			t.Fatalf("%s with an unverified address: %d %.400s", kind, resp.StatusCode, body)
		}
	}
	idps["github"].setUser(fakeUser{id: 78, email: "stranger@example.test", verified: true})
	if resp, _ := f.browser().signIn("github"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unknown person with sign-ups closed: %d", resp.StatusCode)
	}
	var n int
	f.db.Pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM oauth_identities) + (SELECT count(*) FROM users WHERE email <> 'victim@example.test')").Scan(&n)
	if n != 0 {
		t.Fatalf("%d identities or users made", n)
	}
	f.db.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE action = 'session.oauth_refused'").Scan(&n)
	if n != 6 {
		t.Fatalf("%d refusals audited, want 6", n)
	}
}

// With allow_signup a verified address makes a new account (without a
// password); an unverified one still does not.
func TestOAuthSignUpWhenAllowed(t *testing.T) {
	f, idps := startOAuth(t, true)
	idps["gitlab"].setUser(fakeUser{id: 5, email: "maybe@example.test", verified: false})
	if resp, body := f.browser().signIn("gitlab"); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "did not confirm") {
		t.Fatalf("sign-up with an unverified address: %d %.300s", resp.StatusCode, body)
	}
	idps["gitlab"].setUser(fakeUser{id: 5, email: "New.Person@Example.test", verified: true, name: "New Person"})
	b := f.browser()
	if resp, body := b.signIn("gitlab"); resp.StatusCode != 200 {
		t.Fatalf("sign-up: %d %.300s", resp.StatusCode, body)
	}
	c := b.session()
	sec := c.want(200, "GET", "/api/account/security", nil)
	if sec["has_password"] != false || len(sec["identities"].([]any)) != 1 {
		t.Fatalf("security of the new account: %v", sec)
	}
	me := c.want(200, "GET", "/api/me", nil)
	if me["user"].(map[string]any)["email"] != "new.person@example.test" {
		t.Fatalf("me: %v", me)
	}
	// The new account owns a team of its own on the default plan, and can
	// create an app there at once.
	teams := me["teams"].([]any)
	if len(teams) != 1 {
		t.Fatalf("teams of the new account: %v", teams)
	}
	team := teams[0].(map[string]any)
	if team["role"] != "owner" || team["name"] != "New Person's team" || !strings.HasPrefix(team["slug"].(string), "new-person-") {
		t.Fatalf("team: %v", team)
	}
	c.want(201, "POST", fmt.Sprintf("/api/teams/%d/apps", int64(team["id"].(float64))), map[string]any{"name": "First", "slug": "first"})
}

// The state is one-time, bound to the browser that started the sign-in
// and to its provider.
func TestOAuthStateReplayAndMismatch(t *testing.T) {
	f, idps := startOAuth(t, false)
	f.user("sam@example.test", "sam-password-123", nil)
	for _, k := range providerKinds {
		idps[k].setUser(fakeUser{id: 9, email: "sam@example.test", verified: true})
	}
	// start → the provider's authorization URL; the provider → the
	// callback URL with code and state. Stop before the callback.
	begin := func(b *browser, kind string) string {
		t.Helper()
		resp, _ := b.get(b.noFollow(), f.base+"/oauth/"+kind+"/start")
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("start: %d", resp.StatusCode)
		}
		var stateCookie *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == "wh_oauth_state" {
				stateCookie = ck
			}
		}
		auth, _ := url.Parse(resp.Header.Get("Location"))
		if stateCookie == nil || !stateCookie.HttpOnly || stateCookie.MaxAge > 600 || stateCookie.Value != auth.Query().Get("state") {
			t.Fatalf("state cookie %+v for %s", stateCookie, auth)
		}
		resp, _ = b.get(b.noFollow(), auth.String())
		return resp.Header.Get("Location")
	}

	// Replay: the same callback twice.
	b := f.browser()
	cb := begin(b, "github")
	saved := b.jar.Cookies(mustURL(f.base + "/oauth/"))
	if resp, _ := b.get(b.noFollow(), cb); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first callback: %d", resp.StatusCode)
	}
	b.jar.SetCookies(mustURL(f.base+"/oauth/"), saved) // even with the cookie back
	if resp, body := b.get(b.noFollow(), cb); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "already used") {
		t.Fatalf("replayed callback: %d %.300s", resp.StatusCode, body)
	}

	// Another browser (no state cookie, or its own) cannot use the link.
	b = f.browser()
	cb = begin(b, "gitlab")
	other := f.browser()
	if resp, _ := other.get(other.noFollow(), cb); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("callback without the state cookie: %d", resp.StatusCode)
	}
	begin(other, "gitlab") // other's own state cookie, b's state
	if resp, _ := other.get(other.noFollow(), cb); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("callback with another sign-in's cookie: %d", resp.StatusCode)
	}
	// The refusals did not spend b's sign-in.
	if resp, _ := b.get(b.noFollow(), cb); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the right browser after the refusals: %d", resp.StatusCode)
	}

	// A state started for one provider is refused at another's callback.
	b = f.browser()
	cb = begin(b, "codeberg")
	cross := strings.Replace(cb, "/oauth/codeberg/", "/oauth/google/", 1)
	if resp, _ := b.get(b.noFollow(), cross); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("state of codeberg at google: %d", resp.StatusCode)
	}

	// A tampered state with a matching cookie is unknown.
	b = f.browser()
	begin(b, "bitbucket")
	forged := f.base + "/oauth/bitbucket/callback?code=code-bitbucket-1&state=forged-state"
	b.jar.SetCookies(mustURL(f.base+"/oauth/"), []*http.Cookie{{Name: "wh_oauth_state", Value: "forged-state", Path: "/oauth/"}})
	if resp, _ := b.get(b.noFollow(), forged); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("forged state: %d", resp.StatusCode)
	}

	// Unknown provider.
	if resp, _ := b.get(b.noFollow(), f.base+"/oauth/myspace/start"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown provider: %d", resp.StatusCode)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// Client secrets can come from systemd credentials
// (<provider>_oauth_client_secret), which win over the config like every
// other secret: the Caddyfile need not hold them at all.
func TestOAuthClientSecretFromCredential(t *testing.T) {
	creds := t.TempDir()
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	gh, gl := newFakeIdP(t, "github"), newFakeIdP(t, "gitlab")
	os.WriteFile(filepath.Join(creds, "github_oauth_client_secret"), []byte(gh.secret+"\n"), 0o600)
	os.WriteFile(filepath.Join(creds, "gitlab_oauth_client_secret"), []byte(gl.secret), 0o600)
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{Handlers: []map[string]any{{"handler": "wisehosting_dashboard", "insecure_cookie": true, "allow_signup": true,
		"oauth": map[string]any{
			"github": map[string]any{"client_id": "client-github", "base_url": gh.srv.URL},                           // no secret in the config
			"gitlab": map[string]any{"client_id": "client-gitlab", "client_secret": "stale", "base_url": gl.srv.URL}, // the credential wins
		}}}})
	f := &fixture{t: t, db: db, base: cp.URL}
	gh.setUser(fakeUser{id: 7, email: "gh@example.test", verified: true, name: "GH"})
	gl.setUser(fakeUser{id: 8, email: "gl@example.test", verified: true, name: "GL"})
	for _, p := range []string{"github", "gitlab"} {
		if resp, body := f.browser().signIn(p); resp.StatusCode != 200 {
			t.Fatalf("%s sign-in: %d %.300s", p, resp.StatusCode, body)
		}
	}
}
