package plan

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/akhenakh/sgp4"
)

// TLEError is the error for a malformed TLE: an *ElementsError with
// Format "TLE", naming the line and field.
type TLEError = ElementsError

// Orbit is a validated element set ready to propagate with SGP4
// (near-Earth; deep space objects, periods over 225 minutes, are refused).
type Orbit struct {
	Name     string
	Number   int       // catalogue number (metadata)
	Epoch    time.Time // of the element set
	Elements Elements
	tle      *sgp4.TLE
}

// Station is a ground station and the lowest elevation at which it can
// hold the link.
type Station struct {
	Name         string  // names the station in passes and windows; may be empty when there is only one
	Lat, Lon     float64 // degrees
	AltM         float64 // metres above sea level
	MinElevation float64 // degrees
}

// NewOrbit validates e and readies it for SGP4. The propagator is given
// e's float64 fields as they are: nothing is rounded to TLE columns.
func NewOrbit(e Elements) (*Orbit, error) {
	if err := e.validate(nil, 0); err != nil {
		return nil, err
	}
	ep := e.Epoch.UTC()
	midnight := time.Date(ep.Year(), ep.Month(), ep.Day(), 0, 0, 0, 0, time.UTC)
	t := &sgp4.TLE{Name: e.Name, SatelliteNumber: e.CatalogNumber, Classification: 'U', International: e.ObjectID,
		EpochYear: ep.Year(), EpochDay: float64(ep.YearDay()) + ep.Sub(midnight).Seconds()/86400,
		MeanMotionDot: e.MeanMotionDot, MeanMotionDot2: e.MeanMotionDDot, Bstar: e.BStar, ElementNumber: e.ElementSetNo,
		Inclination: e.Inclination, RightAscension: e.RAAN, Eccentricity: e.Eccentricity, ArgOfPerigee: e.ArgPericenter,
		MeanAnomaly: e.MeanAnomaly, MeanMotion: e.MeanMotion, RevolutionNumber: e.RevAtEpoch}
	o := &Orbit{Name: e.Name, Number: e.CatalogNumber, Epoch: e.Epoch, Elements: e, tle: t}
	pos, vel, err := o.Position(0)
	if err != nil {
		return nil, &ElementsError{Format: e.Format, Field: "elements", Msg: "do not propagate: " + err.Error()}
	}
	for _, v := range append(pos[:], vel[:]...) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, &ElementsError{Format: e.Format, Field: "elements", Msg: "do not propagate: SGP4 gives no finite position at epoch"}
		}
	}
	return o, nil
}

// tleField is a fixed column range of a TLE line (1-based, inclusive).
type tleField struct {
	name     string
	from, to int
	kind     byte // 'i' integer, 'f' float, 'd' implied-decimal digits, 'e' exponent form, 'n' catalogue number, ' ' free
}

var line1Fields = []tleField{
	{"satellite number", 3, 7, 'n'}, {"epoch year", 19, 20, 'i'}, {"epoch day", 21, 32, 'f'},
	{"first derivative of mean motion", 34, 43, 'f'}, {"second derivative of mean motion", 45, 52, 'e'},
	{"drag term (B*)", 54, 61, 'e'}, {"element set number", 65, 68, 'i'},
}

var line2Fields = []tleField{
	{"satellite number", 3, 7, 'n'}, {"inclination", 9, 16, 'f'}, {"right ascension of the ascending node", 18, 25, 'f'},
	{"eccentricity", 27, 33, 'd'}, {"argument of perigee", 35, 42, 'f'}, {"mean anomaly", 44, 51, 'f'},
	{"mean motion", 53, 63, 'f'}, {"revolution number", 64, 68, 'i'},
}

