package overlays

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/internal/keys"
	"github.com/applbuild/applbuild/internal/testenv"
	"github.com/applbuild/applbuild/personalities"
)

// FuzzSpecPlanRender: a spec that loads makes a plan (or a positioned
// refusal), and every node of the plan renders, without a panic, a
// negative size or a long wait.
func FuzzSpecPlanRender(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/broken/*.yaml")
	mine, _ := filepath.Glob("../personalities/*.yaml")
	for _, p := range append(seeds, mine...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, name := range []string{"web-cluster", "nfs-ha", "mysql-ha", "scm", "pound-lb", "puppet-ha"} {
		f.Add([]byte("extends: " + name + "\n"))
	}
	ring, err := keys.New([]byte("applbuild fuzz secret, 32 bytes or more"))
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		// CPU time, not the wall clock, which a loaded machine stretches;
		// each RSA key searched for (puppetserver's CA and certificates,
		// about a second each at 4096 bits) is allowed 3 s on top.
		keysBefore := keys.RSASearched()
		d := testenv.CPUTime(func() { fuzzSpecPlanRender(t, p, ring) })
		if n := keys.RSASearched() - keysBefore; d > 5*time.Second+time.Duration(n)*3*time.Second {
			t.Fatalf("took %v of CPU (%d RSA keys searched)", d, n)
		}
	})
}

// fuzzSpecPlanRender is one input of FuzzSpecPlanRender.
func fuzzSpecPlanRender(t *testing.T, p string, ring *keys.Ring) {
	s, err := personalities.Load(p, personalities.Options{})
	if err != nil {
		return
	}
	pl, err := builder.New(s)
	if err != nil {
		if _, ok := err.(personalities.Errors); !ok {
			t.Fatalf("plan: %T is not a spec error: %v", err, err)
		}
		return
	}
	noNegativeSize(t, reflect.ValueOf(pl), "plan")
	for i := range pl.Nodes {
		if _, err := Render(pl, &pl.Nodes[i], ring); err != nil {
			t.Fatalf("render %s of a valid plan: %v", pl.Nodes[i].Name, err)
		}
	}
}

var sizeType = reflect.TypeOf(personalities.Size(0))

func noNegativeSize(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			noNegativeSize(t, v.Elem(), path)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				noNegativeSize(t, v.Field(i), path+"."+v.Type().Field(i).Name)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			noNegativeSize(t, v.Index(i), path)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			noNegativeSize(t, v.MapIndex(k), path)
		}
	case reflect.Int64:
		if v.Type() == sizeType && v.Int() < 0 {
			t.Fatalf("%s is negative: %d", path, v.Int())
		}
	}
}
