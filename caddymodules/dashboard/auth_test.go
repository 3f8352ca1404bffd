package dashboard_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/pquerna/otp/totp"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/caddymodules/dashboard"
	"github.com/wisehosting/wisehosting/internal/oauthlogin"
)

// loginRaw signs in and returns the client and the login answer, whatever
// the session's state.
func (f *fixture) loginRaw(email, password string) (*client, map[string]any) {
	f.t.Helper()
	c := &client{f: f}
	code, out, resp := c.do("POST", "/api/login", map[string]any{"email": email, "password": password})
	if code != 200 {
		f.t.Fatalf("login %s: %d %v", email, code, out)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == dashboard.CookieName {
			c.cookie = ck.Value
		}
	}
	c.csrf = out["csrf_token"].(string)
	return c, out
}

// code answers POST /api/login/totp and keeps the rotated cookie.
func (c *client) code(body map[string]any) (int, map[string]any) {
	c.f.t.Helper()
	code, out, resp := c.do("POST", "/api/login/totp", body)
	for _, ck := range resp.Cookies() {
		if ck.Name == dashboard.CookieName {
			c.cookie = ck.Value
		}
	}
	return code, out
}

func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Enrolment, the two-step sign-in, a replayed code, a wrong code,
// single-use recovery codes, the per-account code limit, disabling.
func TestTOTPEnrollLoginReplayRecovery(t *testing.T) {
	f := start(t, nil)
	ctx := context.Background()
	team := f.team("t", "free")
	uid := f.user("pat@x.test", "pat-password-123", map[int64]string{team: "owner"})
	c := f.login("pat@x.test", "pat-password-123")

	c.want(403, "POST", "/api/account/totp", map[string]any{"password": "wrong"})
	setup := c.want(200, "POST", "/api/account/totp", map[string]any{"password": "pat-password-123"})
	secret := setup["secret"].(string)
	if u := setup["otpauth_url"].(string); !strings.HasPrefix(u, "otpauth://totp/WiseHosting:pat@x.test?") || !strings.Contains(u, "secret="+secret) {
		t.Fatalf("otpauth URL %q", u)
	}
	// The QR code is a PNG drawn here (no third party sees the secret).
	qr, _ := setup["qr_png"].(string)
	if png, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(qr, "data:image/png;base64,")); !strings.HasPrefix(qr, "data:image/png;base64,") || err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("QR code: %.60q (%v)", qr, err)
	}
	// Not on until confirmed: a password alone still signs in.
	if _, out := f.loginRaw("pat@x.test", "pat-password-123"); out["mfa_required"] != false {
		t.Fatalf("TOTP on before confirmation: %v", out)
	}
	c.want(403, "POST", "/api/account/totp/confirm", map[string]any{"code": "12345x"})
	recovery := c.want(200, "POST", "/api/account/totp/confirm", map[string]any{"code": totpCode(t, secret, time.Now())})["recovery_codes"].([]any)
	if len(recovery) != 10 {
		t.Fatalf("recovery codes: %v", recovery)
	}
	c.want(409, "POST", "/api/account/totp", map[string]any{"password": "pat-password-123"})
	var enc string
	f.db.Pool.QueryRow(ctx, "SELECT totp_secret_enc FROM users WHERE id = $1", uid).Scan(&enc)
	if !strings.HasPrefix(enc, "whs1.") || strings.Contains(enc, secret) {
		t.Fatalf("TOTP secret stored as %q", enc)
	}
	if sec := c.want(200, "GET", "/api/account/security", nil); sec["totp_enabled"] != true || sec["recovery_codes_left"] != float64(10) {
		t.Fatalf("security: %v", sec)
	}

	// The password gives a pending session that can only send a code.
	p, out := f.loginRaw("pat@x.test", "pat-password-123")
	if out["mfa_required"] != true {
		t.Fatalf("login answer: %v", out)
	}
	for _, path := range []string{"/api/me", "/api/sessions", fmt.Sprintf("/api/teams/%d/apps", team), "/api/account/security"} {
		if got := p.want(401, "GET", path, nil); got["mfa_required"] != true || !strings.Contains(fmt.Sprint(got["error"]), "code") {
			t.Fatalf("%s before the code: %v", path, got)
		}
	}
	p.want(401, "POST", "/api/tokens", map[string]any{"team_id": team, "name": "x"})
	if code, _ := p.code(map[string]any{"code": "000000"}); code != 401 {
		t.Fatalf("wrong code: %d", code)
	}
	// A code of the next step (allowed skew) after the confirming one.
	next := totpCode(t, secret, time.Now().Add(30*time.Second))
	pending := p.cookie
	if code, out := p.code(map[string]any{"code": next}); code != 200 || p.cookie == pending {
		t.Fatalf("right code: %d %v (cookie rotated: %v)", code, out, p.cookie != pending)
	}
	p.want(200, "GET", fmt.Sprintf("/api/teams/%d/apps", team), nil)
	(&client{f: f, cookie: pending}).want(401, "GET", "/api/me", nil)

	// The same code again, in another sign-in: refused.
	p2, _ := f.loginRaw("pat@x.test", "pat-password-123")
	if code, _ := p2.code(map[string]any{"code": next}); code != 401 {
		t.Fatalf("replayed code: %d", code)
	}
	// A recovery code works once.
	rc := recovery[0].(string)
	if code, out := p2.code(map[string]any{"recovery_code": strings.ToUpper(rc)}); code != 200 {
		t.Fatalf("recovery code: %d %v", code, out)
	}
	p3, _ := f.loginRaw("pat@x.test", "pat-password-123")
	if code, _ := p3.code(map[string]any{"recovery_code": rc}); code != 401 {
		t.Fatalf("recovery code used twice: %d", code)
	}
	// New recovery codes replace the old ones.
	fresh := c.want(200, "POST", "/api/account/recovery-codes", map[string]any{"password": "pat-password-123"})["recovery_codes"].([]any)
	if len(fresh) != 10 || fresh[0] == recovery[1] {
		t.Fatalf("regenerated codes: %v", fresh)
	}
	if code, _ := p3.code(map[string]any{"recovery_code": recovery[1]}); code != 401 {
		t.Fatalf("old recovery code after regeneration: %d", code)
	}
	// Wrong codes are limited per account: soon even a right one waits.
	limited := false
	for i := 0; i < 6 && !limited; i++ {
		code, _ := p3.code(map[string]any{"code": "000000"})
		limited = code == http.StatusTooManyRequests
	}
	if !limited {
		t.Fatal("wrong codes were never rate limited")
	}
	if code, _ := p3.code(map[string]any{"recovery_code": fresh[0]}); code != http.StatusTooManyRequests {
		t.Fatalf("right code during the lockout: %d", code)
	}
	p3.want(200, "POST", "/api/logout", nil)

	// Security changes need a fresh session.
	f.db.Pool.Exec(ctx, "UPDATE sessions SET created_at = now() - interval '1 hour' WHERE user_id = $1", uid)
	if out := c.want(403, "POST", "/api/account/totp/disable", map[string]any{"password": "pat-password-123"}); !strings.Contains(fmt.Sprint(out["error"]), "sign in again") {
		t.Fatalf("stale session: %v", out)
	}
	f.db.Pool.Exec(ctx, "UPDATE sessions SET created_at = now() WHERE user_id = $1", uid)
	c.want(403, "POST", "/api/account/totp/disable", map[string]any{"password": "wrong"})
	c.want(200, "POST", "/api/account/totp/disable", map[string]any{"password": "pat-password-123"})
	if _, out := f.loginRaw("pat@x.test", "pat-password-123"); out["mfa_required"] != false {
		t.Fatalf("TOTP still asked after disabling: %v", out)
	}
	var actions string
	f.db.Pool.QueryRow(ctx, "SELECT string_agg(DISTINCT action, ' ') FROM audit_events WHERE user_id = $1", uid).Scan(&actions)
	for _, a := range []string{"user.totp_enable", "user.totp_disable", "user.recovery_codes", "session.mfa", "session.login"} {
		if !strings.Contains(actions, a) {
			t.Errorf("no %s in the audit log: %s", a, actions)
		}
	}
}

