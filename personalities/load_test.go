package personalities

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEveryEmbeddedPersonalityLoads(t *testing.T) {
	infos, err := Library{}.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range infos {
		names = append(names, i.Name)
	}
	want := []string{"mysql-ha", "nfs-ha", "pound-lb", "puppet-ha", "scm", "web-cluster"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("list = %v, want %v (mixins must not be listed)", names, want)
	}
}

func TestMixinIsNotBuildable(t *testing.T) {
	_, err := Load("base", Options{})
	if err == nil || !strings.Contains(err.Error(), "base.yaml:2:8: base is a mixin") {
		t.Fatalf("err = %v", err)
	}
}

func TestUnknownPersonality(t *testing.T) {
	_, err := Load("nope", Options{})
	if !errors.Is(err, ErrUnknown) {
		t.Fatalf("err = %v, want ErrUnknown", err)
	}
}

func TestMergeRules(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "mine.yaml", `description: mine
extends: web-cluster
packages: [vim-tiny]
disks:
  pvs: [3G, 3G]
gluster:
  volumes:
    - name: www
      size: 2G
services:
  - name: mysql
    ip: 192.168.224.200
`)
	s, err := Load(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// packages append to the inherited set
	has := map[string]bool{}
	for _, p := range s.Packages {
		has[p] = true
	}
	if !has["vim-tiny"] || !has["openssh-server"] || !has["glusterfs-server"] {
		t.Errorf("packages did not append: %v", s.Packages)
	}
	// other scalar lists replace
	if !reflect.DeepEqual(s.Disks.PVs, []Size{3 * GiB, 3 * GiB}) {
		t.Errorf("pvs = %v, want [3G 3G]", s.Disks.PVs)
	}
	// named items merge field by field, keeping their place
	var www Volume
	for _, v := range s.Gluster.Volumes {
		if v.Name == "www" {
			www = v
		}
	}
	if www.Size != 2*GiB || www.Mount != "/var/www" || len(s.Gluster.Volumes) != 10 {
		t.Errorf("www = %+v (of %d volumes)", www, len(s.Gluster.Volumes))
	}
	for _, sv := range s.Services {
		if sv.Name == "mysql" && (sv.IP != "192.168.224.200" || sv.Unit != "mariadb") {
			t.Errorf("mysql = %+v", sv)
		}
	}
	if s.Name != "mine" || s.Description != "mine" {
		t.Errorf("name %q description %q", s.Name, s.Description)
	}
}

func TestReplaceTag(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "lean.yaml", "extends: scm\npackages: !replace [systemd-sysv, subversion]\n")
	s, err := Load(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Packages, []string{"systemd-sysv", "subversion"}) {
		t.Fatalf("packages = %v", s.Packages)
	}
}

func TestSiteAndSet(t *testing.T) {
	dir := t.TempDir()
	site := write(t, dir, "site.yaml", "domain: tsand.org\ncluster:\n  memory: 1G\n")
	s, err := Load("web-cluster", Options{Site: site, Set: []string{"cluster.memory=2G", "network.bridge=br0"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Domain != "tsand.org" || s.Cluster.Memory != 2*GiB || s.Network.Bridge != "br0" {
		t.Fatalf("domain %q memory %s bridge %q", s.Domain, s.Cluster.Memory, s.Network.Bridge)
	}
	if s.Cluster.Nodes != 3 {
		t.Fatalf("site file lost the personality's nodes: %d", s.Cluster.Nodes)
	}
	// --set values are checked like any file, and say where they came from
	_, err = Load("web-cluster", Options{Set: []string{"cluster.nodes=many"}})
	if err == nil || !strings.Contains(err.Error(), "--set cluster.nodes:1:1: cluster.nodes: want a whole number") {
		t.Fatalf("err = %v", err)
	}
	_, err = Load("web-cluster", Options{Set: []string{"cluster.nodez=3"}})
	if err == nil || !strings.Contains(err.Error(), `unknown key "nodez" in cluster`) {
		t.Fatalf("err = %v", err)
	}
	bad := write(t, dir, "bad-site.yaml", "extends: base\n")
	if _, err := Load("web-cluster", Options{Site: bad}); err == nil || !strings.Contains(err.Error(), "bad-site.yaml:1:1: a site file cannot use extends") {
		t.Fatalf("err = %v", err)
	}
}

func TestUserDirShadowsAndExtendsEmbedded(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "web-cluster.yaml", "description: my own web cluster\nextends: ha-cluster\ncluster: {nodes: 4}\n")
	write(t, dir, "child.yaml", "description: child\nextends: web-cluster\n")
	lib := Library{Dirs: []string{dir}}
	s, err := lib.Load("child", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Cluster.Nodes != 4 {
		t.Fatalf("child did not extend the user's web-cluster: nodes %d", s.Cluster.Nodes)
	}
}

func TestExtendsCycle(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a.yaml", "extends: b\n")
	write(t, dir, "b.yaml", "extends: a.yaml\n")
	_, err := Load(a, Options{})
	if err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("err = %v", err)
	}
}

func TestEveryMistakeReported(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "many.yaml", "extends: web-cluster\ncluster:\n  nodes: x\n  vcpus: y\nfoo: 1\n")
	_, err := Load(f, Options{})
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]Size{"2G": 2 * GiB, "128M": 128 * MiB, "512": 512, "1.5G": 3 * GiB / 2, "4GiB": 4 * GiB, "64k": 64 * KiB} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1G", "2X", "two", "NaN", "inf", "InfG", "+1G", "1e30G", "1E3",
		"0x10M", ".5G", "1.G", "1_000", "8388608T", "9223372036854775807", "99999999999999999999", "1048577T"} {
		if v, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, accepted", in, v)
		}
	}
	// the largest size, and fractions exact to the byte
	for in, want := range map[string]Size{"1048576T": MaxSize, "0.5K": 512, "1.000001M": MiB + 1, "1.25": 1} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if (2*GiB).String() != "2G" || Size(1000).String() != "1000" {
		t.Error("String")
	}
}

// The cluster name defaults to the personality's, which comes from a file
// name: one that is no cluster name must be replaced by cluster.name.
func TestPersonalityNameMustNameACluster(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "My Cluster.yaml", "extends: web-cluster\n")
	_, err := Load(f, Options{})
	if err == nil || !strings.Contains(err.Error(), `cluster.name: missing, and the personality name "My Cluster" cannot name a cluster`) {
		t.Fatalf("err = %v", err)
	}
	if _, err := Load(f, Options{Set: []string{"cluster.name=mine"}}); err != nil {
		t.Fatal(err)
	}
}
