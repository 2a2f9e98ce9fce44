package overlays

import (
	"fmt"
	"io/fs"
	"strings"
)

// adminUID is the admin's uid and gid: the first regular account, as the
// Debian installer would make it.
const adminUID = 1000

// firstbootDir is where the first-boot hooks live (the shared contract).
const firstbootDir = "/usr/lib/applbuild/firstboot.d"

// accounts makes the admin account: sysusers creates it, its ssh keys are
// in place, sudo makes it root, and the first-boot hook sets its password.
func accounts(in Input) ([]File, error) {
	a := in.Plan.Admin
	if a.User == "" {
		return nil, fmt.Errorf("admin.user is empty")
	}
	owner := a.User + ":" + a.User
	home := "/home/" + a.User
	d := struct{ User, Product string }{
		User: a.User,
		// GECOS cannot hold ':' and sysusers' quoted field no '"'.
		Product: strings.NewReplacer(`"`, "", ":", "", `\`, "").Replace(in.Plan.Branding.Product),
	}
	var out []File
	add := func(path string, mode fs.FileMode, name string, data any) error {
		f, err := tmpl(path, mode, name, data)
		if err != nil {
			return err
		}
		out = append(out, f)
		return nil
	}
	if err := add("/usr/lib/sysusers.d/applbuild.conf", 0o644, "sys-sysusers.conf.tmpl",
		struct {
			User, Product string
			UID           int
		}{d.User, d.Product, adminUID}); err != nil {
		return nil, err
	}
	if err := add(firstbootDir+"/10-accounts", 0o755, "sys-10-accounts.tmpl", d); err != nil {
		return nil, err
	}
	out = append(out, directory(home, 0o750, owner))
	if len(a.Keys) > 0 {
		out = append(out,
			directory(home+"/.ssh", 0o700, owner),
			File{Path: home + "/.ssh/authorized_keys", Mode: 0o600, Owner: owner,
				Data: []byte(strings.Join(a.Keys, "\n") + "\n")})
	}
	// 10-accounts feeds "user:hash" lines to chpasswd, and each key is one
	// line of authorized_keys: a colon or newline there would add a user
	// or an unrestricted key.
	for _, k := range a.Keys {
		if _, err := line(k); err != nil {
			return nil, fmt.Errorf("admin.keys: %w", err)
		}
	}
	if strings.ContainsAny(a.User, ":\n") {
		return nil, fmt.Errorf("admin.user %q: a colon or newline would add a line to chpasswd's input", a.User)
	}
	if _, err := line(a.PasswordHash); err != nil || strings.ContainsAny(a.PasswordHash, ": ") {
		return nil, fmt.Errorf("admin.password_hash: want one crypt(3) hash, without colon, blank or newline (it feeds chpasswd -e)")
	}
	if a.PasswordHash != "" {
		// Read and removed by 10-accounts; 0600 like the shadow entry it becomes.
		out = append(out, text("/etc/applbuild/admin.passwd-hash", 0o600, a.PasswordHash+"\n"))
	} else if err := add("/etc/sudoers.d/applbuild", 0o440, "sys-sudoers.tmpl", d); err != nil {
		return nil, err
	}
	return out, nil
}
