package overlays

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

func hasFencing(pl *builder.Plan) bool { return pl.Fencing != nil }

// TestFencingFiles: a plan with a quorum device gets sbd's configuration,
// the watchdog step before it and the units enabled as systemctl enable
// would; the DRBD pairs are such plans, and no other plan gets any of it.
func TestFencingFiles(t *testing.T) {
	fenced := personalitiesWith(t, "fencing", hasFencing)
	for _, name := range personalitiesWith(t, "DRBD", hasDRBD) {
		if !strings.Contains(" "+strings.Join(fenced, " ")+" ", " "+name+" ") {
			t.Errorf("%s has DRBD but no fencing", name)
		}
	}
	for _, name := range fenced {
		pl := planFor(t, name)
		for _, n := range pl.Nodes {
			files := renderNode(t, pl, n.Name)
			sbd := string(mustFile(t, files, sbdDefaultsPath).Data)
			out, err := exec.Command("sh", "-c", `set -eu; . "$1"; printf '%s %s %s %s %s' "$SBD_PACEMAKER" "$SBD_WATCHDOG_DEV" "$SBD_WATCHDOG_TIMEOUT" "${SBD_DEVICE-none}" "$SBD_SYNC_RESOURCE_STARTUP"`,
				"sh", writeTemp(t, "sbd", sbd)).CombinedOutput()
			if want := fmt.Sprintf("yes /dev/watchdog %d none no", pl.Fencing.WatchdogTimeout); err != nil || string(out) != want {
				t.Errorf("%s: /etc/default/sbd reads as %q (%v), want %q", n.Name, out, err, want)
			}
			for _, p := range []string{watchdogPath, fencePeerPath, cibadminShim} {
				if f := mustFile(t, files, p); f.Mode != 0o755 {
					t.Errorf("%s: mode %v", f.Path, f.Mode)
				}
			}
			if h := string(mustFile(t, files, fencePeerPath).Data); !strings.Contains(h, "exec /usr/lib/drbd/crm-fence-peer.sh \"$@\"") {
				t.Errorf("the fence-peer handler does not run crm-fence-peer.sh:\n%s", h)
			}
			if d := string(mustFile(t, files, sbdDropIn).Data); !strings.Contains(d, "ExecStartPre="+watchdogPath+"\n") {
				t.Errorf("%s: the sbd drop-in does not run the watchdog step:\n%s", n.Name, d)
			}
			for link, target := range map[string]string{
				"/etc/systemd/system/corosync.service.requires/sbd.service":            "/lib/systemd/system/sbd.service",
				"/etc/systemd/system/pacemaker.service.requires/sbd.service":           "/lib/systemd/system/sbd.service",
				"/etc/systemd/system/multi-user.target.wants/corosync-qdevice.service": "/lib/systemd/system/corosync-qdevice.service",
			} {
				if f := mustFile(t, files, link); f.Link != target {
					t.Errorf("%s -> %q, want %q", link, f.Link, target)
				}
			}
		}
	}
	for _, name := range []string{"web-cluster", "pound-lb", "puppet-ha"} {
		if _, ok := renderNode(t, planFor(t, name), "n1")[sbdDefaultsPath]; ok {
			t.Errorf("%s (no quorum device) gets sbd", name)
		}
	}
}

