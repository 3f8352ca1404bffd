package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wisehosting/wisehosting/caddymodules/api"
)

// A body that is not the JSON asked for is answered 400 with a sentence
// naming the field at fault, never encoding/json's Go type names.
func TestDecodeSentences(t *testing.T) {
	type volume struct {
		Name        string `json:"name"`
		SizeMB      int    `json:"size_mb"`
		PerInstance bool   `json:"per_instance"`
		Limits      struct {
			CPU int `json:"cpu"`
		} `json:"limits"`
	}
	for _, c := range []struct{ body, msg, field string }{
		{`{"name": "data", "per_instance": "yes"}`, "per_instance must be true or false, not a string", "per_instance"},
		{`{"size_mb": 1.5}`, "size_mb must be a whole number, not 1.5", "size_mb"},
		{`{"name": true}`, "name must be a string, not a boolean", "name"},
		{`{"limits": {"cpu": "x"}}`, "limits.cpu must be a whole number, not a string", "limits.cpu"},
		{`{"sizemb": 5}`, `there is no field "sizemb" here`, "sizemb"},
		{`[1]`, "the body must be an object, not an array", ""},
		{`{"name": "da`, "the body is not valid JSON: it ends too early", ""},
		{`{"name" "data"}`, "the body is not valid JSON (at byte 9)", ""},
	} {
		rec := httptest.NewRecorder()
		var v volume
		if api.Decode(rec, httptest.NewRequest("POST", "/", strings.NewReader(c.body)), &v) {
			t.Errorf("%s: accepted", c.body)
			continue
		}
		var out map[string]string
		json.Unmarshal(rec.Body.Bytes(), &out)
		if rec.Code != http.StatusBadRequest || out["error"] != "invalid JSON body: "+c.msg || out["field"] != c.field {
			t.Errorf("%s: %d %v, want %q (field %q)", c.body, rec.Code, out, c.msg, c.field)
		}
	}
	var v volume
	if !api.Decode(httptest.NewRecorder(), httptest.NewRequest("POST", "/", strings.NewReader(`{"name": "data", "size_mb": 5, "per_instance": true}`)), &v) ||
		v != (volume{Name: "data", SizeMB: 5, PerInstance: true}) {
		t.Fatalf("a good body: %+v", v)
	}
}
