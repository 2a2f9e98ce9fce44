package volfile

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/internal/testenv"
)

// FuzzTable: the volfiles command's table parses or is refused as a table
// mistake (exit 2), and what parses makes volfiles that parse back to the
// same rows, quickly.
func FuzzTable(f *testing.F) {
	for _, s := range []string{
		"www /data/www 192.168.224.* /var/www n1 n2 n3\n",
		"# comment\n\nglobal /data/global 10.0.0.* /usr/global a b\nwww /data/www * /var/www a b\n",
		"www /data/www\n", "www /data/www * /var/www n1\nwww /data/www2 * /var/www n1\n", "x\x00y a b c d\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var rows []Row
		var err error
		var files []File
		d := testenv.CPUTime(func() {
			if rows, err = ParseTable(strings.NewReader(s), "input"); err == nil {
				files = Files(rows)
			}
		})
		if err != nil {
			if !errors.Is(err, ErrTable) && !strings.Contains(err.Error(), "token too long") {
				t.Fatalf("%T is not a table mistake: %v", err, err)
			}
			return
		}
		if d > 2*time.Second {
			t.Fatalf("took %v of CPU", d)
		}
		if len(rows) == 0 {
			return
		}
		var server *Graph
		clients := map[string]*Graph{}
		for _, fl := range files {
			g, err := Parse(bytes.NewReader(fl.Data), fl.Name)
			if err != nil {
				t.Fatalf("%s does not parse back: %v\n%s", fl.Name, err, fl.Data)
			}
			if fl.Name == "glusterfsd.vol" {
				server = g
			} else {
				clients[strings.TrimSuffix(strings.TrimPrefix(fl.Name, "glusterfs_"), ".vol")] = g
			}
		}
		if _, err := Rows(server, clients); err != nil {
			t.Fatalf("the volfiles of %q do not give rows back: %v", s, err)
		}
	})
}
