package teams

import "testing"

func TestSlugOf(t *testing.T) {
	for in, want := range map[string]string{
		"New.Person@Example.test": "new-person",
		"__x__@a":                 "x",
		"@nothing":                "team",
		"ÄÖ@x":                    "team",
		"a+tag@x":                 "a-tag",
		"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz@x": "abcdefghijklmnopqrstuvwxyzabcdefghijklmn",
	} {
		if got := SlugOf(in); got != want {
			t.Errorf("SlugOf(%q) = %q, want %q", in, got, want)
		}
	}
}
