package overlays

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

// Pound is not packaged for bookworm, the host the tests run on, and
// haproxy -c knows nothing of pound's syntax. The tests run trixie's own
// pound 4.16 instead: the host's when it has pound 4 (a trixie host), else
// the binary and libraries of trixie's packages unpacked into a cache dir
// and started by trixie's dynamic loader, as pound needs a newer glibc
// (2.38) and OpenSSL (3.3) than bookworm's. The image build checks the file
// once more inside the trixie rootfs:
//
//	chroot <rootfs> pound -c -f /etc/pound/pound.cfg

// trixiePoundPackages are pound and what its binary loads.
var trixiePoundPackages = []string{"pound", "libadns1t64", "libssl3t64", "libc6", "libpcre2-8-0", "libcrypt1", "libzstd1", "zlib1g"}

// trixiePound returns the argv prefix that runs trixie's pound.
func trixiePound(t testing.TB) []string {
	t.Helper()
	if p, err := run.Look("pound"); err == nil {
		if out, err := run.Output(context.Background(), p, "-V"); err == nil && strings.HasPrefix(string(out), "pound (pound) 4.") {
			return []string{p}
		}
	}
	dir := os.Getenv("APPLBUILD_TRIXIE_POUND")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(cache, "applbuild", "trixie-pound")
	}
	if _, err := os.Stat(filepath.Join(dir, "usr", "sbin", "pound")); err != nil {
		// make test (strict) fetches it: the Makefile's promise is that it
		// installs what the tests need; a plain go test does not reach out.
		if os.Getenv("APPLBUILD_SLOW") != "1" && !testenv.Strict() {
			t.Skipf("no pound 4: fetch trixie's into %s with APPLBUILD_SLOW=1 go test -run TestPound ./overlays", dir)
		}
		fetchTrixiePound(t, dir)
	}
	return []string{
		filepath.Join(dir, "usr", "lib64", "ld-linux-x86-64.so.2"),
		"--library-path", filepath.Join(dir, "usr", "lib", "x86_64-linux-gnu") + ":" + filepath.Join(dir, "usr", "lib"),
		filepath.Join(dir, "usr", "sbin", "pound"),
	}
}

// fetchTrixiePound downloads trixie's pound and its libraries from the
// Debian mirror with a private apt configuration (the host's is untouched)
// and unpacks them into dir.
func fetchTrixiePound(t testing.TB, dir string) {
	t.Helper()
	testenv.Tools(t, "apt-get", "dpkg-deb")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	apt := t.TempDir()
	for _, d := range []string{"lists/partial", "cache/archives/partial", "parts", "prefs", "debs"} {
		if err := os.MkdirAll(filepath.Join(apt, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	list := "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main\n"
	if err := os.WriteFile(filepath.Join(apt, "sources.list"), []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := []string{
		"-o", "Dir::Etc::SourceList=" + filepath.Join(apt, "sources.list"),
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(apt, "parts"),
		"-o", "Dir::Etc::PreferencesParts=" + filepath.Join(apt, "prefs"),
		"-o", "Dir::State::Lists=" + filepath.Join(apt, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(apt, "cache"),
		"-o", "APT::Architecture=amd64",
		"-o", "APT::Sandbox::User=root",
		"-o", "Acquire::Retries=5",
	}
	if _, err := run.Output(ctx, append(append([]string{"apt-get"}, opts...), "update")...); err != nil {
		t.Fatal(err)
	}
	debs := filepath.Join(apt, "debs")
	if _, err := (&run.Cmd{Args: append(append(append([]string{"apt-get"}, opts...), "download"), trixiePoundPackages...), Dir: debs}).Output(ctx); err != nil {
		t.Fatal(err)
	}
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	if len(files) != len(trixiePoundPackages) {
		t.Fatalf("downloaded %v, want %v", files, trixiePoundPackages)
	}
	for _, f := range files {
		if _, err := run.Output(ctx, "dpkg-deb", "-x", f, tmp); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
}

// TestPoundConfigtest runs pound -c on the generated file.
func TestPoundConfigtest(t *testing.T) {
	pound4 := trixiePound(t)
	ctx := context.Background()
	for _, personality := range personalitiesWith(t, "pound", func(pl *builder.Plan) bool { return pl.Pound != nil }) {
		t.Run(personality, func(t *testing.T) {
			f := mustFile(t, appByPath(appGen(t, pound, planFor(t, personality))), PoundConfig)
			if _, err := run.Output(ctx, append(pound4, "-c", "-f", writeFile(t, f))...); err != nil {
				t.Fatal(err)
			}
			f.Data = []byte(appReplace(t, string(f.Data), "\tService\n", "\tServise\n"))
			if _, err := run.Output(ctx, append(pound4, "-c", "-f", writeFile(t, f))...); err == nil {
				t.Error("pound -c accepts a misspelt section: the check checks nothing")
			}
		})
	}
}

// TestPoundServes runs pound with the generated config moved to loopback
// in front of two backends, and shows it survives losing one: pound 4's
// only health check is marking a refusing backend dead.
func TestPoundServes(t *testing.T) {
	pound4 := trixiePound(t)
	var backends []string
	var servers []*httptest.Server
	for i := range 2 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "backend %d\n", i)
		}))
		t.Cleanup(srv.Close)
		servers = append(servers, srv)
		backends = append(backends, srv.Listener.Addr().String())
	}
	port := appFreePort(t)
	pl := planFor(t, "pound-lb")
	cp := *pl
	cp.Pound = &builder.Pound{Listen: "127.0.0.1", Port: port, Backends: backends}
	f := mustFile(t, appByPath(appGen(t, pound, &cp)), PoundConfig)
	s := string(f.Data)
	// The test runs as whatever user it is, without Debian's _pound.
	s = appReplace(t, s, "User  \"_pound\"\n", "")
	s = appReplace(t, s, "Group \"_pound\"\n", "")
	s = appReplace(t, s, "LogFacility daemon\n", "LogFacility -\n")
	f.Data = []byte(s)
	cfg := writeFile(t, f)
	appDaemon(t, nil, append(pound4, "-F", "-p", filepath.Join(t.TempDir(), "pound.pid"), "-f", cfg)...)
	appWaitPort(t, port)

	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	seen := map[string]bool{}
	for range 20 {
		_, body := appGet(t, url)
		seen[body] = true
	}
	if !seen["backend 0\n"] || !seen["backend 1\n"] {
		t.Errorf("pound used backends %v, want both", seen)
	}
	servers[0].Close()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DialContext: (&net.Dialer{}).DialContext}}
	for range 10 {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "backend 1\n" {
			t.Fatalf("with backend 0 down: %d %q", resp.StatusCode, b)
		}
	}
}
