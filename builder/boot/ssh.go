package boot

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/applbuild/applbuild/internal/run"
)

// SSHArgs is the ssh command line that runs command on the guest as root
// with Machine.SSHKey (an interactive login when command is ""). The
// guest's host key is not checked: it is the image's own, and the port is
// a fresh loopback forward.
func (v *VM) SSHArgs(command string) []string {
	args := []string{"ssh",
		"-i", v.KeyFile, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR", "-o", "ConnectTimeout=90",
		"-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=6",
		"-p", strconv.Itoa(v.HostPort(22)), "root@127.0.0.1"}
	if command != "" {
		args = append(args, "--", command)
	}
	return args
}

// SSH runs command on the guest as root and returns its standard output;
// a failure carries the exit status and standard error.
func (v *VM) SSH(ctx context.Context, command string) ([]byte, error) {
	if v.KeyFile == "" {
		return nil, fmt.Errorf("ssh %s: no key for root (Machine.SSHKey)", v.Machine.Name)
	}
	return run.Output(ctx, v.SSHArgs(command)...)
}

// WaitSSH waits until root can log in over ssh, retrying every few
// seconds: sshd starts late in a boot, and slowly under emulation.
func (v *VM) WaitSSH(ctx context.Context) (time.Duration, error) {
	var last error
	for {
		// A slow guest (a stick's root read through squashfs under
		// emulation) can take over a minute to send sshd's banner: each
		// try waits for it rather than giving up and trying again.
		cctx, cancel := context.WithTimeout(ctx, 120*time.Second)
		_, err := v.SSH(cctx, "true")
		cancel()
		if err == nil {
			return time.Since(v.Started), nil
		}
		if errors.Is(err, run.ErrMissing) {
			return 0, err
		}
		last = err
		select {
		case <-ctx.Done():
			be := v.bootError("root's ssh login", fmt.Sprintf("%v after %s (last try: %v)", context.Cause(ctx), time.Since(v.Started).Round(time.Second), last))
			return 0, be
		case <-v.exited:
			return 0, v.bootError("root's ssh login", "QEMU exited ("+v.exitReason()+")")
		case <-time.After(3 * time.Second):
		}
	}
}

// WaitActive waits until unit is active in the guest (systemctl
// is-active, over ssh) and returns how long after Start that was seen.
// The console cannot tell: systemd stops writing status lines to it once
// a getty owns it, before multi-user.target is reached.
func (v *VM) WaitActive(ctx context.Context, unit string) (time.Duration, error) {
	var last string
	for {
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		out, err := v.SSH(cctx, "systemctl is-active "+unit)
		cancel()
		state := strings.TrimSpace(string(out))
		if err == nil && state == "active" {
			return time.Since(v.Started), nil
		}
		if errors.Is(err, run.ErrMissing) {
			return 0, err
		}
		last = state
		if err != nil && state == "" {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return 0, v.bootError(unit, fmt.Sprintf("%v after %s (last state: %s)", context.Cause(ctx), time.Since(v.Started).Round(time.Second), last))
		case <-v.exited:
			return 0, v.bootError(unit, "QEMU exited ("+v.exitReason()+")")
		case <-time.After(3 * time.Second):
		}
	}
}
