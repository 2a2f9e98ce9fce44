package keys

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/applbuild/applbuild/internal/testenv"
)

func TestDeterministicAndSeparated(t *testing.T) {
	a, _ := New([]byte("0123456789abcdef0123456789abcdef"))
	b, _ := New([]byte("0123456789abcdef0123456789abcdef"))
	c, _ := New([]byte("fedcba9876543210fedcba9876543210"))
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
	r, _ := New([]byte("0123456789abcdef0123456789abcdef"))
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

// TestLoadRefuses: every secret that would make weak or shared keys, or
// that is no secret at all, is refused with the reason.
func TestLoadRefuses(t *testing.T) {
	dir := t.TempDir()
	good := bytes.Repeat([]byte("k"), 32)
	files := []struct {
		name string
		data []byte
		mode os.FileMode
		why  string
	}{
		{"short", good[:31], 0o600, "it is 31 bytes, want at least 32"},
		{"zeros", make([]byte, 64), 0o600, "it is all zero bytes"},
		{"big", bytes.Repeat([]byte("k"), MaxSecret+1), 0o600, "it is more than 4096 bytes"},
		{"group", good, 0o640, "its mode 0640 lets others read or change it: chmod 600"},
		{"world", good, 0o604, "its mode 0604 lets others read"},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{dir: "it is not a regular file", fifo: "it is not a regular file", "/dev/zero": "it is not a regular file"}
	for _, f := range files {
		cases[filepath.Join(dir, f.name)] = f.why
	}
	for p, why := range cases {
		done := make(chan error, 1)
		go func() { _, err := Load(p); done <- err }()
		var err error
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Load(%s) hangs", p)
		}
		if !errors.Is(err, ErrBadSecret) || !strings.Contains(err.Error(), why) || !strings.HasPrefix(err.Error(), p+": ") {
			t.Errorf("Load(%s) = %v, want %q", p, err, why)
		}
		if _, _, err := LoadOrCreate(p); !errors.Is(err, ErrBadSecret) {
			t.Errorf("LoadOrCreate(%s) = %v, want it refused too", p, err)
		}
	}
	ok := filepath.Join(dir, "ok")
	if err := os.WriteFile(ok, good, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(ok, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{ok, link} {
		if b, err := Load(p); err != nil || !bytes.Equal(b, good) {
			t.Errorf("Load(%s) = %q, %v", p, b, err)
		}
	}
}

// TestFingerprint names a secret without giving it away: stable, 16 hex
// digits, other for another secret, the same on a cluster's ring.
func TestFingerprint(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a, _ := New(secret)
	b, _ := New(secret)
	c, _ := New([]byte("fedcba9876543210fedcba9876543210"))
	fp := a.Fingerprint()
	if len(fp) != 16 || strings.Trim(fp, "0123456789abcdef") != "" {
		t.Fatalf("fingerprint %q: want 16 hex digits", fp)
	}
	if fp != b.Fingerprint() || fp == c.Fingerprint() || a.Cluster("x").Fingerprint() != fp {
		t.Errorf("fingerprints: %s %s %s %s", fp, b.Fingerprint(), c.Fingerprint(), a.Cluster("x").Fingerprint())
	}
	// Not a key derived from the secret: a label collision cannot leak one.
	if fp == hex.EncodeToString(a.Bytes("", 8)) || strings.Contains(fp, hex.EncodeToString(secret[:4])) {
		t.Error("fingerprint looks derived like a key")
	}
}

// TestRSA: the same ring and label give the same valid key, another label
// or ring another; OpenSSL reads it and finds it consistent.
func TestRSA(t *testing.T) {
	site, _ := New([]byte("0123456789abcdef0123456789abcdef"))
	r1, r2 := site.Cluster("lab-seed"), site.Cluster("prod-seed")
	derive := func(r *Ring, label string, bits int) *rsa.PrivateKey {
		t.Helper()
		start := time.Now()
		k, err := r.RSA(label, bits)
		if err != nil {
			t.Fatal(err)
		}
		if k.N.BitLen() != bits {
			t.Fatalf("%s: %d bits, want %d", label, k.N.BitLen(), bits)
		}
		t.Logf("%s: %d bits in %s", label, bits, time.Since(start).Round(time.Millisecond))
		return k
	}
	a := derive(r1, "a", 2048)
	rsaCache.Clear() // derive it again, not from the cache
	if again := derive(r1, "a", 2048); !a.Equal(again) {
		t.Fatal("not reproducible")
	}
	if b, prod := derive(r1, "b", 2048), derive(r2, "a", 2048); a.N.Cmp(b.N) == 0 || a.N.Cmp(prod.N) == 0 {
		t.Fatal("two labels or two rings gave one key")
	}
	if _, err := r1.RSA("x", 1024); err == nil {
		t.Error("a 1024-bit key was derived")
	}
	big := derive(r1, "ca", 4096)
	testenv.Tools(t, "openssl")
	f := filepath.Join(t.TempDir(), "k.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(big)}), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("openssl", "rsa", "-in", f, "-check", "-noout").CombinedOutput(); err != nil || !strings.Contains(string(out), "RSA key ok") {
		t.Fatalf("openssl rsa -check: %v\n%s", err, out)
	}
}
