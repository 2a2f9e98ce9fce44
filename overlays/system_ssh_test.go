package overlays

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

// trixieSSHDConfig is the active part of openssh-server 1:10.0p1's
// /etc/ssh/sshd_config in trixie: the drop-in is tested under the main
// file it will really be included from.
const trixieSSHDConfig = `Include /etc/ssh/sshd_config.d/*.conf
KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding yes
PrintMotd no
AcceptEnv LANG LC_* COLORTERM NO_COLOR
Subsystem	sftp	/usr/lib/openssh/sftp-server
`

// loopbackSet moves the cluster's LAN onto 127.0.0.0/8 so that a login
// from 127.0.0.1 comes from inside the cluster.
var loopbackSet = []string{"network.subnet=127.0.0.0/8", "network.gateway=127.0.0.1"}

// sshdTree writes a node's files below a temp dir, with trixie's
// sshd_config beside the generated drop-in.
func sshdTree(t *testing.T, files map[string]File) string {
	t.Helper()
	dir := writeNodeTree(t, files)
	if err := os.WriteFile(filepath.Join(dir, "etc/ssh/sshd_config"), []byte(trixieSSHDConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sshdScript runs sshd with the tree's /etc/ssh, /etc/pam.d/sshd,
// /etc/security/access.conf and /root bound over the host's, in a mount
// namespace of its own: the host's files are never touched, and the
// mounts go away with the process. /run is a fresh tmpfs for sshd's
// privilege separation directory.
const sshdScript = `set -e
tree=$1; shift
mount -t tmpfs applbuild-test /run
mkdir -p /run/sshd
mount --bind "$tree/etc/ssh" /etc/ssh
mount --bind "$tree/etc/pam.d/sshd" /etc/pam.d/sshd
mount --bind "$tree/etc/security/access.conf" /etc/security/access.conf
mount --bind "$tree/root" /root
exec /usr/sbin/sshd "$@"
`

func sshdArgs(tree string, args ...string) []string {
	return append([]string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c", sshdScript, "sh", tree}, args...)
}

func TestSystemSSHKeys(t *testing.T) {
	testenv.Tools(t, "ssh-keygen")
	pl := planFor(t, "web-cluster")
	n1, n2 := renderNode(t, pl, "n1"), renderNode(t, pl, "n2")
	fingerprint := func(f File) string {
		t.Helper()
		out, err := run.Output(sysCtx(t), "ssh-keygen", "-l", "-f", writeFile(t, f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(strings.TrimSpace(string(out)), "(ED25519)") {
			t.Errorf("%s: %s", f.Path, out)
		}
		return strings.Fields(string(out))[1]
	}
	host := fingerprint(mustFile(t, n1, "/etc/ssh/ssh_host_ed25519_key"))
	if pub := fingerprint(mustFile(t, n1, "/etc/ssh/ssh_host_ed25519_key.pub")); pub != host {
		t.Errorf("host key and .pub differ: %s %s", host, pub)
	}
	if other := fingerprint(mustFile(t, n2, "/etc/ssh/ssh_host_ed25519_key")); other == host {
		t.Error("n1 and n2 share a host key")
	}
	root := fingerprint(mustFile(t, n1, "/root/.ssh/id_ed25519"))
	if other := fingerprint(mustFile(t, n2, "/root/.ssh/id_ed25519")); other != root {
		t.Error("root's cluster key differs between nodes")
	}
	if fp := fingerprint(mustFile(t, n1, "/root/.ssh/authorized_keys")); fp != root {
		t.Errorf("authorized_keys holds %s, root's key is %s", fp, root)
	}
	for _, p := range []string{"/etc/ssh/ssh_host_ed25519_key", "/root/.ssh/id_ed25519", "/root/.ssh/authorized_keys"} {
		if m := mustFile(t, n1, p).Mode; m != 0o600 {
			t.Errorf("%s: mode %v", p, m)
		}
	}
	if m := mustFile(t, n1, "/root/.ssh").Mode.Perm(); m != 0o700 {
		t.Errorf("/root/.ssh: mode %v", m)
	}
	// Every node's key is known on every node, under each of its names.
	kh := writeFile(t, mustFile(t, n2, "/etc/ssh/ssh_known_hosts"))
	for _, name := range []string{"n1", "n1.example.org", "192.168.224.161", "n1-cluster", "10.224.40.161", "rsyncd.example.org"} {
		out, err := run.Output(sysCtx(t), "ssh-keygen", "-l", "-F", name, "-f", kh)
		if err != nil {
			t.Fatalf("%s not in known_hosts: %v", name, err)
		}
		if !strings.Contains(string(out), host) {
			t.Errorf("known_hosts: %s is not n1's key %s:\n%s", name, host, out)
		}
	}
}

// TestSystemSSHDConfig has sshd check the drop-in under trixie's main
// config and print the settings it resolved, per user.
func TestSystemSSHDConfig(t *testing.T) {
	testenv.Root(t)
	testenv.Tools(t, "sshd", "unshare")
	keysOnly := planFor(t, "web-cluster")
	keysOnly.Admin.Keys = []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBjCOGWjCLwFJUfWMGmHMNaZ5M9rRc0Wj6Gr+qHO6uhF admin@laptop"}
	pwOnly := planFor(t, "web-cluster")
	pwOnly.Admin.PasswordHash = "$y$j9T$abc$def"
	for _, tt := range []struct {
		name, user, password string
		files                map[string]File
	}{
		{"keys/admin", "admin", "no", renderNode(t, keysOnly, "n1")},
		{"password/admin", "admin", "yes", renderNode(t, pwOnly, "n1")},
		{"password/root", "root", "no", renderNode(t, pwOnly, "n1")},
		{"password/other", "www-data", "no", renderNode(t, pwOnly, "n1")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tree := sshdTree(t, tt.files)
			if _, stderr, failed := sysOutput(t, &run.Cmd{Args: sshdArgs(tree, "-t")}); failed || stderr != "" {
				t.Fatalf("sshd -t: %s", stderr)
			}
			out, err := run.Output(sysCtx(t), sshdArgs(tree, "-T", "-C", "user="+tt.user+",host=dr.example.org,addr=203.0.113.7")...)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range []string{
				"permitrootlogin without-password", "usepam yes", "kbdinteractiveauthentication no",
				"passwordauthentication " + tt.password,
				"x11forwarding yes", // the main file after the Include still applies
			} {
				if !strings.Contains(string(out), "\n"+w+"\n") {
					t.Errorf("sshd -T lacks %q", w)
				}
			}
			var hostkeys []string
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(l, "hostkey ") {
					hostkeys = append(hostkeys, l)
				}
			}
			if strings.Join(hostkeys, "|") != "hostkey /etc/ssh/ssh_host_ed25519_key" {
				t.Errorf("host keys: %q", hostkeys)
			}
		})
	}
}

// TestSystemSSHLogin runs the node's sshd on 127.0.0.1 with its own
// config, host key, PAM stack and access.conf, and logs in as root with the
// cluster key, checking the host key against the generated known_hosts.
// From 127.0.0.1 root gets in only when both from= and access.conf name a
// network holding it.
func TestSystemSSHLogin(t *testing.T) {
	testenv.Root(t)
	testenv.Tools(t, "sshd", "ssh", "unshare")
	lan := renderNode(t, planFor(t, "web-cluster"), "n1")
	lo := renderNode(t, planFor(t, "web-cluster", loopbackSet...), "n1")
	mix := func(base, access map[string]File) map[string]File {
		out := map[string]File{}
		for k, v := range base {
			out[k] = v
		}
		out["/etc/security/access.conf"] = access["/etc/security/access.conf"]
		return out
	}
	for _, tt := range []struct {
		name  string
		files map[string]File
		ok    bool
		log   string // what sshd says when it refuses
	}{
		{"cluster", lo, true, ""},
		{"outside", lan, false, "not from a permitted host"},
		{"access.conf", mix(lo, lan), false, "Access denied for user root by PAM account configuration"},
		{"from=", mix(lan, lo), false, "not from a permitted host"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tree := sshdTree(t, tt.files)
			port := sysFreePort(t)
			var log sysLog
			args := sshdArgs(tree, "-D", "-e", "-o", "ListenAddress=127.0.0.1", "-o", fmt.Sprintf("Port=%d", port), "-o", "PidFile=none")
			// A daemon, so not through run: it is killed when the test ends.
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Stdout, cmd.Stderr = &log, &log
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			})
			sysWaitPort(t, port)

			out, stderr, failed := sysOutput(t, &run.Cmd{Args: []string{"ssh", "-F", "/dev/null",
				"-i", filepath.Join(tree, "root/.ssh/id_ed25519"),
				"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
				"-o", "StrictHostKeyChecking=yes", "-o", "HostKeyAlias=n1",
				"-o", "UserKnownHostsFile=" + filepath.Join(tree, "etc/ssh/ssh_known_hosts"),
				"-o", "GlobalKnownHostsFile=/dev/null",
				"-p", fmt.Sprint(port), "root@127.0.0.1", "id -un"}})
			if tt.ok {
				if failed || strings.TrimSpace(out) != "root" {
					t.Fatalf("root login failed: %s\nsshd: %s", stderr, log.String())
				}
				return
			}
			if !failed {
				t.Fatalf("root logged in from outside the cluster: %s", out)
			}
			if strings.Contains(stderr, "Host key verification failed") {
				t.Fatalf("host key: %s", stderr)
			}
			// sshd writes the refusal after the client is gone.
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(log.String(), tt.log) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if !strings.Contains(log.String(), tt.log) {
				t.Errorf("sshd did not refuse with %q:\n%s", tt.log, log.String())
			}
		})
	}
}

// sysLog collects a daemon's output, written from exec's goroutines
// while the test reads it.
type sysLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *sysLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *sysLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func sysFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func sysWaitPort(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on 127.0.0.1:%d", port)
}

func TestSystemAccessFiles(t *testing.T) {
	pl := planFor(t, "web-cluster")
	files := renderNode(t, pl, "n1")
	access := string(mustFile(t, files, "/etc/security/access.conf").Data)
	rules := []string{}
	for _, l := range strings.Split(access, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			rules = append(rules, l)
		}
	}
	want := []string{
		"+ : root : LOCAL 192.168.224.0/24 10.224.10.0/24 10.224.20.0/24 10.224.30.0/24 10.224.40.0/24",
		"+ : admin : ALL",
		"- : ALL : ALL",
	}
	if strings.Join(rules, "\n") != strings.Join(want, "\n") {
		t.Errorf("access.conf rules:\n%s\nwant:\n%s", strings.Join(rules, "\n"), strings.Join(want, "\n"))
	}
	pam := string(mustFile(t, files, "/etc/pam.d/sshd").Data)
	if !strings.Contains(pam, "\naccount    required     pam_access.so\n") || strings.Count(pam, "@include") != 4 {
		t.Errorf("pam.d/sshd:\n%s", pam)
	}
}

