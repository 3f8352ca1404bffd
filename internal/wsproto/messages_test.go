package wsproto

import (
	"encoding/json"
	"testing"
)

// A worker whose images are all removed reports 0, and that zero must
// reach the workers page; a report without a disk sample changes nothing.
func TestStatsImagesDisk(t *testing.T) {
	for _, tc := range []struct {
		wire string
		n    int64
		ok   bool
	}{
		{`{"ts":1,"apps":null,"images_bytes":734003200,"disk_measured":true}`, 734003200, true},
		{`{"ts":1,"apps":null,"disk_measured":true}`, 0, true},
		{`{"ts":1,"apps":null}`, 0, false},
		{`{"ts":1,"apps":null,"images_bytes":5}`, 5, true}, // an older agent
	} {
		var st Stats
		if err := json.Unmarshal([]byte(tc.wire), &st); err != nil {
			t.Fatal(err)
		}
		if n, ok := st.ImagesDisk(); n != tc.n || ok != tc.ok {
			t.Errorf("%s: ImagesDisk() = %d, %v; want %d, %v", tc.wire, n, ok, tc.n, tc.ok)
		}
	}
	b, err := json.Marshal(Stats{TS: 1, DiskMeasured: true})
	if err != nil {
		t.Fatal(err)
	}
	var back Stats
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if n, ok := back.ImagesDisk(); n != 0 || !ok {
		t.Errorf("a measured zero does not survive the wire: %s", b)
	}
}
