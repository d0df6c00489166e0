package plan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"
)

// Format names the text form an element set was read from.
type Format string

// The element-set forms ParseElements recognises.
const (
	FormatTLE     Format = "TLE"      // two- or three-line elements, Alpha-5 numbers included
	FormatOMMJSON Format = "OMM JSON" // CelesTrak FORMAT=JSON or JSON-PRETTY, Space-Track JSON
	FormatOMMKVN  Format = "OMM KVN"  // CCSDS keyword = value lines
	FormatOMMXML  Format = "OMM XML"  // CCSDS NDM/XML <omm> documents
	FormatOMMCSV  Format = "OMM CSV"  // CelesTrak FORMAT=CSV: a header row of OMM keywords
)

// Elements is one set of SGP4 mean elements (TEME, UTC), whether it came
// from a TLE or an OMM. Units are the OMM's: degrees, revolutions per day,
// B* in inverse Earth radii. The propagator is fed from these float64
// fields directly, so an OMM's digits beyond a TLE's columns are kept.
type Elements struct {
	Name           string    // OBJECT_NAME or the TLE's name line; may be empty
	ObjectID       string    // international designator, e.g. "1998-067A" (TLE: "98067A")
	CatalogNumber  int       // NORAD_CAT_ID: metadata only, any size (OMMs go past 339999)
	Classification string    // "U", "C", "S"
	Epoch          time.Time // UTC
	MeanMotion     float64   // rev/day
	Eccentricity   float64
	Inclination    float64 // degrees
	RAAN           float64 // right ascension of the ascending node, degrees
	ArgPericenter  float64 // degrees
	MeanAnomaly    float64 // degrees
	BStar          float64 // 1/earth radii
	MeanMotionDot  float64 // rev/day², the TLE's ṅ/2 (not used by SGP4)
	MeanMotionDDot float64 // rev/day³, the TLE's n̈/6 (not used by SGP4)
	ElementSetNo   int
	RevAtEpoch     int
	Format         Format // where it came from
}

// ErrBadElements is what every element-set parse or validation error
// unwraps to, so callers can tell bad input from I/O failures.
var ErrBadElements = errors.New("bad orbit elements")

// ElementsError names the field of an element set that is wrong, and where
// it is: the line for line-oriented forms (TLE, KVN, CSV, and XML and JSON
// where the field could be located), the object's position in a file with
// several.
type ElementsError struct {
	Format Format
	Line   int    // 1-based; 0 when unknown
	Object int    // 1-based position of the element set in the file; 0 when there is one
	Field  string // OMM keyword or TLE field name, e.g. "ECCENTRICITY", "checksum"
	Msg    string
}

func (e *ElementsError) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Format))
	if e.Line > 0 {
		fmt.Fprintf(&b, " line %d", e.Line)
	}
	if e.Object > 0 {
		fmt.Fprintf(&b, " (element set %d)", e.Object)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": %s", e.Field)
	}
	fmt.Fprintf(&b, ": %s", e.Msg)
	return b.String()
}

// Unwrap makes errors.Is(err, ErrBadElements) true.
func (e *ElementsError) Unwrap() error { return ErrBadElements }

// maxPeriodMinutes is SGP4's near-Earth limit: longer periods need SDP4's
// deep-space terms, which the propagator does not implement.
const maxPeriodMinutes = 225

// validate checks the fields SGP4 reads; fieldLine locates a field for the
// error (nil: no lines).
func (e *Elements) validate(fieldLine func(field string) int, object int) error {
	bad := func(field, format string, args ...any) error {
		line := 0
		if fieldLine != nil {
			line = fieldLine(field)
		}
		return &ElementsError{Format: e.Format, Line: line, Object: object, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"MEAN_MOTION", e.MeanMotion}, {"ECCENTRICITY", e.Eccentricity}, {"INCLINATION", e.Inclination},
		{"RA_OF_ASC_NODE", e.RAAN}, {"ARG_OF_PERICENTER", e.ArgPericenter}, {"MEAN_ANOMALY", e.MeanAnomaly},
		{"BSTAR", e.BStar}, {"MEAN_MOTION_DOT", e.MeanMotionDot}, {"MEAN_MOTION_DDOT", e.MeanMotionDDot}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return bad(f.name, "%v is not a finite number", f.v)
		}
	}
	if e.Epoch.IsZero() || e.Epoch.Year() < 1957 || e.Epoch.Year() > 2999 {
		return bad("EPOCH", "%s is not a plausible epoch", e.Epoch.Format(time.RFC3339))
	}
	if e.MeanMotion <= 0 {
		return bad("MEAN_MOTION", "%g rev/day: must be positive", e.MeanMotion)
	}
	if p := 1440 / e.MeanMotion; p > maxPeriodMinutes {
		return bad("MEAN_MOTION", "period %.0f min is deep space (over %d min): SGP4 near-Earth only", p, maxPeriodMinutes)
	}
	if e.MeanMotion > 17.5 { // a period under 82 min is below the surface
		return bad("MEAN_MOTION", "%g rev/day is faster than any orbit above the Earth", e.MeanMotion)
	}
	if e.Eccentricity < 0 || e.Eccentricity >= 1 {
		return bad("ECCENTRICITY", "%g is outside [0, 1)", e.Eccentricity)
	}
	if e.Inclination < 0 || e.Inclination > 180 {
		return bad("INCLINATION", "%g is outside 0..180 degrees", e.Inclination)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"RA_OF_ASC_NODE", e.RAAN}, {"ARG_OF_PERICENTER", e.ArgPericenter}, {"MEAN_ANOMALY", e.MeanAnomaly}} {
		if f.v < -360 || f.v > 360 {
			return bad(f.name, "%g is outside -360..360 degrees", f.v)
		}
	}
	// Kepler's third law with SGP4's (WGS-72) gravitational parameter.
	n := e.MeanMotion * 2 * math.Pi / 86400
	if perigee := math.Cbrt(398600.8/(n*n))*(1-e.Eccentricity) - 6378.135; perigee < 0 {
		return bad("ECCENTRICITY", "%g with mean motion %g puts the perigee %.0f km below the surface", e.Eccentricity, e.MeanMotion, -perigee)
	}
	if math.Abs(e.BStar) > 1 {
		return bad("BSTAR", "%g 1/ER is not a drag term", e.BStar)
	}
	if e.CatalogNumber < 0 {
		return bad("NORAD_CAT_ID", "%d is negative", e.CatalogNumber)
	}
	return nil
}

