package disk

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

// lvm2 runs one lvm2 reporting or checking command confined to devs: its
// own LVM_SYSTEM_DIR (so /etc/lvm is neither read nor written), no devices
// file, no udev, no hints, and a filter that rejects every other device.
type lvm2 struct {
	sysDir string
	devs   []string
}

func newLVM2(t *testing.T, devs []string) *lvm2 {
	t.Helper()
	dir := t.TempDir()
	var accept []string
	for _, d := range devs {
		accept = append(accept, fmt.Sprintf(`"a|^%s$|"`, regexp.QuoteMeta(d)))
	}
	filter := "[" + strings.Join(append(accept, `"r|.*|"`), ", ") + "]"
	conf := fmt.Sprintf(`devices {
	filter = %[1]s
	global_filter = %[1]s
	use_devicesfile = 0
	obtain_device_list_from_udev = 0
	external_device_info_source = "none"
	hints = "none"
	scan = [ "/dev" ]
}
global {
	use_lvmpolld = 0
	event_activation = 0
}
activation {
	udev_sync = 0
	udev_rules = 0
	monitoring = 0
}
backup {
	backup = 0
	archive = 0
}
`, filter)
	if err := os.WriteFile(filepath.Join(dir, "lvm.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return &lvm2{sysDir: dir, devs: devs}
}

func (l *lvm2) run(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := run.Cmd{Args: args, Env: []string{"LVM_SYSTEM_DIR=" + l.sysDir, "LVM_SUPPRESS_FD_WARNINGS=1", "LC_ALL=C"}}
	out, err := cmd.Output(ctx)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return string(out)
}

// quiet runs an lvm2 command with stderr folded into stdout and fails the
// test if lvm2 printed any complaint.
func (l *lvm2) quiet(t *testing.T, args ...string) {
	t.Helper()
	out := l.run(t, append([]string{"sh", "-c", `exec "$0" "$@" 2>&1`}, args...)...)
	for _, bad := range []string{"CHECK:", "WARNING", "rror", "ailed", "nvalid", "not found", "issing"} {
		if strings.Contains(out, bad) {
			t.Errorf("%s complained (%q):\n%s", strings.Join(args, " "), bad, out)
			return
		}
	}
}

// report runs an lvm2 reporting command with JSON output and returns the
// rows of its one report.
func (l *lvm2) report(t *testing.T, kind string, args ...string) []map[string]string {
	t.Helper()
	out := l.run(t, append([]string{kind, "--readonly", "--reportformat", "json", "--units", "b", "--nosuffix"}, args...)...)
	var rep struct {
		Report []map[string][]map[string]string `json:"report"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%s: %v\n%s", kind, err, out)
	}
	if len(rep.Report) != 1 {
		t.Fatalf("%s: want one report, got %s", kind, out)
	}
	for _, rows := range rep.Report[0] {
		return rows
	}
	return nil
}

func TestLVM2ReadsOurVG(t *testing.T) {
	testenv.Root(t)
	testenv.Tools(t, "losetup", "pvck", "vgck", "pvs", "vgs", "lvs", "mke2fs", "e2fsck", "debugfs")
	ctx := context.Background()
	dir := t.TempDir()
	start := time.Now()

	lvs := []LV{
		{"root", 1200 * miB}, {"var", 900 * miB}, // var spans pv0 and pv1
		{"log", 64 * miB}, {"home", 128 * miB}, {"srv", 256 * miB},
		{"www", 100 * miB}, {"tmp", 32 * miB}, {"db", 300 * miB},
		{"odd", 50 * miB}, // not a whole number of extents
		{"small", 16 * miB},
	}
	vg := VG{Name: "n1_vg0", Seed: "web-cluster/n1", Time: 1700000000,
		PVs: []PV{{Path: filepath.Join(dir, "pv0.img"), Size: 2 * giB, Device: "/dev/xvdb"},
			{Path: filepath.Join(dir, "pv1.img"), Size: 2 * giB, Device: "/dev/xvdc"}},
		LVs: lvs}
	layout, err := PlanVG(vg)
	if err != nil {
		t.Fatal(err)
	}
	if lv, _ := layout.LV("var"); len(lv.Segments) != 2 {
		t.Fatalf("LV var: want 2 segments across the PVs, got %+v", lv.Segments)
	}
	if err := WritePVs(ctx, layout); err != nil {
		t.Fatal(err)
	}
	for _, lv := range layout.LVs {
		src := filepath.Join(dir, "src-"+lv.Name)
		if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(src, "etc", "whoami"), "lv "+lv.Name+"\n")
		img := filepath.Join(dir, lv.Name+".ext4")
		if err := MakeExt4(ctx, Ext4Options{Path: img, Size: lv.Size, SourceDir: src,
			UUID: UUIDFromSeed(vg.Seed, "fs/"+lv.Name), Label: lv.Name, Time: vg.Time}); err != nil {
			t.Fatal(err)
		}
		if err := WriteLV(ctx, layout, lv.Name, img); err != nil {
			t.Fatal(err)
		}
		os.Remove(img)
	}
	t.Logf("wrote VG with %d LVs in %v", len(lvs), time.Since(start).Round(time.Millisecond))

	devs := map[string]string{} // loop device -> PV file
	var devList []string
	for _, pv := range layout.PVs {
		d := attachLoop(t, pv.Path)
		devs[d] = pv.Path
		devList = append(devList, d)
	}
	l := newLVM2(t, devList)
	for _, d := range devList {
		// --dump headers re-checks every field and CRC and prints
		// "CHECK:" for each one that is wrong.
		l.quiet(t, "pvck", "--dump", "headers", d)
		l.quiet(t, "pvck", "--dump", "metadata", d)
	}
	l.quiet(t, "vgck", "n1_vg0")

	pvRows := l.report(t, "pvs", "-o", "pv_name,vg_name,pv_size,dev_size,pe_start,pv_pe_count,pv_uuid")
	if len(pvRows) != 2 {
		t.Fatalf("pvs: want 2 PVs, got %v", pvRows)
	}
	peStart := map[string]int64{}
	for _, r := range pvRows {
		if r["vg_name"] != "n1_vg0" {
			t.Errorf("pvs: %s in VG %q, want n1_vg0", r["pv_name"], r["vg_name"])
		}
		peStart[r["pv_name"]] = mustInt(t, r["pe_start"])
		i := indexOf(devList, r["pv_name"])
		if i < 0 {
			t.Fatalf("pvs: unknown PV %s", r["pv_name"])
		}
		if want := layout.PVs[i].ID; r["pv_uuid"] != want {
			t.Errorf("pvs: %s uuid %s, want %s", r["pv_name"], r["pv_uuid"], want)
		}
		if got, want := mustInt(t, r["pv_pe_count"]), layout.PVs[i].PECount; got != want {
			t.Errorf("pvs: %s pe_count %d, want %d", r["pv_name"], got, want)
		}
	}

	vgRows := l.report(t, "vgs", "-o", "vg_name,vg_uuid,vg_size,vg_extent_size,pv_count,lv_count,vg_seqno")
	if len(vgRows) != 1 || vgRows[0]["vg_name"] != "n1_vg0" {
		t.Fatalf("vgs: %v", vgRows)
	}
	extent := mustInt(t, vgRows[0]["vg_extent_size"])
	if extent != 4*miB || vgRows[0]["pv_count"] != "2" || vgRows[0]["lv_count"] != strconv.Itoa(len(lvs)) ||
		vgRows[0]["vg_uuid"] != layout.ID {
		t.Errorf("vgs: %v", vgRows[0])
	}

	lvRows := l.report(t, "lvs", "-o", "lv_name,vg_name,lv_size,lv_uuid,seg_start_pe,seg_size_pe,seg_pe_ranges")
	sizes := map[string]int64{}
	type piece struct {
		dev       string
		le, pe, n int64
	}
	pieces := map[string][]piece{}
	for _, r := range lvRows {
		name := r["lv_name"]
		if r["vg_name"] != "n1_vg0" {
			t.Errorf("lvs: %s in VG %q", name, r["vg_name"])
		}
		sizes[name] = mustInt(t, r["lv_size"])
		// seg_pe_ranges is "/dev/loopN:first-last" for a linear segment.
		dev, rng, ok := strings.Cut(r["seg_pe_ranges"], ":")
		first, last, ok2 := strings.Cut(rng, "-")
		if !ok || !ok2 {
			t.Fatalf("lvs: %s: seg_pe_ranges %q", name, r["seg_pe_ranges"])
		}
		p := piece{dev: dev, le: mustInt(t, r["seg_start_pe"]), pe: mustInt(t, first)}
		p.n = mustInt(t, last) - p.pe + 1
		if p.n != mustInt(t, r["seg_size_pe"]) {
			t.Errorf("lvs: %s: range %q disagrees with seg_size_pe %s", name, r["seg_pe_ranges"], r["seg_size_pe"])
		}
		pieces[name] = append(pieces[name], p)
	}
	for _, lv := range layout.LVs {
		if sizes[lv.Name] != lv.Size {
			t.Errorf("lvs: %s is %d bytes, want %d", lv.Name, sizes[lv.Name], lv.Size)
		}
	}
	if len(sizes) != len(lvs) {
		t.Errorf("lvs: got %d LVs, want %d: %v", len(sizes), len(lvs), sizes)
	}
	if len(pieces["var"]) != 2 {
		t.Errorf("lvs: var has %d segments, want 2", len(pieces["var"]))
	}

	// No device-mapper here, so no activation: cut each LV out of the PV
	// files at the offsets lvm2 reports and check the filesystem in it.
	for name, ps := range pieces {
		img := filepath.Join(dir, "extracted-"+name)
		out, err := os.Create(img)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			in, err := os.Open(devs[p.dev])
			if err != nil {
				t.Fatal(err)
			}
			_, err = CopySparse(ctx, out, p.le*extent, in, peStart[p.dev]+p.pe*extent, p.n*extent)
			in.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		out.Close()
		if _, err := run.Output(ctx, "e2fsck", "-fn", img); err != nil {
			t.Errorf("LV %s: %v", name, err)
		}
		got, err := run.Output(ctx, "debugfs", "-R", "cat /etc/whoami", img)
		if err != nil || string(got) != "lv "+name+"\n" {
			t.Errorf("LV %s: /etc/whoami = %q, %v", name, got, err)
		}
		os.Remove(img)
	}
	t.Logf("lvm2 checks done in %v", time.Since(start).Round(time.Millisecond))
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}
