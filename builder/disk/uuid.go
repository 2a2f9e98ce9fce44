package disk

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// UUIDFromSeed derives an RFC 9562 version 8 UUID (the "custom" version:
// 122 bits of sha256) from seed and purpose. The same pair always gives the
// same UUID; different purposes under one seed give unrelated UUIDs.
func UUIDFromSeed(seed, purpose string) string {
	h := sha256.Sum256([]byte("applbuild/uuid\x00" + seed + "\x00" + purpose))
	var b [16]byte
	copy(b[:], h[:16])
	b[6] = b[6]&0x0f | 0x80 // version 8
	b[8] = b[8]&0x3f | 0x80 // variant 10
	return formatUUID(b)
}

func formatUUID(b [16]byte) string {
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}

// parseUUID reads the canonical 8-4-4-4-12 hex form.
func parseUUID(s string) ([16]byte, error) {
	var b [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return b, fmt.Errorf("uuid %q: want the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	raw, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil {
		return b, fmt.Errorf("uuid %q: %w", s, err)
	}
	copy(b[:], raw)
	return b, nil
}

// lvmIDChars is the alphabet lvm2 draws its 32-character ids from
// (lib/uuid/uuid.c); '!' and '#' follow in lvm2's table but id_create never
// picks them, so neither do we.
const lvmIDChars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// lvmIDRaw is the 32-character id as stored in the PV header (no dashes).
func lvmIDRaw(seed, purpose string) string {
	h := sha256.Sum256([]byte("applbuild/lvmid\x00" + seed + "\x00" + purpose))
	var b [32]byte
	for i := range b {
		b[i] = lvmIDChars[int(h[i])%len(lvmIDChars)]
	}
	return string(b[:])
}

// LVMID derives an lvm2 id (PV, VG or LV "id" in the metadata) from seed
// and purpose, formatted as lvm2 prints it: 6-4-4-4-4-4-6 characters.
func LVMID(seed, purpose string) string {
	return formatLVMID(lvmIDRaw(seed, purpose))
}

func formatLVMID(raw string) string {
	var sb strings.Builder
	pos := 0
	for i, n := range []int{6, 4, 4, 4, 4, 4, 6} {
		if i > 0 {
			sb.WriteByte('-')
		}
		sb.WriteString(raw[pos : pos+n])
		pos += n
	}
	return sb.String()
}
