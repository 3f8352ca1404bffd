// Package dnstest is the authoritative DNS half of the DNS provider
// stand-ins (cftest, cloudnstest): a server on loopback, over UDP and TCP
// on one port, answering for one zone from the records the stand-in's API
// holds, so what a client wrote through the API is resolvable for real
// (ACME DNS-01 validation included).
package dnstest

import (
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// Record is what the server answers from: a fully qualified name without
// the trailing dot (a leading "*." is a wildcard), a type and its content
// as the provider's API shows it.
type Record struct {
	Name, Type, Content string
}

// Serve answers for zone from records() until the test ends and returns
// the server's host:port.
func Serve(t testing.TB, zone string, records func() []Record) string {
	// The UDP port the kernel picks may be taken over TCP by another test
	// (some resolvers, Pebble's, ask over TCP): try again with another.
	var pc net.PacketConn
	var l net.Listener
	for attempt := 0; ; attempt++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if attempt == 20 {
			t.Fatalf("no port free over both UDP and TCP: %v", err)
		}
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { w.WriteMsg(answer(zone, records(), r)) })
	d := &dns.Server{PacketConn: pc, Handler: h}
	go d.ActivateAndServe()
	t.Cleanup(func() { d.Shutdown() })
	dt := &dns.Server{Listener: l, Handler: h}
	go dt.ActivateAndServe()
	t.Cleanup(func() { dt.Shutdown() })
	return pc.LocalAddr().String()
}

func answer(zone string, records []Record, r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) == 0 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := r.Question[0]
	name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
	found := false
	for _, rec := range records {
		if rec.Name != name && !(strings.HasPrefix(rec.Name, "*.") && strings.HasSuffix(name, rec.Name[1:])) {
			continue
		}
		found = true
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 1}
		switch {
		case rec.Type == "TXT" && q.Qtype == dns.TypeTXT:
			hdr.Rrtype = dns.TypeTXT
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{strings.Trim(rec.Content, `"`)}})
		case rec.Type == "A" && q.Qtype == dns.TypeA:
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.ParseIP(rec.Content)})
		}
	}
	// The zone's SOA: at the apex as an answer, elsewhere as the authority
	// of negative answers (ACME clients find the zone this way).
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: dns.Fqdn(zone), Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 1},
		Ns: "ns1." + dns.Fqdn(zone), Mbox: "hostmaster." + dns.Fqdn(zone), Serial: 1, Refresh: 60, Retry: 60, Expire: 600, Minttl: 1}
	inZone := name == zone || strings.HasSuffix(name, "."+zone)
	switch {
	case q.Qtype == dns.TypeSOA && name == zone:
		m.Answer = append(m.Answer, soa)
	case !inZone:
		m.Rcode = dns.RcodeRefused
	case !found && name != zone:
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, soa)
	case len(m.Answer) == 0:
		m.Ns = append(m.Ns, soa)
	}
	return m
}
