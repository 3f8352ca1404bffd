// Package cftest is a stand-in for Cloudflare in tests: an HTTP server
// speaking the v4 zones and dns_records API (the real JSON envelope), and
// an authoritative DNS server on loopback answering from the same records,
// so ACME DNS-01 validation against it is real DNS.
package cftest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Record is a stored DNS record.
type Record struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Content string `json:"content"`
	TTL     int    `json:"ttl"`
	Proxied bool   `json:"proxied"`
}

// Server is the fake API plus its DNS server.
type Server struct {
	Zone, ZoneID, Token string
	URL                 string // API base
	DNSAddr             string // host:port of the DNS server (UDP)

	mu      sync.Mutex
	records []Record
	next    int
	Writes  int
	// Requests counts API calls, including refused ones.
	Requests int
	failures []int
}

// FailNext makes the next len(codes) API calls fail with those statuses,
// the way Cloudflare does when it rate-limits (429 with Retry-After) or has
// an outage (5xx).
func (s *Server) FailNext(codes ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, codes...)
}

// Start runs both servers until the test ends.
func Start(t testing.TB, zone, token string) *Server {
	s := &Server{Zone: zone, ZoneID: "023e105f4ecef8ad9ca31a8372d0c353", Token: token}
	api := httptest.NewServer(s)
	t.Cleanup(api.Close)
	s.URL = api.URL
	// DNS over UDP and, on the same port, TCP (some resolvers, Pebble's,
	// ask over TCP). The UDP port the kernel picks may be taken over TCP
	// by another test: try again with another.
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
	d := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serveDNS)}
	go d.ActivateAndServe()
	t.Cleanup(func() { d.Shutdown() })
	s.DNSAddr = pc.LocalAddr().String()
	dt := &dns.Server{Listener: l, Handler: dns.HandlerFunc(s.serveDNS)}
	go dt.ActivateAndServe()
	t.Cleanup(func() { dt.Shutdown() })
	return s
}

// Records returns a copy of the stored records.
func (s *Server) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.records...)
}

// Add stores rec as if it had been created elsewhere (the dashboard, an
// import), without validation: what the API then answers is untrusted input
// to the client.
func (s *Server) Add(rec Record) Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	rec.ID = fmt.Sprintf("rec%04d", s.next)
	s.records = append(s.records, rec)
	return rec
}

// Clear removes every record.
func (s *Server) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = nil
}

type resultInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
	TotalPages int `json:"total_pages"`
}

func (s *Server) reply(w http.ResponseWriter, code int, result any, errs ...string) {
	s.replyPage(w, code, result, nil, errs...)
}

func (s *Server) replyPage(w http.ResponseWriter, code int, result any, info *resultInfo, errs ...string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	e := []map[string]any{}
	for _, m := range errs {
		e = append(e, map[string]any{"code": 1000 + code, "message": m})
	}
	body := map[string]any{"success": len(errs) == 0, "errors": e, "messages": []any{}, "result": result}
	if info != nil {
		body["result_info"] = info
	}
	json.NewEncoder(w).Encode(body)
}

// page answers one page of a listing the way the API pages: per_page
// (default 100, at most 5000 for DNS records) and page from the query.
func (s *Server) page(w http.ResponseWriter, q url.Values, all []Record) {
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 100
	}
	per = min(per, 5000)
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	from := min((page-1)*per, len(all))
	to := min(from+per, len(all))
	res := append([]Record{}, all[from:to]...)
	s.replyPage(w, 200, res, &resultInfo{Page: page, PerPage: per, Count: len(res), TotalCount: len(all), TotalPages: (len(all) + per - 1) / per})
}

// absName expands a record name the way the API does: "@" is the apex, a
// name outside the zone is relative to it.
func (s *Server) absName(name string) string {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	switch {
	case name == "@" || name == s.Zone:
		return s.Zone
	case strings.HasSuffix(name, "."+s.Zone):
		return name
	}
	return name + "." + s.Zone
}

// validTTL is the API's rule: 1 means automatic, else 60 to 86400 seconds.
func validTTL(ttl int) bool { return ttl == 0 || ttl == 1 || ttl >= 60 && ttl <= 86400 }

