package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/applbuild/applbuild/builder/boot"
	"github.com/applbuild/applbuild/personalities"
)

func newBootCmd(g *globals) *cobra.Command {
	var (
		node     string
		memory   string
		cpus     int
		forwards []string
		timeout  time.Duration
		command  string
		quiet    bool
		kargs    []string
		cpu      string
		firmware string
	)
	cmd := &cobra.Command{
		Use:   "boot DIR --node NODE | IMAGE [--firmware bios|uefi|uefi-secure]",
		Short: "Test-drive one node's images under QEMU",
		Long: `boot starts one node of a build under QEMU.

A Xen disk set (DIR is OUT/<personality>/xen) boots without Xen: the
kernel and initramfs are read out of the node's disk.img. A raw disk
(OUT/<personality>/raw/<node>/<node>.img, or its directory) boots through
its own boot loader, as a physical machine would: --firmware bios
(SeaBIOS, the default), uefi (OVMF) or uefi-secure (OVMF with Secure Boot
enforced and Microsoft's keys enrolled: Debian's signed shim, GRUB and
kernel must verify).

Every image is attached through a temporary copy-on-write overlay (the
build output is never written), and the node sits on QEMU's user network
numbered like its LAN, so its own static address works.

The console is printed as the node boots. When the login prompt appears,
boot prints how to reach the node: its ssh port (root logs in with the
cluster key the image carries) and the forwarded ports on 127.0.0.1. The
node sees no network beyond those ports: peers it waits for never answer.

Ctrl-C stops the node and removes the overlays. With --run, boot runs the
command on the node over ssh once it is up, prints its output and stops.

QEMU runs without KVM where there is none: expect minutes to boot.`,
		Example: `  applbuild boot out/web-cluster/xen --node n1
  applbuild boot out/web-cluster/xen --node n1 --memory 2G --forward 18080:8080
  applbuild boot out/web-cluster/xen --node n1 --run 'crm_mon -1' --quiet
  applbuild boot out/scm/raw/scm1/scm1.img --firmware uefi-secure`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			mem, err := personalities.ParseSize(memory)
			if err != nil {
				return usageError{fmt.Errorf("--memory %q: %w", memory, err)}
			}
			var fwds []boot.Forward
			for _, s := range forwards {
				f, err := boot.ParseForward(s)
				if err != nil {
					return usageError{err}
				}
				fwds = append(fwds, f)
			}
			m, err := boot.Discover(ctx, args[0], node)
			if err != nil {
				return err
			}
			if firmware != "" {
				if m.Firmware == "" {
					return usageError{fmt.Errorf("--firmware %s: %s is a Xen disk set, which has no boot loader of its own (its dom0's pvgrub2 boots it)", firmware, args[0])}
				}
				if !slices.Contains(boot.Firmwares, firmware) {
					return usageError{fmt.Errorf("--firmware %q: want %s", firmware, strings.Join(boot.Firmwares, ", "))}
				}
				m.Firmware = firmware
			}
			o := boot.Options{Memory: int64(mem), CPUs: cpus, CPU: cpu, Forwards: fwds, KernelArgs: kargs}
			if !quiet {
				o.Console = g.stdout
			}
			how := "its kernel"
			if m.Firmware != "" {
				how = m.Firmware + " firmware"
			}
			fmt.Fprintf(g.stderr, "booting %s (%s) from %s under QEMU (%s), %s of memory\n", m.Name, m.Address.Addr(), strings.Join(m.Disks, ", "), how, memory)
			vm, err := boot.Start(ctx, m, o)
			if err != nil {
				return err
			}
			defer vm.Stop()

			wctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("--timeout %s", timeout))
			defer cancel()
			if _, took, err := vm.WaitConsole(wctx, boot.LoginPrompt); err != nil {
				return interrupted(ctx, err)
			} else {
				fmt.Fprintf(g.stderr, "%s: login prompt after %s\n", m.Name, took.Round(time.Second))
			}
			if vm.KeyFile != "" {
				took, err := vm.WaitSSH(wctx)
				if err != nil {
					return interrupted(ctx, err)
				}
				fmt.Fprintf(g.stderr, "%s: root's ssh login works after %s:\n  %s\n", m.Name, took.Round(time.Second), shellJoin(vm.SSHArgs("")))
			}
			for _, f := range fwds {
				fmt.Fprintf(g.stderr, "  guest port %d: 127.0.0.1:%d\n", f.Guest, vm.HostPort(f.Guest))
			}
			if command != "" {
				out, err := vm.SSH(ctx, command)
				g.stdout.Write(out)
				return interrupted(ctx, err)
			}
			fmt.Fprintln(g.stderr, "Ctrl-C stops it.")
			select {
			case <-ctx.Done():
				fmt.Fprintf(g.stderr, "stopping %s\n", m.Name)
				return nil
			case <-vm.Exited():
				return fmt.Errorf("%s powered off or QEMU exited", m.Name)
			}
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the `NODE` to boot (a subdirectory of DIR)")
	cmd.Flags().StringVar(&memory, "memory", "1G", "guest memory `SIZE`")
	cmd.Flags().IntVar(&cpus, "cpus", 2, "virtual CPUs")
	cmd.Flags().StringArrayVar(&forwards, "forward", nil, "forward `HOSTPORT:GUESTPORT` from 127.0.0.1 to the node (repeatable; ssh is always forwarded)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait for the login prompt and ssh")
	cmd.Flags().StringVar(&command, "run", "", "run `COMMAND` on the node over ssh once it is up, then stop")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "do not print the console")
	cmd.Flags().StringArrayVar(&kargs, "kernel-arg", nil, "append `ARG` to the kernel command line (repeatable), e.g. systemd.setenv=APPLBUILD_GLUSTER_TIMEOUT=30")
	cmd.Flags().StringVar(&cpu, "cpu", boot.DefaultCPU, "QEMU's -cpu `MODEL`")
	cmd.Flags().StringVar(&firmware, "firmware", "", "boot a raw disk with `FIRMWARE`: bios, uefi or uefi-secure (default bios)")
	return cmd
}

// interrupted turns the error of a wait cut short by Ctrl-C into a plain
// stop: the user asked for it.
func interrupted(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		var be *boot.BootError
		if errors.As(err, &be) || errors.Is(err, context.Canceled) {
			return nil
		}
	}
	return err
}

// shellJoin quotes args for a POSIX shell where needed.
func shellJoin(args []string) string {
	var out []string
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`;&|<>()*?[]#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}
