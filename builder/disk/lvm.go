package disk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"strings"
	"time"
)

// VG is a volume group to write: its PVs (image files) and its LVs, which
// are allocated linearly, in order, across the PVs.
type VG struct {
	Name string
	// Seed gives every id (VG, PV, LV) deterministically; "" means Name.
	Seed string
	// ExtentSize in bytes; 0 means 4 MiB, lvm2's default.
	ExtentSize int64
	// Time is the creation time (unix seconds) written into the metadata.
	Time int64
	// Host is the creation_host written into the metadata; "" means
	// "applbuild".
	Host string
	PVs  []PV
	LVs  []LV
}

// PV is one physical volume image file.
type PV struct {
	Path   string
	Size   int64  // bytes, a multiple of 512
	Device string // optional device hint for the metadata ("/dev/xvdb")
}

// LV is one logical volume; Size is rounded up to whole extents.
type LV struct {
	Name string
	Size int64
}

// Layout is a planned VG: every offset WritePVs and WriteLV need.
type Layout struct {
	VG         VG // as given, with defaults filled in
	ID         string
	ExtentSize int64
	PVs        []PVLayout
	LVs        []LVLayout
}

// PVLayout places one PV's areas. Offsets are bytes from the file's start.
type PVLayout struct {
	Path     string
	Size     int64
	Device   string
	ID       string // formatted lvm id
	MDAStart int64  // metadata area (header sector + text)
	MDASize  int64
	PEStart  int64 // first extent
	PECount  int64
}

// LVLayout is one LV and where its extents live.
type LVLayout struct {
	Name     string
	ID       string
	Size     int64 // bytes, whole extents
	Extents  int64
	Segments []Segment
}

// Segment is a run of an LV's extents on one PV.
type Segment struct {
	PV          int   // index into Layout.PVs
	StartExtent int64 // first LV extent of the run
	PVExtent    int64 // first PV extent of the run
	Extents     int64
	LVOffset    int64 // byte offset in the LV
	Offset      int64 // byte offset in the PV file
	Length      int64 // bytes
}

// On-disk constants of the lvm2 text format (lib/format_text/layout.h,
// lib/label/label.h).
const (
	sectorSize       = 512
	lvmLabelSector   = 1
	lvmLabelHdrSize  = 32
	lvmMDAStart      = 4096
	lvmPEStart       = 1 << 20 // lvm2's default pe_start: 2048 sectors
	lvmMDAHeaderSize = 512
	lvmInitialCRC    = 0xf597a6cf
	lvmFmtMagic      = "\x20LVM2\x20x[5A%r0N*>"
	lvmPVExtVersion  = 2
	lvmPVExtUsed     = 1 // PV_EXT_USED: the PV belongs to a VG
	defaultExtent    = 4 << 20
	lvmNameMax       = 127
)

// lvmCRC is lvm2's calc_crc: the reflected CRC-32 (polynomial 0xedb88320)
// without the usual pre- and post-inversion, which is what Go's IEEE CRC
// computes with the inversions undone.
func lvmCRC(initial uint32, p []byte) uint32 {
	return ^crc32.Update(^initial, crc32.IEEETable, p)
}

