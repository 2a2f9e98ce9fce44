package main

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/builder/pipeline"
	"github.com/applbuild/applbuild/internal/keys"
)

// TestSpecSecretRefused: a spec gets shared; a secret: key in it is a
// mistake with its position, not silently ignored.
func TestSpecSecretRefused(t *testing.T) {
	spec := filepath.Join(t.TempDir(), "mine.yaml")
	if err := os.WriteFile(spec, []byte("extends: web-cluster\nsecret: /root/.config/applbuild/secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "", "plan", spec)
	if code != exitSpec || !strings.Contains(stderr, "mine.yaml:2:1: unknown key \"secret\"") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

// TestBadSecretRefused: a secret that would give weak keys, or is no
// secret file, stops render with the reason (exit 2) and writes nothing.
func TestBadSecretRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for p, why := range map[string]string{
		write("short", []byte("sixteen bytes!!!"), 0o600):                 "it is 16 bytes, want at least 32",
		write("shared", bytes.Repeat([]byte("s"), 32), 0o644):             "its mode 0644 lets others read or change it",
		write("zeros", make([]byte, 32), 0o600):                           "it is all zero bytes",
		write("huge", bytes.Repeat([]byte("s"), keys.MaxSecret+1), 0o600): "it is more than 4096 bytes",
		"/dev/zero": "it is not a regular file",
	} {
		out := filepath.Join(dir, "out")
		code, _, stderr := runCLI(t, "", "render", "web-cluster", "--secret", p, "--out", out)
		if code != exitSpec || !strings.Contains(stderr, p+": unusable site secret: "+why) {
			t.Errorf("--secret %s: exit %d, %q; want exit 2 and %q", p, code, stderr, why)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("--secret %s: render wrote %s", p, out)
		}
	}
}

// TestFingerprintShown: render says which secret it used, by path and
// fingerprint, never by its bytes; the build summary shows it too.
func TestFingerprintShown(t *testing.T) {
	secret := testSecret(t, 'q')
	b, _ := os.ReadFile(secret)
	ring, err := keys.New(b)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "", "render", "scm", "--secret", secret, "--out", filepath.Join(t.TempDir(), "r"))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if want := "site secret " + secret + ", fingerprint " + ring.Fingerprint() + "\n"; !strings.Contains(stderr, want) {
		t.Errorf("stderr %q lacks %q", stderr, want)
	}
	for _, leak := range []string{string(b), string(b[:8]), hex.EncodeToString(b[:8])} {
		if strings.Contains(stdout+stderr, leak) {
			t.Errorf("the secret's bytes are in the output")
		}
	}

	var out bytes.Buffer
	g := &globals{stdout: &out, stderr: &out}
	res := &pipeline.Result{Dir: "/out/scm/xen", Manifest: &pipeline.Manifest{Inputs: pipeline.Inputs{SecretFingerprint: ring.Fingerprint()}}}
	if err := printArtifacts(g, res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "site secret fingerprint "+ring.Fingerprint()+"\n") {
		t.Errorf("build summary:\n%s", out.String())
	}
}
