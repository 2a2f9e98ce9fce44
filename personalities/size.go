package personalities

import (
	"fmt"
	"strconv"
	"strings"
)

// Size is a byte count written the way people write disk and memory sizes:
// 2G, 128M, 512K or plain bytes. Units are binary (G = GiB).
type Size int64

// Binary size units.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
)

var units = []struct {
	suffix string
	mult   Size
}{{"T", TiB}, {"G", GiB}, {"M", MiB}, {"K", KiB}}

// ParseSize reads "2G", "128M", "1.5G", "4096". A trailing "iB" or "B" is
// accepted ("2GiB", "128MB" both mean binary units).
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "iB"), "B")
	mult := Size(1)
	for _, u := range units {
		if strings.HasSuffix(strings.ToUpper(t), u.suffix) {
			mult, t = u.mult, t[:len(t)-1]
			break
		}
	}
	if t == "" {
		return 0, fmt.Errorf("size %q: no number", s)
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("size %q is negative", s)
		}
		return Size(n) * mult, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional K, M, G or T", s)
	}
	return Size(f * float64(mult)), nil
}

// String writes the largest unit that divides the size exactly.
func (s Size) String() string {
	for _, u := range units {
		if s != 0 && s%u.mult == 0 {
			return strconv.FormatInt(int64(s/u.mult), 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// MiB returns the size in whole MiB, rounded down.
func (s Size) MiB() int64 { return int64(s / MiB) }

// Human writes an approximate size for messages: "1.3 GiB".
func (s Size) Human() string {
	switch {
	case s >= GiB:
		return fmt.Sprintf("%.1f GiB", float64(s)/float64(GiB))
	case s >= MiB:
		return fmt.Sprintf("%.0f MiB", float64(s)/float64(MiB))
	default:
		return fmt.Sprintf("%d bytes", int64(s))
	}
}

// MarshalText writes the String form, so YAML and JSON show "2G".
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses the ParseSize form.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