// PlanVG checks vg and computes where everything goes. It does no I/O.
func PlanVG(vg VG) (*Layout, error) {
	if err := checkLVMName("VG", vg.Name); err != nil {
		return nil, err
	}
	if vg.Seed == "" {
		vg.Seed = vg.Name
	}
	if vg.Host == "" {
		vg.Host = "applbuild"
	}
	if vg.ExtentSize == 0 {
		vg.ExtentSize = defaultExtent
	}
	ext := vg.ExtentSize
	if ext < 64*kiB || ext&(ext-1) != 0 {
		return nil, fmt.Errorf("VG %s: extent size %d is not a power of two of at least 64 KiB", vg.Name, ext)
	}
	if len(vg.PVs) == 0 {
		return nil, fmt.Errorf("VG %s: no PVs", vg.Name)
	}
	l := &Layout{VG: vg, ID: LVMID(vg.Seed, "vg/"+vg.Name), ExtentSize: ext}
	paths := map[string]bool{}
	var hold int64
	for i, pv := range vg.PVs {
		if pv.Path == "" {
			return nil, fmt.Errorf("VG %s: PV %d has no path", vg.Name, i)
		}
		if paths[pv.Path] {
			return nil, fmt.Errorf("VG %s: PV %s listed twice", vg.Name, pv.Path)
		}
		paths[pv.Path] = true
		if pv.Size%sectorSize != 0 {
			return nil, fmt.Errorf("VG %s: PV %s: size %d is not a multiple of 512", vg.Name, pv.Path, pv.Size)
		}
		pe := (pv.Size - lvmPEStart) / ext
		if pv.Size < lvmPEStart || pe < 1 {
			return nil, fmt.Errorf("VG %s: PV %s: %s holds no extent of %s after the 1 MiB header",
				vg.Name, pv.Path, FormatSize(pv.Size, false), FormatSize(ext, false))
		}
		l.PVs = append(l.PVs, PVLayout{
			Path: pv.Path, Size: pv.Size, Device: pv.Device,
			ID:       LVMID(vg.Seed, "pv/"+strconv.Itoa(i)),
			MDAStart: lvmMDAStart, MDASize: lvmPEStart - lvmMDAStart,
			PEStart: lvmPEStart, PECount: pe,
		})
		hold += pe * ext
	}

	names := map[string]bool{}
	var need int64
	for _, lv := range vg.LVs {
		if err := checkLVMName("LV", lv.Name); err != nil {
			return nil, fmt.Errorf("VG %s: %w", vg.Name, err)
		}
		if names[lv.Name] {
			return nil, fmt.Errorf("VG %s: LV %s listed twice", vg.Name, lv.Name)
		}
		names[lv.Name] = true
		if lv.Size <= 0 {
			return nil, fmt.Errorf("VG %s: LV %s: size must be positive", vg.Name, lv.Name)
		}
		need += ceilDiv(lv.Size, ext) * ext
	}
	if need > hold {
		return nil, fmt.Errorf("VG %s: LVs need %s, PVs hold %s", vg.Name, FormatSize(need, true), FormatSize(hold, false))
	}

	pv, used := 0, int64(0) // allocation cursor: PV index, extents used on it
	for _, lv := range vg.LVs {
		n := ceilDiv(lv.Size, ext)
		ll := LVLayout{Name: lv.Name, ID: LVMID(vg.Seed, "lv/"+lv.Name), Size: n * ext, Extents: n}
		for le := int64(0); le < n; {
			if used == l.PVs[pv].PECount {
				pv, used = pv+1, 0
				continue
			}
			run := min(n-le, l.PVs[pv].PECount-used)
			ll.Segments = append(ll.Segments, Segment{
				PV: pv, StartExtent: le, PVExtent: used, Extents: run,
				LVOffset: le * ext,
				Offset:   l.PVs[pv].PEStart + used*ext,
				Length:   run * ext,
			})
			le += run
			used += run
		}
		l.LVs = append(l.LVs, ll)
	}

	// One copy of the text must fit in half the metadata area, less a
	// sector (lvm2 keeps room for the next commit beside the current one).
	if limit := int64(lvmPEStart-lvmMDAStart-lvmMDAHeaderSize)/2 - sectorSize; int64(len(l.Metadata())+1) > limit {
		return nil, fmt.Errorf("VG %s: metadata text of %d bytes exceeds lvm2's %d", vg.Name, len(l.Metadata())+1, limit)
	}
	return l, nil
}

// checkLVMName applies lvm2's rules for VG and LV names.
func checkLVMName(kind, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s name is empty", kind)
	case len(name) > lvmNameMax:
		return fmt.Errorf("%s name %q is longer than %d characters", kind, name, lvmNameMax)
	case name == "." || name == ".." || name[0] == '-':
		return fmt.Errorf("%s name %q is not allowed", kind, name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("+_.-", c)) {
			return fmt.Errorf("%s name %q: %q is not allowed (use a-z A-Z 0-9 + _ . -)", kind, name, c)
		}
	}
	if kind == "LV" {
		for _, bad := range []string{"snapshot", "pvmove", "_cdata", "_cmeta", "_corig", "_mimage", "_mlog", "_rimage", "_rmeta", "_tdata", "_tmeta", "_vorigin", "_vdata"} {
			if strings.Contains(name, bad) {
				return fmt.Errorf("LV name %q: %q is reserved by lvm2", name, bad)
			}
		}
	}
	return nil
}

