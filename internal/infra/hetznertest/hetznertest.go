// Package hetznertest is a stand-in for Hetzner in tests: a loopback HTTP
// server speaking the parts of the Hetzner Cloud API (load balancers,
// servers, images) and of the Robot web service the infra commands use,
// in their JSON shapes and error envelopes. Credentials: Bearer
// hcloud-token; Robot user "#ws+user", password "secret".
package hetznertest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Server speaks the parts of the Hetzner Cloud API (load balancers,
// server images) and of the Robot web service the infra commands use, in
// their JSON shapes and error envelopes.
type Server struct {
	// URL serves both APIs: Robot calls are those with basic auth.
	URL string
	// Creates counts load balancers created.
	Creates int

	mu     sync.Mutex
	lbs    []map[string]any
	images []map[string]any
}

func Start(t testing.TB) *Server {
	s := &Server{}
	fail := func(w http.ResponseWriter, code int, kind, msg string) {
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": kind, "message": msg}})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if user, pass, ok := r.BasicAuth(); ok { // Robot
			if user != "#ws+user" || pass != "secret" {
				fail(w, 401, "UNAUTHORIZED", "Unauthorized")
				return
			}
			if r.URL.Path == "/server/203.0.113.77" {
				w.Write([]byte(`{"server":{"server_ip":"203.0.113.77","server_ipv6_net":"2001:db8::","server_number":321,"server_name":"db1","product":"EX44","dc":"FSN1-DC14","traffic":"unlimited","status":"ready","cancelled":false,"paid_until":"2027-01-01"}}`))
				return
			}
			w.WriteHeader(404)
			w.Write([]byte(`{"error":{"status":404,"code":"SERVER_NOT_FOUND","message":"Server not found"}}`))
			return
		}
		if r.Header.Get("Authorization") != "Bearer hcloud-token" {
			fail(w, 401, "unauthorized", "unable to authenticate")
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case r.Method == "GET" && r.URL.Path == "/load_balancers":
			var out []map[string]any
			for _, lb := range s.lbs {
				if n := r.URL.Query().Get("name"); n == "" || lb["name"] == n {
					out = append(out, lb)
				}
			}
			json.NewEncoder(w).Encode(map[string]any{"load_balancers": append([]map[string]any{}, out...),
				"meta": map[string]any{"pagination": map[string]any{"page": 1, "per_page": 25, "next_page": nil, "last_page": 1, "total_entries": len(out)}}})
		case r.Method == "POST" && r.URL.Path == "/load_balancers":
			var req struct {
				Name      string `json:"name"`
				Type      string `json:"load_balancer_type"`
				Location  string `json:"location"`
				Algorithm struct {
					Type string `json:"type"`
				} `json:"algorithm"`
				Services []map[string]any `json:"services"`
				Targets  []struct {
					Type          string `json:"type"`
					LabelSelector struct {
						Selector string `json:"selector"`
					} `json:"label_selector"`
				} `json:"targets"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Name == "" || req.Type == "" || req.Location == "" {
				fail(w, 400, "invalid_input", "invalid input in fields 'name', 'load_balancer_type', 'location'")
				return
			}
			for _, lb := range s.lbs {
				if lb["name"] == req.Name {
					fail(w, 409, "uniqueness_error", "name is already used")
					return
				}
			}
			s.Creates++
			var targets []any
			for _, tg := range req.Targets {
				var found []any
				if tg.LabelSelector.Selector == "role=proxy" {
					var hs []any
					for _, svc := range req.Services {
						hs = append(hs, map[string]any{"listen_port": svc["listen_port"], "status": "healthy"})
					}
					found = append(found, map[string]any{"type": "server", "server": map[string]any{"id": 42}, "health_status": hs, "use_private_ip": false})
				}
				targets = append(targets, map[string]any{"type": tg.Type, "label_selector": map[string]any{"selector": tg.LabelSelector.Selector}, "targets": found})
			}
			lb := map[string]any{"id": 4711, "name": req.Name, "public_net": map[string]any{"enabled": true, "ipv4": map[string]any{"ip": "203.0.113.50"}, "ipv6": map[string]any{"ip": "2001:db8::1"}},
				"location": map[string]any{"name": req.Location}, "load_balancer_type": map[string]any{"name": req.Type},
				"algorithm": map[string]any{"type": req.Algorithm.Type}, "services": req.Services, "targets": targets, "labels": map[string]any{}}
			s.lbs = append(s.lbs, lb)
			w.WriteHeader(201)
			json.NewEncoder(w).Encode(map[string]any{"load_balancer": lb, "action": map[string]any{"id": 13, "command": "create_load_balancer", "status": "running", "progress": 0}})
		case r.Method == "GET" && r.URL.Path == "/servers":
			var out []any
			if n := r.URL.Query().Get("name"); n == "" || n == "px1" {
				out = append(out, map[string]any{"id": 42, "name": "px1", "status": "running", "public_net": map[string]any{"ipv4": map[string]any{"ip": "203.0.113.20"}}, "labels": map[string]any{"role": "proxy"}})
			}
			json.NewEncoder(w).Encode(map[string]any{"servers": append([]any{}, out...), "meta": map[string]any{"pagination": map[string]any{"page": 1, "next_page": nil}}})
		case r.Method == "POST" && r.URL.Path == "/servers/42/actions/create_image":
			var req struct {
				Type        string `json:"type"`
				Description string `json:"description"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || (req.Type != "snapshot" && req.Type != "backup") {
				fail(w, 400, "invalid_input", "invalid input in field 'type'")
				return
			}
			img := map[string]any{"id": 9000 + len(s.images), "type": req.Type, "status": "creating", "description": req.Description, "created_from": map[string]any{"id": 42, "name": "px1"}}
			s.images = append(s.images, img)
			w.WriteHeader(201)
			json.NewEncoder(w).Encode(map[string]any{"image": img, "action": map[string]any{"id": 14, "command": "create_image", "status": "running"}})
		default:
			fail(w, 404, "not_found", "not found")
		}
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}
