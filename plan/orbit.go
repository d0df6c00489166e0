package plan

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/akhenakh/sgp4"
)

// TLEError names the line and field of a two-line element set that is
// wrong. Elements are checked here, in full, before the propagator sees
// them: a propagator must never be handed something it may choke on.
type TLEError struct {
	Line  int    // 1-based line in the input
	Field string // e.g. "checksum", "eccentricity"
	Msg   string
}

func (e *TLEError) Error() string {
	return fmt.Sprintf("TLE line %d: %s: %s", e.Line, e.Field, e.Msg)
}

// Orbit is a validated TLE ready to propagate with SGP4 (near-Earth; deep
// space objects, periods over 225 minutes, are refused).
type Orbit struct {
	Name   string
	Number int
	Epoch  time.Time
	tle    *sgp4.TLE
}

// Station is a ground station and the lowest elevation at which it can
// hold the link.
type Station struct {
	Lat, Lon     float64 // degrees
	AltM         float64 // metres above sea level
	MinElevation float64 // degrees
}

// tleField is a fixed column range of a TLE line (1-based, inclusive).
type tleField struct {
	name     string
	from, to int
	kind     byte // 'i' integer, 'f' float, 'd' implied-decimal digits, 'e' exponent form, ' ' free
}

var line1Fields = []tleField{
	{"satellite number", 3, 7, 'i'}, {"epoch year", 19, 20, 'i'}, {"epoch day", 21, 32, 'f'},
	{"first derivative of mean motion", 34, 43, 'f'}, {"second derivative of mean motion", 45, 52, 'e'},
	{"drag term (B*)", 54, 61, 'e'}, {"element set number", 65, 68, 'i'},
}

var line2Fields = []tleField{
	{"satellite number", 3, 7, 'i'}, {"inclination", 9, 16, 'f'}, {"right ascension of the ascending node", 18, 25, 'f'},
	{"eccentricity", 27, 33, 'd'}, {"argument of perigee", 35, 42, 'f'}, {"mean anomaly", 44, 51, 'f'},
	{"mean motion", 53, 63, 'f'}, {"revolution number", 64, 68, 'i'},
}

// ParseTLE validates and parses a two- or three-line element set (an
// optional name line, then lines 1 and 2).
func ParseTLE(text string) (*Orbit, error) {
	var lines []string
	var nums []int
	for i, l := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		lines = append(lines, strings.TrimRight(l, " \t"))
		nums = append(nums, i+1)
	}
	name := ""
	switch len(lines) {
	case 3:
		name = strings.TrimSpace(strings.TrimPrefix(lines[0], "0 "))
		lines, nums = lines[1:], nums[1:]
	case 2:
	default:
		return nil, &TLEError{Line: 1, Field: "format", Msg: fmt.Sprintf("want 2 lines (or a name and 2 lines), got %d", len(lines))}
	}
	for k, l := range lines {
		if err := checkTLELine(l, k+1, nums[k]); err != nil {
			return nil, err
		}
	}
	if lines[0][2:7] != lines[1][2:7] {
		return nil, &TLEError{Line: nums[1], Field: "satellite number", Msg: fmt.Sprintf("%q differs from line 1's %q", lines[1][2:7], lines[0][2:7])}
	}
	incl, _ := strconv.ParseFloat(strings.TrimSpace(lines[1][8:16]), 64)
	if incl < 0 || incl > 180 {
		return nil, &TLEError{Line: nums[1], Field: "inclination", Msg: fmt.Sprintf("%g is outside 0..180 degrees", incl)}
	}
	mm, _ := strconv.ParseFloat(strings.TrimSpace(lines[1][52:63]), 64)
	if mm <= 0 {
		return nil, &TLEError{Line: nums[1], Field: "mean motion", Msg: "must be positive"}
	}
	if 1440/mm > 225 {
		return nil, &TLEError{Line: nums[1], Field: "mean motion", Msg: fmt.Sprintf("period %.0f min is deep space (over 225 min): SGP4 near-Earth only", 1440/mm)}
	}
	tle, err := sgp4.ParseTLE(lines[0] + "\n" + lines[1])
	if err != nil {
		return nil, &TLEError{Line: nums[0], Field: "elements", Msg: err.Error()}
	}
	if _, err := tle.FindPosition(0); err != nil {
		return nil, &TLEError{Line: nums[1], Field: "elements", Msg: "do not propagate: " + err.Error()}
	}
	return &Orbit{Name: name, Number: tle.SatelliteNumber, Epoch: tle.EpochTime(), tle: tle}, nil
}

// checkTLELine checks one line's length, line number, checksum and fields.
func checkTLELine(l string, which, lineNo int) error {
	if len(l) != 69 {
		return &TLEError{Line: lineNo, Field: "length", Msg: fmt.Sprintf("line %d of a TLE has 69 characters, this one %d", which, len(l))}
	}
	if l[0] != byte('0'+which) || l[1] != ' ' {
		return &TLEError{Line: lineNo, Field: "line number", Msg: fmt.Sprintf("want %q at the start", fmt.Sprintf("%d ", which))}
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
		return &TLEError{Line: lineNo, Field: "checksum", Msg: fmt.Sprintf("computed %d, line says %q", sum%10, l[68])}
	}
	fields := line1Fields
	if which == 2 {
		fields = line2Fields
	}
	for _, f := range fields {
		v := strings.TrimSpace(l[f.from-1 : f.to])
		if !validTLEValue(v, f.kind) {
			return &TLEError{Line: lineNo, Field: f.name, Msg: fmt.Sprintf("%q (columns %d-%d) is not a number", v, f.from, f.to)}
		}
	}
	return nil
}

func validTLEValue(v string, kind byte) bool {
	if v == "" {
		return kind == 'e' || kind == 'i' // blank exponent fields and counters occur in real TLEs
	}
	switch kind {
	case 'i':
		_, err := strconv.Atoi(v)
		return err == nil
	case 'f':
		_, err := strconv.ParseFloat(v, 64)
		return err == nil
	case 'd':
		_, err := strconv.ParseUint(v, 10, 64)
		return err == nil
	case 'e': // "-11606-4", "00000-0", "+12345-5"
		v = strings.TrimLeft(v, "+- ")
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
	eci, err := o.tle.FindPositionAtTime(t)
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
	return Pass{AOS: aos.UTC(), LOS: los.UTC(), MaxElevation: maxEl, MaxTime: peak.Round(time.Second / 10)}, nil
}

// Windows turns passes into contact windows at rate bits per second.
func Windows(passes []Pass, rate uint64) []Window {
	out := make([]Window, 0, len(passes))
	for _, p := range passes {
		out = append(out, Window{Start: p.AOS, End: p.LOS, RateBps: rate})
	}
	return out
}
