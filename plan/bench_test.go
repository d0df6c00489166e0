package plan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkPlan24h measures predicting a day of passes from a TLE.
func BenchmarkPlan24h(b *testing.B) {
	o, err := ParseTLE("1 25544U 98067A   25247.10182809  .00011777  00000-0  21333-3 0  9997\n2 25544  51.6327 275.9345 0004179 299.5263  60.5309 15.50088696528307")
	if err != nil {
		b.Fatal(err)
	}
	st := Station{Lat: 43.6, Lon: 1.44, AltM: 150, MinElevation: 10}
	from := time.Date(2025, 9, 11, 0, 0, 0, 0, time.UTC)
	for b.Loop() {
		if _, err := o.Passes(st, from, 24*time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "plan_24h_ms")
}

// BenchmarkContacts3Stations24h measures predicting a day of a polar
// nano's windows over three stations (Svalbard, Kiruna, Toulouse): what a
// master does per nano when [[stations]] lists three.
func BenchmarkContacts3Stations24h(b *testing.B) {
	o, err := ParseTLE(polarTLE)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		c, err := o.Contacts(threeStations, t0, 24*time.Hour, 0)
		if err != nil {
			b.Fatal(err)
		}
		n = c.Len()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "contacts_3stations_24h_ms")
	b.ReportMetric(float64(n), "windows_3stations_24h")
}

// BenchmarkParseElements measures reading one element set in each form
// (what a nano does when elements are pushed to it).
func BenchmarkParseElements(b *testing.B) {
	for _, name := range []string{"iss.tle", "iss.json", "iss.kvn", "iss.xml", "iss.csv"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.TrimPrefix(name, "iss."), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseOrbit(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
