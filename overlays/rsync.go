package overlays

// The rsync generator: the DR daemon on the global volume, its defaults,
// the locked rsync account and the DR client's pull.

import (
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/applbuild/applbuild/builder"
)

const (
	// 10- sorts before the pacemaker generator's 50-applbuild-pacemaker.conf:
	// this drop-in resets ConditionPathExists, which must not drop the
	// condition that keeps rsync for Pacemaker alone.
	rsyncDropIn   = "/etc/systemd/system/rsync.service.d/10-applbuild.conf"
	rsyncSysusers = "/usr/lib/sysusers.d/applbuild-rsync.conf"
	drClientDir   = "/usr/share/applbuild/dr-client"
	// rsyncSSHLock is the daemon-over-ssh's own lock file: the root daemon's
	// is not writable by the rsync account.
	rsyncSSHLock = "/run/lock/rsyncd-ssh"
)

type rsyncData struct {
	Plan      *builder.Plan
	R         *builder.Rsync
	ConfigDir string
}

func rsync(in Input) ([]File, error) {
	r := in.Plan.Rsync
	if r == nil {
		return nil, nil
	}
	d := rsyncData{Plan: in.Plan, R: r, ConfigDir: path.Dir(r.Config)}
	var files []File
	for _, t := range []struct {
		path string
		mode fs.FileMode
		tmpl string
	}{
		{r.Config, 0o644, "rsyncd.conf.tmpl"},
		{"/etc/default/rsync", 0o644, "rsync-default.tmpl"},
		{rsyncDropIn, 0o644, "rsync-service-dropin.conf.tmpl"},
		{rsyncSysusers, 0o644, "rsync-sysusers.conf.tmpl"},
		{drClientDir + "/applbuild-dr-pull", 0o755, "rsync-dr-pull.sh.tmpl"},
		{drClientDir + "/applbuild-dr-pull.service", 0o644, "rsync-dr-pull.service.tmpl"},
		{drClientDir + "/applbuild-dr-pull.timer", 0o644, "rsync-dr-pull.timer.tmpl"},
		{drClientDir + "/README", 0o644, "rsync-dr-README.tmpl"},
	} {
		f, err := tmpl(t.path, t.mode, t.tmpl, d)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	home := directory(r.Home, 0o750, "rsync:rsync")
	ssh := directory(r.Home+"/.ssh", 0o700, "rsync:rsync")
	files = append(files, home, ssh)
	if key := strings.TrimSpace(r.DRKey); key != "" {
		// One line of authorized_keys: a newline would add a key without
		// the forced command; a quote in the config path would end it.
		if _, err := line(key); err != nil {
			return nil, fmt.Errorf("rsync.dr_key: %w", err)
		}
		if _, err := word(r.Config); err != nil {
			return nil, fmt.Errorf("rsync config %w", err)
		}
		files = append(files, File{Path: r.Home + "/.ssh/authorized_keys", Mode: 0o600, Owner: "rsync:rsync",
			Data: []byte(rsyncAuthorizedKey(r, key) + "\n")})
	}
	return files, nil
}

// rsyncForcedCommand is all the DR client's key may run: a read-only rsync
// daemon over ssh, reading the cluster's rsyncd.conf. The account is not
// root, so the modules' chroot is off and the lock file its own.
func rsyncForcedCommand(r *builder.Rsync) string {
	return fmt.Sprintf("rsync --server --daemon --config=%s --dparam='use chroot=no' --dparam='lock file=%s' .", r.Config, rsyncSSHLock)
}

// rsyncAuthorizedKey restricts key to the forced command: no pty, no
// forwarding, no ~/.ssh/rc.
func rsyncAuthorizedKey(r *builder.Rsync, key string) string {
	return fmt.Sprintf("restrict,command=\"%s\" %s", rsyncForcedCommand(r), key)
}
