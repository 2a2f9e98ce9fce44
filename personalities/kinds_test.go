package personalities

import (
	"reflect"
	"strings"
	"testing"
)

// TestEveryStringHasAKind: a string field without a check: tag would take
// any value, newlines and $(...) included, into configs and scripts.
func TestEveryStringHasAKind(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		if seen[typ] {
			return
		}
		seen[typ] = true
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if !f.IsExported() || f.Tag.Get("yaml") == "-" {
				continue
			}
			ft := f.Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			switch ft.Kind() {
			case reflect.Struct:
				walk(ft, path+"."+f.Name)
			case reflect.String:
				k := f.Tag.Get("check")
				if _, ok := kinds[k]; !ok {
					t.Errorf("%s.%s: check:%q is not a kind (kinds.go)", path, f.Name, k)
				}
			}
		}
	}
	walk(reflect.TypeOf(Spec{}), "Spec")
}

func TestKinds(t *testing.T) {
	for _, c := range []struct {
		kind     string
		good, no []string
	}{
		{"text", []string{"", "web sites", "Zürich €"}, []string{"a\nb", "a\x00b", "\x1b[2J", "a\rb", "a\u2028b", "\xff", "a\x7fb"}},
		{"lines", []string{"a\nb\n", "\tindented"}, []string{"\x1b]0;x\a", "a\x00"}},
		{"label", []string{"applbuild web-cluster", "ACME Cluster (prod) 2.0"}, []string{"x $(reboot)", "a'b", `a"b`, "a;b", "`id`", "a\nb", "", " lead", strings.Repeat("a", 65)}},
		{"path", []string{"/var/www", "/etc/apache2", "/var/lib/mysql", "/usr/global/etc/rsyncd.conf", "/srv/nfs/export", "/data/www"},
			[]string{"/", "/etc", "/var", "/usr", "/home", "/root", "/root/.ssh", "/etc/ssh", "/etc/ssh/sshd_config.d", "/etc/pam.d", "/etc/sudoers.d/x", "/etc/passwd",
				"/boot/grub", "/proc/1", "/dev/sda", "/run/x", "/usr/bin/x", "/lib/x", "/data/../root/.ssh", "//var/www", "/var/www/", "/var/./www", "var/www",
				"", "/var/my www", "/srv/$(id)", "/srv/`id`", "/srv/a;b", "/srv/-rf", "/srv/a'b", "/srv/a\nb", "/srv/a\\b", "/srv/*"}},
		{"file", []string{"/run/sshd.pid", "/var/run/x.pid"}, []string{"run/x.pid", "/run/../x", "/run/$(x)"}},
		{"hostname", []string{"rsyncd.example.org", "dr", "a-b.c"}, []string{"$(x)", "a b", "-a", "a..b", "A_B", ""}},
		{"address", []string{"192.168.224.1", "::1"}, []string{"192.168.224.256", "x", ""}},
		{"host", []string{"dr.example.org", "10.0.0.0/8", "192.168.*", "*"}, []string{"a b", "a,b", "$(x)", ""}},
		{"hostport", []string{"192.168.224.21:80", "web.example.org:8080", "[::1]:80"}, []string{"x", ":80", "a:0", "a:65536", "a b:80", "$(x):80"}},
		{"ifname", []string{"eth0", "enp0s3", "bond0"}, []string{"eth0\nup x", "eth0 x", "Eth0", "enp0s31f6abc", ""}},
		{"bridge", []string{"xenbr0", "br-storage01"}, []string{"xenbr0'", "br 0", ""}},
		{"package", []string{"openssh-server", "libapache2-mod-svn", "g++", "foo:amd64"}, []string{"vim;x", "Vim", "-x", "a"}},
		{"unit", []string{"nfs-server", "getty@tty1.service"}, []string{"a b", "a;b", ""}},
		{"agent", []string{"systemd:nginx", "ocf:heartbeat:IPaddr2"}, []string{"ocf:x y", ""}},
		{"process", []string{"sshd", "pacemakerd", "apache2"}, []string{"sshd\n  if", "a b", ""}},
		{"sshkey", []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDx me@host", "ssh-rsa AAAAB3Nza=="},
			[]string{`command="x" ssh-ed25519 AAAA`, "ssh-ed25519", "ssh-ed25519 AAA a\nssh-rsa BBB", "ssh-foo AAAA", "ssh-ed25519 AA$A"}},
		{"crypt", []string{"$y$j9T$abc$def", "$6$salt$hash.hash/x"}, []string{"$6$a\nroot:x", "a:b", "a b", ""}},
		{"glob", []string{"192.168.224.*", "10.0.0.1,10.0.0.2"}, []string{"1.2.3.*$(x)", "a b", "a,,b", ""}},
		{"nfsopts", []string{"rw,sync,no_subtree_check", "ro,sec=krb5:krb5i,fsid=0"}, []string{"rw\n/ *(rw)", "rw,,sync", "rw sync", "rw,(x)"}},
		{"calendar", []string{"hourly", "*-*-* 02:00:00", "Mon..Fri 22:00"}, []string{"hourly\nExecStart=x", "a;b", ""}},
		{"ionice", []string{"-c3", "-c2 -n7", "-c 2 -n 0"}, []string{"-c3;x", "-c9", "x"}},
		{"url", []string{"http://deb.debian.org/debian", "https://m.example.org:8080/debian/", "file:/srv/mirror"},
			[]string{"deb.debian.org", "ftp://x", "http://", "http://a b", "http://x/$(id)", "http://x/'"}},
		{"vg", []string{"{node}_vg0", "vg0"}, []string{"{node} vg", "-vg", "vg/0", ".."}},
		{"repo", []string{"main", "my-repo.v2"}, []string{"../etc", ".hidden", "a/b", ""}},
		{"user", []string{"admin", "alice", "ops-1"}, []string{"root", "www-data", "daemon", "nobody", "sshd", "mysql", "hacluster", "rsync", "systemd-network", "Admin", "a b", ""}},
		{"name", []string{"web-cluster", "n"}, []string{"Web", "a b", "1a", ""}},
		{"id", []string{"www", "db_data-1"}, []string{"1a", "a b", "a.b", ""}},
		{"fs", []string{"ext4", "xfs"}, []string{"ext4;x", ""}},
		{"cidr", []string{"192.168.224.0/24"}, []string{"192.168.224.0", "x/24"}},
	} {
		check := kinds[c.kind]
		if check == nil {
			t.Errorf("no kind %q", c.kind)
			continue
		}
		for _, v := range c.good {
			if w := check(v); w != "" {
				t.Errorf("%s %q refused: %s", c.kind, v, w)
			}
		}
		for _, v := range c.no {
			if check(v) == "" {
				t.Errorf("%s %q accepted", c.kind, v)
			}
		}
	}
}