// Metadata is the VG's text metadata as lvm2 stores it on every PV
// (without the terminating NUL).
func (l *Layout) Metadata() []byte {
	var b strings.Builder
	w := func(indent int, format string, args ...any) {
		b.WriteString(strings.Repeat("\t", indent))
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	vg := l.VG
	w(0, "%s {", vg.Name)
	w(1, "id = %q", l.ID)
	w(1, "seqno = 1")
	w(1, "format = \"lvm2\"")
	w(1, "status = [\"RESIZEABLE\", \"READ\", \"WRITE\"]")
	w(1, "flags = []")
	w(1, "extent_size = %d", l.ExtentSize/sectorSize)
	w(1, "max_lv = 0")
	w(1, "max_pv = 0")
	w(1, "metadata_copies = 0")
	b.WriteByte('\n')
	w(1, "physical_volumes {")
	for i, pv := range l.PVs {
		b.WriteByte('\n')
		w(2, "pv%d {", i)
		w(3, "id = %q", pv.ID)
		if pv.Device != "" {
			w(3, "device = %q", pv.Device)
		}
		b.WriteByte('\n')
		w(3, "status = [\"ALLOCATABLE\"]")
		w(3, "flags = []")
		w(3, "dev_size = %d", pv.Size/sectorSize)
		w(3, "pe_start = %d", pv.PEStart/sectorSize)
		w(3, "pe_count = %d", pv.PECount)
		w(2, "}")
	}
	w(1, "}")
	b.WriteByte('\n')
	if len(l.LVs) > 0 {
		w(1, "logical_volumes {")
		for _, lv := range l.LVs {
			b.WriteByte('\n')
			w(2, "%s {", lv.Name)
			w(3, "id = %q", lv.ID)
			w(3, "status = [\"READ\", \"WRITE\", \"VISIBLE\"]")
			w(3, "flags = []")
			if vg.Time != 0 {
				w(3, "creation_time = %d", vg.Time)
				w(3, "creation_host = %q", vg.Host)
			}
			w(3, "segment_count = %d", len(lv.Segments))
			for i, s := range lv.Segments {
				b.WriteByte('\n')
				w(3, "segment%d {", i+1)
				w(4, "start_extent = %d", s.StartExtent)
				w(4, "extent_count = %d", s.Extents)
				b.WriteByte('\n')
				w(4, "type = \"striped\"")
				w(4, "stripe_count = 1")
				b.WriteByte('\n')
				w(4, "stripes = [")
				w(5, "\"pv%d\", %d", s.PV, s.PVExtent)
				w(4, "]")
				w(3, "}")
			}
			w(2, "}")
		}
		w(1, "}")
		b.WriteByte('\n')
	}
	w(0, "}")
	w(0, "# Generated by applbuild")
	b.WriteByte('\n')
	w(0, "contents = \"Text Format Volume Group\"")
	w(0, "version = 1")
	b.WriteByte('\n')
	w(0, "description = \"\"")
	b.WriteByte('\n')
	w(0, "creation_host = %q", vg.Host)
	w(0, "creation_time = %d\t# %s", vg.Time, time.Unix(vg.Time, 0).UTC().Format(time.ANSIC))
	return []byte(b.String())
}

// WritePVs creates every PV image file (replacing any) as a sparse file
// holding the LVM2 label, PV header and VG metadata. Write the LVs'
// contents with WriteLV afterwards.
func WritePVs(ctx context.Context, l *Layout) error {
	text := append(l.Metadata(), 0) // lvm2 counts and checksums the NUL
	for _, pv := range l.PVs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := writePV(pv, text); err != nil {
			return fmt.Errorf("VG %s: PV %s: %w", l.VG.Name, pv.Path, err)
		}
	}
	return nil
}

