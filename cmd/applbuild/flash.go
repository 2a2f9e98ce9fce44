package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/applbuild/applbuild/builder/compress"
	"github.com/applbuild/applbuild/flash"
	"github.com/applbuild/applbuild/internal/progress"
)

func newFlashCmd(g *globals) *cobra.Command {
	var o flash.Options
	cmd := &cobra.Command{
		Use:   "flash IMAGE DEVICE|FILE",
		Short: "Write an image to a USB or CF stick (or a file), then read it back",
		Long: `flash writes IMAGE (a raw .img, or .img.xz) to a stick, or to a file. When a
bmap is beside the image (n1.img.bmap for n1.img.xz, as usb builds write it)
or given with --bmap, only the blocks it maps are written, each checked
against the bmap's sha256 on the way. Then every written range is read
back from the device itself, past the page cache, and compared: a failing
or fake stick is caught here, not at boot.

flash refuses, saying why: a mounted device or one with a mounted
partition, one in use by LVM, RAID or crypt, the disk the running system
is on, a device smaller than the image. Without --force it also refuses a
partition, a device that is not removable (some card readers and USB disks
say so: check the name flash prints) and one larger than 256 GiB. It asks
before writing, naming the device's vendor, model and size, unless --yes;
with no terminal to ask on, it needs --yes.

Ctrl-C stops it cleanly; the device is then incomplete, and flash exits 1.
A refusal exits 2, before anything is written.`,
		Example: `  applbuild flash out/pound-lb/usb/n1.img.xz /dev/sdb
  applbuild flash n1.img.xz /dev/sdb --yes                # no question (scripts)
  applbuild flash n1.img.xz /dev/sdb --bmap elsewhere/n1.img.bmap
  applbuild flash n1.img.xz n1-copy.img                   # into a file: the raw image
  lsblk -o NAME,SIZE,RM,TRAN,MODEL                        # which one is the stick?`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Image, o.Target = args[0], args[1]
			o.Report = progress.New(g.stderr)
			if isTerminal(os.Stdin) {
				o.Confirm = ask(os.Stdin, g.stderr)
			}
			res, err := flash.Flash(cmd.Context(), o)
			if err != nil {
				return err
			}
			how := "the whole image"
			if res.Bmap != "" {
				how = "the blocks " + res.Bmap + " maps"
			}
			fmt.Fprintf(g.stdout, "%s: wrote %s (%s of %s), read it back and verified it, in %s\n",
				o.Target, how, compress.HumanSize(res.Written), compress.HumanSize(res.Image.Size), res.Duration.Round(100e6))
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Bmap, "bmap", "", "the image's bmap `FILE` (default: the one beside the image)")
	cmd.Flags().BoolVarP(&o.Yes, "yes", "y", false, "write without asking")
	cmd.Flags().BoolVar(&o.Force, "force", false, "also write a partition, a non-removable device or one larger than 256 GiB")
	return cmd
}

// ask puts the question on w and takes "yes" from r.
func ask(r io.Reader, w io.Writer) func(string) (bool, error) {
	in := bufio.NewReader(r)
	return func(q string) (bool, error) {
		fmt.Fprintf(w, "%s\nType yes to write: ", q)
		line, err := in.ReadString('\n')
		if err != nil && line == "" {
			return false, fmt.Errorf("no answer: %w", err)
		}
		return strings.TrimSpace(line) == "yes", nil
	}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
