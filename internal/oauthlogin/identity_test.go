package oauthlogin

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseIdentity(t *testing.T) {
	for _, c := range []struct {
		provider, user, emails string
		want                   Identity
		err                    bool
	}{
		{"google", `{"sub":"1089","email":"a@gmail.com","email_verified":true,"name":"A"}`, "",
			Identity{Subject: "1089", Email: "a@gmail.com", EmailVerified: true, Name: "A"}, false},
		{"google", `{"sub":"1089","email":"a@gmail.com","email_verified":"true"}`, "",
			Identity{Subject: "1089", Email: "a@gmail.com", EmailVerified: true}, false},
		{"google", `{"sub":"1089","email":"a@gmail.com","email_verified":false}`, "",
			Identity{Subject: "1089", Email: "a@gmail.com"}, false},
		{"google", `{"email":"a@gmail.com","email_verified":true}`, "", Identity{}, true},
		// GitHub: the profile e-mail is not proof; the primary verified
		// entry of /user/emails is.
		{"github", `{"id":42,"login":"octo","email":"public@x.test"}`, `[{"email":"old@x.test","primary":false,"verified":true},{"email":"main@x.test","primary":true,"verified":true}]`,
			Identity{Subject: "42", Email: "main@x.test", EmailVerified: true, Name: "octo"}, false},
		{"github", `{"id":42,"login":"octo","email":"public@x.test"}`, `[{"email":"main@x.test","primary":true,"verified":false}]`,
			Identity{Subject: "42", Email: "public@x.test", Name: "octo"}, false},
		{"github", `{"id":42,"login":"octo","email":"public@x.test"}`, "",
			Identity{Subject: "42", Email: "public@x.test", Name: "octo"}, false},
		{"github", `{"id":"forty-two"}`, "", Identity{}, true},
		{"github", `{"id":4.2}`, "", Identity{}, true},
		{"github", `{"id":0}`, "", Identity{}, true},
		{"gitlab", `{"id":7,"username":"gl","name":"G L","email":"g@x.test","confirmed_at":"2020-01-01T00:00:00Z"}`, "",
			Identity{Subject: "7", Email: "g@x.test", EmailVerified: true, Name: "G L"}, false},
		{"gitlab", `{"id":7,"username":"gl","email":"g@x.test","confirmed_at":null}`, "",
			Identity{Subject: "7", Email: "g@x.test", Name: "gl"}, false},
		{"bitbucket", `{"uuid":"{a-b}","username":"bb","display_name":"B B"}`, `{"pagelen":10,"values":[{"email":"b@x.test","is_primary":true,"is_confirmed":true}]}`,
			Identity{Subject: "{a-b}", Email: "b@x.test", EmailVerified: true, Name: "B B"}, false},
		{"bitbucket", `{"uuid":"{a-b}"}`, `{"values":[{"email":"b@x.test","is_primary":true,"is_confirmed":false}]}`,
			Identity{Subject: "{a-b}", Email: "b@x.test"}, false},
		{"codeberg", `{"id":9,"login":"cb","full_name":"","email":"c@x.test"}`, `[{"email":"c@x.test","verified":true,"primary":true}]`,
			Identity{Subject: "9", Email: "c@x.test", EmailVerified: true, Name: "cb"}, false},
		{"codeberg", `{"id":9,"login":"cb","email":"c@x.test"}`, "", Identity{Subject: "9", Email: "c@x.test", Name: "cb"}, false},
		{"github", `{"id":42,"login":"octo","name":"Octo Cat"}`, "", Identity{Subject: "42", Name: "Octo Cat"}, false},
		{"codeberg", `{"id":9,"login":"cb","full_name":"C B"}`, "", Identity{Subject: "9", Name: "C B"}, false},
		{"github", `{"id":1,"email":"not an address"}`, `[{"email":"bad\naddr@x","primary":true,"verified":true}]`, Identity{Subject: "1"}, false},
		{"gitlab", `[`, "", Identity{}, true},
		{"other", `{}`, "", Identity{}, true},
	} {
		got, err := ParseIdentity(c.provider, []byte(c.user), []byte(c.emails))
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%s %s %s: %+v %v, want %+v (error %v)", c.provider, c.user, c.emails, got, err, c.want, c.err)
		}
	}
}

