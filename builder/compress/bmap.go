package compress

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"strings"
)

// BlockSize is the block size of the bmaps applbuild writes: bmaptool's
// default, and the page size the kernel's SEEK_DATA works in.
const BlockSize = 4096

// Bmap is a block map in bmaptool's format 2.0: which blocks of an image
// hold data, with the sha256 of each range, so that a writer can skip the
// rest and check what it copies.
type Bmap struct {
	ImageSize int64
	BlockSize int64
	Ranges    []BlockRange
}

// BlockRange is the blocks First..Last (inclusive) and the sha256 of their
// bytes (the last block of an image that ends inside it counts only up to
// the end of the image).
type BlockRange struct {
	First, Last int64
	SHA256      string
}

// Extent is the range's bytes in an image of m's sizes.
func (m *Bmap) Extent(r BlockRange) Extent {
	off := r.First * m.BlockSize
	end := min((r.Last+1)*m.BlockSize, m.ImageSize)
	return Extent{off, end - off}
}

// BlocksCount is how many blocks the image has.
func (m *Bmap) BlocksCount() int64 { return (m.ImageSize + m.BlockSize - 1) / m.BlockSize }

// MappedBlocks is how many blocks the ranges cover.
func (m *Bmap) MappedBlocks() int64 {
	var n int64
	for _, r := range m.Ranges {
		n += r.Last - r.First + 1
	}
	return n
}

// MappedBytes is how many bytes of the image the ranges cover.
func (m *Bmap) MappedBytes() int64 {
	var n int64
	for _, r := range m.Ranges {
		n += m.Extent(r).Len
	}
	return n
}

// BmapOptions changes what MakeBmap maps.
type BmapOptions struct {
	// DropZeroBlocks leaves out blocks that are data on disk but all
	// zeros. Off by default: a block that an image writer wrote as zeros
	// may need to be zeros on the stick (a GPT's unused partition entries
	// are covered by its CRC), and leaving it out leaves the stick's old
	// bytes there. Holes are always left out: the filesystems in an image
	// never wrote them.
	DropZeroBlocks bool
}

// MakeBmap maps the data blocks of the image f and checksums them.
func MakeBmap(ctx context.Context, f *os.File, opts BmapOptions) (*Bmap, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	m := &Bmap{ImageSize: fi.Size(), BlockSize: BlockSize}
	extents, err := DataExtents(f, fi.Size())
	if err != nil {
		return nil, err
	}
	// Data extents, widened to whole blocks; neighbours that then touch
	// become one.
	var spans []BlockRange
	for _, e := range extents {
		first, last := e.Off/BlockSize, (e.End()-1)/BlockSize
		if n := len(spans); n > 0 && first <= spans[n-1].Last+1 {
			spans[n-1].Last = max(spans[n-1].Last, last)
			continue
		}
		spans = append(spans, BlockRange{First: first, Last: last})
	}
	buf := make([]byte, 256*BlockSize)
	var zero [BlockSize]byte
	for _, s := range spans {
		cur := BlockRange{First: -1}
		var h hash.Hash
		closeRun := func() {
			if cur.First >= 0 {
				cur.SHA256 = hex.EncodeToString(h.Sum(nil))
				m.Ranges = append(m.Ranges, cur)
				cur = BlockRange{First: -1}
			}
		}
		ext := m.Extent(s)
		for off := ext.Off; off < ext.End(); {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			p := buf[:min(int64(len(buf)), ext.End()-off)]
			if _, err := io.ReadFull(io.NewSectionReader(f, off, int64(len(p))), p); err != nil {
				return nil, fmt.Errorf("%s: read at %d: %w", f.Name(), off, err)
			}
			for i := 0; i < len(p); i += BlockSize {
				b := p[i:min(i+BlockSize, len(p))]
				block := (off + int64(i)) / BlockSize
				if opts.DropZeroBlocks && bytes.Equal(b, zero[:len(b)]) {
					closeRun()
					continue
				}
				if cur.First < 0 {
					cur, h = BlockRange{First: block}, sha256.New()
				}
				cur.Last = block
				h.Write(b)
			}
			off += int64(len(p))
		}
		closeRun()
	}
	return m, nil
}

// zeroSum stands in for BmapFileChecksum while the file's own checksum is
// taken, as format 2.0 says.
var zeroSum = strings.Repeat("0", 64)

