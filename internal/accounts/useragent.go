package accounts

import "strings"

// DescribeUserAgent names a session's browser and system the way people
// say it ("Chrome on Linux", "Safari on iPhone"); "Unknown browser" when
// the header says nothing recognisable. Programs (curl, the CLI) keep
// their own first word.
func DescribeUserAgent(ua string) string {
	if strings.TrimSpace(ua) == "" {
		return "Unknown browser"
	}
	browser := ""
	// Order matters: Edge and Opera also say Chrome, Chrome also says
	// Safari.
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"HeadlessChrome/", "Chrome"},
		{"Chromium/", "Chromium"}, {"CriOS/", "Chrome"}, {"Chrome/", "Chrome"}, {"FxiOS/", "Firefox"}, {"Safari/", "Safari"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	system := ""
	for _, s := range []struct{ token, name string }{
		{"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Android", "Android"}, {"CrOS", "ChromeOS"},
		{"Windows", "Windows"}, {"Macintosh", "macOS"}, {"Mac OS X", "macOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, s.token) {
			system = s.name
			break
		}
	}
	if browser == "" {
		if !strings.HasPrefix(ua, "Mozilla/") {
			first, _, _ := strings.Cut(ua, " ")
			name, _, _ := strings.Cut(first, "/")
			if name != "" && len(name) <= 40 {
				return name
			}
		}
		browser = "Unknown browser"
	}
	if system == "" {
		return browser
	}
	return browser + " on " + system
}
