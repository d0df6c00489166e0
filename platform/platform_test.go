package platform

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteFileAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "f")
	if err := WriteFileAtomic(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("two"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	st, _ := os.Stat(path)
	if err != nil || string(b) != "two" || st.Mode().Perm() != 0o640 {
		t.Fatalf("content %q mode %v err %v", b, st.Mode(), err)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".f.tmp-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
	if err := WriteFileAtomic(filepath.Join(path, "under-a-file"), nil, 0o600); err == nil {
		t.Fatal("writing below a regular file succeeded")
	}
}

func TestFreeBytes(t *testing.T) {
	n, err := FreeBytes(t.TempDir())
	if err != nil || n == 0 {
		t.Fatalf("free %d err %v", n, err)
	}
	if _, err := FreeBytes("/nonexistent/path"); err == nil {
		t.Fatal("no error for a missing path")
	}
}

func TestCheckClock(t *testing.T) {
	built := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	if CheckClock(time.Unix(0, 0), built) != ClockUnknown {
		t.Fatal("1970 after a 2026 build is plausible?")
	}
	if CheckClock(built.Add(time.Hour), built) != ClockPlausible {
		t.Fatal("a clock after the build date is not plausible")
	}
	if CheckClock(time.Unix(0, 0), time.Time{}) != ClockPlausible {
		t.Fatal("without a build date nothing can be judged")
	}
}

func TestReadMemory(t *testing.T) {
	m, err := ReadMemory()
	if err != nil || m.Total == 0 || m.Available == 0 || m.Available > m.Total {
		t.Fatalf("%+v %v", m, err)
	}
}
