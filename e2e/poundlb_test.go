package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/builder/boot"
	"github.com/applbuild/applbuild/builder/target/raw"
	"github.com/applbuild/applbuild/builder/target/usb"
	"github.com/applbuild/applbuild/internal/testenv"
)

// Bounds of the pound-lb drills: two 1-vCPU guests under TCG.
const (
	poundFormTimeout     = 25 * time.Minute
	poundFailoverTimeout = 5 * time.Minute
	poundRejoinTimeout   = 15 * time.Minute
)

// TestE2EPhysicalPoundLB builds pound-lb's two nodes as raw disks and as
// sticks, and runs each pair as the appliance it is: both nodes booted
// together through their own boot loaders (raw under OVMF, the sticks
// under SeaBIOS) on one LAN, with stand-ins for the web servers pound
// forwards to. The load balancer must answer on its floating address
// with a backend's page; for the raw pair, the node that runs pound then
// loses its power, pound must answer again from the other within
// poundFailoverTimeout, and the dead node must come back and rejoin.
func TestE2EPhysicalPoundLB(t *testing.T) {
	testenv.Slow(t)
	testenv.Root(t)
	testenv.Tools(t, "go", "mmdebstrap", "mke2fs", "debugfs", "e2fsck", "sgdisk", "fsck.vfat", "mkfs.vfat", "mcopy",
		"mksquashfs", "unsquashfs", "bmaptool", "xz", "sha256sum", "qemu-system-x86_64", "qemu-img", "ssh", "ip")
	b := buildPersonality(t, "pound-lb", raw.Name)
	for i := range b.plan.Nodes {
		n := &b.plan.Nodes[i]
		checkRawDisk(t, b, n, filepath.Join(b.dir, n.Name, raw.ImageFile(n)), nil)
	}
	t.Run("raw pair under uefi", func(t *testing.T) { poundPair(t, b, raw.Name, boot.FirmwareUEFI, true) })
	if t.Failed() {
		return
	}
	// The stick pair is another build and another formation (~10 min):
	// make e2e-physical runs it; make e2e (CI) boots scm's stick under
	// OVMF (TestE2EPhysicalUSB) and proves the pair with raw disks. A
	// stick booted by SeaBIOS is proven only here.
	if os.Getenv("APPLBUILD_PHYSICAL_ALL") != "1" {
		t.Log("APPLBUILD_PHYSICAL_ALL=1 (make e2e-physical) also runs the pair from sticks under SeaBIOS")
		return
	}
	sticks := *b
	sticks.dir = sticks.build(t, "pound-lb", usb.Name, filepath.Join(t.TempDir(), "out"))
	for i := range sticks.plan.Nodes {
		checkStick(t, &sticks, &sticks.plan.Nodes[i])
	}
	t.Run("usb pair under bios", func(t *testing.T) { poundPair(t, &sticks, usb.Name, boot.FirmwareBIOS, false) })
}

// poundPair boots the build's two nodes together and checks pound end to
// end through its floating address; with failover, also kills pound's
// node and brings it back.
func poundPair(t *testing.T, b *built, targetName, fw string, failover bool) {
	c, cli := pairUp(t, b, "pound-lb", poundFormTimeout, "--target", targetName, "--firmware", fw)

	// The web servers pound forwards to, outside the cluster: each
	// answers with its own address.
	if b.plan.Pound == nil || len(b.plan.Pound.Backends) == 0 {
		t.Fatal("the plan has no pound backends")
	}
	for _, be := range b.plan.Pound.Backends {
		l, err := c.Listen(t.Context(), be)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "backend %s\n", be)
		})}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
	}
	vip := "http://" + net.JoinHostPort(b.plan.Pound.Listen, fmt.Sprint(b.plan.Pound.Port)) + "/"
	hc := &http.Client{Transport: &http.Transport{DialContext: c.Dial, DisableKeepAlives: true}}
	answers := func(ctx context.Context) (string, error) {
		got, err := httpGet(ctx, hc, vip)
		if err == nil && !strings.HasPrefix(got, "backend ") {
			err = fmt.Errorf("answered %q, not a backend's page", got)
		}
		return strings.TrimSpace(got), err
	}
	// pound marks a backend it could not reach dead for Alive (10 s):
	// the first answers may come before the stand-ins listened.
	var got string
	var err error
	deadline := time.Now().Add(time.Minute)
	for {
		if got, err = answers(t.Context()); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Second)
	}
	if err != nil {
		t.Fatalf("GET %s: %v\n%s", vip, err, diagnoseCluster(t.Context(), c))
	}
	t.Logf("e2e: GET %s through pound: %q", vip, got)
	if !failover {
		return
	}

	st := c.Status(t.Context())
	holder := first(st.Where("pound"))
	if holder == "" {
		t.Fatalf("pound runs nowhere:\n%s", st)
	}
	killed := time.Now()
	if o, err := cli(t.Context(), "kill", "pound-lb", holder); err != nil {
		t.Fatalf("cluster kill: %v\n%s", err, o)
	}
	survivor := other(b, holder)
	fctx, fcancel := context.WithTimeout(t.Context(), poundFailoverTimeout)
	defer fcancel()
	for {
		st := c.Status(fctx)
		where := st.Where("pound")
		if len(where) == 1 && where[0] == survivor {
			if got, err = answers(fctx); err == nil {
				break
			}
		}
		if fctx.Err() != nil {
			t.Fatalf("pound did not answer from %s within %s of %s's power cut (last: %v)\n%s",
				survivor, poundFailoverTimeout, holder, err, diagnoseCluster(t.Context(), c))
		}
		time.Sleep(3 * time.Second)
	}
	t.Logf("e2e: %s lost its power; pound answered from %s %s later: %q", holder, survivor, time.Since(killed).Round(time.Second), got)

	back := time.Now()
	if o, err := cli(t.Context(), "start", "pound-lb", holder); err != nil {
		t.Fatalf("cluster start: %v\n%s", err, o)
	}
	rctx, rcancel := context.WithTimeout(t.Context(), poundRejoinTimeout)
	_, err = c.Wait(rctx, func(time.Duration, string) {})
	rcancel()
	if err != nil {
		t.Fatalf("%s did not rejoin: %v\n%s", holder, err, diagnoseCluster(t.Context(), c))
	}
	if got, err = answers(t.Context()); err != nil {
		t.Errorf("after %s rejoined: GET %s: %v", holder, vip, err)
	}
	t.Logf("e2e: %s rebooted through its firmware and rejoined: %s; pound answers %q", holder, time.Since(back).Round(time.Second), got)
}