// ParseTLE validates and parses a two- or three-line element set (an
// optional name line, then lines 1 and 2). Catalogue numbers may be in
// Alpha-5 form (A0000 = 100000 … Z9999 = 339999, I and O unused).
func ParseTLE(text string) (*Orbit, error) {
	var lines []string
	var nums []int
	for i, l := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		lines = append(lines, strings.TrimRight(l, " \t\r"))
		nums = append(nums, i+1)
	}
	name := ""
	switch len(lines) {
	case 3:
		name = strings.TrimSpace(strings.TrimPrefix(lines[0], "0 "))
		lines, nums = lines[1:], nums[1:]
	case 2:
	default:
		return nil, tleErr(1, "format", "want 2 lines (or a name and 2 lines), got %d", len(lines))
	}
	for k, l := range lines {
		if err := checkTLELine(l, k+1, nums[k]); err != nil {
			return nil, err
		}
	}
	l1, l2 := lines[0], lines[1]
	if l1[2:7] != l2[2:7] {
		return nil, tleErr(nums[1], "satellite number", "%q differs from line 1's %q", l2[2:7], l1[2:7])
	}
	e := Elements{Name: name, Format: FormatTLE, Classification: strings.TrimSpace(l1[7:8]), ObjectID: strings.TrimSpace(l1[9:17])}
	e.CatalogNumber, _ = catalogNumber(l1[2:7])
	yy, _ := strconv.Atoi(strings.TrimSpace(l1[18:20]))
	year := 1900 + yy
	if yy < 57 {
		year = 2000 + yy
	}
	day, _ := strconv.ParseFloat(strings.TrimSpace(l1[20:32]), 64)
	if day < 1 || day >= 367 {
		return nil, tleErr(nums[0], "epoch day", "%g is outside 1..366", day)
	}
	whole := int(day)
	e.Epoch = time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, whole-1).
		Add(time.Duration(math.Round((day - float64(whole)) * 86400e9)))
	e.MeanMotionDot, _ = strconv.ParseFloat(strings.TrimSpace(l1[33:43]), 64)
	e.MeanMotionDDot = expField(l1[44:52])
	e.BStar = expField(l1[53:61])
	e.ElementSetNo, _ = strconv.Atoi(strings.TrimSpace(l1[64:68]))
	e.Inclination, _ = strconv.ParseFloat(strings.TrimSpace(l2[8:16]), 64)
	e.RAAN, _ = strconv.ParseFloat(strings.TrimSpace(l2[17:25]), 64)
	e.Eccentricity, _ = strconv.ParseFloat("0."+strings.TrimSpace(l2[26:33]), 64)
	e.ArgPericenter, _ = strconv.ParseFloat(strings.TrimSpace(l2[34:42]), 64)
	e.MeanAnomaly, _ = strconv.ParseFloat(strings.TrimSpace(l2[43:51]), 64)
	e.MeanMotion, _ = strconv.ParseFloat(strings.TrimSpace(l2[52:63]), 64)
	e.RevAtEpoch, _ = strconv.Atoi(strings.TrimSpace(l2[63:68]))
	// Checked here with the TLE's own field names and lines.
	fieldLine := map[string]struct {
		line int
		name string
	}{"INCLINATION": {nums[1], "inclination"}, "MEAN_MOTION": {nums[1], "mean motion"}, "ECCENTRICITY": {nums[1], "eccentricity"},
		"RA_OF_ASC_NODE": {nums[1], "right ascension of the ascending node"}, "ARG_OF_PERICENTER": {nums[1], "argument of perigee"},
		"MEAN_ANOMALY": {nums[1], "mean anomaly"}, "BSTAR": {nums[0], "drag term (B*)"}, "EPOCH": {nums[0], "epoch day"},
		"MEAN_MOTION_DOT": {nums[0], "first derivative of mean motion"}, "MEAN_MOTION_DDOT": {nums[0], "second derivative of mean motion"}}
	if err := e.validate(nil, 0); err != nil {
		var ee *ElementsError
		if errors.As(err, &ee) {
			if f, ok := fieldLine[ee.Field]; ok {
				ee.Line, ee.Field = f.line, f.name
			}
		}
		return nil, err
	}
	o, err := NewOrbit(e)
	if err != nil {
		var ee *ElementsError
		if errors.As(err, &ee) && ee.Line == 0 {
			ee.Line = nums[1]
		}
		return nil, err
	}
	return o, nil
}

func tleErr(line int, field, format string, args ...any) *ElementsError {
	return &ElementsError{Format: FormatTLE, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// alpha5 maps the first character of an Alpha-5 catalogue number to its
// value: A=10 … Z=33, skipping I and O (they read as 1 and 0).
const alpha5 = "ABCDEFGHJKLMNPQRSTUVWXYZ"

// catalogNumber reads columns 3-7: five digits (or fewer, space-padded),
// or Alpha-5.
func catalogNumber(s string) (int, bool) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, false
	}
	if c := t[0]; c >= 'A' && c <= 'Z' {
		i := strings.IndexByte(alpha5, c)
		if i < 0 || len(t) != 5 {
			return 0, false
		}
		n, err := strconv.Atoi(t[1:])
		if err != nil || t[1] == '-' || t[1] == '+' {
			return 0, false
		}
		return (10+i)*10000 + n, true
	}
	n, err := strconv.Atoi(t)
	return n, err == nil && n >= 0 && t[0] != '+'
}