// Marshal writes m as bmaptool 3.6 writes a bmap, BmapFileChecksum
// included.
func (m *Bmap) Marshal() []byte {
	var b bytes.Buffer
	mapped := m.MappedBlocks()
	pct := 0.0
	if n := m.BlocksCount(); n > 0 {
		pct = 100 * float64(mapped) / float64(n)
	}
	fmt.Fprintf(&b, `<?xml version="1.0" ?>
<!-- The block map of an image: the blocks that hold data, which are all
     a writer has to copy, with the sha256 of each range. Made by
     applbuild; bmaptool and applbuild flash read it. -->
<bmap version="2.0">
    <!-- Image size in bytes: %s -->
    <ImageSize> %d </ImageSize>

    <!-- Size of a block in bytes -->
    <BlockSize> %d </BlockSize>

    <!-- Count of blocks in the image file -->
    <BlocksCount> %d </BlocksCount>

    <!-- Count of mapped blocks: %s or %.1f%% -->
    <MappedBlocksCount> %d </MappedBlocksCount>

    <!-- Type of checksum used in this file -->
    <ChecksumType> sha256 </ChecksumType>

    <!-- The checksum of this bmap file, taken with this field set to all
         "0" -->
    <BmapFileChecksum> %s </BmapFileChecksum>

    <!-- The block map: ranges of blocks (first-last, or one block) with the
         sha256 of their bytes -->
    <BlockMap>
`, HumanSize(m.ImageSize), m.ImageSize, m.BlockSize, m.BlocksCount(),
		HumanSize(mapped*m.BlockSize), pct, mapped, zeroSum)
	for _, r := range m.Ranges {
		span := strconv.FormatInt(r.First, 10)
		if r.Last != r.First {
			span += "-" + strconv.FormatInt(r.Last, 10)
		}
		fmt.Fprintf(&b, "        <Range chksum=\"%s\"> %s </Range>\n", r.SHA256, span)
	}
	b.WriteString("    </BlockMap>\n</bmap>\n")
	out := b.Bytes()
	sum := sha256.Sum256(out)
	i := bytes.Index(out, []byte(zeroSum))
	copy(out[i:], hex.EncodeToString(sum[:]))
	return out
}

// ErrBadBmap is wrapped by every error of ParseBmap.
var ErrBadBmap = errors.New("bad bmap")

type bmapXML struct {
	XMLName           xml.Name `xml:"bmap"`
	Version           string   `xml:"version,attr"`
	ImageSize         string
	BlockSize         string
	BlocksCount       string
	MappedBlocksCount string
	ChecksumType      string
	BmapFileChecksum  string
	Ranges            []struct {
		Chksum string `xml:"chksum,attr"`
		Span   string `xml:",chardata"`
	} `xml:"BlockMap>Range"`
}

// ParseBmap reads a bmap of format 2.x with sha256 checksums, checking the
// file's own checksum and that its ranges are in order, apart, and inside
// the image.
func ParseBmap(data []byte) (*Bmap, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadBmap, fmt.Sprintf(format, args...))
	}
	var x bmapXML
	if err := xml.Unmarshal(data, &x); err != nil {
		return nil, bad("%v", err)
	}
	if !strings.HasPrefix(x.Version, "2.") {
		return nil, bad("format %q: only 2.x is read (bmaptool 3.x writes 2.0)", x.Version)
	}
	if t := strings.TrimSpace(x.ChecksumType); t != "sha256" {
		return nil, bad("checksum type %q: only sha256 is read", t)
	}
	want := strings.TrimSpace(x.BmapFileChecksum)
	i := bytes.Index(data, []byte(want))
	if len(want) != 64 || i < 0 {
		return nil, bad("BmapFileChecksum %q is not a sha256", want)
	}
	zeroed := bytes.Clone(data)
	copy(zeroed[i:], zeroSum)
	if got := sha256.Sum256(zeroed); hex.EncodeToString(got[:]) != want {
		return nil, bad("the file's checksum does not match: it was changed or cut short")
	}
	num := func(name, s string) (int64, error) {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n < 0 {
			return 0, bad("%s %q is not a size", name, strings.TrimSpace(s))
		}
		return n, nil
	}
	m := &Bmap{}
	var err error
	if m.ImageSize, err = num("ImageSize", x.ImageSize); err != nil {
		return nil, err
	}
	if m.BlockSize, err = num("BlockSize", x.BlockSize); err != nil {
		return nil, err
	}
	if m.BlockSize == 0 || m.BlockSize%512 != 0 {
		return nil, bad("BlockSize %d is not a multiple of 512", m.BlockSize)
	}
	count, err := num("BlocksCount", x.BlocksCount)
	if err != nil {
		return nil, err
	}
	if count != m.BlocksCount() {
		return nil, bad("BlocksCount %d does not match ImageSize %d", count, m.ImageSize)
	}
	next := int64(0)
	for _, r := range x.Ranges {
		span := strings.TrimSpace(r.Span)
		a, b, ok := strings.Cut(span, "-")
		if !ok {
			b = a
		}
		first, err1 := strconv.ParseInt(a, 10, 64)
		last, err2 := strconv.ParseInt(b, 10, 64)
		if err1 != nil || err2 != nil || first < next || last < first || last >= count {
			return nil, bad("range %q is not a block range after block %d inside %d blocks", span, next, count)
		}
		if _, err := hex.DecodeString(r.Chksum); err != nil || len(r.Chksum) != 64 {
			return nil, bad("range %q: chksum %q is not a sha256", span, r.Chksum)
		}
		m.Ranges = append(m.Ranges, BlockRange{First: first, Last: last, SHA256: strings.ToLower(r.Chksum)})
		next = last + 1
	}
	if mapped, err := num("MappedBlocksCount", x.MappedBlocksCount); err != nil {
		return nil, err
	} else if mapped != m.MappedBlocks() {
		return nil, bad("MappedBlocksCount %d, but the ranges cover %d", mapped, m.MappedBlocks())
	}
	return m, nil
}

// HumanSize is n in binary units with one decimal: "1.5 GiB".
func HumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for q := n / unit; q >= unit && exp < 5; q /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
