package dashboard_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/wisehosting/wisehosting/caddymodules/dashboard"
)

// Team invitations by one-time link: who may invite, another team sees
// nothing, the link creates the invited account or lets that account
// join, and works once.
func TestTeamInvitations(t *testing.T) {
	f := start(t, nil)
	teamA, teamB := f.team("acme", "free"), f.team("globex", "free")
	f.user("alice@acme.test", "alice-password-1", map[int64]string{teamA: "owner"})
	f.user("dave@acme.test", "dave-password-1", map[int64]string{teamA: "admin"})
	f.user("carol@acme.test", "carol-password-1", map[int64]string{teamA: "member"})
	f.user("bob@globex.test", "bob-password-1", map[int64]string{teamB: "owner"})
	f.user("erin@example.test", "erin-password-1", nil)
	alice, dave, carol := f.login("alice@acme.test", "alice-password-1"), f.login("dave@acme.test", "dave-password-1"), f.login("carol@acme.test", "carol-password-1")
	bob, erin := f.login("bob@globex.test", "bob-password-1"), f.login("erin@example.test", "erin-password-1")
	anon := &client{f: f}
	inv := fmt.Sprintf("/api/teams/%d/invitations", teamA)

	carol.want(403, "POST", inv, map[string]any{"email": "new@acme.test"})
	dave.want(403, "POST", inv, map[string]any{"email": "new@acme.test", "role": "owner"})
	alice.want(422, "POST", inv, map[string]any{"email": "not an address"})
	alice.want(409, "POST", inv, map[string]any{"email": "Carol@acme.test"})
	bob.want(404, "POST", inv, map[string]any{"email": "x@globex.test"})
	bob.want(404, "GET", inv, nil)

	out := dave.want(201, "POST", inv, map[string]any{"email": "New@Acme.test", "role": "admin"})
	url := out["url"].(string)
	token := url[strings.LastIndex(url, "/invite/")+len("/invite/"):]
	if !strings.HasPrefix(token, "whi_") || !strings.HasPrefix(url, "https://") {
		t.Fatalf("invitation link %q", url)
	}
	if list := alice.want(200, "GET", inv, nil)["invitations"].([]any); len(list) != 1 || strings.Contains(fmt.Sprint(list), token) {
		t.Fatalf("pending: %v", list)
	}
	shown := anon.want(200, "GET", "/api/invitations/"+token, nil)
	if shown["team_name"] != "acme" || shown["email"] != "new@acme.test" || shown["role"] != "admin" || shown["has_account"] != false {
		t.Fatalf("invitation page: %v", shown)
	}
	anon.want(404, "GET", "/api/invitations/whi_forged", nil)
	// Someone else signed in cannot take it.
	erin.want(403, "POST", "/api/invitations/"+token+"/accept", nil)

	// The invited person chooses a password: account, membership, session.
	anon.want(422, "POST", "/api/invitations/"+token+"/signup", map[string]any{"password": "short"})
	code, body, resp := anon.do("POST", "/api/invitations/"+token+"/signup", map[string]any{"name": "New", "password": "a long new passphrase"})
	if code != 201 {
		t.Fatalf("signup: %d %v", code, body)
	}
	newbie := &client{f: f, csrf: body["csrf_token"].(string)}
	for _, ck := range resp.Cookies() {
		if ck.Name == dashboard.CookieName {
			newbie.cookie = ck.Value
		}
	}
	me := newbie.want(200, "GET", "/api/me", nil)
	if !strings.Contains(fmt.Sprint(me["teams"]), "acme") {
		t.Fatalf("the new member's teams: %v", me["teams"])
	}
	f.login("new@acme.test", "a long new passphrase")
	// The link works once.
	anon.want(404, "GET", "/api/invitations/"+token, nil)
	anon.want(404, "POST", "/api/invitations/"+token+"/signup", map[string]any{"password": "another long passphrase"})

	// An existing account signs in and accepts; a second try is refused.
	out = alice.want(201, "POST", inv, map[string]any{"email": "erin@example.test"})
	url = out["url"].(string)
	token = url[strings.LastIndex(url, "/")+1:]
	if anon.want(200, "GET", "/api/invitations/"+token, nil)["has_account"] != true {
		t.Fatal("erin's account is not seen")
	}
	anon.want(422, "POST", "/api/invitations/"+token+"/signup", map[string]any{"password": "a long new passphrase"})
	if joined := erin.want(200, "POST", "/api/invitations/"+token+"/accept", nil); joined["role"] != "member" || joined["team_id"] != float64(teamA) {
		t.Fatalf("accept: %v", joined)
	}
	erin.want(404, "POST", "/api/invitations/"+token+"/accept", nil)

	// A revoked invitation is gone; another team cannot revoke.
	out = alice.want(201, "POST", inv, map[string]any{"email": "later@acme.test"})
	id := int64(out["invitation"].(map[string]any)["id"].(float64))
	url = out["url"].(string)
	token = url[strings.LastIndex(url, "/")+1:]
	bob.want(404, "DELETE", fmt.Sprintf("%s/%d", inv, id), nil)
	dave.want(200, "DELETE", fmt.Sprintf("%s/%d", inv, id), nil)
	anon.want(404, "GET", "/api/invitations/"+token, nil)
}
