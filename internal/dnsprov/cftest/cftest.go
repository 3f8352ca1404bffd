// Package cftest is a stand-in for Cloudflare in tests: an HTTP server
// speaking the v4 zones and dns_records API (the real JSON envelope), and
// an authoritative DNS server on loopback answering from the same records,
// so ACME DNS-01 validation against it is real DNS.
package cftest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/wisehosting/wisehosting/internal/dnsprov/dnstest"
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

	dnstest.Store[Record]
}

// Start runs both servers until the test ends.
func Start(t testing.TB, zone, token string) *Server {
	s := &Server{Zone: zone, ZoneID: "023e105f4ecef8ad9ca31a8372d0c353", Token: token}
	api := httptest.NewServer(s)
	t.Cleanup(api.Close)
	s.URL = api.URL
	s.DNSAddr = s.Serve(t, zone, func(r Record) dnstest.Record {
		return dnstest.Record{Name: r.Name, Type: r.Type, Content: r.Content}
	})
	return s
}

// Add stores rec as if it had been created elsewhere, without validation.
func (s *Server) Add(rec Record) Record { return s.Store.Add(rec, setID) }

func setID(rec *Record, id int) { rec.ID = fmt.Sprintf("rec%04d", id) }

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
	s.Mu.Lock()
	defer s.Mu.Unlock()
	if code := s.Begin(w); code != 0 {
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
		for _, rec := range s.Stored {
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
		rec.Name = s.absName(rec.Name)
		if rec.TTL == 0 {
			rec.TTL = 1
		}
		rec = s.Insert(rec, setID)
		s.Writes++
		s.reply(w, 200, rec)
	case (r.Method == "PUT" || r.Method == "PATCH" || r.Method == "DELETE") && strings.HasPrefix(r.URL.Path, base+"/"):
		id := strings.TrimPrefix(r.URL.Path, base+"/")
		for i, rec := range s.Stored {
			if rec.ID != id {
				continue
			}
			if r.Method == "DELETE" {
				s.Writes++
				s.Stored = append(s.Stored[:i], s.Stored[i+1:]...)
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
			s.Stored[i] = upd
			s.reply(w, 200, upd)
			return
		}
		s.reply(w, 404, nil, "Record does not exist")
	default:
		s.reply(w, 404, nil, "Route not found")
	}
}
