// Package cloudnstest is a stand-in for ClouDNS in tests: an HTTP server
// speaking the api.cloudns.net DNS API the way it answers (HTTP 200 with a
// "status" field for failures, records keyed by id and [] for none, {} for
// no zones, ids and TTLs as strings, credentials as query parameters, only
// the listed TTLs), and an authoritative DNS server on loopback answering
// from the same records.
package cloudnstest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wisehosting/wisehosting/internal/dnsprov/dnstest"
)

// Record is a stored record; Host is relative to the zone ("" is the apex).
type Record struct {
	ID       int
	Type     string
	Host     string
	Record   string
	TTL      int
	Priority int
	Weight   int
	Port     int
}

// Server is the fake API plus its DNS server.
type Server struct {
	Zone     string
	AuthID   string // main user
	SubAuth  string // a sub-user's sub-auth-id
	Password string
	URL      string // API root
	DNSAddr  string // host:port of the DNS server (UDP and TCP)
	// HideZones makes the zone list empty (answered {}, as the API does).
	HideZones bool

	dnstest.Store[Record]
}

// TTLs are the only TTLs the API accepts.
var TTLs = []int{60, 300, 900, 1800, 3600, 21600, 43200, 86400, 172800, 259200, 604800, 1209600, 2592000}

// Start runs both servers until the test ends.
func Start(t testing.TB, zone, authID, subAuthID, password string) *Server {
	s := &Server{Zone: zone, AuthID: authID, SubAuth: subAuthID, Password: password}
	s.Seq = 100000
	api := httptest.NewServer(s)
	t.Cleanup(api.Close)
	s.URL = api.URL
	s.DNSAddr = s.Serve(t, zone, func(r Record) dnstest.Record {
		return dnstest.Record{Name: s.fqdn(r.Host), Type: r.Type, Content: r.Record}
	})
	return s
}

func (s *Server) fqdn(host string) string {
	if host == "" {
		return s.Zone
	}
	return strings.ToLower(host) + "." + s.Zone
}

// Add stores rec as if it had been created elsewhere, without validation.
func (s *Server) Add(rec Record) Record { return s.Store.Add(rec, setID) }

func setID(rec *Record, id int) { rec.ID = id }

func write(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func failed(w http.ResponseWriter, desc string) {
	write(w, map[string]string{"status": "Failed", "statusDescription": desc})
}

func success(w http.ResponseWriter, desc string, data any) {
	m := map[string]any{"status": "Success", "statusDescription": desc}
	if data != nil {
		m["data"] = data
	}
	write(w, m)
}

func (s *Server) authorized(q url.Values) bool {
	if q.Get("auth-password") != s.Password {
		return false
	}
	switch {
	case q.Has("auth-id"):
		return q.Get("auth-id") == s.AuthID
	case q.Has("sub-auth-id"):
		return s.SubAuth != "" && q.Get("sub-auth-id") == s.SubAuth
	}
	return false
}

// ServeHTTP implements the calls the platform makes. Like the real API it
// takes parameters from the query string of a GET or POST.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	if code := s.Begin(w); code != 0 {
		w.WriteHeader(code)
		return
	}
	q := r.URL.Query()
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if !s.authorized(q) {
		failed(w, "Invalid authentication, incorrect auth-id or auth-password.")
		return
	}
	if r.URL.Path == "/dns/list-zones.json" {
		if s.HideZones || q.Get("page") != "1" || q.Get("rows-per-page") == "" {
			write(w, map[string]any{}) // past the last page, as for no zones
			return
		}
		write(w, []map[string]string{{"name": s.Zone, "type": "master", "zone": "domain", "status": "1"}})
		return
	}
	if !q.Has("domain-name") {
		failed(w, "Missing domain-name")
		return
	}
	if q.Get("domain-name") != s.Zone {
		failed(w, "Invalid domain-name")
		return
	}
	switch r.URL.Path {
	case "/dns/records.json":
		if len(s.Stored) == 0 {
			write(w, []any{})
			return
		}
		out := map[string]map[string]any{}
		for _, rec := range s.Stored {
			m := map[string]any{"id": strconv.Itoa(rec.ID), "type": rec.Type, "host": rec.Host, "record": rec.Record,
				"dynamicurl_status": 0, "failover": "0", "ttl": strconv.Itoa(rec.TTL), "status": 1}
			if rec.Type == "MX" || rec.Type == "SRV" {
				m["priority"] = strconv.Itoa(rec.Priority)
			}
			if rec.Type == "SRV" {
				m["weight"], m["port"] = strconv.Itoa(rec.Weight), strconv.Itoa(rec.Port)
			}
			out[strconv.Itoa(rec.ID)] = m
		}
		write(w, out)
	case "/dns/add-record.json":
		rec, msg := parse(q)
		if msg != "" {
			failed(w, msg)
			return
		}
		for _, h := range s.Stored {
			if h.Type == rec.Type && strings.EqualFold(h.Host, rec.Host) && h.Record == rec.Record {
				failed(w, "The record already exists.")
				return
			}
		}
		rec = s.Insert(rec, setID)
		s.Writes++
		success(w, "The record was added successfully.", map[string]int{"id": rec.ID})
	case "/dns/mod-record.json":
		id, _ := strconv.Atoi(q.Get("record-id"))
		i := slices.IndexFunc(s.Stored, func(r Record) bool { return r.ID == id })
		if i < 0 {
			failed(w, "Invalid record-id param.")
			return
		}
		q.Set("record-type", s.Stored[i].Type) // the type cannot change
		rec, msg := parse(q)
		if msg != "" {
			failed(w, msg)
			return
		}
		rec.ID = id
		s.Stored[i] = rec
		s.Writes++
		success(w, "The record was modified successfully.", nil)
	case "/dns/delete-record.json":
		id, _ := strconv.Atoi(q.Get("record-id"))
		i := slices.IndexFunc(s.Stored, func(r Record) bool { return r.ID == id })
		if i < 0 {
			failed(w, "Invalid record-id param.")
			return
		}
		s.Stored = slices.Delete(s.Stored, i, i+1)
		s.Writes++
		success(w, "The record was deleted successfully.", nil)
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "Not found")
	}
}

// parse checks the record parameters the way the API does.
func parse(q url.Values) (Record, string) {
	ttl, err := strconv.Atoi(q.Get("ttl"))
	if err != nil || !slices.Contains(TTLs, ttl) {
		return Record{}, "Invalid TTL. Choose from the list of the values we support."
	}
	rec := Record{Type: q.Get("record-type"), Host: q.Get("host"), Record: q.Get("record"), TTL: ttl}
	if rec.Record == "" || !q.Has("host") {
		return Record{}, "Missing record or host"
	}
	switch rec.Type {
	case "A", "AAAA", "CNAME", "TXT", "NS":
	case "MX", "SRV":
		var err error
		if rec.Priority, err = strconv.Atoi(q.Get("priority")); err != nil {
			return Record{}, "Missing priority"
		}
		if rec.Type == "SRV" {
			rec.Weight, _ = strconv.Atoi(q.Get("weight"))
			rec.Port, _ = strconv.Atoi(q.Get("port"))
		}
	default:
		return Record{}, "Invalid record-type"
	}
	return rec, ""
}
