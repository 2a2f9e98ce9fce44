// Command applbuild builds appliance images for whole clusters: pick a
// personality and a target, get ready-to-run images.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/applbuild/applbuild/flash"
	"github.com/applbuild/applbuild/internal/outdir"
	"github.com/applbuild/applbuild/personalities"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitSpec  = 2 // a mistake in the spec, the site file, --set or the command line
)

func main() {
	ctx, stop := signalContext()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// signalled is the cause of a context cancelled by a signal.
type signalled struct{ sig syscall.Signal }

func (i signalled) Error() string { return "interrupted by " + signalName(i.sig) }

// exitCode is the shell's convention for a death by the signal: 128 + n.
func (i signalled) exitCode() int { return 128 + int(i.sig) }

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// signalContext is cancelled by the first SIGINT or SIGTERM, with an
// signalled cause: the build stops, kills its programs and removes its
// temporary directories. A second signal gets the default action, so a
// user who insists is not kept waiting by the cleanup.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-sigs:
			signal.Stop(sigs)
			cancel(signalled{s.(syscall.Signal)})
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(sigs); cancel(nil) }
}

// usageError marks a mistake in how the command was called.
type usageError struct{ error }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var status exitStatus // a remote command's own (cluster ssh): passed through, silently
	if errors.As(err, &status) {
		return int(status)
	}
	var intr signalled
	if errors.As(context.Cause(ctx), &intr) {
		// Whatever the command was doing when the context ended, the
		// signal is why it failed: say that, not "context canceled".
		fmt.Fprintf(stderr, "applbuild: %v: %v\n", intr, err)
		return intr.exitCode()
	}
	fmt.Fprintln(stderr, "applbuild:", err)
	var specErrs personalities.Errors
	var uerr usageError
	switch {
	case errors.As(err, &specErrs), errors.As(err, &uerr), errors.Is(err, personalities.ErrUnknown),
		errors.Is(err, outdir.ErrRefused), errors.Is(err, flash.ErrRefused):
		return exitSpec
	}
	return exitError
}

// globals are the flags every command shares.
type globals struct {
	stdout, stderr io.Writer
	verbose        bool
	dirs           []string
	secret         string
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "applbuild",
		Short: "Build appliance images for whole clusters",
		Long: `applbuild builds ready-to-run appliance images from a personality (what the
appliance does: web-cluster, nfs-ha, ...) for a target (xen, raw, usb).

A personality is YAML: embedded in the binary, or a file of yours that can
extend the embedded ones. A site file and --set change it for your site.`,
		Example: `  applbuild list
  applbuild plan web-cluster
  applbuild render web-cluster --site site.yaml --out rendered/
  applbuild build web-cluster --target xen`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Runnable, so that cobra hands an unknown command to Args (a
		// usage mistake, exit 2) rather than failing with exit 1.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
			}
			return usageError{errors.New(msg)}
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			level := slog.LevelInfo
			if g.verbose {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})))
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log every external command")
	root.PersistentFlags().StringSliceVar(&g.dirs, "personalities", nil, "extra `DIR` of personality YAML files (searched before the embedded ones)")
	root.PersistentFlags().StringVar(&g.secret, "secret", "", "site secret `FILE` all generated keys derive from (default ~/.config/applbuild/secret)")
	root.AddCommand(newListCmd(g), newShowCmd(g), newPlanCmd(g), newRenderCmd(g), newVolfilesCmd(g), newBuildCmd(g), newCacheCmd(g), newBootCmd(g),
		newClusterCmd(g), newFlashCmd(g))
	return root
}

func (g *globals) library() personalities.Library { return personalities.Library{Dirs: g.dirs} }

// exactArgs is cobra.ExactArgs with a usage error, so it exits 2.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
