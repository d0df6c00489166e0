package plan

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Element sets may come over the network (pushed to a nano): every parser
// must refuse bad input with an *ElementsError, never panic, and whatever
// it accepts must be safe to hand to the propagator.

func seedElements(f *testing.F, files ...string) {
	for _, name := range files {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func checkParsed(t *testing.T, sets []Elements, err error) {
	if err != nil {
		var ee *ElementsError
		if !errors.As(err, &ee) || !errors.Is(err, ErrBadElements) {
			t.Fatalf("untyped error %T: %v", err, err)
		}
		return
	}
	for _, e := range sets {
		o, err := NewOrbit(e)
		if err != nil {
			if !errors.Is(err, ErrBadElements) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			continue
		}
		if _, err := o.Elevation(toulouse, e.Epoch.Add(90*60e9)); err != nil {
			continue // propagation may fail (decay); it must not panic
		}
	}
}

func FuzzParseTLE(f *testing.F) {
	seedElements(f, "iss.tle")
	for _, s := range otherTLEs {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseTLE(string(b))
		if err == nil {
			checkParsed(t, []Elements{o.Elements}, nil)
			return
		}
		checkParsed(t, nil, err)
	})
}

func FuzzParseOMMJSON(f *testing.F) {
	seedElements(f, "iss.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		sets, err := ParseOMMJSON(b)
		checkParsed(t, sets, err)
	})
}

func FuzzParseOMMKVN(f *testing.F) {
	seedElements(f, "iss.kvn")
	f.Fuzz(func(t *testing.T, b []byte) {
		sets, err := ParseOMMKVN(b)
		checkParsed(t, sets, err)
	})
}

func FuzzParseOMMXML(f *testing.F) {
	seedElements(f, "iss.xml")
	f.Fuzz(func(t *testing.T, b []byte) {
		sets, err := ParseOMMXML(b)
		checkParsed(t, sets, err)
	})
}

func FuzzParseOMMCSV(f *testing.F) {
	seedElements(f, "iss.csv")
	f.Fuzz(func(t *testing.T, b []byte) {
		sets, err := ParseOMMCSV(b)
		checkParsed(t, sets, err)
	})
}

// FuzzParseElements covers format detection in front of every parser.
func FuzzParseElements(f *testing.F) {
	seedElements(f, "iss.tle", "iss.json", "iss.kvn", "iss.xml", "iss.csv")
	f.Fuzz(func(t *testing.T, b []byte) {
		sets, err := ParseElements(b)
		checkParsed(t, sets, err)
	})
}

// FuzzParseContacts covers the plan-file parsers (CSV, TOML, ION) with
// and without configured stations: an error is a *ParseError or names the
// empty plan, never a panic; whatever is accepted is a consistent plan.
func FuzzParseContacts(f *testing.F) {
	f.Add([]byte("aos,los,station,rate\n2026-11-21T12:00:00Z,2026-11-21T12:08:00Z,svalbard,64000\n2026-11-21T12:02:00Z,2026-11-21T12:06:00Z,kiruna,\n"), true)
	f.Add([]byte("[[window]]\nstart = 2026-11-21T12:00:00Z\nend = 2026-11-21T12:08:00Z\nstation = \"kiruna\"\n"), true)
	f.Add([]byte("a contact +60 +540 1 2 8000\n"), false)
	f.Add([]byte("start,end\n2026-11-21T12:00:00Z,2026-11-21T12:08:00Z\n"), false)
	known := []string{"svalbard", "kiruna"}
	f.Fuzz(func(t *testing.T, b []byte, withStations bool) {
		var k []string
		if withStations {
			k = known
		}
		c, err := ParseContacts(b, "fuzz", t0, k)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) && !errors.Is(err, ErrEmpty) && !errors.Is(err, ErrBackwards) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		u := c.Union()
		for _, w := range c.Windows() {
			if !w.End.After(w.Start) {
				t.Fatalf("empty window accepted: %+v", w)
			}
			if withStations && w.Station != "svalbard" && w.Station != "kiruna" {
				t.Fatalf("unknown station accepted: %+v", w)
			}
			if _, ok := u.Current(w.Start, 0); !ok {
				t.Fatalf("union misses %+v", w)
			}
		}
	})
}