// OAuth is a first factor like the password: a user with TOTP still needs
// a code, sent by the page the callback redirects to.
func TestOAuthSignInStillNeedsTOTP(t *testing.T) {
	f, idps := startOAuth(t, false)
	f.user("kim@example.test", "kim-password-123", nil)
	c := f.login("kim@example.test", "kim-password-123")
	secret := c.want(200, "POST", "/api/account/totp", map[string]any{"password": "kim-password-123"})["secret"].(string)
	c.want(200, "POST", "/api/account/totp/confirm", map[string]any{"code": totpCode(t, secret, time.Now())})

	idps["github"].setUser(fakeUser{id: 31, email: "kim@example.test", verified: true})
	b := f.browser()
	if resp, body := b.signIn("github"); resp.StatusCode != 200 {
		t.Fatalf("OAuth sign-in: %d %.300s", resp.StatusCode, body)
	}
	s := b.session() // the CSRF token comes with the 401 of /api/me
	if out := s.want(401, "GET", "/api/me", nil); out["mfa_required"] != true {
		t.Fatalf("me before the code: %v", out)
	}
	if code, out := s.code(map[string]any{"code": totpCode(t, secret, time.Now().Add(30*time.Second))}); code != 200 {
		t.Fatalf("code: %d %v", code, out)
	}
	s.want(200, "GET", "/api/me", nil)
}

