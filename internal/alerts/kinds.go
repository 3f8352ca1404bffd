package alerts

import (
	"fmt"
	"strings"
)

// KindInfo is what a rule's kind means: the unit its threshold is in and
// the range a threshold may take, or no threshold (Max 0) for the kinds
// that are a condition (the worker offline, a crash loop, a failed
// deployment).
type KindInfo struct {
	Name     string
	Unit     string  // for people ("% of one core")
	Short    string  // in alert messages ("%")
	Min, Max float64 // threshold range; 0, 0: a condition without threshold
}

// Kinds is the one table of rule kinds. The CHECK constraint on
// alert_rules.kind lists the same names; a test compares them.
var Kinds = []KindInfo{
	{Name: "cpu", Unit: "% of one core", Short: "%", Min: 1, Max: 6400},
	{Name: "memory", Unit: "MB", Short: " MB", Min: 1, Max: 1 << 20},
	{Name: "disk", Unit: "MB", Short: " MB", Min: 1, Max: 1 << 24},
	{Name: "network", Unit: "bytes/s", Short: " B/s", Min: 1, Max: 1 << 40},
	{Name: "offline"},
	{Name: "crashloop"},
	{Name: "deployment_failed"},
	{Name: "cron_failed"},
}

// Kind returns the kind called name.
func Kind(name string) (KindInfo, bool) {
	for _, k := range Kinds {
		if k.Name == name {
			return k, true
		}
	}
	return KindInfo{}, false
}

// KindNames returns the kinds' names in the table's order.
func KindNames() []string {
	out := make([]string, len(Kinds))
	for i, k := range Kinds {
		out[i] = k.Name
	}
	return out
}

// MaxSustain bounds, in seconds, how long a condition must hold before its
// alert fires (7 days).
const MaxSustain = 7 * 24 * 3600

// CheckRule returns why a rule's kind, threshold and sustain window are not
// acceptable, as a sentence for the person, or "" when they are.
func CheckRule(kind string, threshold float64, sustain int) string {
	k, ok := Kind(kind)
	switch {
	case !ok:
		return "kind is one of " + strings.Join(KindNames(), ", ")
	case k.Max == 0 && threshold != 0:
		return kind + " takes no threshold"
	case k.Max != 0 && (threshold < k.Min || threshold > k.Max):
		return fmt.Sprintf("a %s threshold is between %g and %g (%s)", kind, k.Min, k.Max, k.Unit)
	case sustain < 0 || sustain > MaxSustain:
		return fmt.Sprintf("sustain_s is between 0 and %d (7 days)", MaxSustain)
	}
	return ""
}
