package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestAsk(t *testing.T) {
	for _, tt := range []struct {
		answer string
		want   bool
		err    bool
	}{
		{"yes\n", true, false},
		{"  yes \n", true, false},
		{"y\n", false, false},
		{"YES please\n", false, false},
		{"yes", true, false}, // no newline before EOF
		{"", false, true},
	} {
		var out bytes.Buffer
		ok, err := ask(strings.NewReader(tt.answer), &out)("Write n1.img.xz to /dev/sdb?")
		if ok != tt.want || (err != nil) != tt.err {
			t.Errorf("answer %q: %v, %v; want %v, error %v", tt.answer, ok, err, tt.want, tt.err)
		}
		if !strings.Contains(out.String(), "Write n1.img.xz to /dev/sdb?\nType yes to write: ") {
			t.Errorf("question shown as %q", out.String())
		}
	}
}