// The first admin's one-time password: until it is replaced the session
// reaches only /api/me, logout and the password change, which revokes the
// user's other sessions.
func TestMustChangePasswordGating(t *testing.T) {
	f := start(t, nil)
	ctx := context.Background()
	pw, err := core.BootstrapAdmin(ctx, f.db.Pool, "admin@wh.test", "free")
	if err != nil || pw == "" {
		t.Fatal(pw, err)
	}
	var team int64
	f.db.Pool.QueryRow(ctx, "SELECT id FROM teams WHERE slug = 'default'").Scan(&team)
	a, out := f.loginRaw("admin@wh.test", pw)
	if out["must_change_password"] != true || out["mfa_required"] != false {
		t.Fatalf("login answer: %v", out)
	}
	other, _ := f.loginRaw("admin@wh.test", pw)
	if me := a.want(200, "GET", "/api/me", nil); me["user"].(map[string]any)["must_change_password"] != true {
		t.Fatalf("me: %v", me)
	}
	for _, c := range []struct{ method, path string }{{"GET", fmt.Sprintf("/api/teams/%d/apps", team)}, {"GET", "/api/sessions"},
		{"POST", "/api/tokens"}, {"POST", "/api/account/totp"}, {"GET", "/api/account/security"}} {
		if got := a.want(403, c.method, c.path, map[string]any{}); got["password_change_required"] != true {
			t.Fatalf("%s %s: %v", c.method, c.path, got)
		}
	}
	a.want(422, "POST", "/api/password", map[string]any{"current_password": pw, "new_password": "short"})
	a.want(422, "POST", "/api/password", map[string]any{"current_password": pw, "new_password": pw})
	a.want(403, "POST", "/api/password", map[string]any{"current_password": "wrong-password", "new_password": "a-brand-new-password"})
	(&client{f: f, cookie: a.cookie}).want(403, "POST", "/api/password", map[string]any{"current_password": pw, "new_password": "a-brand-new-password"}) // no CSRF
	if out := a.want(200, "POST", "/api/password", map[string]any{"current_password": pw, "new_password": "a-brand-new-password"}); out["revoked_sessions"] != float64(1) {
		t.Fatalf("change: %v", out)
	}
	other.want(401, "GET", "/api/me", nil)
	a.want(200, "GET", fmt.Sprintf("/api/teams/%d/apps", team), nil)
	(&client{f: f}).want(401, "POST", "/api/login", map[string]any{"email": "admin@wh.test", "password": pw})
	if _, out := f.loginRaw("admin@wh.test", "a-brand-new-password"); out["must_change_password"] != false {
		t.Fatalf("flag still set: %v", out)
	}
	// An ordinary user changes the password the same way.
	f.user("lee@x.test", "lee-password-123", nil)
	l := f.login("lee@x.test", "lee-password-123")
	l.want(200, "POST", "/api/password", map[string]any{"current_password": "lee-password-123", "new_password": "lee-password-456"})
}

func TestLoginRateLimitPerIP(t *testing.T) {
	f := start(t, nil)
	anon := &client{f: f}
	for i := 0; i < 25; i++ {
		code, _, resp := anon.do("POST", "/api/login", map[string]any{"email": fmt.Sprintf("nobody%d@x.test", i), "password": "guess"})
		if code == http.StatusTooManyRequests {
			if i < 20 || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("limited after %d attempts (Retry-After %q)", i, resp.Header.Get("Retry-After"))
			}
			return
		}
	}
	t.Fatal("25 attempts on different accounts from one address were never rate limited")
}

func TestCaddyfileAuthOptions(t *testing.T) {
	in := `:8080 {
	wisehosting_dashboard {
		allow_signup
		oauth github {
			client_id abc
			client_secret {env.GITHUB_SECRET}
		}
		oauth gitlab {
			client_id def
			client_secret ghi
			base_url https://gitlab.example.com
			scopes read_user openid
			name "Company GitLab"
		}
	}
}`
	out, _, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []json.RawMessage `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	json.Unmarshal(out, &cfg)
	var h dashboard.Handler
	for _, s := range cfg.Apps.HTTP.Servers {
		json.Unmarshal(s.Routes[0].Handle[0], &h)
	}
	want := dashboard.AuthConfig{AllowSignup: true, OAuth: map[string]oauthlogin.Settings{
		"github": {ClientID: "abc", ClientSecret: "{env.GITHUB_SECRET}"},
		"gitlab": {ClientID: "def", ClientSecret: "ghi", BaseURL: "https://gitlab.example.com", Scopes: []string{"read_user", "openid"}, Name: "Company GitLab"},
	}}
	if fmt.Sprint(h.AuthConfig) != fmt.Sprint(want) {
		t.Fatalf("adapted to %s", out)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"oauth github {\n client_id a\n colour blue\n }",
		"oauth github {\n client_id a b\n }",
		"oauth {\n }",
		"allow_signup yes",
	} {
		if _, _, err := (caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}).Adapt([]byte(":8080 {\nwisehosting_dashboard {\n"+bad+"\n}\n}"), nil); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	for _, bad := range []dashboard.AuthConfig{
		{OAuth: map[string]oauthlogin.Settings{"myspace": {ClientID: "a", ClientSecret: "b"}}},
		{OAuth: map[string]oauthlogin.Settings{"github": {ClientID: "a"}}},
		{OAuth: map[string]oauthlogin.Settings{"gitlab": {ClientID: "a", ClientSecret: "b", BaseURL: "http://gitlab.example.com"}}},
	} {
		if err := (&dashboard.Handler{AuthConfig: bad}).Validate(); err == nil {
			t.Errorf("valid: %+v", bad)
		}
	}
}
