// Package plan knows when a link is up: contact plans as lists of windows,
// read from static plan files (ION "a contact" lines, TOML or CSV) or
// predicted from a satellite's two-line elements for a ground station with
// SGP4. It is pure computation on times: no clock, no I/O beyond reading
// the files it is given.
package plan

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// Window is one contact: the link is usable from Start to End.
type Window struct {
	Start, End time.Time
	RateBps    uint64 // bits per second; 0 when the plan does not say
	// Station names the ground station the window is over; empty when the
	// plan does not say (a single-station setup).
	Station string
}

// Duration is the window's length.
func (w Window) Duration() time.Duration { return w.End.Sub(w.Start) }

// Plan is a sorted list of non-overlapping windows.
type Plan struct {
	windows []Window
}

// ErrEmpty is returned for a plan without any window.
var ErrEmpty = errors.New("contact plan has no window")

// ErrBackwards is returned for a window that ends before it starts.
var ErrBackwards = errors.New("window ends before it starts")

// New sorts windows and merges those that overlap or touch. A window that
// ends before it starts is an error. A merged window keeps its station only
// if every window merged into it names the same one; a Plan answers "is a
// link up", Contacts answers "over which station".
func New(windows []Window) (*Plan, error) {
	ws := append([]Window(nil), windows...)
	for i, w := range ws {
		if !w.End.After(w.Start) {
			return nil, fmt.Errorf("%w: window %d ends (%s) before it starts (%s)", ErrBackwards, i+1, w.End.Format(time.RFC3339), w.Start.Format(time.RFC3339))
		}
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].Start.Before(ws[j].Start) })
	var out []Window
	for _, w := range ws {
		if n := len(out); n > 0 && !w.Start.After(out[n-1].End) {
			if w.End.After(out[n-1].End) {
				out[n-1].End = w.End
			}
			out[n-1].RateBps = max(out[n-1].RateBps, w.RateBps)
			if out[n-1].Station != w.Station {
				out[n-1].Station = ""
			}
			continue
		}
		out = append(out, w)
	}
	return &Plan{windows: out}, nil
}

// Windows returns the plan's windows in order.
func (p *Plan) Windows() []Window { return append([]Window(nil), p.windows...) }

// Len is the number of windows.
func (p *Plan) Len() int { return len(p.windows) }

// Current returns the window containing t, widened by guard on both sides.
func (p *Plan) Current(t time.Time, guard time.Duration) (Window, bool) {
	i := sort.Search(len(p.windows), func(i int) bool { return p.windows[i].End.Add(guard).After(t) })
	if i < len(p.windows) && !p.windows[i].Start.Add(-guard).After(t) {
		return p.windows[i], true
	}
	return Window{}, false
}

// Next returns the first window that ends after t: the current one, or the
// next to open.
func (p *Plan) Next(t time.Time) (Window, bool) {
	i := sort.Search(len(p.windows), func(i int) bool { return p.windows[i].End.After(t) })
	if i < len(p.windows) {
		return p.windows[i], true
	}
	return Window{}, false
}

// NextStart returns the first window that starts after t.
func (p *Plan) NextStart(t time.Time) (Window, bool) {
	i := sort.Search(len(p.windows), func(i int) bool { return p.windows[i].Start.After(t) })
	if i < len(p.windows) {
		return p.windows[i], true
	}
	return Window{}, false
}

// Last returns the latest window that ended at or before t.
func (p *Plan) Last(t time.Time) (Window, bool) {
	i := sort.Search(len(p.windows), func(i int) bool { return p.windows[i].End.After(t) })
	if i > 0 {
		return p.windows[i-1], true
	}
	return Window{}, false
}
