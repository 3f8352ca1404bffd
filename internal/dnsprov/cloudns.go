package dnsprov

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libdns/libdns"

	"github.com/wisehosting/wisehosting/internal/httpx"
)

// CloudNS speaks the ClouDNS HTTP API (api.cloudns.net) with an API user:
// auth-id (or a sub-user's sub-auth-id or sub-auth-user) and its password,
// sent as query parameters on every call, as the API wants them.
//
// Its quirks, handled here: every answer is HTTP 200 and failure is
// {"status":"Failed","statusDescription":…}; a record listing is an object
// keyed by record id, but an empty one is []; an empty zone list is {};
// ids and TTLs come as strings; mutations are POSTs with query parameters;
// only a fixed set of TTLs (60 s and up) is accepted; the apex host is "".
type CloudNS struct {
	// Exactly one of AuthID, SubAuthID, SubAuthUser.
	AuthID, SubAuthID, SubAuthUser string
	Password                       string
	// APIURL overrides https://api.cloudns.net (compatible endpoints, tests).
	APIURL      string
	HTTPOptions []httpx.Option

	once sync.Once
	api  *httpx.APIClient
}

// cloudnsTTLs are the TTLs the API accepts, in seconds.
var cloudnsTTLs = []int{60, 300, 900, 1800, 3600, 21600, 43200, 86400, 172800, 259200, 604800, 1209600, 2592000}

// cloudnsTTL is the shortest accepted TTL not below d (3600 for 0, the
// panel's default).
func cloudnsTTL(d time.Duration) int {
	if d <= 0 {
		return 3600
	}
	s := int((d + time.Second - 1) / time.Second)
	for _, t := range cloudnsTTLs {
		if t >= s {
			return t
		}
	}
	return cloudnsTTLs[len(cloudnsTTLs)-1]
}

func (c *CloudNS) client() *httpx.APIClient {
	c.once.Do(func() {
		base := c.APIURL
		if base == "" {
			base = "https://api.cloudns.net"
		}
		c.api = httpx.New(append([]httpx.Option{httpx.WithPrefix(base), httpx.WithAuth(c.authenticate)}, c.HTTPOptions...)...)
	})
	return c.api
}

// authenticate adds the credentials to each attempt (they stay out of the
// URL that errors show).
func (c *CloudNS) authenticate(r *http.Request) error {
	q := r.URL.Query()
	switch {
	case c.AuthID != "":
		q.Set("auth-id", c.AuthID)
	case c.SubAuthID != "":
		q.Set("sub-auth-id", c.SubAuthID)
	default:
		q.Set("sub-auth-user", c.SubAuthUser)
	}
	q.Set("auth-password", c.Password)
	r.URL.RawQuery = q.Encode()
	return nil
}

// call POSTs to path with params and returns the raw JSON answer, a
// Failed status turned into an error.
func (c *CloudNS) call(ctx context.Context, path string, params url.Values) ([]byte, error) {
	resp, err := c.client().DoRaw(ctx, http.MethodPost, path+"?"+params.Encode(), nil, http.Header{"Accept": {"application/json"}})
	if err != nil {
		return nil, c.redact(err)
	}
	var st struct {
		Status      *string `json:"status"`
		Description string  `json:"statusDescription"`
	}
	if b := bytes.TrimSpace(resp.Body); len(b) > 0 && b[0] == '{' && json.Unmarshal(b, &st) == nil && st.Status != nil && *st.Status != "Success" {
		return nil, fmt.Errorf("cloudns: %s", st.Description)
	}
	return resp.Body, nil
}

// redactedError hides the password in errors that quote the request URL
// (network errors do), keeping the chain for httpx.StatusOf.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func (c *CloudNS) redact(err error) error {
	msg := err.Error()
	for _, s := range []string{url.QueryEscape(c.Password), c.Password} {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "REDACTED")
		}
	}
	return &redactedError{msg: msg, err: err}
}

// cloudnsRecord is a record as records.json lists it.
type cloudnsRecord struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Host     string          `json:"host"`
	Record   string          `json:"record"`
	TTL      json.Number     `json:"ttl"`
	Priority json.Number     `json:"priority,omitempty"`
	Weight   json.Number     `json:"weight,omitempty"`
	Port     json.Number     `json:"port,omitempty"`
	Status   json.RawMessage `json:"status,omitempty"`
}

