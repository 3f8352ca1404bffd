//go:build remote && containers_image_openpgp

package runtime

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/bindings/network"
	nettypes "go.podman.io/common/libnetwork/types"
	"go.uber.org/zap"
)

// LabelTeam names the team an app container belongs to.
const LabelTeam = "io.wisehosting.team"

// Egress says where app containers may connect. Each team's containers
// share one bridge network; nftables rules the agent owns (one table per
// network, removed with it) drop what leaves that network towards the
// mesh range, the cloud metadata address, private and other special
// ranges (other teams' networks among them), and the worker's own
// addresses, unless the operator allows a range. Connections the host
// opens to containers (health checks, published ports) and their replies
// are not affected.
type Egress struct {
	// Off leaves app networks without rules (hosts without nftables).
	Off bool
	// MeshRange is the WireGuard mesh. Default: 10.50.0.0/24.
	MeshRange string
	// Allow lists ranges app containers may reach even though they are
	// blocked by default (e.g. a database on the private network).
	Allow []string
	// Nameservers app containers may query on port 53. Default: those of
	// /etc/resolv.conf.
	Nameservers []string
	// Nft is the nft binary. Default: nft.
	Nft string
}

// blockedRanges are refused to app containers by default: private,
// shared, loopback, link-local (169.254.169.254 is the metadata service),
// benchmarking, multicast and reserved ranges.
var blockedRanges = []string{
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
	"192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
	"203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
	"::/127", "::ffff:0:0/96", "64:ff9b:1::/48", "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
}

// egressRules is the parsed policy.
type egressRules struct {
	nft     string
	block   []netip.Prefix
	allow   []netip.Prefix
	dns     []netip.Addr
	tableRe *regexp.Regexp
}

func parseEgress(e Egress) (*egressRules, error) {
	if e.Off {
		return nil, nil
	}
	r := &egressRules{nft: e.Nft}
	if r.nft == "" {
		r.nft = "nft"
	}
	if _, err := exec.LookPath(r.nft); err != nil {
		return nil, fmt.Errorf("nftables (%s) is needed to isolate app networks: install it, or turn egress filtering off: %w", r.nft, err)
	}
	mesh := e.MeshRange
	if mesh == "" {
		mesh = "10.50.0.0/24"
	}
	for _, s := range append([]string{mesh}, blockedRanges...) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("mesh range %q: %w", s, err)
		}
		r.block = append(r.block, p.Masked())
	}
	for _, s := range e.Allow {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("egress allow %q: not a CIDR range: %w", s, err)
		}
		r.allow = append(r.allow, p.Masked())
	}
	ns := e.Nameservers
	if ns == nil {
		ns = resolvConfServers("/etc/resolv.conf")
	}
	for _, s := range ns {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("nameserver %q: %w", s, err)
		}
		r.dns = append(r.dns, a.Unmap())
	}
	return r, nil
}

func resolvConfServers(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			if a, err := netip.ParseAddr(fields[1]); err == nil && !a.IsLoopback() {
				out = append(out, a.String())
			}
		}
	}
	return out
}

// merged drops prefixes contained in others (nft refuses overlapping
// intervals in one set).
func merged(ps []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for i, p := range ps {
		inner := false
		for j, q := range ps {
			if i != j && q.Bits() <= p.Bits() && q.Contains(p.Addr()) && (q.Bits() < p.Bits() || j < i) {
				inner = true
				break
			}
		}
		if !inner {
			out = append(out, p)
		}
	}
	return out
}

func family(ps []netip.Prefix, v4 bool) []string {
	var out []string
	for _, p := range ps {
		if p.Addr().Is4() == v4 {
			out = append(out, p.String())
		}
	}
	return out
}

func addrs(as []netip.Addr, v4 bool) []string {
	var out []string
	for _, a := range as {
		if a.Is4() == v4 {
			out = append(out, a.String())
		}
	}
	return out
}

