package overlays

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

const mariadbCnf = "/etc/mysql/mariadb.conf.d/60-applbuild.cnf"

// TestMariaDBOptions has mariadbd itself read the generated file inside a
// copy of the host's /etc/mysql (so 60-applbuild.cnf must win over
// Debian's 50-server.cnf) and report the values it ends up with.
//
// The host is bookworm (MariaDB 10.11), the image trixie (11.8): every
// option written here exists, unchanged, in both.
func TestMariaDBOptions(t *testing.T) {
	testenv.Tools(t, "mariadbd")
	ctx := context.Background()
	for _, personality := range personalitiesWith(t, "MariaDB", func(pl *builder.Plan) bool { return pl.MariaDB != nil }) {
		t.Run(personality, func(t *testing.T) {
			pl := planFor(t, personality)
			m := pl.MariaDB
			conf := appOverlayOnto(t, appGen(t, mariadb, pl), "/etc/mysql")
			// my.cnf is a symlink through /etc/alternatives to mariadb.cnf.
			myCnf := filepath.Join(conf, "mariadb.cnf")
			appEdit(t, myCnf, func(s string) string {
				s = appReplace(t, s, "!includedir /etc/mysql/conf.d/", "!includedir "+conf+"/conf.d/")
				return appReplace(t, s, "!includedir /etc/mysql/mariadb.conf.d/", "!includedir "+conf+"/mariadb.conf.d/")
			})
			out, err := run.Output(ctx, "mariadbd", "--defaults-file="+myCnf, "--help", "--verbose")
			if err != nil {
				t.Fatal(err)
			}
			got := helpValues(string(out))
			for k, want := range map[string]string{
				"bind-address":            m.Bind,
				"port":                    fmt.Sprint(m.Port),
				"max-connections":         fmt.Sprint(m.MaxConnections),
				"innodb-buffer-pool-size": fmt.Sprint(int64(m.BufferPool)),
				"datadir":                 strings.TrimSuffix(m.Datadir, "/") + "/",
			} {
				if got[k] != want {
					t.Errorf("mariadbd says %s = %q, want %q", k, got[k], want)
				}
			}
		})
	}
}

// TestMariaDBRejectsBroken shows the check above would catch a bad file:
// mariadbd refuses an option it does not know.
func TestMariaDBRejectsBroken(t *testing.T) {
	testenv.Tools(t, "mariadbd")
	f := mustFile(t, appByPath(appGen(t, mariadb, planFor(t, "web-cluster"))), mariadbCnf)
	f.Data = append(append([]byte(nil), f.Data...), "innodb_bufer_pool_size = 1G\n"...)
	_, err := run.Output(context.Background(), "mariadbd", "--defaults-file="+writeFile(t, f), "--help", "--verbose")
	if err == nil || !strings.Contains(err.Error(), "unknown variable") {
		t.Fatalf("mariadbd accepted a misspelt option: %v", err)
	}
}

// TestMariaDBServes initialises a datadir with the generated settings
// (moved to a temp datadir, socket and loopback port), starts mariadbd
// and runs a query over TCP.
func TestMariaDBServes(t *testing.T) {
	testenv.Tools(t, "mariadbd", "mariadb-install-db", "mariadb")
	testenv.Root(t)
	ctx := context.Background()
	port := appFreePort(t)
	pl := planFor(t, "web-cluster")
	f := mustFile(t, appByPath(appGen(t, mariadb, pl)), mariadbCnf)
	dir := t.TempDir()
	s := string(f.Data)
	s = appReplace(t, s, "= "+pl.MariaDB.Bind+"\n", "= 127.0.0.1\n")
	s = appReplace(t, s, fmt.Sprintf("= %d\n", pl.MariaDB.Port), fmt.Sprintf("= %d\n", port))
	s = appReplace(t, s, "= "+pl.MariaDB.Datadir+"\n", "= "+filepath.Join(dir, "data")+"\n")
	s += "socket   = " + filepath.Join(dir, "mysqld.sock") + "\npid-file = " + filepath.Join(dir, "mysqld.pid") + "\n"
	cnf := filepath.Join(dir, "my.cnf")
	if err := os.WriteFile(cnf, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run.Output(ctx, "mariadb-install-db", "--defaults-file="+cnf, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db"); err != nil {
		t.Fatal(err)
	}
	bin, err := run.Look("mariadbd")
	if err != nil {
		t.Fatal(err)
	}
	appDaemon(t, nil, bin, "--defaults-file="+cnf, "--user=root")
	appWaitPort(t, port)
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := run.Output(qctx, "mariadb", "--no-defaults", "-h127.0.0.1", fmt.Sprintf("-P%d", port), "-uroot", "-N", "-B",
		"-e", "select 1, @@max_connections, @@innodb_buffer_pool_size")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("1\t%d\t%d", pl.MariaDB.MaxConnections, int64(pl.MariaDB.BufferPool))
	if strings.TrimSpace(string(out)) != want {
		t.Errorf("query says %q, want %q", out, want)
	}
}

// helpValues reads the "name value" table at the end of --help --verbose.
func helpValues(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			m[f[0]] = f[1]
		}
	}
	return m
}
