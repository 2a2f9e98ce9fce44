package mountinfo

import "testing"

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/var/tmp/a\040b`: "/var/tmp/a b",
		`/x\011y\134z`:    "/x\ty\\z",
		`/plain`:          "/plain",
		`/bad\04`:         `/bad\04`, // too short to be an escape
		`/bad\999`:        `/bad\999`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