// ipKeyword is nft's name of the address family.
func ipKeyword(v4 bool) string {
	if v4 {
		return "ip"
	}
	return "ip6"
}

var ifaceRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// tableName is the nftables table of a network (wh-team-7 has the table
// wh_team_7, wisehosting-apps wisehosting_apps).
func tableName(netName string) string {
	var b strings.Builder
	for _, c := range netName {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// ruleset renders the table of one network: iface is its bridge, subnets
// its own ranges (traffic inside the network stays allowed).
func (e *egressRules) ruleset(table, iface string, subnets []netip.Prefix) (string, error) {
	if !ifaceRe.MatchString(iface) {
		return "", fmt.Errorf("unexpected bridge interface name %q", iface)
	}
	var b strings.Builder
	in := fmt.Sprintf("iifname %q", iface)
	// Creating then deleting makes the replacement atomic and idempotent.
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\ntable inet %s {\n", table, table, table)
	b.WriteString("\tchain forward {\n\t\ttype filter hook forward priority -5; policy accept;\n")
	fmt.Fprintf(&b, "\t\t%s ct state established,related accept\n", in)
	for _, v4 := range []bool{true, false} {
		ip := ipKeyword(v4)
		if own := family(subnets, v4); len(own) > 0 {
			fmt.Fprintf(&b, "\t\t%s %s daddr { %s } accept\n", in, ip, strings.Join(own, ", "))
		}
		if dns := addrs(e.dns, v4); len(dns) > 0 {
			for _, proto := range []string{"udp", "tcp"} {
				fmt.Fprintf(&b, "\t\t%s %s daddr { %s } %s dport 53 accept\n", in, ip, strings.Join(dns, ", "), proto)
			}
		}
		if allow := family(merged(e.allow), v4); len(allow) > 0 {
			fmt.Fprintf(&b, "\t\t%s %s daddr { %s } accept\n", in, ip, strings.Join(allow, ", "))
		}
		if block := family(merged(e.block), v4); len(block) > 0 {
			fmt.Fprintf(&b, "\t\t%s %s daddr { %s } drop\n", in, ip, strings.Join(block, ", "))
		}
	}
	b.WriteString("\t}\n")
	// Anything addressed to the worker itself (its mesh, public and
	// bridge addresses) arrives on the input hook.
	b.WriteString("\tchain input {\n\t\ttype filter hook input priority -5; policy accept;\n")
	fmt.Fprintf(&b, "\t\t%s ct state established,related accept\n", in)
	for _, v4 := range []bool{true, false} {
		ip := ipKeyword(v4)
		if allow := family(merged(e.allow), v4); len(allow) > 0 {
			fmt.Fprintf(&b, "\t\t%s %s daddr { %s } accept\n", in, ip, strings.Join(allow, ", "))
		}
	}
	fmt.Fprintf(&b, "\t\t%s drop\n\t}\n}\n", in)
	return b.String(), nil
}

func (e *egressRules) apply(ctx context.Context, rules string) error {
	cmd := exec.CommandContext(ctx, e.nft, "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft: %v: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

func (e *egressRules) remove(ctx context.Context, table string) error {
	out, err := exec.CommandContext(ctx, e.nft, "delete", "table", "inet", table).CombinedOutput()
	if err != nil && !bytes.Contains(out, []byte("No such file")) {
		return fmt.Errorf("nft delete table %s: %v: %s", table, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// TeamNetwork is the name of a team's app network.
func (r *Runtime) TeamNetwork(teamID int64) string {
	if r.cfg.Instance != "" {
		return fmt.Sprintf("wh-%s-team-%d", r.cfg.Instance, teamID)
	}
	return fmt.Sprintf("wh-team-%d", teamID)
}

// teamLock serialises creating and removing one team's network with
// creating its containers.
func (r *Runtime) teamLock(teamID int64) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.teams == nil {
		r.teams = map[int64]*sync.Mutex{}
	}
	m := r.teams[teamID]
	if m == nil {
		m = new(sync.Mutex)
		r.teams[teamID] = m
	}
	return m
}

// ensureTeamNetwork creates the team's network if needed and (re)applies
// its egress rules (team lock held). Rules go in before any container
// joins, so no container ever runs unfiltered.
func (r *Runtime) ensureTeamNetwork(ctx context.Context, teamID int64) (string, error) {
	name := r.TeamNetwork(teamID)
	ok, err := network.Exists(r.connFor(ctx), name, nil)
	if err != nil {
		return "", fmt.Errorf("checking network %s: %w", name, err)
	}
	if !ok {
		labels := map[string]string{LabelManaged: r.managed(), LabelTeam: strconv.FormatInt(teamID, 10)}
		if _, err := network.Create(r.connFor(ctx), &nettypes.Network{Name: name, Driver: "bridge", Labels: labels}); err != nil {
			return "", fmt.Errorf("creating network %s: %w", name, err)
		}
		r.cfg.Logger.Info("runtime: created team network", zap.String("network", name), zap.Int64("team", teamID))
	}
	return name, r.applyEgress(ctx, name)
}

// applyEgress installs the egress rules of a network.
func (r *Runtime) applyEgress(ctx context.Context, name string) error {
	if r.egress == nil {
		return nil
	}
	n, err := network.Inspect(r.connFor(ctx), name, nil)
	if err != nil {
		return fmt.Errorf("inspecting network %s: %w", name, err)
	}
	var subnets []netip.Prefix
	for _, s := range n.Subnets {
		if p, err := netip.ParsePrefix(s.Subnet.String()); err == nil {
			subnets = append(subnets, p.Masked())
		}
	}
	rules, err := r.egress.ruleset(tableName(name), n.NetworkInterface, subnets)
	if err != nil {
		return err
	}
	if err := r.egress.apply(ctx, rules); err != nil {
		return fmt.Errorf("isolating network %s: %w", name, err)
	}
	return nil
}

// RemoveEgress deletes a network's egress rules (tests show what they
// block by taking them away).
func (r *Runtime) RemoveEgress(ctx context.Context, name string) error {
	if r.egress == nil {
		return nil
	}
	return r.egress.remove(ctx, tableName(name))
}

// releaseTeamNetwork removes the team's network and its rules once no
// container of the team is left.
func (r *Runtime) releaseTeamNetwork(ctx context.Context, teamID int64) error {
	l := r.teamLock(teamID)
	l.Lock()
	defer l.Unlock()
	all := true
	list, err := containers.List(r.connFor(ctx), &containers.ListOptions{All: &all,
		Filters: map[string][]string{"label": {LabelManaged + "=" + r.managed(), LabelTeam + "=" + strconv.FormatInt(teamID, 10)}}})
	if err != nil || len(list) > 0 {
		return err
	}
	name := r.TeamNetwork(teamID)
	if ok, _ := network.Exists(r.connFor(ctx), name, nil); ok {
		if _, err := network.Remove(r.connFor(ctx), name, nil); err != nil {
			return fmt.Errorf("removing network %s: %w", name, err)
		}
		r.cfg.Logger.Info("runtime: removed team network", zap.String("network", name), zap.Int64("team", teamID))
	}
	if r.egress != nil {
		return r.egress.remove(ctx, tableName(name))
	}
	return nil
}

// restoreEgress reapplies the rules of every team network this agent
// manages (nftables rules do not survive a reboot; the networks do).
func (r *Runtime) restoreEgress(ctx context.Context) error {
	if r.egress == nil {
		return nil
	}
	nets, err := network.List(r.connFor(ctx), &network.ListOptions{Filters: map[string][]string{"label": {LabelManaged + "=" + r.managed()}}})
	if err != nil {
		return fmt.Errorf("listing networks: %w", err)
	}
	for _, n := range nets {
		if _, ok := n.Labels[LabelTeam]; ok {
			if err := r.applyEgress(ctx, n.Name); err != nil {
				return err
			}
		}
	}
	return nil
}
