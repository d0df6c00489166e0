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