func (r cloudnsRecord) libdns() libdns.Record {
	name := r.Host
	if name == "" {
		name = "@"
	}
	ttl, _ := strconv.Atoi(r.TTL.String())
	data := r.Record
	switch r.Type {
	case "MX":
		data = r.Priority.String() + " " + r.Record
	case "SRV":
		data = r.Priority.String() + " " + r.Weight.String() + " " + r.Port.String() + " " + r.Record
	}
	rr := libdns.RR{Name: name, Type: r.Type, Data: data, TTL: time.Duration(ttl) * time.Second}
	if rec, err := rr.Parse(); err == nil {
		return rec
	}
	return rr // a record the library cannot parse stays opaque
}

// parseCloudNSRecords reads a records.json answer: an object keyed by id,
// or [] when the zone is empty.
func parseCloudNSRecords(b []byte) ([]cloudnsRecord, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var empty []json.RawMessage
		if err := json.Unmarshal(b, &empty); err != nil || len(empty) != 0 {
			return nil, errors.New("cloudns: unexpected record list")
		}
		return nil, nil
	}
	var m map[string]cloudnsRecord
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("cloudns: decoding records: %w", err)
	}
	out := make([]cloudnsRecord, 0, len(m))
	for id, r := range m {
		if r.ID == "" {
			r.ID = id
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b cloudnsRecord) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (c *CloudNS) list(ctx context.Context, zone string) ([]cloudnsRecord, error) {
	b, err := c.call(ctx, "/dns/records.json", url.Values{"domain-name": {normZone(zone)}})
	if err != nil {
		return nil, fmt.Errorf("listing records of %s: %w", normZone(zone), err)
	}
	return parseCloudNSRecords(b)
}

// GetRecords implements libdns.RecordGetter.
func (c *CloudNS) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	recs, err := c.list(ctx, zone)
	if err != nil {
		return nil, err
	}
	out := make([]libdns.Record, len(recs))
	for i, r := range recs {
		out[i] = r.libdns()
	}
	return out, nil
}

// params are the record fields of add-record and mod-record.
func cloudnsParams(zone string, rec libdns.Record) url.Values {
	rr := rec.RR()
	host := rr.Name
	if host == "@" {
		host = ""
	}
	v := url.Values{"domain-name": {normZone(zone)}, "record-type": {rr.Type}, "host": {host},
		"record": {rr.Data}, "ttl": {strconv.Itoa(cloudnsTTL(rr.TTL))}}
	switch r := rec.(type) {
	case libdns.MX:
		v.Set("priority", strconv.Itoa(int(r.Preference)))
		v.Set("record", r.Target)
	case libdns.SRV:
		v.Set("priority", strconv.Itoa(int(r.Priority)))
		v.Set("weight", strconv.Itoa(int(r.Weight)))
		v.Set("port", strconv.Itoa(int(r.Port)))
		v.Set("record", r.Target)
	}
	if rr.Type == "CNAME" || rr.Type == "NS" || rr.Type == "MX" || rr.Type == "SRV" {
		v.Set("record", strings.TrimSuffix(v.Get("record"), "."))
	}
	return v
}

func (c *CloudNS) add(ctx context.Context, zone string, rec libdns.Record) (libdns.Record, error) {
	if _, err := c.call(ctx, "/dns/add-record.json", cloudnsParams(zone, rec)); err != nil {
		return nil, fmt.Errorf("adding %s %s: %w", rec.RR().Type, rec.RR().Name, err)
	}
	return rec, nil
}

func (c *CloudNS) modify(ctx context.Context, zone, id string, rec libdns.Record) error {
	p := cloudnsParams(zone, rec)
	p.Del("record-type")
	p.Set("record-id", id)
	if _, err := c.call(ctx, "/dns/mod-record.json", p); err != nil {
		return fmt.Errorf("changing %s %s: %w", rec.RR().Type, rec.RR().Name, err)
	}
	return nil
}

func (c *CloudNS) remove(ctx context.Context, zone, id string) error {
	if _, err := c.call(ctx, "/dns/delete-record.json", url.Values{"domain-name": {normZone(zone)}, "record-id": {id}}); err != nil {
		return fmt.Errorf("deleting record %s: %w", id, err)
	}
	return nil
}