// expField reads the TLE's implied-decimal exponent form: "-11606-4" is
// -0.11606e-4. The field was checked by validTLEValue.
func expField(s string) float64 {
	v := strings.TrimSpace(s)
	if v == "" {
		return 0
	}
	sign := 1.0
	switch v[0] {
	case '-':
		sign, v = -1, v[1:]
	case '+':
		v = v[1:]
	}
	v = strings.TrimSpace(v)
	m, e := v[:len(v)-2], v[len(v)-2:]
	mant, _ := strconv.ParseFloat("0."+m, 64)
	exp, _ := strconv.Atoi(e)
	return sign * mant * math.Pow(10, float64(exp))
}

// checkTLELine checks one line's length, line number, checksum and fields.
func checkTLELine(l string, which, lineNo int) error {
	if len(l) != 69 {
		return tleErr(lineNo, "length", "line %d of a TLE has 69 characters, this one %d", which, len(l))
	}
	if l[0] != byte('0'+which) || l[1] != ' ' {
		return tleErr(lineNo, "line number", "want %q at the start", fmt.Sprintf("%d ", which))
	}
	sum := 0
	for _, c := range l[:68] {
		switch {
		case c >= '0' && c <= '9':
			sum += int(c - '0')
		case c == '-':
			sum++
		}
	}
	if want := int(l[68] - '0'); l[68] < '0' || l[68] > '9' || sum%10 != want {
		return tleErr(lineNo, "checksum", "computed %d, line says %q", sum%10, l[68])
	}
	fields := line1Fields
	if which == 2 {
		fields = line2Fields
	}
	for _, f := range fields {
		v := strings.TrimSpace(l[f.from-1 : f.to])
		if !validTLEValue(v, f.kind) {
			what := "is not a number"
			if f.kind == 'n' {
				what = "is not a catalogue number (5 digits or Alpha-5)"
			}
			return tleErr(lineNo, f.name, "%q (columns %d-%d) %s", v, f.from, f.to, what)
		}
	}
	return nil
}

func validTLEValue(v string, kind byte) bool {
	if v == "" {
		return kind == 'e' || kind == 'i' // blank exponent fields and counters occur in real TLEs
	}
	switch kind {
	case 'n':
		_, ok := catalogNumber(v)
		return ok
	case 'i':
		_, err := strconv.Atoi(v)
		return err == nil
	case 'f':
		f, err := strconv.ParseFloat(v, 64)
		return err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && !strings.ContainsAny(v, "xXpP_")
	case 'd':
		_, err := strconv.ParseUint(v, 10, 64)
		return err == nil
	case 'e': // "-11606-4", "00000-0", "+12345-5"
		if v[0] == '+' || v[0] == '-' {
			v = strings.TrimSpace(v[1:])
		}
		if len(v) < 3 {
			return false
		}
		m, e := v[:len(v)-2], v[len(v)-2:]
		_, err1 := strconv.ParseUint(m, 10, 64)
		_, err2 := strconv.Atoi(e)
		return err1 == nil && err2 == nil && (e[0] == '-' || e[0] == '+' || e[0] == '0')
	}
	return true
}

// Elevation is the satellite's elevation (degrees) seen from st at t.
func (o *Orbit) Elevation(st Station, t time.Time) (float64, error) {
	eci, err := o.tle.FindPosition(t.Sub(o.Epoch).Minutes())
	if err != nil {
		return 0, err
	}
	sv := sgp4.StateVector{X: eci.Position.X, Y: eci.Position.Y, Z: eci.Position.Z,
		VX: eci.Velocity.X, VY: eci.Velocity.Y, VZ: eci.Velocity.Z}
	obs, err := sv.GetLookAngle(&sgp4.Location{Latitude: st.Lat, Longitude: st.Lon, Altitude: st.AltM}, t)
	if err != nil {
		return 0, err
	}
	return obs.LookAngles.Elevation, nil
}

// Position returns the ECI position (km) and velocity (km/s) at minutes
// after the element set's epoch.
func (o *Orbit) Position(minutes float64) (pos, vel [3]float64, err error) {
	e, err := o.tle.FindPosition(minutes)
	return [3]float64{e.Position.X, e.Position.Y, e.Position.Z}, [3]float64{e.Velocity.X, e.Velocity.Y, e.Velocity.Z}, err
}

