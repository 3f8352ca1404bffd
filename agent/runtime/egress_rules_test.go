//go:build remote && containers_image_openpgp

package runtime

import (
	"net/netip"
	"strings"
	"testing"
)

func TestEgressRuleset(t *testing.T) {
	e, err := parseEgress(Egress{MeshRange: "10.50.0.0/24", Allow: []string{"10.0.5.0/24"}, Nameservers: []string{"10.255.255.53"}})
	if err != nil {
		t.Fatal(err)
	}
	rules, err := e.ruleset("wh_team_7", "cni-podman3", []netip.Prefix{netip.MustParsePrefix("10.89.3.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"table inet wh_team_7\ndelete table inet wh_team_7\ntable inet wh_team_7 {",
		`iifname "cni-podman3" ct state established,related accept`,
		`iifname "cni-podman3" ip daddr { 10.89.3.0/24 } accept`,
		`iifname "cni-podman3" ip daddr { 10.255.255.53 } udp dport 53 accept`,
		`iifname "cni-podman3" ip daddr { 10.0.5.0/24 } accept`,
		"169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
		"type filter hook input priority -5; policy accept;",
		"\t\tiifname \"cni-podman3\" drop\n",
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("missing %q in\n%s", want, rules)
		}
	}
	// The mesh range sits inside 10/8: one interval, no overlap for nft.
	if strings.Contains(rules, "10.50.0.0/24") {
		t.Errorf("overlapping intervals kept:\n%s", rules)
	}
	if _, err := e.ruleset("t", `x" drop; flush ruleset #`, nil); err == nil {
		t.Fatal("an odd interface name reached the ruleset")
	}
	if _, err := parseEgress(Egress{Allow: []string{"10.0.0.0/33"}}); err == nil {
		t.Fatal("bad allow range accepted")
	}
}
