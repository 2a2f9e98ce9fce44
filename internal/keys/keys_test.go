package keys

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/internal/testenv"
)

func TestDeterministicAndSeparated(t *testing.T) {
	a, _ := New([]byte("0123456789abcdef"))
	b, _ := New([]byte("0123456789abcdef"))
	c, _ := New([]byte("fedcba9876543210"))
	if !bytes.Equal(a.Bytes("x", 256), b.Bytes("x", 256)) {
		t.Fatal("same secret, same label: different bytes")
	}
	if bytes.Equal(a.Bytes("x", 32), a.Bytes("y", 32)) || bytes.Equal(a.Bytes("x", 32), c.Bytes("x", 32)) {
		t.Fatal("different label or secret: same bytes")
	}
	if a.SSH("root", "c").Public != b.SSH("root", "c").Public || !bytes.Equal(a.SSH("root", "c").Private, b.SSH("root", "c").Private) {
		t.Fatal("ssh key not reproducible")
	}
	if _, err := New([]byte("short")); err == nil {
		t.Fatal("short secret accepted")
	}
}

// TestClusterRings: one site secret, two cluster identities: every label
// gives other bytes; the same identity twice gives the same.
func TestClusterRings(t *testing.T) {
	site, _ := New([]byte("0123456789abcdef0123456789abcdef"))
	lab, prod := site.Cluster("lab-seed"), site.Cluster("prod-seed")
	for _, label := range []string{"corosync-authkey", "ssh-ed25519/cluster-root", "ssh-ed25519/host/n1"} {
		if bytes.Equal(lab.Bytes(label, 64), prod.Bytes(label, 64)) || bytes.Equal(lab.Bytes(label, 64), site.Bytes(label, 64)) {
			t.Errorf("%s: two clusters (or a cluster and its site) share the key", label)
		}
		if !bytes.Equal(lab.Bytes(label, 64), site.Cluster("lab-seed").Bytes(label, 64)) {
			t.Errorf("%s: the same cluster twice, different keys", label)
		}
	}
	other, _ := New([]byte("fedcba9876543210fedcba9876543210"))
	if bytes.Equal(lab.Bytes("x", 32), other.Cluster("lab-seed").Bytes("x", 32)) {
		t.Error("one cluster identity under two secrets: same key")
	}
}

// TestOpenSSHReadsKey proves the private key file is one OpenSSH accepts:
// ssh-keygen -y must print the same public key.
func TestOpenSSHReadsKey(t *testing.T) {
	testenv.Tools(t, "ssh-keygen")
	r, _ := New([]byte("0123456789abcdef"))
	k := r.SSH("root", "root@cluster")
	p := filepath.Join(t.TempDir(), "id")
	if err := os.WriteFile(p, k.Private, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ssh-keygen", "-y", "-f", p).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -y: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != k.Public {
		t.Fatalf("ssh-keygen says %q, we say %q", got, k.Public)
	}
}

func TestLoadOrCreate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "secret")
	s1, created, err := LoadOrCreate(p)
	if err != nil || !created || len(s1) != 32 {
		t.Fatalf("create: %v %v %d", err, created, len(s1))
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	s2, created, err := LoadOrCreate(p)
	if err != nil || created || !bytes.Equal(s1, s2) {
		t.Fatal("second load differs")
	}
}
