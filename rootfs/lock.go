package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockPoll is how often a waiting lock retries; flock(2) itself cannot be
// interrupted by a context, so waiting is a loop of non-blocking attempts.
const lockPoll = 100 * time.Millisecond

// fileLock is an exclusive flock(2) on a lock file.
type fileLock struct{ f *os.File }

// lockFile takes an exclusive lock on path, waiting until it is free or ctx
// is done. The lock file may be removed by its holder (Prune does), so after
// locking it checks that the file it holds is still the one at path; if not,
// it starts again, which keeps two processes from each holding a different
// file of the same name.
func lockFile(ctx context.Context, path string) (*fileLock, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if err := flockWait(ctx, f); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		held, err1 := f.Stat()
		named, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, named) {
			return &fileLock{f: f}, nil
		}
		f.Close() // removed or replaced while we waited: lock the new one
	}
}

// tryLockFile is lockFile without waiting; ok is false if someone holds it.
func tryLockFile(path string) (l *fileLock, ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	held, err1 := f.Stat()
	named, err2 := os.Stat(path)
	if err1 != nil || err2 != nil || !os.SameFile(held, named) {
		f.Close()
		return nil, false, nil
	}
	return &fileLock{f: f}, true, nil
}

func flockWait(ctx context.Context, f *os.File) error {
	t := time.NewTicker(lockPoll)
	defer t.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// unlock releases the lock; closing the descriptor drops the flock.
func (l *fileLock) unlock() error { return l.f.Close() }

// removeAndUnlock deletes the lock file while still holding it, so that no
// one else can be holding it, then releases it.
func (l *fileLock) removeAndUnlock() error {
	err := os.Remove(l.f.Name())
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}
