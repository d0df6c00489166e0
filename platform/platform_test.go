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

func TestParseMeminfo(t *testing.T) {
	const kb = 1024
	for _, c := range []struct {
		name, in string
		want     Memory
	}{
		{"today's kernels", "MemTotal:        8024088 kB\nMemFree:          612340 kB\nMemAvailable:    5120344 kB\nBuffers:          201236 kB\n",
			Memory{Total: 8024088 * kb, Free: 612340 * kb, Available: 5120344 * kb}},
		{"before MemAvailable (3.14): Free stands in", "MemTotal: 1000 kB\nMemFree: 300 kB\nCached: 500 kB",
			Memory{Total: 1000 * kb, Free: 300 * kb, Available: 300 * kb}},
		{"unreadable lines are skipped", "MemTotal: lots kB\nMemFree: 10 MB\nMemAvailable: 99999999999999999999 kB\nMemTotal 5 kB\n:\n",
			Memory{}},
		{"a value too large to count in bytes", "MemTotal: 18014398509481984 kB\n", Memory{}},
		{"empty", "", Memory{}},
	} {
		if got := parseMeminfo(c.in); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}
