package systemd

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func analyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (apt-get install systemd)")
	}
	return p
}

// TestUnitExposure holds the unit to an overall exposure of at most 1.2.
func TestUnitExposure(t *testing.T) {
	out, err := exec.Command(analyze(t), "security", "--offline=true", "gardend.service").CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for gardend\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	level, _ := strconv.ParseFloat(string(m[1]), 64)
	if level > 1.2 {
		t.Fatalf("exposure %.1f > 1.2:\n%s", level, out)
	}
	t.Logf("exposure %.1f", level)
}

// TestUnitVerifies runs systemd-analyze verify on the unit and on the unit
// with the token drop-in (paths point at an existing binary).
func TestUnitVerifies(t *testing.T) {
	tool := analyze(t)
	dir := t.TempDir()
	unit, _ := os.ReadFile("gardend.service")
	os.WriteFile(filepath.Join(dir, "gardend.service"), bytes.ReplaceAll(unit, []byte("/usr/bin/gardend"), []byte("/bin/true")), 0o644)
	if out, err := exec.Command(tool, "verify", filepath.Join(dir, "gardend.service")).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	dropin := filepath.Join(dir, "gardend.service.d")
	os.Mkdir(dropin, 0o755)
	conf, _ := os.ReadFile("gardend-token.conf")
	os.WriteFile(filepath.Join(dropin, "token.conf"), conf, 0o644)
	if out, err := exec.Command(tool, "verify", filepath.Join(dir, "gardend.service")).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("verify with the token drop-in: %v\n%s", err, out)
	}
}

func TestJournalLinesCarryPriorities(t *testing.T) {
	var b bytes.Buffer
	log := NewLogger(&b, slog.LevelDebug, true)
	log.Debug("d")
	log.Info("hello", "peer", "12D3", "note", "two words")
	log.Warn("w")
	log.Error("e", "err", "boom")
	want := "<7>d\n<6>hello peer=12D3 note=\"two words\"\n<4>w\n<3>e err=boom\n"
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	var plain bytes.Buffer
	NewLogger(&plain, slog.LevelInfo, false).Info("hello")
	if !strings.HasPrefix(plain.String(), "time=") {
		t.Fatalf("plain logs keep timestamps: %q", plain.String())
	}
}

func TestRepeatedErrorsAreRateLimited(t *testing.T) {
	var b bytes.Buffer
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	h := &rateLimited{next: &journalHandlerFor(&b).jh, every: time.Minute, seen: map[string]*limit{}, mu: newMutex(), now: func() time.Time { return now }}
	log := slog.New(h)
	for range 100 {
		log.Error("link lost")
		log.Info("chatty but fine")
	}
	now = now.Add(61 * time.Second)
	log.Error("link lost")
	got := b.String()
	if strings.Count(got, "link lost") != 2 || !strings.Contains(got, "repeated=99") || strings.Count(got, "chatty") != 100 {
		t.Fatalf("rate limiting:\n%s", got)
	}
}

func TestUnderJournald(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st statIDs
	if err := fstatIDs(f, &st); err != nil {
		t.Fatal(err)
	}
	env := func(v string) func(string) string { return func(string) string { return v } }
	if !UnderJournald(env(strconv.FormatUint(st.dev, 10)+":"+strconv.FormatUint(st.ino, 10)), f) {
		t.Fatal("matching JOURNAL_STREAM not recognised")
	}
	if UnderJournald(env("1:2"), f) || UnderJournald(env(""), f) {
		t.Fatal("journald assumed without a matching JOURNAL_STREAM")
	}
}
