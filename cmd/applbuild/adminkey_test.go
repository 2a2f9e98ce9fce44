package main

import (
	"bytes"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/personalities"
)

const testPub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ8hS3Qd7B0m1sVqC0uE2rT3n9rYb0v0x5i7v3ZpQm0F me@laptop"

func TestInvokingUserHome(t *testing.T) {
	env := map[string]string{"HOME": "/root", "SUDO_USER": "alice"}
	lookup := func(name string) (*user.User, error) {
		if name == "alice" {
			return &user.User{HomeDir: "/home/alice"}, nil
		}
		return nil, errors.New("no such user")
	}
	get := func(k string) string { return env[k] }
	if h := invokingUserHome(get, lookup); h != "/home/alice" {
		t.Errorf("under sudo: %q, want SUDO_USER's home", h)
	}
	env["SUDO_USER"] = "bob"
	if h := invokingUserHome(get, lookup); h != "/root" {
		t.Errorf("unknown SUDO_USER: %q, want $HOME", h)
	}
	delete(env, "SUDO_USER")
	if h := invokingUserHome(get, lookup); h != "/root" {
		t.Errorf("no sudo: %q", h)
	}
}

func TestDefaultAdminKey(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SUDO_USER", "")
	var stderr bytes.Buffer
	g := &globals{stderr: &stderr}

	// No key anywhere: a warning that says there is no way in.
	spec := &personalities.Spec{Admin: personalities.Admin{User: "admin"}}
	defaultAdminKey(g, spec)
	if len(spec.Admin.Keys) != 0 || !strings.Contains(stderr.String(), "only the console lets anyone in") {
		t.Errorf("keys %v, stderr %q", spec.Admin.Keys, stderr.String())
	}

	// A broken key file is skipped; the next default name is used.
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	os.WriteFile(filepath.Join(home, ".ssh", "id_ed25519.pub"), []byte("ssh-ed25519 !!!not-base64\n"), 0o644)
	os.WriteFile(filepath.Join(home, ".ssh", "id_rsa.pub"), []byte(testPub+"\n"), 0o644)
	stderr.Reset()
	defaultAdminKey(g, spec)
	if len(spec.Admin.Keys) != 1 || spec.Admin.Keys[0] != testPub {
		t.Fatalf("keys %v", spec.Admin.Keys)
	}
	if !strings.Contains(stderr.String(), "admin admin logs in with your "+filepath.Join(home, ".ssh", "id_rsa.pub")) {
		t.Errorf("the build does not say which key: %q", stderr.String())
	}

	// A spec with its own key or a password keeps it.
	mine := &personalities.Spec{Admin: personalities.Admin{User: "admin", Keys: []string{"ssh-ed25519 AAAA x"}}}
	defaultAdminKey(g, mine)
	if len(mine.Admin.Keys) != 1 || mine.Admin.Keys[0] != "ssh-ed25519 AAAA x" {
		t.Errorf("the spec's own key was replaced: %v", mine.Admin.Keys)
	}
	pw := &personalities.Spec{Admin: personalities.Admin{User: "admin", PasswordHash: "$6$x$y"}}
	defaultAdminKey(g, pw)
	if len(pw.Admin.Keys) != 0 {
		t.Errorf("a spec with a password got a key: %v", pw.Admin.Keys)
	}
}