// ServeHTTP implements the subset of the API the platform uses.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		s.reply(w, 403, nil, "Authentication error")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Requests++
	if len(s.failures) > 0 {
		code := s.failures[0]
		s.failures = s.failures[1:]
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		s.reply(w, code, nil, http.StatusText(code))
		return
	}
	base := "/zones/" + s.ZoneID + "/dns_records"
	q := r.URL.Query()
	switch {
	case r.Method == "GET" && r.URL.Path == "/zones":
		res := []any{}
		if q.Get("name") == "" || q.Get("name") == s.Zone {
			res = append(res, map[string]any{"id": s.ZoneID, "name": s.Zone, "status": "active", "type": "full",
				"name_servers": []string{"ns1." + s.Zone, "ns2." + s.Zone}})
		}
		s.replyPage(w, 200, res, &resultInfo{Page: 1, PerPage: 20, Count: len(res), TotalCount: len(res), TotalPages: 1})
	case r.Method == "GET" && r.URL.Path == base:
		var res []Record
		for _, rec := range s.records {
			if q.Get("name") != "" && !strings.EqualFold(rec.Name, q.Get("name")) ||
				q.Get("type") != "" && rec.Type != q.Get("type") ||
				q.Has("content.exact") && rec.Content != q.Get("content.exact") ||
				q.Has("content.contains") && !strings.Contains(rec.Content, q.Get("content.contains")) {
				continue
			}
			res = append(res, rec)
		}
		s.page(w, q, res)
	case r.Method == "POST" && r.URL.Path == base:
		var rec Record
		if err := json.NewDecoder(r.Body).Decode(&rec); err != nil || rec.Type == "" || rec.Name == "" {
			s.reply(w, 400, nil, "Invalid request")
			return
		}
		if !validTTL(rec.TTL) {
			s.reply(w, 400, nil, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.")
			return
		}
		s.next++
		rec.ID = fmt.Sprintf("rec%04d", s.next)
		rec.Name = s.absName(rec.Name)
		if rec.TTL == 0 {
			rec.TTL = 1
		}
		s.records = append(s.records, rec)
		s.Writes++
		s.reply(w, 200, rec)
	case (r.Method == "PUT" || r.Method == "PATCH" || r.Method == "DELETE") && strings.HasPrefix(r.URL.Path, base+"/"):
		id := strings.TrimPrefix(r.URL.Path, base+"/")
		for i, rec := range s.records {
			if rec.ID != id {
				continue
			}
			if r.Method == "DELETE" {
				s.Writes++
				s.records = append(s.records[:i], s.records[i+1:]...)
				s.reply(w, 200, map[string]string{"id": id})
				return
			}
			var upd Record
			if err := json.NewDecoder(r.Body).Decode(&upd); err != nil || !validTTL(upd.TTL) {
				s.reply(w, 400, nil, "Invalid request")
				return
			}
			if r.Method == "PATCH" { // only the fields given change
				if upd.Type == "" {
					upd.Type = rec.Type
				}
				if upd.Name == "" {
					upd.Name = rec.Name
				}
				if upd.Content == "" {
					upd.Content = rec.Content
				}
				if upd.TTL == 0 {
					upd.TTL = rec.TTL
				}
			}
			s.Writes++
			upd.ID, upd.Name = id, s.absName(upd.Name)
			s.records[i] = upd
			s.reply(w, 200, upd)
			return
		}
		s.reply(w, 404, nil, "Record does not exist")
	default:
		s.reply(w, 404, nil, "Route not found")
	}
}

func (s *Server) serveDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	q := r.Question[0]
	name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
	s.mu.Lock()
	found := false
	for _, rec := range s.records {
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
	s.mu.Unlock()
	// The zone's SOA: at the apex as an answer, elsewhere as the authority
	// of negative answers (ACME clients find the zone this way).
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: dns.Fqdn(s.Zone), Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 1},
		Ns: "ns1." + dns.Fqdn(s.Zone), Mbox: "hostmaster." + dns.Fqdn(s.Zone), Serial: 1, Refresh: 60, Retry: 60, Expire: 600, Minttl: 1}
	inZone := name == s.Zone || strings.HasSuffix(name, "."+s.Zone)
	switch {
	case q.Qtype == dns.TypeSOA && name == s.Zone:
		m.Answer = append(m.Answer, soa)
	case !inZone:
		m.Rcode = dns.RcodeRefused
	case !found && name != s.Zone:
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, soa)
	case len(m.Answer) == 0:
		m.Ns = append(m.Ns, soa)
	}
	w.WriteMsg(m)
}