// TestLogindConf: every key of the logind drop-in is one systemd-logind's
// own parser knows (its gperf table names each "Section.Key"), and every
// value is a time span systemd parses.
func TestLogindConf(t *testing.T) {
	testenv.Tools(t, "systemd-analyze")
	const logind = "/lib/systemd/systemd-logind"
	bin, err := os.ReadFile(logind)
	if err != nil {
		t.Skipf("no %s: %v", logind, err)
	}
	f := mustFile(t, renderNode(t, planFor(t, "web-cluster"), "n1"), "/etc/systemd/logind.conf.d/50-applbuild.conf")
	section, keys := "", 0
	for _, l := range strings.Split(string(f.Data), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "["):
			section = strings.Trim(l, "[]")
		default:
			k, v, _ := strings.Cut(l, "=")
			keys++
			if !bytes.Contains(bin, []byte(section+"."+k+"\x00")) {
				t.Errorf("systemd-logind knows no %s.%s", section, k)
			}
			if out, err := exec.Command("systemd-analyze", "timespan", v).CombinedOutput(); err != nil {
				t.Errorf("%s=%s: systemd-analyze timespan: %v\n%s", k, v, err, out)
			}
		}
	}
	if keys == 0 {
		t.Fatal("the drop-in sets nothing")
	}
}
