package overlays

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/internal/testenv"
)

// analyzeVerify is everything `systemd-analyze verify --man=no args...`
// says, with its exit status when it failed; "" means it had nothing to
// say. It exits 0 on unknown keys (FACTS.md), so what it says is the check.
func analyzeVerify(t testing.TB, args ...string) string {
	t.Helper()
	testenv.Tools(t, "systemd-analyze")
	cmd := exec.Command("systemd-analyze", append([]string{"verify", "--man=no"}, args...)...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	said := strings.TrimSpace(string(out))
	if err != nil {
		said = strings.TrimSpace(said + fmt.Sprintf("\n(%v)", err))
	}
	return said
}

// verifyQuiet fails the test unless systemd-analyze verify has nothing to
// say about the units (paths, or names under --root=DIR given first).
func verifyQuiet(t testing.TB, args ...string) {
	t.Helper()
	if said := analyzeVerify(t, args...); said != "" {
		t.Errorf("systemd-analyze verify %v:\n%s", args, said)
	}
}
