package outdir

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// replaceLoopEnv makes the test binary replace a directory in a loop until
// it is killed (TestReplaceSurvivesSIGKILL).
const replaceLoopEnv = "APPLBUILD_OUTDIR_TEST_LOOP"

func TestMain(m *testing.M) {
	if dir := os.Getenv(replaceLoopEnv); dir != "" {
		for gen := 1; ; gen++ {
			if err := Replace(dir, Access{}, func(tmp string) error { return fill(tmp, gen) }); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(3)
			}
		}
	}
	os.Exit(m.Run())
}

// fill writes a result of generation gen: two files that must agree.
func fill(dir string, gen int) error {
	for _, name := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strconv.Itoa(gen)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// TestReplaceSurvivesSIGKILL kills a process replacing a directory over
// and over at random moments: after every kill the directory is there and
// holds one whole result. With the previous directory moved aside before
// the new one moved in, some kills left no directory at all.
func TestReplaceSurvivesSIGKILL(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "out")
	if err := Replace(dir, Access{}, func(tmp string) error { return fill(tmp, 0) }); err != nil {
		t.Fatal(err)
	}
	kills := 300
	if testing.Short() {
		kills = 50
	}
	for i := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), replaceLoopEnv+"="+dir)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(10000+rand.IntN(50000)) * time.Microsecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		a, errA := os.ReadFile(filepath.Join(dir, "a"))
		b, errB := os.ReadFile(filepath.Join(dir, "b"))
		if errA != nil || errB != nil || string(a) != string(b) {
			t.Fatalf("kill %d: %s holds no whole result: a=%q (%v), b=%q (%v)", i+1, dir, a, errA, b, errB)
		}
		// What the killed process left beside dir is not dir's business
		// (the next build removes it); keep the parent small.
		des, _ := os.ReadDir(parent)
		for _, de := range des {
			if de.Name() != "out" {
				os.RemoveAll(filepath.Join(parent, de.Name()))
			}
		}
	}
}