// TestWatchdogStep runs the watchdog step with its paths moved into a
// temporary directory and udevadm and modprobe stubbed: a modprobe that
// works creates the device (a character device, as the kernel's).
func TestWatchdogStep(t *testing.T) {
	testenv.Root(t) // mknod
	testenv.Tools(t, "sh", "shellcheck", "mknod")
	pl := planFor(t, "mysql-ha")
	script := mustFile(t, renderNode(t, pl, "n1"), watchdogPath).Data
	p := writeTemp(t, "watchdog", string(script))
	if out, err := run.Output(context.Background(), "shellcheck", "--shell=sh", "--severity=style", p); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name       string
		present    bool   // the device is there before the step
		hypervisor string // what /sys/hypervisor/type says
		loads      string // the module whose modprobe makes the device
		wantExit   int
		wantStatus string
		wantCalls  string
	}{
		{"hardware", true, "", "", 0, "watchdog=i6300ESB timer", ""},
		{"xen", false, "xen", "xen_wdt", 0, "watchdog=i6300ESB timer", "xen_wdt\n"},
		{"softdog", false, "", "softdog", 0, "watchdog=i6300ESB timer", "softdog\n"},
		{"xen falls back", false, "xen", "softdog", 0, "watchdog=i6300ESB timer", "xen_wdt\nsoftdog\n"},
		{"none", false, "", "", 1, "watchdog=failed: no watchdog device", "softdog\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "bin")
			os.Mkdir(bin, 0o755)
			dev := filepath.Join(dir, "watchdog")
			write := func(name, s string, mode os.FileMode) {
				if err := os.WriteFile(name, []byte(s), mode); err != nil {
					t.Fatal(err)
				}
			}
			write(filepath.Join(bin, "udevadm"), "#!/bin/sh\nexit 0\n", 0o755)
			write(filepath.Join(bin, "modprobe"), fmt.Sprintf("#!/bin/sh\necho \"$1\" >>%q\n[ \"$1\" = %q ] && exec mknod %q c 1 3\nexit 1\n",
				filepath.Join(dir, "calls"), tc.loads, dev), 0o755)
			write(filepath.Join(dir, "hypervisor"), tc.hypervisor+"\n", 0o644)
			write(filepath.Join(dir, "identity"), "i6300ESB timer\n", 0o644)
			write(filepath.Join(dir, "status"), "gluster=done\n", 0o644)
			if tc.present {
				if err := exec.Command("mknod", dev, "c", "1", "3").Run(); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command("sh", p)
			cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "APPLBUILD_STATUS=" + filepath.Join(dir, "status"),
				"APPLBUILD_WATCHDOG_DEV=" + dev, "APPLBUILD_HYPERVISOR=" + filepath.Join(dir, "hypervisor"),
				"APPLBUILD_WATCHDOG_IDENTITY=" + filepath.Join(dir, "identity"), "APPLBUILD_WATCHDOG_WAIT=1"}
			out, err := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != tc.wantExit {
				t.Errorf("exit %d (%v), want %d:\n%s", code, err, tc.wantExit, out)
			}
			st, _ := os.ReadFile(filepath.Join(dir, "status"))
			if want := "gluster=done\n" + tc.wantStatus + "\n"; string(st) != want {
				t.Errorf("status file %q, want %q", st, want)
			}
			calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
			if string(calls) != tc.wantCalls {
				t.Errorf("modprobe calls %q, want %q", calls, tc.wantCalls)
			}
		})
	}
}

// TestCibadminShim: a query's node states come back in the words
// crm-fence-peer.sh knows, with cibadmin's exit status; anything else is
// passed through untouched. The "real" cibadmin is a stub printing
// Pacemaker 3's status section (as a trixie node's held it, fenced n1).
func TestCibadminShim(t *testing.T) {
	testenv.Tools(t, "bash", "sed", "shellcheck")
	pl := planFor(t, "mysql-ha")
	shim := writeTemp(t, "cibadmin", string(mustFile(t, renderNode(t, pl, "n1"), cibadminShim).Data))
	if out, err := run.Output(context.Background(), "shellcheck", "--shell=bash", "--severity=style", shim); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
	const pcmk3 = `<node_state id="2" uname="n2" in_ccm="1796281612" crmd="1796281612" join="member" expected="member">
<node_state id="1" uname="n1" in_ccm="0" crmd="0" crm-debug-origin="send_stonith_update" join="down" expected="down"/>`
	stub := writeTemp(t, "real", "#!/bin/sh\necho \"args: $*\"\ncat <<'X'\n"+pcmk3+"\nX\nexit ${STUB_EXIT:-0}\n")
	for _, tc := range []struct {
		args []string
		exit string
		want string
	}{
		{[]string{"-Ql"}, "0", `args: -Ql
<node_state id="2" uname="n2" in_ccm="true" crmd="online" join="member" expected="member">
<node_state id="1" uname="n1" in_ccm="false" crmd="offline" crm-debug-origin="send_stonith_update" join="down" expected="down"/>`},
		{[]string{"-Q", "-t", "5"}, "105", `args: -Q -t 5
<node_state id="2" uname="n2" in_ccm="true" crmd="online" join="member" expected="member">
<node_state id="1" uname="n1" in_ccm="false" crmd="offline" crm-debug-origin="send_stonith_update" join="down" expected="down"/>`},
		{[]string{"-C", "-o", "constraints", "-X", "<x/>"}, "21", "args: -C -o constraints -X <x/>\n" + pcmk3},
	} {
		cmd := exec.Command("bash", append([]string{shim}, tc.args...)...)
		cmd.Env = append(os.Environ(), "APPLBUILD_CIBADMIN="+stub, "STUB_EXIT="+tc.exit)
		out, _ := cmd.Output()
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("cibadmin %v:\n got %s\nwant %s", tc.args, got, tc.want)
		}
		if code := fmt.Sprint(cmd.ProcessState.ExitCode()); code != tc.exit {
			t.Errorf("cibadmin %v exits %s, want %s", tc.args, code, tc.exit)
		}
	}
}

func writeTemp(t *testing.T, name, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
