package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/applbuild/applbuild/overlays/volfile"
)

func newVolfilesCmd(g *globals) *cobra.Command {
	var input, out string
	var force bool
	cmd := &cobra.Command{
		Use:   "volfiles --input FILE --out DIR",
		Short: "Write the seed's hand-written GlusterFS volfiles from its volume table",
		Long: `volfiles is the seed's Ruby program "doit": it reads a table of volumes, one a
line,

  volume-name source-dir authorized-ip dest-mount host...

(blank lines and # comments allowed) and writes DIR/glusterfsd.vol (every
volume's posix → locks → io-threads brick, one protocol/server) and
DIR/glusterfs_<name>.vol per volume (a protocol/client per host, replicate,
write-behind): the same files the legacy gluster mode puts in the image.
Unlike doit it writes no timestamp, so the output is reproducible.

Nothing is written when the table has a mistake (exit 2) or when a file
already exists in DIR and --force is not given. Each file is written to a
temporary name in DIR and renamed into place.`,
		Example: `  applbuild volfiles --input input --out /etc/glusterfs
  applbuild volfiles --input - --out . --force < input`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if input == "" || out == "" {
				return usageError{errors.New("volfiles needs --input FILE and --out DIR")}
			}
			rows, err := readTable(cmd.InOrStdin(), input)
			if err != nil {
				return err
			}
			files := volfile.Files(rows)
			if err := writeFiles(out, files, force); err != nil {
				return err
			}
			for _, f := range files {
				fmt.Fprintln(g.stdout, filepath.Join(out, f.Name))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "the volume table `FILE` (- for stdin)")
	cmd.Flags().StringVarP(&out, "out", "o", "", "output `DIR` (created if missing)")
	cmd.Flags().BoolVar(&force, "force", false, "replace volfiles that already exist in DIR")
	return cmd
}

// readTable parses the table; its mistakes are the user's, so exit 2.
func readTable(stdin io.Reader, name string) ([]volfile.Row, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, usageError{err}
		}
		defer f.Close()
		r = f
	} else {
		name = "<stdin>"
	}
	rows, err := volfile.ParseTable(r, name)
	if err != nil {
		if errors.Is(err, volfile.ErrTable) {
			return nil, usageError{err}
		}
		return nil, err
	}
	return rows, nil
}

// writeFiles writes every file to a temporary name in dir first and
// renames them into place only when all are written, so a full disk or a
// refused overwrite leaves dir as it was.
func writeFiles(dir string, files []volfile.File, force bool) (err error) {
	if !force {
		for _, f := range files {
			p := filepath.Join(dir, f.Name)
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("%s exists (use --force to replace it); nothing written", p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var temps []string
	defer func() {
		if err != nil {
			for _, t := range temps {
				os.Remove(t)
			}
		}
	}()
	for _, f := range files {
		t, err := os.CreateTemp(dir, "."+f.Name+".*")
		if err != nil {
			return err
		}
		temps = append(temps, t.Name())
		_, werr := t.Write(f.Data)
		if werr == nil {
			werr = t.Chmod(0o644)
		}
		if werr == nil {
			werr = t.Sync()
		}
		if cerr := t.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("%s: %w", f.Name, werr)
		}
	}
	for i, f := range files {
		if err := os.Rename(temps[i], filepath.Join(dir, f.Name)); err != nil {
			return err
		}
	}
	return nil
}
