package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/applbuild/applbuild/personalities"
)

// TestShowRoundTrip: the spec show prints, saved to a file of another
// name, plans the same cluster as the personality did: same seed, MACs,
// UUIDs, everything but the personality's own name (a file's is its file
// name) and the warnings' positions.
func TestShowRoundTrip(t *testing.T) {
	infos, err := personalities.Library{}.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		t.Run(info.Name, func(t *testing.T) {
			code, merged, stderr := runCLI(t, "", "show", info.Name)
			if code != exitOK {
				t.Fatalf("show: exit %d: %s", code, stderr)
			}
			file := filepath.Join(t.TempDir(), "merged.yaml")
			if err := os.WriteFile(file, []byte(merged), 0o644); err != nil {
				t.Fatal(err)
			}
			plans := make([]map[string]any, 2)
			for i, ref := range []string{info.Name, file} {
				code, out, stderr := runCLI(t, "", "plan", ref, "--json")
				if code != exitOK {
					t.Fatalf("plan %s: exit %d: %s", ref, code, stderr)
				}
				if err := json.Unmarshal([]byte(out), &plans[i]); err != nil {
					t.Fatal(err)
				}
				delete(plans[i], "personality")
				delete(plans[i], "warnings")
			}
			if plans[0]["seed"] != plans[1]["seed"] || plans[0]["cluster"] != plans[1]["cluster"] {
				t.Fatalf("round trip changed the cluster's identity: %v/%v, then %v/%v",
					plans[0]["cluster"], plans[0]["seed"], plans[1]["cluster"], plans[1]["seed"])
			}
			if !reflect.DeepEqual(plans[0], plans[1]) {
				for k := range plans[0] {
					if !reflect.DeepEqual(plans[0][k], plans[1][k]) {
						t.Errorf("plan.%s differs after the round trip", k)
					}
				}
			}
		})
	}
}
