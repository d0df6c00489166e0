package plan

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Contacts is a contact plan over several ground stations: each window
// names its station, and windows over different stations may overlap in
// time (Svalbard and Kiruna see a polar satellite at once). Windows over
// one station are merged as New merges them. A Contacts is immutable.
type Contacts struct {
	windows   []Window         // by Start, then Station, then End
	byStation map[string]*Plan // each station's own windows
	names     []string         // station names, sorted
}

// NewContacts builds a multi-station plan from windows in any order. A
// window that ends before it starts is an error; windows over the same
// station that overlap or touch are merged; windows over different
// stations are kept apart even when they overlap. Unnamed windows form a
// station of their own, named "".
func NewContacts(windows []Window) (*Contacts, error) {
	groups := map[string][]Window{}
	for i, w := range windows {
		if !w.End.After(w.Start) {
			return nil, fmt.Errorf("%w: window %d (station %q) ends (%s) before it starts (%s)", ErrBackwards, i+1, w.Station,
				w.End.Format(time.RFC3339), w.Start.Format(time.RFC3339))
		}
		groups[w.Station] = append(groups[w.Station], w)
	}
	c := &Contacts{byStation: make(map[string]*Plan, len(groups))}
	for name, ws := range groups {
		p, err := New(ws)
		if err != nil {
			return nil, err
		}
		c.byStation[name] = p
		c.names = append(c.names, name)
		c.windows = append(c.windows, p.windows...)
	}
	sort.Strings(c.names)
	sort.Slice(c.windows, func(i, j int) bool { return windowLess(c.windows[i], c.windows[j]) })
	return c, nil
}

func windowLess(a, b Window) bool {
	if !a.Start.Equal(b.Start) {
		return a.Start.Before(b.Start)
	}
	if a.Station != b.Station {
		return a.Station < b.Station
	}
	return a.End.Before(b.End)
}

// Windows returns every window, by start time (then station).
func (c *Contacts) Windows() []Window { return slices.Clone(c.windows) }

// Len is the number of windows over all stations.
func (c *Contacts) Len() int { return len(c.windows) }

// Stations returns the names of the stations that have windows, sorted
// ("" stands for unnamed windows).
func (c *Contacts) Stations() []string { return slices.Clone(c.names) }

// StationPlan returns the windows over one station as a Plan (empty when
// the station has none); they keep the station's name.
func (c *Contacts) StationPlan(name string) *Plan {
	if p, ok := c.byStation[name]; ok {
		return p
	}
	return &Plan{}
}

// StationWindows returns the windows over one station, in order.
func (c *Contacts) StationWindows(name string) []Window { return c.StationPlan(name).Windows() }

// Open returns the windows that contain t, widened by guard on both sides,
// one per station at most, by start time.
func (c *Contacts) Open(t time.Time, guard time.Duration) []Window {
	var out []Window
	for _, name := range c.names {
		if w, ok := c.byStation[name].Current(t, guard); ok {
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return windowLess(out[i], out[j]) })
	return out
}

// NextByStation returns, for each station, its first window that ends
// after t (the one open at t, or the next to open), by start time. A
// station with no window left is absent.
func (c *Contacts) NextByStation(t time.Time) []Window {
	var out []Window
	for _, name := range c.names {
		if w, ok := c.byStation[name].Next(t); ok {
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return windowLess(out[i], out[j]) })
	return out
}

// Next returns the earliest window over any station that ends after t: one
// open at t (the one open longest, if several), else the next to open. It
// is the earliest contact a router can use from t on.
func (c *Contacts) Next(t time.Time) (Window, bool) {
	ws := c.NextByStation(t)
	if len(ws) == 0 {
		return Window{}, false
	}
	return ws[0], true
}

// NextStart returns the earliest window over any station that starts after t.
func (c *Contacts) NextStart(t time.Time) (Window, bool) {
	var best Window
	found := false
	for _, name := range c.names {
		if w, ok := c.byStation[name].NextStart(t); ok && (!found || windowLess(w, best)) {
			best, found = w, true
		}
	}
	return best, found
}

// Union merges every window regardless of station into a Plan that
// answers "is any link up": overlapping windows over different stations
// become one, and no window names a station.
func (c *Contacts) Union() *Plan {
	ws := slices.Clone(c.windows)
	for i := range ws {
		ws[i].Station = ""
	}
	p, _ := New(ws) // every window was checked by NewContacts
	return p
}

// CheckStationName reports whether name can name a station: 1 to 64
// letters, digits, '-', '_' or '.', starting with a letter or a digit.
func CheckStationName(name string) error {
	if name == "" {
		return fmt.Errorf("station name is empty")
	}
	if len(name) > 64 {
		return fmt.Errorf("station name %.16q… is longer than 64 characters", name)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || i > 0 && strings.ContainsRune("-_.", r)
		if !ok {
			return fmt.Errorf("station name %q: use letters, digits, '-', '_' or '.', starting with a letter or digit", name)
		}
	}
	return nil
}

// PassesOver predicts the passes over each station (see Passes), all
// together by AOS, then station name; each pass names its station. Names
// must be distinct, and given when there is more than one station.
func (o *Orbit) PassesOver(stations []Station, from time.Time, span time.Duration) ([]Pass, error) {
	seen := map[string]bool{}
	for i, st := range stations {
		if st.Name == "" && len(stations) > 1 {
			return nil, fmt.Errorf("station %d has no name: with several stations each needs one", i+1)
		}
		if st.Name != "" {
			if err := CheckStationName(st.Name); err != nil {
				return nil, fmt.Errorf("station %d: %w", i+1, err)
			}
		}
		if seen[st.Name] {
			return nil, fmt.Errorf("station %d: name %q given twice", i+1, st.Name)
		}
		seen[st.Name] = true
	}
	var out []Pass
	for _, st := range stations {
		ps, err := o.Passes(st, from, span)
		if err != nil {
			return nil, fmt.Errorf("station %q: %w", st.Name, err)
		}
		out = append(out, ps...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].AOS.Equal(out[j].AOS) {
			return out[i].AOS.Before(out[j].AOS)
		}
		return out[i].Station < out[j].Station
	})
	return out, nil
}

// Contacts predicts o's contact plan over stations from from to from+span,
// at rateBps bits per second (0: unknown); each window names its station.
func (o *Orbit) Contacts(stations []Station, from time.Time, span time.Duration, rateBps uint64) (*Contacts, error) {
	passes, err := o.PassesOver(stations, from, span)
	if err != nil {
		return nil, err
	}
	return NewContacts(Windows(passes, rateBps))
}
