// Package dnsprov manages DNS records at the operator's DNS provider
// through libdns interfaces: the wildcard record of the app zone, ACME
// DNS-01 challenges for the wildcard certificate, and the `wisehosting dns`
// commands. Every provider call goes through the shared retrying client
// (internal/httpx).
package dnsprov

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/libdns/libdns"

	"github.com/wisehosting/wisehosting/internal/httpx"
)

// Provider is what the platform needs of a DNS provider: the libdns
// getter, appender, setter and deleter.
type Provider interface {
	libdns.RecordGetter
	libdns.RecordAppender
	libdns.RecordSetter
	libdns.RecordDeleter
}

// Cloudflare speaks the Cloudflare v4 API with a scoped API token
// (Zone:DNS:Edit).
type Cloudflare struct {
	APIToken string
	// APIURL overrides https://api.cloudflare.com/client/v4.
	APIURL      string
	HTTPOptions []httpx.Option

	once   sync.Once
	client *httpx.APIClient
	mu     sync.Mutex
	zones  map[string]string // zone name → id
}

func (c *Cloudflare) api() *httpx.APIClient {
	c.once.Do(func() {
		base := c.APIURL
		if base == "" {
			base = "https://api.cloudflare.com/client/v4"
		}
		c.client = httpx.New(append([]httpx.Option{httpx.WithPrefix(base), httpx.WithBearer(c.APIToken)}, c.HTTPOptions...)...)
		c.zones = map[string]string{}
	})
	return c.client
}

type cfEnvelope[T any] struct {
	Success bool `json:"success"`
	Errors  []struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
	Result T `json:"result"`
}

func (e *cfEnvelope[T]) err() error {
	if e.Success {
		return nil
	}
	var msgs []string
	for _, x := range e.Errors {
		msgs = append(msgs, fmt.Sprintf("%d %s", x.Code, x.Message))
	}
	return fmt.Errorf("cloudflare: %s", strings.Join(msgs, "; "))
}

