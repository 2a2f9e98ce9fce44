package overlays

import (
	"context"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

// hostile are values a spec written by someone else could hold: command
// substitution, quotes that end a quoted word, a newline that starts a new
// line of code or config, XML's CDATA end, a comment start, specifiers.
func hostile(pwned string) []string {
	return []string{
		"$(touch " + pwned + ")",
		"`touch " + pwned + "`",
		"a'b",
		"'; touch " + pwned + "; '",
		`"; touch ` + pwned + `; "`,
		"eth0\nup reboot",
		"x\n[rootfs]\npath = /\nuid = root",
		"]]><evil/>",
		"a # comment",
		`back\slash\`,
		"%n %h",
		"tab\there",
		"* !$HOME ${IFS} ; | & > < ( )",
		"ünïcödé",
	}
}

// TestShQuoteInert: every quoted word is one bash word that bash gives
// back byte for byte, and running it runs nothing.
func TestShQuoteInert(t *testing.T) {
	testenv.Tools(t, "bash")
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	for _, v := range hostile(pwned) {
		q, err := shQuote(v)
		if err != nil {
			t.Fatalf("shQuote(%q): %v", v, err)
		}
		script := "set -eu\nx=(" + q + ")\n[ ${#x[@]} -eq 1 ]\nprintf %s " + q + "\n"
		if _, err := run.Output(context.Background(), "bash", "-n", "-c", script); err != nil {
			t.Errorf("bash -n on %q: %v", q, err)
		}
		out, err := run.Output(context.Background(), "bash", "-c", script)
		if err != nil {
			t.Errorf("bash on %q: %v", q, err)
		}
		if string(out) != v {
			t.Errorf("bash printed %q for %q (quoted %s)", out, v, q)
		}
		rec, err := shRecord("|", "vol", v, "/mnt")
		if strings.ContainsAny(v, "|\n") {
			if err == nil {
				t.Errorf("shRecord accepted %q", v)
			}
		} else if out, _ := run.Output(context.Background(), "bash", "-c", "IFS='|' read -r a b c <<<"+rec+"; printf %s \"$b\""); string(out) != v {
			t.Errorf("shRecord: read gave %q for %q", out, v)
		}
	}
	if _, err := os.Stat(pwned); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a quoted value ran a command")
	}
	if _, err := shQuote("a\x00b"); err == nil {
		t.Error("NUL accepted in a shell word")
	}
}

// TestLineAndWord: free text on one line refuses what ends the line;
// a bare config token refuses everything but its charset.
func TestLineAndWord(t *testing.T) {
	for _, v := range hostile("/tmp/pwned") {
		_, lerr := line(v)
		if strings.ContainsAny(v, "\n\r") != (lerr != nil) {
			t.Errorf("line(%q) = %v", v, lerr)
		}
		if _, err := word(v); err == nil {
			t.Errorf("word accepted %q", v)
		}
		if _, err := ifupdown(v); err == nil || !strings.Contains(err.Error(), "/etc/network/interfaces") {
			t.Errorf("ifupdown(%q) = %v", v, err)
		}
	}
	for _, v := range []string{"n1", "10.0.0.1", "/var/lib/mysql", "rw,sync,no_subtree_check", "192.168.0.0/24", "eth0.100", "*"} {
		if got, err := word(v); err != nil || got != v {
			t.Errorf("word(%q) = %q, %v", v, got, err)
		}
	}
}

// TestINIValueWithMariaDB: what iniValue accepts, MariaDB's own option
// parser reads back unchanged; the rest is refused.
func TestINIValueWithMariaDB(t *testing.T) {
	testenv.Tools(t, "my_print_defaults")
	dir := t.TempDir()
	for _, v := range append(hostile(filepath.Join(dir, "pwned")), "/srv/my data") {
		q, err := iniValue(v)
		if err != nil {
			if !strings.ContainsAny(v, "\n#;\t") && !strings.HasSuffix(v, `\`) {
				t.Errorf("iniValue(%q) refused: %v", v, err)
			}
			continue
		}
		cnf := filepath.Join(dir, "my.cnf")
		if err := os.WriteFile(cnf, []byte("[mysqld]\ndatadir = "+q+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := run.Output(context.Background(), "my_print_defaults", "--defaults-file="+cnf, "mysqld")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSuffix(string(out), "\n"); got != "--datadir="+v {
			t.Errorf("MariaDB reads %q as %q", v, got)
		}
	}
	for _, v := range []string{"a\nskip-grant-tables", "x # y", " lead"} {
		if _, err := iniValue(v); err == nil {
			t.Errorf("iniValue accepted %q", v)
		}
	}
	if got, _ := systemdValue("50%"); got != "50%%" {
		t.Errorf("systemdValue(50%%) = %q", got)
	}
}

// TestRsyncAndMonit: a newline or a line continuation can add an rsync
// module or a monit statement; both are refused.
func TestRsyncAndMonit(t *testing.T) {
	for _, v := range hostile("/tmp/pwned") {
		_, err := rsyncValue(v)
		if want := strings.ContainsAny(v, "\n\t") || strings.HasSuffix(v, `\`); want != (err != nil) {
			t.Errorf("rsyncValue(%q) = %v", v, err)
		}
		if _, err := rsyncModule(v); err == nil && strings.ContainsAny(v, "[]/\n") {
			t.Errorf("rsyncModule accepted %q", v)
		}
		q, err := monitString(v)
		if want := strings.ContainsAny(v, "\"\\\n\t"); want != (err != nil) {
			t.Errorf("monitString(%q) = %q, %v", v, q, err)
		}
	}
}

// TestMonitStringParses: monit itself reads a control file with a quoted
// hostile (but accepted) value as one pattern.
func TestMonitStringParses(t *testing.T) {
	testenv.Tools(t, "monit")
	dir := t.TempDir()
	for _, v := range []string{"$(touch " + dir + "/pwned)", "a'b ; exec /bin/sh", "]]> # not a comment"} {
		q, err := monitString(v)
		if err != nil {
			t.Fatal(err)
		}
		rc := filepath.Join(dir, "monitrc")
		cfg := "set daemon 30\ncheck process x matching " + q + "\n    start program = \"/bin/true\"\n"
		if err := os.WriteFile(rc, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := run.Output(context.Background(), "monit", "-t", "-c", rc); err != nil {
			t.Errorf("monit -t on %q: %v %s", v, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Fatal("monit ran the value")
	}
}

// TestXMLRoundTrip: encoding/xml reads an escaped value back as written,
// as text and as an attribute; what XML cannot hold is refused.
func TestXMLRoundTrip(t *testing.T) {
	for _, v := range hostile("/tmp/pwned") {
		q, err := xmlText(v)
		if strings.ContainsAny(v, "\n") {
			// XML attributes normalise a literal newline: refused by
			// checkText as a control character.
			if err == nil {
				t.Errorf("xmlText accepted %q", v)
			}
			continue
		}
		if err != nil {
			t.Fatalf("xmlText(%q): %v", v, err)
		}
		var doc struct {
			A    string `xml:"a,attr"`
			Text string `xml:",chardata"`
		}
		if err := xml.Unmarshal([]byte(`<e a="`+q+`">`+q+`</e>`), &doc); err != nil {
			t.Fatalf("%q: %v", q, err)
		}
		if doc.A != v || doc.Text != v {
			t.Errorf("round trip of %q: attr %q, text %q", v, doc.A, doc.Text)
		}
	}
}
