package plan

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func TestPlanQueries(t *testing.T) {
	p, err := New([]Window{
		{Start: t0.Add(3 * time.Hour), End: t0.Add(3*time.Hour + 8*time.Minute)},
		{Start: t0, End: t0.Add(10 * time.Minute)},
		{Start: t0.Add(5 * time.Minute), End: t0.Add(12 * time.Minute), RateBps: 64000}, // overlaps: merged
	})
	if err != nil || p.Len() != 2 {
		t.Fatalf("%v %d", err, p.Len())
	}
	if w := p.Windows()[0]; !w.End.Equal(t0.Add(12*time.Minute)) || w.RateBps != 64000 {
		t.Fatalf("merge: %+v", w)
	}
	if _, ok := p.Current(t0.Add(20*time.Minute), 0); ok {
		t.Fatal("in a window during the gap")
	}
	if _, ok := p.Current(t0.Add(-30*time.Second), time.Minute); !ok {
		t.Fatal("guard time not applied before AOS")
	}
	if w, ok := p.Next(t0.Add(time.Hour)); !ok || !w.Start.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("next: %+v", w)
	}
	if w, ok := p.NextStart(t0.Add(time.Minute)); !ok || !w.Start.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("next start: %+v", w)
	}
	if w, ok := p.Last(t0.Add(time.Hour)); !ok || !w.Start.Equal(t0) {
		t.Fatalf("last: %+v", w)
	}
	if _, err := New([]Window{{Start: t0, End: t0}}); err == nil {
		t.Fatal("empty window accepted")
	}
}

func TestParseION(t *testing.T) {
	src := `# ION contact plan
a contact +60 +540 1 2 8000
a range +0 +86400 1 2 1
a contact 2026/11/21-15:00:00 2026/11/21-15:08:00 1 2 8000
a contact +600 +700 3 4 8000
`
	ws, err := ParseION(strings.NewReader(src), "p.ionrc", t0, 1, 2)
	if err != nil || len(ws) != 2 {
		t.Fatalf("%v %+v", err, ws)
	}
	if !ws[0].Start.Equal(t0.Add(time.Minute)) || ws[0].RateBps != 64000 || !ws[1].Start.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("parsed %+v", ws)
	}
	_, err = ParseION(strings.NewReader("a contact +60 +30 1 2 8000\n"), "p.ionrc", t0)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 1 || !strings.Contains(pe.Error(), "p.ionrc:1") {
		t.Fatalf("stop before start: %v", err)
	}
	if _, err := ParseION(strings.NewReader("\n\na contact +x +30 1 2 8000\n"), "p", t0); !errors.As(err, &pe) || pe.Line != 3 {
		t.Fatalf("bad start: %v", err)
	}
}

func TestParseCSVAndTOMLAndLoad(t *testing.T) {
	csvSrc := "aos,los,max_elevation_deg,duration_s\n2026-11-21T12:00:00Z,2026-11-21T12:08:00Z,41.2,480\n"
	ws, err := ParseCSV(strings.NewReader(csvSrc), "p.csv")
	if err != nil || len(ws) != 1 || ws[0].Duration() != 8*time.Minute {
		t.Fatalf("%v %+v", err, ws)
	}
	if _, err := ParseCSV(strings.NewReader("start,end\n2026-11-21T12:00:00Z,soon\n"), "p.csv"); err == nil || !strings.Contains(err.Error(), "p.csv:2") {
		t.Fatalf("bad end: %v", err)
	}
	tomlSrc := "[[window]]\nstart = 2026-11-21T12:00:00Z\nend = 2026-11-21T12:08:00Z\nrate = 64000\n"
	ws, err = ParseTOML([]byte(tomlSrc), "p.toml")
	if err != nil || len(ws) != 1 || ws[0].RateBps != 64000 {
		t.Fatalf("%v %+v", err, ws)
	}
	dir := t.TempDir()
	for name, body := range map[string]string{"a.csv": csvSrc, "b.toml": tomlSrc, "c.ionrc": "a contact +0 +480 1 2 8000\n"} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(body), 0o600)
		p, err := LoadFile(path, t0)
		if err != nil || p.Len() != 1 || p.Windows()[0].Duration() != 8*time.Minute {
			t.Fatalf("%s: %v", name, err)
		}
	}
	os.WriteFile(filepath.Join(dir, "empty.csv"), []byte("start,end\n"), 0o600)
	if _, err := LoadFile(filepath.Join(dir, "empty.csv"), t0); !errors.Is(err, ErrEmpty) {
		t.Fatalf("empty plan: %v", err)
	}
}
