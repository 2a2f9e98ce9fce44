package disk

import (
	"fmt"
	"math"
	"strings"
)

const (
	kiB = int64(1) << 10
	miB = int64(1) << 20
	giB = int64(1) << 30
)

// FormatSize prints n bytes for a person, in the largest binary unit that
// keeps the number at or above 1, with up to two decimals. up rounds away
// from zero, so that a requirement is never understated and a capacity
// never overstated ("needs 1.3 GiB, disk is 1.0 GiB").
func FormatSize(n int64, up bool) string {
	unit, name := int64(1), "B"
	switch {
	case n >= giB:
		unit, name = giB, "GiB"
	case n >= miB:
		unit, name = miB, "MiB"
	case n >= kiB:
		unit, name = kiB, "KiB"
	}
	if unit == 1 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n) / float64(unit) * 100
	if up {
		v = math.Ceil(v - 1e-9)
	} else {
		v = math.Floor(v + 1e-9)
	}
	s := fmt.Sprintf("%.2f", v/100)
	return strings.TrimSuffix(s, "0") + " " + name
}