// AppendRecords implements libdns.RecordAppender.
func (c *CloudNS) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	var out []libdns.Record
	for _, rec := range recs {
		r, err := c.add(ctx, zone, rec)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// sameData compares record data as DNS does (names without the trailing
// dot, case-insensitively; TXT exactly).
func sameData(typ, a, b string) bool {
	if typ == "TXT" {
		return a == b
	}
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

// SetRecords implements libdns.RecordSetter: for each name and type in
// recs the zone ends up with exactly the given records; records already
// right are not written, others are changed in place, created or deleted.
func (c *CloudNS) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	have, err := c.list(ctx, zone)
	if err != nil {
		return nil, err
	}
	type key struct{ name, typ string }
	groups := map[key][]libdns.Record{}
	var order []key
	for _, r := range recs {
		rr := r.RR()
		k := key{strings.ToLower(libdns.AbsoluteName(rr.Name, normZone(zone)+".")), rr.Type}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []libdns.Record
	for _, k := range order {
		var existing []cloudnsRecord
		for _, h := range have {
			hr := h.libdns().RR()
			if h.Type == k.typ && strings.EqualFold(libdns.AbsoluteName(hr.Name, normZone(zone)+"."), k.name) {
				existing = append(existing, h)
			}
		}
		var pending []libdns.Record
		for _, w := range groups[k] {
			wr := w.RR()
			i := slices.IndexFunc(existing, func(h cloudnsRecord) bool {
				hr := h.libdns().RR()
				return sameData(wr.Type, hr.Data, wr.Data) && int(hr.TTL/time.Second) == cloudnsTTL(wr.TTL)
			})
			if i < 0 {
				pending = append(pending, w)
				continue
			}
			existing = slices.Delete(existing, i, i+1)
			out = append(out, w)
		}
		for _, w := range pending {
			if len(existing) > 0 {
				if err := c.modify(ctx, zone, existing[0].ID, w); err != nil {
					return out, err
				}
				existing = existing[1:]
			} else if _, err := c.add(ctx, zone, w); err != nil {
				return out, err
			}
			out = append(out, w)
		}
		for _, h := range existing {
			if err := c.remove(ctx, zone, h.ID); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

// DeleteRecords implements libdns.RecordDeleter: records are matched by
// name, by type when given and by data when given.
func (c *CloudNS) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	have, err := c.list(ctx, zone)
	if err != nil {
		return nil, err
	}
	z := normZone(zone) + "."
	var out []libdns.Record
	for _, rec := range recs {
		rr := rec.RR()
		for i := 0; i < len(have); i++ {
			h := have[i].libdns()
			hr := h.RR()
			if !strings.EqualFold(libdns.AbsoluteName(hr.Name, z), libdns.AbsoluteName(rr.Name, z)) ||
				rr.Type != "" && rr.Type != hr.Type || rr.Data != "" && !sameData(hr.Type, hr.Data, rr.Data) {
				continue
			}
			if err := c.remove(ctx, zone, have[i].ID); err != nil {
				return out, err
			}
			out = append(out, h)
			have = slices.Delete(have, i, i+1)
			i--
		}
	}
	return out, nil
}

// ListZones implements libdns.ZoneLister (an empty account answers {}).
func (c *CloudNS) ListZones(ctx context.Context) ([]libdns.Zone, error) {
	var out []libdns.Zone
	for page := 1; page <= 1000; page++ {
		b, err := c.call(ctx, "/dns/list-zones.json", url.Values{"page": {strconv.Itoa(page)}, "rows-per-page": {"100"}})
		if err != nil {
			return nil, fmt.Errorf("listing zones: %w", err)
		}
		var zones []struct {
			Name string `json:"name"`
		}
		if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '{' {
			break // {} : no (more) zones
		}
		if err := json.Unmarshal(b, &zones); err != nil {
			return nil, fmt.Errorf("cloudns: decoding zones: %w", err)
		}
		for _, z := range zones {
			out = append(out, libdns.Zone{Name: z.Name + "."})
		}
		if len(zones) < 100 {
			break
		}
	}
	return out, nil
}

// Interface guards.
var (
	_ Provider          = (*CloudNS)(nil)
	_ libdns.ZoneLister = (*CloudNS)(nil)
)
