package overlays

import (
	"io/fs"
	"strings"
	"testing"
)

// TestSameDir: one directory may be claimed by several generators only
// with one mode and one owner; any other double claim names both.
func TestSameDir(t *testing.T) {
	a := File{Path: "/var/lib/x", Mode: fs.ModeDir | 0o755, Generator: "gluster"}
	for _, c := range []struct {
		b    File
		want string // "" for accepted
	}{
		{File{Path: a.Path, Mode: fs.ModeDir | 0o755, Generator: "rsync"}, ""},
		{File{Path: a.Path, Mode: fs.ModeDir | 0o700, Generator: "rsync"},
			"directory /var/lib/x claimed by gluster as -rwxr-xr-x root:root and by rsync as -rwx------ root:root"},
		{File{Path: a.Path, Mode: fs.ModeDir | 0o755, Owner: "rsync:rsync", Generator: "rsync"}, "and by rsync as -rwxr-xr-x rsync:rsync"},
		{File{Path: a.Path, Mode: 0o644, Generator: "rsync"}, "/var/lib/x written by both gluster and rsync"},
	} {
		err := SameDir(a, c.b)
		if c.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", c.b, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.b, err, c.want)
		}
	}
}
