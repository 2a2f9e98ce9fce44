package volfile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"no end", "volume a\n type storage/posix\n", "x.vol:2: volfile syntax error: volume \"a\" not ended"},
		{"no type", "volume a\nend-volume\n", "x.vol:2: volfile syntax error: volume \"a\" has no type"},
		{"undefined subvolume", "volume a\ntype cluster/replicate\nsubvolumes b\nend-volume\n", "x.vol:3: volfile syntax error: volume \"a\": subvolume \"b\" is not defined above"},
		{"nested", "volume a\ntype t/t\nvolume b\n", "x.vol:3: volfile syntax error: volume \"b\" starts before volume \"a\" ended"},
		{"twice", "volume a\ntype t/t\nend-volume\nvolume a\ntype t/t\nend-volume\n", "x.vol:4: volfile syntax error: volume \"a\" defined twice"},
		{"dup option", "volume a\ntype t/t\noption k 1\noption k 2\nend-volume\n", "x.vol:4: volfile syntax error: volume \"a\": option \"k\" set twice"},
		{"short option", "volume a\ntype t/t\noption k\nend-volume\n", "x.vol:3: volfile syntax error: want \"option KEY VALUE\""},
		{"stray", "volume a\ntype t/t\nwindow 1\nend-volume\n", "x.vol:3: volfile syntax error: unknown directive \"window\""},
		{"empty", "# nothing\n", "x.vol:1: volfile syntax error: no volume"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.in), "x.vol")
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || !errors.Is(err, ErrSyntax) {
				t.Fatalf("got %v, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestWriteParse(t *testing.T) {
	rows := []Row{{Name: "www", Source: "/data/www", Allow: "10.0.0.*", Mount: "/var/www", Hosts: []string{"a", "b"}}}
	for _, g := range []*Graph{Server(rows), Client(rows[0])} {
		back, err := Parse(strings.NewReader(string(g.Bytes())), "g.vol")
		if err != nil {
			t.Fatal(err)
		}
		for i := range back.Volumes {
			back.Volumes[i].Line = 0
		}
		if !reflect.DeepEqual(back, g) {
			t.Errorf("parse(write(g)) != g:\n%s\n%#v", g.Bytes(), back)
		}
	}
}

func TestParseTable(t *testing.T) {
	good := "# comment\n\nwww /data/www 10.0.0.* /var/www n1 n2\n  apache2\t/data/apache2 * /etc/apache2 n1\n"
	rows, err := ParseTable(strings.NewReader(good), "in")
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{
		{Name: "www", Source: "/data/www", Allow: "10.0.0.*", Mount: "/var/www", Hosts: []string{"n1", "n2"}},
		{Name: "apache2", Source: "/data/apache2", Allow: "*", Mount: "/etc/apache2", Hosts: []string{"n1"}},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("got %+v", rows)
	}
	back, err := ParseTable(strings.NewReader(string(FormatTable(rows))), "again")
	if err != nil || !reflect.DeepEqual(back, rows) {
		t.Fatalf("FormatTable does not read back: %v %+v", err, back)
	}

	bad := []struct{ name, in, want string }{
		{"short row", "www /data/www 10.0.0.* /var/www\n", "in:1: bad volume table: 4 column(s), want at least 5"},
		{"bad name", "w/w /data/www * /var/www n1\n", "in:1: bad volume table: volume name \"w/w\""},
		{"relative", "\nwww data/www * /var/www n1\n", "in:2: bad volume table: source-dir \"data/www\": want a clean absolute path"},
		{"twice", "www /data/www * /var/www n1\nwww /data/w2 * /var/w2 n1\n", "in:2: bad volume table: volume \"www\" already defined on line 1"},
		{"mount twice", "www /data/www * /var/www n1\nw2 /data/w2 * /var/www n1\n", "in:2: bad volume table: dest-mount \"/var/www\" already used on line 1"},
		{"host twice", "www /data/www * /var/www n1 n1\n", "in:1: bad volume table: host \"n1\" listed twice"},
		{"empty", "# nothing\n\n", "in:2: bad volume table: no volume rows"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTable(strings.NewReader(tt.in), "in")
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || !errors.Is(err, ErrTable) {
				t.Fatalf("got %v, want prefix %q", err, tt.want)
			}
		})
	}
}
