package fleet

import (
	"testing"
	"time"

	"gardend/plan"
)

// TestPushedElementsPredictOverEveryStation: with configured stations,
// elements pushed to a nano become a plan over all of them, on board and
// in the master's copy, not over the one profile station.
func TestPushedElementsPredictOverEveryStation(t *testing.T) {
	santiago := plan.Station{Name: "santiago", Lat: -33.4, Lon: -70.6, AltM: 500, MinElevation: 10}
	stations := []plan.Station{{Name: "toulouse", Lat: 43.6, Lon: 1.44, AltM: 150, MinElevation: 10}, santiago}
	now := time.Date(2025, 9, 5, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	content := ommAt("2025-09-04T02:26:37.946976")
	o, err := plan.ParseOrbit(content)
	if err != nil {
		t.Fatal(err)
	}
	span := 24 * time.Hour
	passes, err := o.PassesOver(stations, now.Add(-time.Hour), span)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := plan.New(plan.Windows(passes, 0))
	alone, _ := o.Passes(testStation, now.Add(-time.Hour), span)
	if want.Len() <= len(alone) {
		t.Fatalf("two stations give %d windows, Toulouse alone %d", want.Len(), len(alone))
	}
	m := NewMaster(MasterOptions{Now: clock, Station: testStation, Stations: stations, PredictSpan: span})
	n := NewNano(NanoOptions{Now: clock, Station: testStation, Stations: stations, PredictSpan: span})
	mp, err := m.planOf(KindElements, content)
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.validate(KindElements, content, false)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]*plan.Plan{"master": mp, "nano": c.plan} {
		if !sameWindows(got, want) {
			t.Fatalf("%s: %d windows, want the %d over both stations", name, got.Len(), want.Len())
		}
		santiagoSeen := false
		for _, w := range got.Windows() {
			santiagoSeen = santiagoSeen || w.Station == "santiago"
		}
		if !santiagoSeen {
			t.Fatalf("%s: no window names santiago", name)
		}
	}
	// Without stations: the one profile station, as before.
	m1 := NewMaster(MasterOptions{Now: clock, Station: testStation, PredictSpan: span})
	if p, err := m1.planOf(KindElements, content); err != nil || p.Len() != len(alone) {
		t.Fatalf("single station: %v %d windows, want %d", err, p.Len(), len(alone))
	}
}
