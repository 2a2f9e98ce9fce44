// Package regfile opens files that must be regular (a spec, the site
// secret) without the hazards of what else a path can name.
package regfile

import (
	"io/fs"
	"os"
	"syscall"
)

// Open opens path for reading without blocking, so a FIFO given by
// mistake cannot hang the caller, and returns what fstat says of it: the
// caller refuses anything but a regular file (a device such as /dev/zero
// included) before it reads a byte.
func Open(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}
