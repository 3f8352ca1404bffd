package certs

import (
	"testing"

	_ "github.com/wisehosting/wisehosting/caddymodules/proxy"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func TestCaddyfile(t *testing.T) {
	out, _, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte("{\n\twisehosting_certs {\n\t\tinterval 5m\n\t\twarn 7d\n\t}\n}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"apps":{"wisehosting_certs":{"interval":300000000000,"warn":604800000000000}}}`; string(out) != want {
		t.Fatalf("got %s", out)
	}
	if _, _, err := (caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}).Adapt([]byte("{\n\twisehosting_certs {\n\t\twarn soon\n\t}\n}\n"), nil); err == nil {
		t.Fatal("bad duration accepted")
	}
}

func TestCaddyfileRenew(t *testing.T) {
	in := `{
	wisehosting_certs {
		renew {
			ca https://acme.example.com/directory
			email ops@example.com
			trusted_roots /etc/ssl/private-ca.pem
			dns wisehosting cloudflare {
				api_token secret-token
			}
		}
	}
}
`
	out, _, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"apps":{"wisehosting_certs":{"renew":{"ca":"https://acme.example.com/directory","email":"ops@example.com","trusted_roots_pem_files":["/etc/ssl/private-ca.pem"],"dns":{"api_token":"secret-token","name":"wisehosting","provider":"cloudflare"}}}}}`
	if string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
}
