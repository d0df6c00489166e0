package plan

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// polarTLE is a made-up sun-synchronous nano (97.5°, 15.2 rev/day, about
// 560 km), epoch 2026-11-21 12:00 UTC.
const polarTLE = "POLAR NANO\n" +
	"1 99901U 26001A   26325.50000000  .00001000  00000-0  50000-4 0  9990\n" +
	"2 99901  97.5000 330.0000 0010000  90.0000 270.0000 15.20000000 10005"

var threeStations = []Station{
	{Name: "svalbard", Lat: 78.23, Lon: 15.39, AltM: 450, MinElevation: 10},
	{Name: "kiruna", Lat: 67.86, Lon: 20.96, AltM: 400, MinElevation: 10},
	{Name: "toulouse", Lat: 43.6, Lon: 1.44, AltM: 150, MinElevation: 10},
}

func overlaps(a, b Window) bool { return a.Start.Before(b.End) && b.Start.Before(a.End) }

func TestContactsOfAPolarNanoOverThreeStations(t *testing.T) {
	o, err := ParseTLE(polarTLE)
	if err != nil {
		t.Fatal(err)
	}
	c, err := o.Contacts(threeStations, t0, 24*time.Hour, 64000)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Stations(); strings.Join(got, ",") != "kiruna,svalbard,toulouse" {
		t.Fatalf("stations %v", got)
	}
	count := map[string]int{}
	for _, w := range c.Windows() {
		if w.Station == "" || w.RateBps != 64000 {
			t.Fatalf("window without its station or rate: %+v", w)
		}
		count[w.Station]++
	}
	// Each station's windows are exactly what Passes gives for it alone.
	for _, st := range threeStations {
		alone, err := o.Passes(st, t0, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		want := Windows(alone, 64000)
		got := c.StationWindows(st.Name)
		if len(got) != len(want) || len(want) == 0 {
			t.Fatalf("%s: %d windows, Passes alone gives %d", st.Name, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s window %d: %+v, Passes alone gives %+v", st.Name, i, got[i], want[i])
			}
		}
		if sp := c.StationPlan(st.Name); sp.Len() != len(want) {
			t.Fatalf("%s: StationPlan has %d windows", st.Name, sp.Len())
		}
	}
	// The geometry: a 97.5° orbit crosses the polar cap every revolution
	// (about 15 a day), a mid-latitude site sees a handful of them.
	if count["svalbard"] < 2*count["toulouse"] || count["kiruna"] <= count["toulouse"] || count["toulouse"] < 2 || count["svalbard"] < 8 {
		t.Fatalf("windows per station %v: the polar station should see far more passes", count)
	}

	// Overlapping windows over different stations are kept apart here and
	// merged in the union.
	ws := c.Windows()
	var a, b Window
	for i := range ws {
		for j := i + 1; j < len(ws) && ws[j].Start.Before(ws[i].End); j++ {
			if ws[j].Station != ws[i].Station && overlaps(ws[i], ws[j]) && a.Start.IsZero() {
				a, b = ws[i], ws[j]
			}
		}
	}
	if a.Start.IsZero() {
		t.Fatal("no overlapping windows over Svalbard and Kiruna in a day: geometry says there are")
	}
	mid := b.Start.Add(time.Second)
	if open := c.Open(mid, 0); len(open) != 2 || open[0] != a || open[1] != b {
		t.Fatalf("open at %s: %+v, want %+v and %+v", mid, open, a, b)
	}
	u := c.Union()
	if u.Len() >= c.Len() {
		t.Fatalf("union has %d windows, the stations %d: overlaps not merged", u.Len(), c.Len())
	}
	uw, ok := u.Current(mid, 0)
	if !ok || uw.Station != "" || uw.Start.After(a.Start) || uw.End.Before(a.End) || uw.End.Before(b.End) {
		t.Fatalf("union window at %s: %+v (ok %v), want one covering %+v and %+v, unnamed", mid, uw, ok, a, b)
	}
	for _, w := range u.Windows() {
		if w.Station != "" {
			t.Fatalf("union window names a station: %+v", w)
		}
	}
	// Total contact time: the union never exceeds the sum, and each
	// instant of any window is covered by the union.
	var sum, union time.Duration
	for _, w := range ws {
		sum += w.Duration()
		if _, ok := u.Current(w.Start, 0); !ok {
			t.Fatalf("union misses %+v", w)
		}
	}
	for _, w := range u.Windows() {
		union += w.Duration()
	}
	if union >= sum {
		t.Fatalf("union %s not below the sum %s despite overlaps", union, sum)
	}
	t.Logf("windows: %v; contact time: %s per station summed, %s in union", count, sum, union)

	// A router's questions.
	first := ws[0]
	if w, ok := c.Next(t0); !ok || w != first {
		t.Fatalf("next from t0: %+v", w)
	}
	if w, ok := c.Next(mid); !ok || w != a {
		t.Fatalf("next at %s (two open): %+v, want the one open longest %+v", mid, w, a)
	}
	if w, ok := c.NextStart(mid); !ok || !w.Start.After(mid) || w == a || w == b {
		t.Fatalf("next start after %s: %+v", mid, w)
	}
	nb := c.NextByStation(a.End)
	if len(nb) != 3 {
		t.Fatalf("next by station after %s: %+v", a.End, nb)
	}
	for _, w := range nb {
		if !w.End.After(a.End) {
			t.Fatalf("next by station: %+v ended", w)
		}
		if sp, _ := c.StationPlan(w.Station).Next(a.End); sp != w {
			t.Fatalf("next by station %s: %+v, its own plan says %+v", w.Station, w, sp)
		}
	}
	last := ws[len(ws)-1]
	if _, ok := c.Next(last.End); ok {
		t.Fatal("a window after the last")
	}
	if got := c.StationPlan("nowhere"); got.Len() != 0 {
		t.Fatal("unknown station has windows")
	}
}

func TestNewContacts(t *testing.T) {
	c, err := NewContacts([]Window{
		{Start: t0.Add(10 * time.Minute), End: t0.Add(20 * time.Minute), Station: "b"},
		{Start: t0, End: t0.Add(12 * time.Minute), Station: "a"},
		{Start: t0.Add(5 * time.Minute), End: t0.Add(15 * time.Minute), Station: "a"}, // merged with the other a
		{Start: t0.Add(time.Hour), End: t0.Add(time.Hour + time.Minute)},              // unnamed
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 3 || len(c.StationWindows("a")) != 1 || !c.StationWindows("a")[0].End.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("%+v", c.Windows())
	}
	if got := strings.Join(c.Stations(), ","); got != ",a,b" {
		t.Fatalf("stations %q", got)
	}
	if open := c.Open(t0.Add(11*time.Minute), 0); len(open) != 2 {
		t.Fatalf("open: %+v", open)
	}
	if open := c.Open(t0.Add(-30*time.Second), time.Minute); len(open) != 1 || open[0].Station != "a" {
		t.Fatalf("guard: %+v", open)
	}
	if u := c.Union(); u.Len() != 2 || !u.Windows()[0].End.Equal(t0.Add(20*time.Minute)) {
		t.Fatalf("union: %+v", u.Windows())
	}
	if _, err := NewContacts([]Window{{Start: t0, End: t0, Station: "a"}}); err == nil || !strings.Contains(err.Error(), `station "a"`) {
		t.Fatalf("empty window: %v", err)
	}
	// New keeps a station's name unless windows over several merge.
	p, _ := New([]Window{{Start: t0, End: t0.Add(time.Minute), Station: "a"}, {Start: t0.Add(30 * time.Second), End: t0.Add(2 * time.Minute), Station: "b"},
		{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour), Station: "a"}})
	if ws := p.Windows(); ws[0].Station != "" || ws[1].Station != "a" {
		t.Fatalf("%+v", ws)
	}
}

func TestPassesOverRefusesAmbiguousStations(t *testing.T) {
	o, err := ParseTLE(polarTLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		st   []Station
		want string
	}{
		{[]Station{{Name: "a"}, {Name: "a"}}, `name "a" given twice`},
		{[]Station{{Name: "a"}, {}}, "station 2 has no name"},
		{[]Station{{Name: "a b"}}, "station 1: station name"},
	} {
		if _, err := o.PassesOver(c.st, t0, time.Hour); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.st, err, c.want)
		}
	}
	// One unnamed station is today's single-station case.
	ps, err := o.PassesOver([]Station{{Lat: 78.23, Lon: 15.39, MinElevation: 10}}, t0, 6*time.Hour)
	if err != nil || len(ps) == 0 || ps[0].Station != "" {
		t.Fatalf("%v %+v", err, ps)
	}
}