// Compare orders element sets by epoch: -1 when e is older than o, 0 for
// the same epoch, +1 when e is newer. The catalogue number does not take
// part: an object keeps its orbit when its number changes (analyst numbers
// become catalogue numbers after launch).
func (e *Elements) Compare(o *Elements) int { return e.Epoch.Compare(o.Epoch) }

// Newer reports whether e's epoch is later than o's.
func (e *Elements) Newer(o *Elements) bool { return e.Compare(o) > 0 }

// StaleError refuses an element set that is not newer than the one in
// force (the rule gpredict applies to fetched TLEs).
type StaleError struct {
	InForce, Offered time.Time // the two epochs
}

func (e *StaleError) Error() string {
	if e.Offered.Equal(e.InForce) {
		return fmt.Sprintf("orbit elements of epoch %s are already in force", e.Offered.UTC().Format(time.RFC3339Nano))
	}
	return fmt.Sprintf("orbit elements of epoch %s are older than those in force (epoch %s)",
		e.Offered.UTC().Format(time.RFC3339Nano), e.InForce.UTC().Format(time.RFC3339Nano))
}

// CheckNewer returns nil when offered may replace inForce (its epoch is
// later), a *StaleError otherwise. inForce nil accepts anything.
func CheckNewer(inForce, offered *Elements) error {
	if inForce == nil || offered.Newer(inForce) {
		return nil
	}
	return &StaleError{InForce: inForce.Epoch, Offered: offered.Epoch}
}

// DetectFormat tells the form of an element-set file from its content.
func DetectFormat(data []byte) (Format, error) {
	s := bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
	if len(s) == 0 {
		return "", &ElementsError{Msg: "empty input", Line: 1}
	}
	switch s[0] {
	case '[', '{':
		return FormatOMMJSON, nil
	case '<':
		return FormatOMMXML, nil
	}
	first, _, _ := bytes.Cut(s, []byte("\n"))
	first = bytes.TrimSpace(first)
	up := bytes.ToUpper(first)
	if bytes.Contains(up, []byte(",")) && (bytes.Contains(up, []byte("NORAD_CAT_ID")) || bytes.Contains(up, []byte("MEAN_MOTION"))) {
		return FormatOMMCSV, nil
	}
	for _, l := range bytes.Split(s, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) == 0 || bytes.HasPrefix(l, []byte("COMMENT")) {
			continue
		}
		k, _, ok := bytes.Cut(l, []byte("="))
		if ok && ommKeywords[string(bytes.TrimSpace(k))] {
			return FormatOMMKVN, nil
		}
		break
	}
	for _, l := range bytes.Split(s, []byte("\n")) {
		if l = bytes.TrimSpace(l); len(l) > 2 && (l[0] == '1' || l[0] == '2') && l[1] == ' ' {
			return FormatTLE, nil
		}
	}
	return "", &ElementsError{Line: 1, Msg: "not a TLE nor an OMM (JSON, KVN, XML or CSV)"}
}

// ParseElements reads every element set in data, in the form DetectFormat
// finds. A TLE file holds one set (with or without a name line).
func ParseElements(data []byte) ([]Elements, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte-order mark
	f, err := DetectFormat(data)
	if err != nil {
		return nil, err
	}
	var out []Elements
	switch f {
	case FormatTLE:
		o, err := ParseTLE(string(data))
		if err != nil {
			return nil, err
		}
		out = []Elements{o.Elements}
	case FormatOMMJSON:
		out, err = ParseOMMJSON(data)
	case FormatOMMKVN:
		out, err = ParseOMMKVN(data)
	case FormatOMMXML:
		out, err = ParseOMMXML(data)
	case FormatOMMCSV:
		out, err = ParseOMMCSV(data)
	}
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, &ElementsError{Format: f, Msg: "no element set in the input"}
	}
	return out, nil
}

// ParseOrbit reads exactly one element set, in any recognised form, and
// readies it for propagation.
func ParseOrbit(data []byte) (*Orbit, error) {
	sets, err := ParseElements(data)
	if err != nil {
		return nil, err
	}
	if len(sets) != 1 {
		return nil, &ElementsError{Format: sets[0].Format, Msg: fmt.Sprintf("holds %d element sets; want one (e.g. CelesTrak's ?CATNR= query)", len(sets))}
	}
	return NewOrbit(sets[0])
}

// MaxElementsFile bounds what LoadOrbit reads: one element set is under
// 2 KiB in any form.
const MaxElementsFile = 1 << 20

// LoadOrbit reads an elements file (TLE or OMM, detected) holding one set.
func LoadOrbit(path string) (*Orbit, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxElementsFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxElementsFile {
		return nil, fmt.Errorf("%s: over %d bytes: %w", path, MaxElementsFile, ErrBadElements)
	}
	o, err := ParseOrbit(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return o, nil
}