type cfRecord struct {
	ID      string `json:"id,omitempty"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Content string `json:"content"`
	TTL     int    `json:"ttl"`
	Proxied *bool  `json:"proxied,omitempty"`
}

func normZone(zone string) string { return strings.TrimSuffix(strings.ToLower(zone), ".") }

func (c *Cloudflare) zoneID(ctx context.Context, zone string) (string, error) {
	api := c.api()
	z := normZone(zone)
	c.mu.Lock()
	id := c.zones[z]
	c.mu.Unlock()
	if id != "" {
		return id, nil
	}
	var env cfEnvelope[[]struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}]
	if err := api.Do(ctx, "GET", "/zones?name="+url.QueryEscape(z), nil, &env); err != nil {
		return "", fmt.Errorf("finding zone %s: %w", z, err)
	}
	if err := env.err(); err != nil {
		return "", err
	}
	if len(env.Result) == 0 {
		return "", fmt.Errorf("zone %s not found in the Cloudflare account", z)
	}
	c.mu.Lock()
	c.zones[z] = env.Result[0].ID
	c.mu.Unlock()
	return env.Result[0].ID, nil
}

func toLibdns(r cfRecord, zone string) (libdns.Record, error) {
	ttl := time.Duration(r.TTL) * time.Second
	rr := libdns.RR{Name: libdns.RelativeName(r.Name, normZone(zone)+"."), TTL: ttl, Type: r.Type, Data: r.Content}
	rec, err := rr.Parse()
	if err != nil {
		return rr, nil // unknown types stay opaque
	}
	switch v := rec.(type) { // remember the id for deletes
	case libdns.Address:
		v.ProviderData = r.ID
		return v, nil
	case libdns.TXT:
		v.ProviderData = r.ID
		return v, nil
	case libdns.CNAME:
		v.ProviderData = r.ID
		return v, nil
	}
	return rec, nil
}

func fromLibdns(rec libdns.Record, zone string) cfRecord {
	rr := rec.RR()
	ttl := int(rr.TTL / time.Second)
	if ttl < 60 {
		ttl = 1 // Cloudflare's "automatic"
	}
	return cfRecord{Type: rr.Type, Name: strings.TrimSuffix(libdns.AbsoluteName(rr.Name, normZone(zone)+"."), "."), Content: rr.Data, TTL: ttl}
}

func (c *Cloudflare) list(ctx context.Context, zoneID, query string) ([]cfRecord, error) {
	var out []cfRecord
	for page := 1; page <= 100; page++ {
		var env cfEnvelope[[]cfRecord]
		if err := c.api().Do(ctx, "GET", fmt.Sprintf("/zones/%s/dns_records?per_page=100&page=%d%s", url.PathEscape(zoneID), page, query), nil, &env); err != nil {
			return nil, err
		}
		if err := env.err(); err != nil {
			return nil, err
		}
		out = append(out, env.Result...)
		if len(env.Result) < 100 {
			break
		}
	}
	for i := range out {
		out[i].Name = strings.TrimSuffix(out[i].Name, ".")
	}
	return out, nil
}

// GetRecords implements libdns.RecordGetter.
func (c *Cloudflare) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	id, err := c.zoneID(ctx, zone)
	if err != nil {
		return nil, err
	}
	recs, err := c.list(ctx, id, "")
	if err != nil {
		return nil, err
	}
	out := make([]libdns.Record, 0, len(recs))
	for _, r := range recs {
		rec, err := toLibdns(r, zone)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// AppendRecords implements libdns.RecordAppender.
func (c *Cloudflare) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	id, err := c.zoneID(ctx, zone)
	if err != nil {
		return nil, err
	}
	var out []libdns.Record
	for _, rec := range recs {
		var env cfEnvelope[cfRecord]
		if err := c.api().Do(ctx, "POST", "/zones/"+url.PathEscape(id)+"/dns_records", fromLibdns(rec, zone), &env); err != nil {
			return out, err
		}
		if err := env.err(); err != nil {
			return out, err
		}
		r, _ := toLibdns(env.Result, zone)
		out = append(out, r)
	}
	return out, nil
}

// SetRecords implements libdns.RecordSetter: for each (name, type) in recs,
// the zone ends up with exactly the given records; others are untouched.
func (c *Cloudflare) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	id, err := c.zoneID(ctx, zone)
	if err != nil {
		return nil, err
	}
	type nt struct{ name, typ string }
	want := map[nt][]cfRecord{}
	var order []nt
	for _, rec := range recs {
		r := fromLibdns(rec, zone)
		k := nt{strings.ToLower(r.Name), r.Type}
		if _, ok := want[k]; !ok {
			order = append(order, k)
		}
		want[k] = append(want[k], r)
	}
	var out []libdns.Record
	for _, k := range order {
		have, err := c.list(ctx, id, "&type="+url.QueryEscape(k.typ)+"&name="+url.QueryEscape(k.name))
		if err != nil {
			return out, err
		}
		// Keep records whose content is wanted, update the rest in place,
		// create what is missing, delete leftovers.
		pending := append([]cfRecord(nil), want[k]...)
		var stale []cfRecord
		for _, h := range have {
			matched := false
			for i, w := range pending {
				if w.Content == h.Content {
					pending = append(pending[:i], pending[i+1:]...)
					matched = true
					r, _ := toLibdns(h, zone)
					out = append(out, r)
					break
				}
			}
			if !matched {
				stale = append(stale, h)
			}
		}
		for _, w := range pending {
			var env cfEnvelope[cfRecord]
			if len(stale) > 0 {
				h := stale[0]
				stale = stale[1:]
				err = c.api().Do(ctx, "PUT", "/zones/"+url.PathEscape(id)+"/dns_records/"+url.PathEscape(h.ID), w, &env)
			} else {
				err = c.api().Do(ctx, "POST", "/zones/"+url.PathEscape(id)+"/dns_records", w, &env)
			}
			if err == nil {
				err = env.err()
			}
			if err != nil {
				return out, err
			}
			r, _ := toLibdns(env.Result, zone)
			out = append(out, r)
		}
		for _, h := range stale {
			if err := c.deleteID(ctx, id, h.ID); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

func (c *Cloudflare) deleteID(ctx context.Context, zoneID, recID string) error {
	var env cfEnvelope[struct{ ID string }]
	if err := c.api().Do(ctx, "DELETE", "/zones/"+url.PathEscape(zoneID)+"/dns_records/"+url.PathEscape(recID), nil, &env); err != nil {
		return err
	}
	return env.err()
}

// DeleteRecords implements libdns.RecordDeleter: records are matched by
// name and type, and by content when it is given.
func (c *Cloudflare) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	id, err := c.zoneID(ctx, zone)
	if err != nil {
		return nil, err
	}
	var out []libdns.Record
	for _, rec := range recs {
		w := fromLibdns(rec, zone)
		q := "&name=" + url.QueryEscape(w.Name)
		if w.Type != "" {
			q += "&type=" + url.QueryEscape(w.Type)
		}
		have, err := c.list(ctx, id, q)
		if err != nil {
			return out, err
		}
		for _, h := range have {
			if w.Content != "" && h.Content != w.Content {
				continue
			}
			if err := c.deleteID(ctx, id, h.ID); err != nil {
				return out, err
			}
			r, _ := toLibdns(h, zone)
			out = append(out, r)
		}
	}
	return out, nil
}

// Interface guard.
var _ Provider = (*Cloudflare)(nil)
