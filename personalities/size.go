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

// MaxSize is the largest size ParseSize accepts (1 EiB): far above any
// disk or memory, far below where int64 arithmetic on sums of sizes wraps.
const MaxSize = 1 << 60

// ParseSize reads "2G", "128M", "1.5G", "4096". A trailing "iB" or "B" is
// accepted ("2GiB", "128MB" both mean binary units). The number is decimal
// digits with an optional fraction: no sign, exponent, NaN or Inf, and the
// result is at most MaxSize, so a size can never wrap negative.
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
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("size %q is negative", s)
	}
	whole, frac, hasFrac := strings.Cut(t, ".")
	if whole == "" || !digits(whole) || (hasFrac && (frac == "" || !digits(frac))) {
		return 0, fmt.Errorf("size %q: want a number with an optional K, M, G or T", s)
	}
	tooBig := fmt.Errorf("size %q is too large (at most %s)", s, Size(MaxSize))
	if len(whole) > 19 {
		return 0, tooBig
	}
	n, err := strconv.ParseUint(whole, 10, 64)
	if err != nil || n > uint64(MaxSize/mult) {
		return 0, tooBig
	}
	v := Size(n) * mult
	if hasFrac {
		// The fraction of one unit, exact to the byte and rounded down:
		// at most mult (2^40) times 10^len(frac) before dividing, so keep
		// at most 6 digits.
		if len(frac) > 6 {
			frac = frac[:6]
		}
		f, _ := strconv.ParseInt(frac, 10, 64)
		scale := int64(1)
		for range len(frac) {
			scale *= 10
		}
		v += Size(f * int64(mult) / scale)
		if v > MaxSize {
			return 0, tooBig
		}
	}
	return v, nil
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
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
