package dtn

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// mountTmpfs mounts a small tmpfs for a disk-full test (needs root).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs (CI runs as root)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

func TestDiskFull(t *testing.T) {
	ctx := context.Background()
	t.Run("free-space reserve", func(t *testing.T) {
		f := newFixture(t)
		f.path = filepath.Join(mountTmpfs(t, "2m"), "state.db")
		s := f.open(t) // default reserve (16 MiB) > the whole disk
		_, _, err := s.Enqueue(ctx, entry("N", protoCreate, "r", OpCreate, "x"))
		var fe *FullError
		if !errors.As(err, &fe) || fe.Reason != "disk" || fe.Level != Critical {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("ENOSPC", func(t *testing.T) {
		f := newFixture(t)
		f.path = filepath.Join(mountTmpfs(t, "2m"), "state.db")
		s := f.open(t, func(o *Options) { o.QuotaBytes = 1 << 30 })
		s.opts.MinFreeBytes = 0 // no reserve: let the writes hit ENOSPC itself
		payload := strings.Repeat("z", 8<<10)
		var err error
		n := 0
		for ; n < 1000; n++ {
			if _, _, err = s.Enqueue(ctx, entry("N", protoCreate, "", OpCreate, payload)); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrStoreFull) || !strings.Contains(err.Error(), "no space left") {
			t.Fatalf("after %d entries: %v, want ErrStoreFull from ENOSPC", n, err)
		}
		t.Logf("disk full after %d entries: %v", n, err)
		s.Close()
		s = f.open(t, func(o *Options) { o.MinFreeBytes = 1 })
		if s.Len("N") != n {
			t.Fatalf("%d entries after reopen, %d were durable", s.Len("N"), n)
		}
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
	})
}
