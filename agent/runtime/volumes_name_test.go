//go:build remote && containers_image_openpgp

package runtime

import "testing"

// The agent creates and removes only the control plane's volume names: a
// shared volume's and an instance's copy of a per-instance one.
func TestValidVolumeName(t *testing.T) {
	for _, ok := range []string{"wh-vol-1", "wh-vol-42-0", "wh-vol-42-17"} {
		if !validVolumeName(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", "wh-vol-", "wh-vol-x", "wh-vol-1-", "wh-vol-1-x", "wh-vol-1-2-3", "wh-vol--1", "wh-vol-1--2",
		"wh-vol-1-+2", "other", "wh-vol-1/../x", "wh-vol-99999999999999999999", "wh-vol-1-99999999999"} {
		if validVolumeName(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}
