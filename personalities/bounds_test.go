package personalities

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// A FIFO, a device and an oversized file are refused without reading
// them: before, a FIFO hung the load and /dev/zero ate the memory.
func TestOnlySmallRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := write(t, dir, "big.yaml", "description: "+strings.Repeat("x", MaxSpecSize)+"\n")
	site := write(t, dir, "site.yaml", "cluster: {nodes: 3}\n")
	for _, c := range []struct {
		ref  string
		opt  Options
		want string
	}{
		{fifo, Options{}, fifo + ": cannot read: not a regular file but a named pipe"},
		{"/dev/zero", Options{}, "/dev/zero: cannot read: not a regular file but a device"},
		{big, Options{}, big + ": cannot read: larger than 1024 KiB: a spec is a small file"},
		{dir, Options{}, dir + ": cannot read: not a regular file but a directory"},
		{"web-cluster", Options{Site: fifo}, fifo + ": cannot read --site file: not a regular file but a named pipe"},
		{"web-cluster", Options{Site: "/dev/zero"}, "/dev/zero: cannot read --site file: not a regular file but a device"},
		{write(t, dir, "p.yaml", "extends: "+fifo+"\n"), Options{Site: site}, `p.yaml:1:10: extends "` + fifo + `": cannot read: not a regular file but a named pipe`},
	} {
		done := make(chan error, 1)
		go func() { _, err := Load(c.ref, c.opt); done <- err }()
		select {
		case err := <-done:
			var errs Errors
			if !errors.As(err, &errs) || !strings.HasSuffix(err.Error(), c.want) {
				t.Errorf("Load(%s) = %v (%T), want ...%s", c.ref, err, err, c.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Load(%s) hangs", c.ref)
		}
	}
}

// A diamond of extends: 20 levels deep (each level extends both files of
// the level below) reads each file once; before, it was resolved 2^20
// times and ran out of memory.
func TestExtendsDiamondReadsEachFileOnce(t *testing.T) {
	dir := t.TempDir()
	const depth = 20
	write(t, dir, "l0a.yaml", "mixin: true\nextends: web-cluster\npackages: [vim-tiny]\n")
	write(t, dir, "l0b.yaml", "mixin: true\nextends: web-cluster\n")
	for i := 1; i < depth; i++ {
		for _, s := range []string{"a", "b"} {
			write(t, dir, fmt.Sprintf("l%d%s.yaml", i, s), fmt.Sprintf("mixin: true\nextends: [l%da.yaml, l%db.yaml]\n", i-1, i-1))
		}
	}
	top := write(t, dir, "top.yaml", fmt.Sprintf("extends: [l%da.yaml, l%db.yaml]\n", depth-1, depth-1))
	ld := &loader{ctx: context.Background(), src: &source{origin: map[*yaml.Node]string{}}, resolved: map[string]*yaml.Node{}}
	s, err := ld.load(top, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !contains(s.Packages, "vim-tiny") {
		t.Errorf("packages of the deepest level lost: %v", s.Packages)
	}
	// every file of ours, and the embedded ones, parsed once
	if max := 2*depth + 1 + 4; ld.parses > max {
		t.Errorf("%d parses for %d files", ld.parses, max)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A syntax error at the end of a large spec is placed with a logarithmic
// number of parses; before, every prefix was parsed (187 s for 250 KB).
func TestSyntaxErrorLineIsFoundInFewParses(t *testing.T) {
	var b strings.Builder
	b.WriteString("extends: web-cluster\nfirstboot:\n")
	for i := 0; b.Len() < 900*1024; i++ {
		fmt.Fprintf(&b, "  - name: hook%d\n    on: all\n    run: echo %d\n", i, i)
	}
	lines := strings.Count(b.String(), "\n")
	b.WriteString("cluster:\n  nodes: 3\n memory: 1G\n")
	f := write(t, t.TempDir(), "big.yaml", b.String())
	ld := &loader{ctx: context.Background(), src: &source{origin: map[*yaml.Node]string{}}, resolved: map[string]*yaml.Node{}}
	_, err := ld.load(f, Options{})
	want := fmt.Sprintf("%s:%d: did not find expected key", f, lines+3)
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
	if ld.parses > 8 {
		t.Errorf("%d parses to place the error, want at most 8", ld.parses)
	}
}

// Aliases expand once, within a budget: 30 aliases of a 3000-value list
// is refused quickly instead of walked for seconds, and an alias that
// refers to itself does not loop.
func TestAliasesAreBounded(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("extends: web-cluster\npackages: &p [")
	for i := range 3000 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "p%d", i)
	}
	b.WriteString("]\nservices:\n")
	for i := range 30 {
		fmt.Fprintf(&b, "  - {name: s%d, kind: clone, packages: *p}\n", i)
	}
	for _, c := range []struct{ body, want string }{
		{b.String(), "too much aliasing"},
		{"extends: web-cluster\nnetwork: &n {dns: *n}\n", "too much aliasing"},
	} {
		start := time.Now()
		_, err := Load(write(t, dir, "a.yaml", c.body), Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err = %v, want %s", err, c.want)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	}
	// a few aliases are fine, and behave as the values they name
	s, err := Load(write(t, dir, "ok.yaml", "extends: web-cluster\npackages: &p [vim-tiny]\nservices:\n  - {name: extra, kind: clone, packages: *p}\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sv := s.Services[len(s.Services)-1]; sv.Name != "extra" || len(sv.Packages) != 1 || sv.Packages[0] != "vim-tiny" {
		t.Errorf("alias not expanded: %+v", sv)
	}
}

// Ctrl-C stops a load: a cancelled context is an error, not a spec.
func TestLoadHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (Library{}).LoadContext(ctx, "web-cluster", Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
