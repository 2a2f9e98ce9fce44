package main

import (
	"bytes"
	"fmt"
	"os"
	"os/user"
	"path/filepath"

	"github.com/applbuild/applbuild/personalities"
)

// defaultKeyFiles are the public keys tried, in this order, for a spec
// that names no admin key: ssh-keygen's default names.
var defaultKeyFiles = []string{"id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"}

// invokingUserHome is the home of the user who ran applbuild: under sudo,
// SUDO_USER's, not root's.
func invokingUserHome(getenv func(string) string, lookup func(string) (*user.User, error)) string {
	if su := getenv("SUDO_USER"); su != "" && su != "root" {
		if u, err := lookup(su); err == nil {
			return u.HomeDir
		}
	}
	return getenv("HOME")
}

// invokingUserKey is the first default public key in home's ~/.ssh that
// passes the spec's rule for admin keys: its path and line, or "".
func invokingUserKey(home string) (path, key string) {
	if home == "" {
		return "", ""
	}
	for _, name := range defaultKeyFiles {
		p := filepath.Join(home, ".ssh", name)
		b, err := os.ReadFile(p)
		if err != nil || len(b) > 16*1024 {
			continue
		}
		line := string(bytes.TrimSpace(b))
		if personalities.CheckSSHKey(line) == "" {
			return p, line
		}
	}
	return "", ""
}

// defaultAdminKey gives a spec whose admin has neither key nor password
// the invoking user's own public key, so that a build with the defaults
// has a way in; it says what it did, or that there is no way in.
func defaultAdminKey(g *globals, spec *personalities.Spec) {
	if len(spec.Admin.Keys) > 0 || spec.Admin.PasswordHash != "" {
		return
	}
	home := invokingUserHome(os.Getenv, user.Lookup)
	p, key := invokingUserKey(home)
	if key == "" {
		fmt.Fprintf(g.stderr, "warning: admin %s has no ssh key and no password, and %s/.ssh has no public key to give it: "+
			"only the console lets anyone in (set admin.keys, or run ssh-keygen and build again)\n", spec.Admin.User, home)
		return
	}
	spec.Admin.Keys = []string{key}
	fmt.Fprintf(g.stderr, "admin: the spec names no key; admin %s logs in with your %s\n", spec.Admin.User, p)
}
