// Package target is what a build writes for one kind of machine: Xen
// domains now, raw and USB disks later. A Target is asked, in this order:
//
//	Verify(plan)          everything it can check from the Plan alone, for
//	                      the whole plan before any byte is written
//	Packages(plan)        what the rootfs must hold for it (the kernel)
//	CheckTree(plan, tree) what it needs from the unpacked rootfs (a kernel
//	                      its boot loader can load), before any node is built
//	Files(plan, node)     its own files in a node's image (boot loader config)
//	Write(ctx, input)     the node's artifacts, from the node's finished tree
//
// Verify and CheckTree fail with a *PlanError, which the command reports
// as a mistake in the spec (exit 2): nothing a rebuild would fix.
package target

import (
	"context"
	"fmt"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/overlays"
	"github.com/applbuild/applbuild/rootfs"
)

// Target writes a Plan's nodes as artifacts for one kind of machine.
type Target interface {
	Name() string
	Verify(pl *builder.Plan) error
	Packages(pl *builder.Plan) []string
	CheckTree(pl *builder.Plan, tree string) error
	Files(pl *builder.Plan, node *builder.Node) ([]overlays.File, error)
	Write(ctx context.Context, in Input) error
}

// Tooled is a Target that names the host programs its Write runs, so a
// build can check them before any work (and name their packages).
type Tooled interface {
	Tools(pl *builder.Plan) []string
}

// Seeder is a Target that puts configuration into the rootfs before its
// packages are installed (rootfs.Request.Files), for the packages' own
// scripts to read: the xen target's initramfs settings, which decide the
// initrd the kernel's postinst makes.
type Seeder interface {
	RootfsFiles(pl *builder.Plan) []rootfs.File
}

// Options are the command-line choices a target may use.
type Options struct {
	// XenDir is where the Xen images will be on the dom0: its
	// <node>/<file> paths go into the xl configs. "" means where the build
	// puts them (the output directory, made absolute).
	XenDir string
	// Formats are virtual-disk formats (Formats: qcow2, vmdk, vdi) the
	// raw target also writes each disk in.
	Formats []string
	// Size is the usb target's image size in bytes; 0: the smallest
	// stick that holds it.
	Size int64
}

// Adjuster is a Target that changes the plan before anything is built
// from it: the usb target's root is a squashfs mounted by live-boot, not
// an fstab line, and a stick gets no swap.
type Adjuster interface {
	Adjust(pl *builder.Plan)
}

// Factory makes a target with its options.
type Factory func(Options) Target

// Input is one node's Write.
type Input struct {
	Plan *builder.Plan
	Node *builder.Node
	// Tree is the node's root tree: the rootfs with the overlay and the
	// target's Files applied, owners resolved, mtimes clamped to Time.
	Tree string
	// Dir is the empty directory the artifacts go to; Final is where Dir
	// will be (absolute) once the whole build succeeded.
	Dir, Final string
	// Time (unix seconds) is stamped on everything a filesystem writer
	// would take from the clock.
	Time int64
	// Step reports progress inside the node; never nil.
	Step func(done, total int, what string)
}

// PlanError is a plan a target cannot build: the spec must change.
type PlanError struct {
	Target string
	Node   string // "" when it is about the whole plan
	Msg    string
}

func (e *PlanError) Error() string {
	if e.Node == "" {
		return fmt.Sprintf("target %s: %s", e.Target, e.Msg)
	}
	return fmt.Sprintf("target %s: node %s: %s", e.Target, e.Node, e.Msg)
}