// Userinfo answers come from the network: no input may panic, and what
// comes out is either an error or an identity with a usable subject and
// an e-mail that is plausible or empty (and never verified when empty).
func FuzzParseIdentity(f *testing.F) {
	f.Add("github", []byte(`{"id":42,"login":"octo"}`), []byte(`[{"email":"a@b","primary":true,"verified":true}]`))
	f.Add("google", []byte(`{"sub":"1","email":"a@b","email_verified":"true"}`), []byte(nil))
	f.Add("bitbucket", []byte(`{"uuid":"{x}"}`), []byte(`{"values":[{"email":"a@b","is_primary":true,"is_confirmed":true}]}`))
	f.Add("gitlab", []byte(`{"id":1,"confirmed_at":"x"}`), []byte(nil))
	f.Add("codeberg", []byte(`{"id":1e3}`), []byte(`[]`))
	f.Fuzz(func(t *testing.T, provider string, user, emails []byte) {
		id, err := ParseIdentity(provider, user, emails)
		if err != nil {
			return
		}
		if id.Subject == "" || len(id.Subject) > 200 || !utf8.ValidString(id.Subject) {
			t.Fatalf("bad subject %q", id.Subject)
		}
		if id.Email == "" && id.EmailVerified {
			t.Fatal("verified empty e-mail")
		}
		if id.Email != "" && (!strings.Contains(id.Email, "@") || strings.ContainsAny(id.Email, " \r\n\t")) {
			t.Fatalf("implausible e-mail %q", id.Email)
		}
		if utf8.RuneCountInString(id.Name) > 100 {
			t.Fatal("name not bounded")
		}
	})
}

func TestSettingsValidate(t *testing.T) {
	ok := Settings{ClientID: "id", ClientSecret: "s"}
	for _, c := range []struct {
		id  string
		s   Settings
		bad bool
	}{
		{"github", ok, false},
		{"gitea", ok, true},
		{"github", Settings{ClientID: "id"}, true},
		{"gitlab", Settings{ClientID: "id", ClientSecret: "s", BaseURL: "https://gitlab.example.com"}, false},
		{"gitlab", Settings{ClientID: "id", ClientSecret: "s", BaseURL: "http://gitlab.example.com"}, true},
		{"gitlab", Settings{ClientID: "id", ClientSecret: "s", TokenURL: "http://127.0.0.1:9/token"}, false},
		{"gitlab", Settings{ClientID: "id", ClientSecret: "s", UserinfoURL: "/relative"}, true},
	} {
		if err := c.s.Validate(c.id); (err != nil) != c.bad {
			t.Errorf("%s %+v: %v", c.id, c.s, err)
		}
	}
}

// The public endpoints of each provider, as their documentation gives them.
func TestDefaultEndpoints(t *testing.T) {
	for id, want := range map[string][3]string{
		"google":    {"https://accounts.google.com/o/oauth2/v2/auth", "https://oauth2.googleapis.com/token", "https://openidconnect.googleapis.com/v1/userinfo"},
		"github":    {"https://github.com/login/oauth/authorize", "https://github.com/login/oauth/access_token", "https://api.github.com/user"},
		"gitlab":    {"https://gitlab.com/oauth/authorize", "https://gitlab.com/oauth/token", "https://gitlab.com/api/v4/user"},
		"bitbucket": {"https://bitbucket.org/site/oauth2/authorize", "https://bitbucket.org/site/oauth2/access_token", "https://api.bitbucket.org/2.0/user"},
		"codeberg":  {"https://codeberg.org/login/oauth/authorize", "https://codeberg.org/login/oauth/access_token", "https://codeberg.org/api/v1/user"},
	} {
		p, err := New(id, Settings{ClientID: "id", ClientSecret: "s"}, http.DefaultClient)
		if err != nil {
			t.Fatal(err)
		}
		got := [3]string{p.config.Endpoint.AuthURL, p.config.Endpoint.TokenURL, p.userinfoURL}
		if got != want {
			t.Errorf("%s: %v, want %v", id, got, want)
		}
	}
	p, _ := New("github", Settings{ClientID: "id", ClientSecret: "s", BaseURL: "https://ghe.example.com/"}, http.DefaultClient)
	if p.userinfoURL != "https://ghe.example.com/api/v3/user" || p.config.Endpoint.TokenURL != "https://ghe.example.com/login/oauth/access_token" {
		t.Errorf("GitHub Enterprise endpoints: %s %s", p.config.Endpoint.TokenURL, p.userinfoURL)
	}
}
