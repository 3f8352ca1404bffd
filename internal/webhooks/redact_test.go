package webhooks

import (
	"net/url"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.example.com/a":                                                   "https://hooks.example.com/a",
		"https://x.example/hook?token=s3cret&format=json":                               "https://x.example/hook?token=***&format=json",
		"https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/XXXXXXXXXXXXXXXXXXXXXXXX": "https://hooks.slack.com/services/***/***/***",
		"https://discord.com/api/webhooks/123456789012345678/abcDEFghiJKLmnoPQRstu":     "https://discord.com/api/webhooks/***/***",
		"matrix://bot:hunter2@matrix.example.org/?rooms=!room":                          "matrix://***@matrix.example.org/?rooms=%21room",
		"discord://Tok3nTok3nTok3nTok3n@123456789012345678":                             "discord://***@123456789012345678",
		"telegram://110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw@telegram?chats=@x":     "telegram://***@telegram?chats=%40x",
		"ntfy://ntfy.sh/alerts":                                                         "ntfy://ntfy.sh/alerts",
		"ntfy://ntfy.sh/wisehosting-alerts":                                             "ntfy://ntfy.sh/***", // a topic is a secret
		"ntfy://ntfy.sh/Kx7pQ2mZ9vR4tL8w":                                               "ntfy://ntfy.sh/***",
		"generic://example.com/x?auth=Basic+abc":                                        "generic://example.com/x?auth=***",
		"::not a url":                                                                   "***",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// Whatever the input, a password in the user information and the value of
// a token parameter never appear in the redacted form.
func FuzzRedact(f *testing.F) {
	f.Add("matrix://bot:hunter2@matrix.example.org/?token=zz")
	f.Add("https://x.example/hook?token=s3cret")
	f.Fuzz(func(t *testing.T, raw string) {
		out := Redact(raw)
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		if p, ok := u.User.Password(); ok && len(p) >= 4 && strings.Contains(out, p) && !strings.Contains(u.Host+u.Path+u.RawQuery, p) {
			t.Fatalf("password %q in %q", p, out)
		}
		if v := u.Query().Get("token"); v != "" && v != "***" && strings.Contains(out, "token="+url.QueryEscape(v)) {
			t.Fatalf("token %q in %q", v, out)
		}
	})
}
