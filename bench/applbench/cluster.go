package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The cluster drills are the e2e tests themselves (e2e/drbd_test.go,
// e2e/nfs_test.go, e2e/cluster_test.go), run on the images applbuild
// builds, through applbuild cluster: what is timed is what CI proves.
// Each test logs every measured step as an "e2e-timing:" line.
var clusterTests = map[string]string{
	"mysql-ha":    "TestE2EClusterMySQLHA",
	"nfs-ha":      "TestE2EClusterNFSHA",
	"web-cluster": "TestE2EClusterWebCluster",
}

// clusterStep is one timed step of one personality's drill.
type clusterStep struct {
	Personality, Step string
	Seconds           int
}

// clusterResults is the cluster section: every step, the whole run of
// each test, and the load the machine had.
type clusterResults struct {
	Steps    []clusterStep
	Took     map[string]time.Duration // personality: the whole test
	Failed   map[string]string        // personality: why its test failed
	Load     []float64                // 1/5/15-minute load after the runs
	Finished time.Time
}

var timingRE = regexp.MustCompile(`e2e-timing: ([^\t]+)\t([^\t]+)\t(\d+)\s*$`)

// parseTimings reads the e2e-timing lines of go test -v output.
func parseTimings(r io.Reader) []clusterStep {
	var out []clusterStep
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := timingRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n, err := strconv.Atoi(m[3])
		if err != nil {
			continue
		}
		out = append(out, clusterStep{Personality: m[1], Step: m[2], Seconds: n})
	}
	return out
}

// benchClusters runs each personality's drill, one after the other (each
// takes both cores), and keeps its log in logs.
func benchClusters(ctx context.Context, repo, logs string, personalities []string) (*clusterResults, error) {
	res := &clusterResults{Took: map[string]time.Duration{}, Failed: map[string]string{}}
	for _, p := range personalities {
		test, ok := clusterTests[p]
		if !ok {
			return nil, fmt.Errorf("no cluster drill for %q (have mysql-ha, nfs-ha, web-cluster)", p)
		}
		logPath := filepath.Join(logs, "cluster-"+p+".log")
		f, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-p", "1", "-timeout", "150m", "-v", "-run", "^"+test+"$", "./e2e/")
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "APPLBUILD_REQUIRE=1", "APPLBUILD_SLOW=1", "APPLBUILD_CLUSTER=1")
		cmd.Stdout, cmd.Stderr = f, f
		fmt.Fprintf(os.Stderr, "bench: cluster drill %s (%s), log %s\n", p, test, logPath)
		start := time.Now()
		runErr := cmd.Run()
		res.Took[p] = time.Since(start)
		if err := f.Close(); err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		f, err = os.Open(logPath)
		if err != nil {
			return nil, err
		}
		res.Steps = append(res.Steps, parseTimings(f)...)
		f.Close()
		if runErr != nil {
			// A failed drill is reported, not hidden: its steps up to the
			// failure stay in the table, the failure beside them.
			res.Failed[p] = fmt.Sprintf("%v (log: %s)", runErr, logPath)
		}
	}
	res.Load = loadAvg()
	res.Finished = time.Now()
	return res, nil
}

// loadAvg is /proc/loadavg's three figures, or nil.
func loadAvg() []float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	var out []float64
	for _, f := range strings.Fields(string(b))[:3] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return nil
		}
		out = append(out, v)
	}
	return out
}

// clusterReport is the section of docs/benchmarks.md.
func clusterReport(c *clusterResults, personalities []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Clusters: formation, failover, rejoin\n\n")
	fmt.Fprintf(&b, "Each personality's drill is its e2e test itself (web-cluster's is the one CI\n"+
		"runs), on the images `applbuild build` wrote, through `applbuild cluster`: every\n"+
		"node a 1-vCPU guest under QEMU's software emulation on this machine's two\n"+
		"cores, one drill at a time.\n"+
		"No peer tool boots and fails over a whole cluster, so there is no ratio here.\n"+
		"Finished %s; load after the runs %v.\n\n", c.Finished.UTC().Format("2006-01-02 15:04 UTC"), c.Load)
	for _, p := range personalities {
		fmt.Fprintf(&b, "### %s (`%s`, whole test %s)\n\n", p, clusterTests[p], c.Took[p].Round(time.Second))
		if why, ok := c.Failed[p]; ok {
			fmt.Fprintf(&b, "**The drill failed**: %s. The steps below are the ones it reached.\n\n", why)
		}
		fmt.Fprintf(&b, "| step | time |\n|---|---|\n")
		n := 0
		for _, s := range c.Steps {
			if s.Personality != p {
				continue
			}
			n++
			fmt.Fprintf(&b, "| %s | %s |\n", s.Step, time.Duration(s.Seconds)*time.Second)
		}
		if n == 0 {
			fmt.Fprintf(&b, "| (no step reached) | |\n")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// clustersOnly is the hidden "clusters REPO DIR P1,P2..." mode: the
// drills alone, their section printed, the logs in DIR/logs.
func clustersOnly(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("want REPO DIR PERSONALITIES (comma-separated)")
	}
	logs := filepath.Join(args[1], "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	ps := strings.Split(args[2], ",")
	c, err := benchClusters(context.Background(), args[0], logs, ps)
	if err != nil {
		return err
	}
	fmt.Print(clusterReport(c, ps))
	return nil
}