// Pass is one visibility of the satellite above the station's minimum
// elevation.
type Pass struct {
	AOS, LOS     time.Time
	MaxElevation float64 // degrees
	MaxTime      time.Time
	Station      string // the Station's Name
}

// Duration is the pass's length.
func (p Pass) Duration() time.Duration { return p.LOS.Sub(p.AOS) }

// passStep is the coarse scan step. A LEO pass above 0° lasts several
// minutes; a 20 s step can only miss a grazing pass that clears the
// minimum elevation for less than 20 s, which carries no useful contact.
const passStep = 20 * time.Second

// Passes finds the passes between from and from+span: it scans elevation
// every 20 s, finds AOS and LOS by bisection to 10 ms, and the maximum
// elevation by golden-section search. A pass in progress at from starts at
// from; one still in progress at the end ends there.
func (o *Orbit) Passes(st Station, from time.Time, span time.Duration) ([]Pass, error) {
	f := func(t time.Time) (float64, error) {
		el, err := o.Elevation(st, t)
		return el - st.MinElevation, err
	}
	end := from.Add(span)
	var out []Pass
	prevT := from
	prev, err := f(prevT)
	if err != nil {
		return nil, err
	}
	var aos time.Time
	if prev >= 0 {
		aos = from
	}
	for t := from.Add(passStep); !prevT.After(end) && prevT.Before(end); t = t.Add(passStep) {
		if t.After(end) {
			t = end
		}
		v, err := f(t)
		if err != nil {
			return nil, err
		}
		switch {
		case prev < 0 && v >= 0:
			if aos, err = bisect(f, prevT, t); err != nil {
				return nil, err
			}
		case prev >= 0 && v < 0:
			los, err := bisect(f, prevT, t)
			if err != nil {
				return nil, err
			}
			p, err := o.finishPass(st, aos, los)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
			aos = time.Time{}
		}
		prevT, prev = t, v
	}
	if !aos.IsZero() {
		p, err := o.finishPass(st, aos, end)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// bisect finds the zero crossing of f between a and b (f(a), f(b) of
// opposite signs) to 10 ms.
func bisect(f func(time.Time) (float64, error), a, b time.Time) (time.Time, error) {
	fa, err := f(a)
	if err != nil {
		return time.Time{}, err
	}
	for b.Sub(a) > 10*time.Millisecond {
		m := a.Add(b.Sub(a) / 2)
		fm, err := f(m)
		if err != nil {
			return time.Time{}, err
		}
		if (fm >= 0) == (fa >= 0) {
			a, fa = m, fm
		} else {
			b = m
		}
	}
	return a.Add(b.Sub(a) / 2).Round(time.Second / 100), nil
}

func (o *Orbit) finishPass(st Station, aos, los time.Time) (Pass, error) {
	// Golden-section search for the peak: elevation is unimodal in a pass.
	g := (math.Sqrt(5) - 1) / 2
	a, b := float64(aos.UnixNano()), float64(los.UnixNano())
	el := func(x float64) (float64, error) { return o.Elevation(st, time.Unix(0, int64(x))) }
	c, d := b-g*(b-a), a+g*(b-a)
	fc, err := el(c)
	if err != nil {
		return Pass{}, err
	}
	fd, err := el(d)
	if err != nil {
		return Pass{}, err
	}
	for b-a > float64(100*time.Millisecond) {
		if fc > fd {
			b, d, fd = d, c, fc
			c = b - g*(b-a)
			if fc, err = el(c); err != nil {
				return Pass{}, err
			}
		} else {
			a, c, fc = c, d, fd
			d = a + g*(b-a)
			if fd, err = el(d); err != nil {
				return Pass{}, err
			}
		}
	}
	peak := time.Unix(0, int64((a+b)/2)).UTC()
	maxEl, err := o.Elevation(st, peak)
	if err != nil {
		return Pass{}, err
	}
	return Pass{AOS: aos.UTC(), LOS: los.UTC(), MaxElevation: maxEl, MaxTime: peak.Round(time.Second / 10), Station: st.Name}, nil
}

// Windows turns passes into contact windows at rate bits per second; each
// window names the pass's station.
func Windows(passes []Pass, rate uint64) []Window {
	out := make([]Window, 0, len(passes))
	for _, p := range passes {
		out = append(out, Window{Start: p.AOS, End: p.LOS, RateBps: rate, Station: p.Station})
	}
	return out
}