func writePV(pv PVLayout, text []byte) (err error) {
	f, err := os.OpenFile(pv.Path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	if err := f.Truncate(pv.Size); err != nil {
		return err
	}
	if _, err := f.WriteAt(pvLabel(pv), lvmLabelSector*sectorSize); err != nil {
		return err
	}
	if _, err := f.WriteAt(mdaHeader(pv, text), pv.MDAStart); err != nil {
		return err
	}
	if _, err := f.WriteAt(text, pv.MDAStart+lvmMDAHeaderSize); err != nil {
		return err
	}
	return nil
}

// pvLabel is the label sector: label_header, then pv_header with its data
// and metadata area lists, then pv_header_extension.
func pvLabel(pv PVLayout) []byte {
	s := make([]byte, sectorSize)
	le := binary.LittleEndian
	copy(s[0:8], "LABELONE")
	le.PutUint64(s[8:], lvmLabelSector)
	le.PutUint32(s[20:], lvmLabelHdrSize) // offset of pv_header
	copy(s[24:32], "LVM2 001")
	o := lvmLabelHdrSize
	copy(s[o:o+32], strings.ReplaceAll(pv.ID, "-", ""))
	le.PutUint64(s[o+32:], uint64(pv.Size))
	o += 40
	for _, loc := range [][2]int64{
		{pv.PEStart, 0}, {0, 0}, // data areas: one, to the end of the device
		{pv.MDAStart, pv.MDASize}, {0, 0}, // metadata areas
	} {
		le.PutUint64(s[o:], uint64(loc[0]))
		le.PutUint64(s[o+8:], uint64(loc[1]))
		o += 16
	}
	le.PutUint32(s[o:], lvmPVExtVersion)
	le.PutUint32(s[o+4:], lvmPVExtUsed)
	// An all-zero disk_locn follows: no bootloader areas.
	le.PutUint32(s[16:], lvmCRC(lvmInitialCRC, s[20:]))
	return s
}

// mdaHeader is the metadata area's first sector, pointing at text, which
// starts right after it.
func mdaHeader(pv PVLayout, text []byte) []byte {
	s := make([]byte, lvmMDAHeaderSize)
	le := binary.LittleEndian
	copy(s[4:20], lvmFmtMagic)
	le.PutUint32(s[20:], 1) // format version
	le.PutUint64(s[24:], uint64(pv.MDAStart))
	le.PutUint64(s[32:], uint64(pv.MDASize))
	// raw_locn[0]: the committed metadata; raw_locn[1] stays zero.
	le.PutUint64(s[40:], lvmMDAHeaderSize)
	le.PutUint64(s[48:], uint64(len(text)))
	le.PutUint32(s[56:], lvmCRC(lvmInitialCRC, text))
	le.PutUint32(s[0:], lvmCRC(lvmInitialCRC, s[4:]))
	return s
}

// LV finds an LV of the layout by name.
func (l *Layout) LV(name string) (*LVLayout, bool) {
	for i := range l.LVs {
		if l.LVs[i].Name == name {
			return &l.LVs[i], true
		}
	}
	return nil, false
}

// WriteLV copies the image at srcImagePath (a filesystem, usually) into
// LV lvName's extents in the PV files, sparsely. The PV files must have
// been written by WritePVs and not yet hold data for this LV.
func WriteLV(ctx context.Context, l *Layout, lvName, srcImagePath string) error {
	lv, ok := l.LV(lvName)
	if !ok {
		return fmt.Errorf("VG %s: no LV %s", l.VG.Name, lvName)
	}
	src, err := os.Open(srcImagePath)
	if err != nil {
		return fmt.Errorf("LV %s/%s: %w", l.VG.Name, lvName, err)
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return fmt.Errorf("LV %s/%s: %w", l.VG.Name, lvName, err)
	}
	if fi.Size() > lv.Size {
		return fmt.Errorf("LV %s/%s: image %s is %s, the LV %s", l.VG.Name, lvName, srcImagePath,
			FormatSize(fi.Size(), true), FormatSize(lv.Size, false))
	}
	for _, s := range lv.Segments {
		n := min(s.Length, fi.Size()-s.LVOffset)
		if n <= 0 {
			break
		}
		if err := copyInto(ctx, l.PVs[s.PV].Path, s.Offset, src, s.LVOffset, n); err != nil {
			return fmt.Errorf("LV %s/%s: %w", l.VG.Name, lvName, err)
		}
	}
	return nil
}

func copyInto(ctx context.Context, dstPath string, dstOff int64, src *os.File, srcOff, n int64) error {
	dst, err := os.OpenFile(dstPath, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = CopySparse(ctx, dst, dstOff, src, srcOff, n)
	return errors.Join(err, dst.Close())
}
