// Package brokenspec reads the catalogue of broken specs in
// testdata/broken: each file's header says what loading it must report, so
// the loader's tests and the CLI's tests check the same cases.
//
//	# want: {file}:line:col: message   (one line of the error, exactly)
//	# exit: 2                          (the CLI's exit status)
//	# args: --set k=v --site {dir}/x   (extra flags, optional)
//
// {file} is the case's path, {dir} the catalogue's directory; in args, \n
// is a newline.
package brokenspec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Case is one broken spec.
type Case struct {
	File string
	Want string
	Exit string
	Args []string
}

// Read reads the header of one catalogue file.
func Read(file string) (Case, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return Case{}, err
	}
	c := Case{File: file}
	sub := strings.NewReplacer("{file}", file, "{dir}", filepath.Dir(file))
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok || !strings.HasPrefix(k, "# ") {
			break
		}
		switch k {
		case "# want":
			c.Want = sub.Replace(v)
		case "# exit":
			c.Exit = v
		case "# args":
			for _, a := range strings.Fields(v) {
				c.Args = append(c.Args, strings.ReplaceAll(sub.Replace(a), `\n`, "\n"))
			}
		}
	}
	if c.Want == "" || c.Exit == "" {
		return c, errors.New("header must hold '# want: ...' and '# exit: N'")
	}
	return c, nil
}

// All reads every *.yaml case in dir (helper files live in dir/parts).
func All(dir string) ([]Case, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no broken specs in %s", dir)
	}
	var out []Case
	for _, f := range files {
		c, err := Read(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// Flag returns the values of every --name in the case's args, in order.
func (c Case) Flag(name string) []string {
	var out []string
	for i := 0; i+1 < len(c.Args); i++ {
		if c.Args[i] == name {
			out = append(out, c.Args[i+1])
			i++
		}
	}
	return out
}