func TestStationNames(t *testing.T) {
	for _, ok := range []string{"svalbard", "KSAT-1", "a", "x_y.z", strings.Repeat("a", 64)} {
		if err := CheckStationName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", "a b", "é", "a,b", strings.Repeat("a", 65), "a\n"} {
		if err := CheckStationName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestStaticPlansNameStations(t *testing.T) {
	csvPlan := "aos,los,station,rate\n" +
		"2026-11-21T12:00:00Z,2026-11-21T12:08:00Z,svalbard,64000\n" +
		"2026-11-21T12:02:00Z,2026-11-21T12:06:00Z,kiruna,\n" +
		"2026-11-21T14:00:00Z,2026-11-21T14:05:00Z,svalbard,\n"
	tomlPlan := `[[window]]
start = 2026-11-21T12:00:00Z
end = 2026-11-21T12:08:00Z
rate = 64000
station = "svalbard"

[[window]]
start = 2026-11-21T12:02:00Z
end = 2026-11-21T12:06:00Z
station = "kiruna"

[[window]]
start = 2026-11-21T14:00:00Z
end = 2026-11-21T14:05:00Z
station = "svalbard"
`
	known := []string{"svalbard", "kiruna", "toulouse"}
	for name, src := range map[string]string{"plan.csv": csvPlan, "plan.toml": tomlPlan} {
		c, err := ParseContacts([]byte(src), name, t0, known)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Len() != 3 || len(c.StationWindows("svalbard")) != 2 || c.StationWindows("kiruna")[0].Duration() != 4*time.Minute {
			t.Fatalf("%s: %+v", name, c.Windows())
		}
		if c.StationWindows("svalbard")[0].RateBps != 64000 {
			t.Fatalf("%s: rate lost", name)
		}
		if c.Union().Len() != 2 {
			t.Fatalf("%s: union %+v", name, c.Union().Windows())
		}
		// Without configured stations, names are taken as they are.
		if _, err := ParseContacts([]byte(src), name, t0, nil); err != nil {
			t.Fatalf("%s without stations: %v", name, err)
		}
		// A station the configuration does not list: refused, naming the line.
		bad := strings.Replace(src, "kiruna", "kourou", 1)
		_, err = ParseContacts([]byte(bad), name, t0, known)
		var pe *ParseError
		wantLine := map[string]int{"plan.csv": 3, "plan.toml": 10}[name]
		if !errors.As(err, &pe) || pe.Line != wantLine || !strings.Contains(pe.Msg, `station: "kourou" is not a configured station`) {
			t.Fatalf("%s unknown station: %v", name, err)
		}
		// A malformed name.
		bad = strings.Replace(src, "kiruna", "kir una", 1)
		if _, err := ParseContacts([]byte(bad), name, t0, nil); !errors.As(err, &pe) || pe.Line != wantLine || !strings.HasPrefix(pe.Msg, "station: ") {
			t.Fatalf("%s bad name: %v", name, err)
		}
	}
	// With stations configured, a window must name one.
	_, err := ParseContacts([]byte("start,end\n2026-11-21T12:00:00Z,2026-11-21T12:08:00Z\n"), "p.csv", t0, known)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 2 || !strings.Contains(pe.Msg, "station: missing") {
		t.Fatalf("unnamed window with stations: %v", err)
	}
	_, err = ParseContacts([]byte("a contact +60 +540 1 2 8000\n"), "p.ion", t0, known)
	if !errors.As(err, &pe) || pe.Line != 1 || !strings.Contains(pe.Msg, "ION") {
		t.Fatalf("ION with stations: %v", err)
	}
	// ION lines keep working unnamed.
	c, err := ParseContacts([]byte("a contact +60 +540 1 2 8000\na contact +600 +900 1 2 8000\n"), "p.ion", t0, nil)
	if err != nil || c.Len() != 2 || c.Windows()[0].Station != "" {
		t.Fatalf("ION: %v", err)
	}
	if _, err := ParseContacts([]byte("start,end\n"), "p.csv", t0, nil); !errors.Is(err, ErrEmpty) {
		t.Fatalf("empty: %v", err)
	}
}

func TestMultiStationCSVReadsBack(t *testing.T) {
	o, err := ParseTLE(polarTLE)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := o.PassesOver(threeStations, t0, 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteCSV(&b, ps); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "aos,los,max_elevation_deg,duration_s,station\n") {
		t.Fatalf("header: %q", b.String()[:60])
	}
	c, err := ParseContacts([]byte(b.String()), "passes.csv", t0, []string{"svalbard", "kiruna", "toulouse"})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := o.Contacts(threeStations, t0, 12*time.Hour, 0)
	if c.Len() != want.Len() {
		t.Fatalf("read back %d windows, predicted %d", c.Len(), want.Len())
	}
	for i, w := range c.Windows() {
		p := want.Windows()[i]
		if w.Station != p.Station || w.Start.Sub(p.Start).Abs() > time.Second || w.End.Sub(p.End).Abs() > time.Second {
			t.Fatalf("window %d: %+v, predicted %+v", i, w, p)
		}
	}
	b.Reset()
	WriteION(&b, ps, t0, 1, 2, 8000)
	if !strings.Contains(b.String(), "# station kiruna is node 2\n# station svalbard is node 3\n# station toulouse is node 4\n") {
		t.Fatalf("ion: %s", b.String())
	}
	b.Reset()
	WriteTable(&b, ps)
	if !strings.HasPrefix(b.String(), "STATION") || !strings.Contains(b.String(), "svalbard") {
		t.Fatalf("table: %s", b.String())
	}
}
