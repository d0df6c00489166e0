package plan

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// ParseError names the line of a plan file that is wrong and why.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// ionTimeLayout is ION's absolute time form.
const ionTimeLayout = "2006/01/02-15:04:05"

// ParseION reads ION contact-plan lines:
//
//	a contact +START +STOP FROM TO RATE
//
// START and STOP are seconds after epoch ("+600") or absolute UTC times
// ("2026/11/21-12:00:00"); RATE is in bytes per second, as in ION. Other
// commands (a range, m, #comments) are ignored. When nodes is non-empty only
// contacts whose FROM and TO are both in it are kept.
//
// ION lines name nodes, not stations: their windows are unnamed.
func ParseION(r io.Reader, name string, epoch time.Time, nodes ...uint64) ([]Window, error) {
	ws, _, err := parseION(r, name, epoch, nodes...)
	return ws, err
}

// parseION is ParseION that also returns each window's line.
func parseION(r io.Reader, name string, epoch time.Time, nodes ...uint64) ([]Window, []int, error) {
	var out []Window
	var lines []int
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") || f[0] != "a" || len(f) < 2 || f[1] != "contact" {
			continue
		}
		if len(f) < 7 {
			return nil, nil, &ParseError{name, line, "want: a contact START STOP FROM TO RATE"}
		}
		start, err := ionTime(f[2], epoch)
		if err != nil {
			return nil, nil, &ParseError{name, line, "START: " + err.Error()}
		}
		end, err := ionTime(f[3], epoch)
		if err != nil {
			return nil, nil, &ParseError{name, line, "STOP: " + err.Error()}
		}
		from, err1 := strconv.ParseUint(f[4], 10, 64)
		to, err2 := strconv.ParseUint(f[5], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, nil, &ParseError{name, line, "FROM and TO must be node numbers"}
		}
		rate, err := strconv.ParseFloat(f[6], 64)
		if err != nil || rate < 0 {
			return nil, nil, &ParseError{name, line, "RATE must be bytes per second"}
		}
		if !end.After(start) {
			return nil, nil, &ParseError{name, line, "STOP is not after START"}
		}
		if len(nodes) > 0 && !(contains(nodes, from) && contains(nodes, to)) {
			continue
		}
		out = append(out, Window{Start: start, End: end, RateBps: uint64(rate * 8)})
		lines = append(lines, line)
	}
	return out, lines, sc.Err()
}

func contains(xs []uint64, x uint64) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func ionTime(s string, epoch time.Time) (time.Time, error) {
	if rel, ok := strings.CutPrefix(s, "+"); ok {
		secs, err := strconv.ParseFloat(rel, 64)
		if err != nil || secs < 0 {
			return time.Time{}, fmt.Errorf("%q is not +seconds", s)
		}
		if epoch.IsZero() {
			return time.Time{}, errors.New("relative time needs an epoch")
		}
		return epoch.Add(time.Duration(secs * float64(time.Second))), nil
	}
	t, err := time.Parse(ionTimeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither +seconds nor yyyy/mm/dd-hh:mm:ss", s)
	}
	return t, nil
}

// ParseCSV reads a header line naming at least a start column (start or
// aos) and an end column (end or los), RFC 3339 times, and optionally rate
// (bits per second) and station (the station's name; empty: unnamed).
// `gardend plan --format csv` output reads back as is.
func ParseCSV(r io.Reader, name string) ([]Window, error) {
	ws, _, err := parseCSV(r, name)
	return ws, err
}

// parseCSV is ParseCSV that also returns each window's line.
func parseCSV(r io.Reader, name string) ([]Window, []int, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, nil, &ParseError{name, 1, "no header line"}
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	pick := func(names ...string) int {
		for _, n := range names {
			if i, ok := col[n]; ok {
				return i
			}
		}
		return -1
	}
	si, ei, ri, sti := pick("start", "aos"), pick("end", "los"), pick("rate", "rate_bps"), pick("station")
	if si < 0 || ei < 0 {
		return nil, nil, &ParseError{name, 1, "header needs start (or aos) and end (or los) columns"}
	}
	var out []Window
	var lines []int
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, lines, nil
		}
		if err != nil {
			line := 0
			var perr *csv.ParseError
			if errors.As(err, &perr) {
				line = perr.Line
			}
			return nil, nil, &ParseError{name, line, err.Error()}
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if si >= len(rec) || ei >= len(rec) {
			return nil, nil, &ParseError{name, line, "missing columns"}
		}
		w := Window{}
		if w.Start, err = time.Parse(time.RFC3339, strings.TrimSpace(rec[si])); err != nil {
			return nil, nil, &ParseError{name, line, "start: want an RFC 3339 time"}
		}
		if w.End, err = time.Parse(time.RFC3339, strings.TrimSpace(rec[ei])); err != nil {
			return nil, nil, &ParseError{name, line, "end: want an RFC 3339 time"}
		}
		if ri >= 0 && ri < len(rec) && strings.TrimSpace(rec[ri]) != "" {
			if w.RateBps, err = strconv.ParseUint(strings.TrimSpace(rec[ri]), 10, 64); err != nil {
				return nil, nil, &ParseError{name, line, "rate: want bits per second"}
			}
		}
		if sti >= 0 && sti < len(rec) {
			if w.Station = strings.TrimSpace(rec[sti]); w.Station != "" {
				if err := CheckStationName(w.Station); err != nil {
					return nil, nil, &ParseError{name, line, "station: " + err.Error()}
				}
			}
		}
		if !w.End.After(w.Start) {
			return nil, nil, &ParseError{name, line, "end is not after start"}
		}
		out = append(out, w)
		lines = append(lines, line)
	}
}

// tomlPlan is the TOML plan form:
//
//	[[window]]
//	start = 2026-11-21T12:00:00Z
//	end = 2026-11-21T12:08:00Z
//	rate = 64000
//	station = "kiruna"   # optional
type tomlPlan struct {
	Window []struct {
		Start   time.Time `toml:"start"`
		End     time.Time `toml:"end"`
		Rate    uint64    `toml:"rate"`
		Station string    `toml:"station"`
	} `toml:"window"`
}

// ParseTOML reads [[window]] tables with start, end, rate (bits/s) and
// optionally station.
func ParseTOML(data []byte, name string) ([]Window, error) {
	ws, _, err := parseTOML(data, name)
	return ws, err
}

// parseTOML is ParseTOML that also returns each window's line (that of its
// station key, else of its [[window]] header; 0 when not found).
func parseTOML(data []byte, name string) ([]Window, []int, error) {
	var p tomlPlan
	if err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(&p); err != nil {
		var derr *toml.DecodeError
		line := 0
		if errors.As(err, &derr) {
			line, _ = derr.Position()
		}
		return nil, nil, &ParseError{name, line, err.Error()}
	}
	lines := tomlWindowLines(data)
	if len(lines) != len(p.Window) {
		lines = make([]int, len(p.Window)) // windows written inline: no lines
	}
	out := make([]Window, 0, len(p.Window))
	for i, w := range p.Window {
		if w.Station != "" {
			if err := CheckStationName(w.Station); err != nil {
				return nil, nil, &ParseError{name, lines[i], "station: " + err.Error()}
			}
		}
		if !w.End.After(w.Start) {
			return nil, nil, &ParseError{name, lines[i], "end is not after start"}
		}
		out = append(out, Window{Start: w.Start, End: w.End, RateBps: w.Rate, Station: w.Station})
	}
	return out, lines, nil
}

// tomlWindowLines finds the line of each [[window]] table of a valid
// document, or of its station key when it has one.
func tomlWindowLines(data []byte) []int {
	var lines []int
	var p unstable.Parser
	p.Reset(data)
	inWindow := false
	for p.NextExpression() {
		e := p.Expression()
		var parts []string
		line := 0
		it := e.Key()
		for it.Next() {
			n := it.Node()
			parts = append(parts, string(n.Data))
			if line == 0 && n.Raw.Length > 0 {
				line = p.Shape(n.Raw).Start.Line
			}
		}
		switch e.Kind {
		case unstable.ArrayTable:
			inWindow = len(parts) == 1 && parts[0] == "window"
			if inWindow {
				lines = append(lines, line)
			}
		case unstable.Table:
			inWindow = false
		case unstable.KeyValue:
			if inWindow && len(parts) == 1 && parts[0] == "station" && line > 0 {
				lines[len(lines)-1] = line
			}
		}
	}
	return lines
}

// ParseContacts reads a plan file's content (ION, TOML or CSV, detected as
// LoadFile does) into a multi-station plan. When known is not empty, it is
// the list of configured stations: every window must name one of them (ION
// lines name none, so they are refused), and a ParseError names the line.
// epoch anchors ION's relative times.
func ParseContacts(data []byte, name string, epoch time.Time, known []string) (*Contacts, error) {
	ws, lines, err := parseAny(data, name, epoch)
	if err != nil {
		return nil, err
	}
	if len(ws) == 0 {
		return nil, fmt.Errorf("%s: %w", name, ErrEmpty)
	}
	if len(known) > 0 {
		for i, w := range ws {
			switch {
			case w.Station == "":
				return nil, &ParseError{name, lines[i], fmt.Sprintf("station: missing; stations are configured (%s), so each window names one (ION lines cannot: use CSV or TOML)", strings.Join(known, ", "))}
			case !slices.Contains(known, w.Station):
				return nil, &ParseError{name, lines[i], fmt.Sprintf("station: %q is not a configured station (%s)", w.Station, strings.Join(known, ", "))}
			}
		}
	}
	c, err := NewContacts(ws)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// LoadContacts is ParseContacts on the file at path.
func LoadContacts(path string, epoch time.Time, known []string) (*Contacts, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseContacts(data, path, epoch, known)
}

// parseAny chooses the parser from the content: ION lines start with "a
// contact", TOML has [[window]], anything else is CSV.
func parseAny(data []byte, name string, epoch time.Time) ([]Window, []int, error) {
	switch s := string(data); {
	case strings.Contains(s, "[[window]]"):
		return parseTOML(data, name)
	case strings.Contains(s, "a contact"):
		return parseION(bytes.NewReader(data), name, epoch)
	default:
		return parseCSV(bytes.NewReader(data), name)
	}
}

// LoadFile reads a plan file, choosing the parser from its content: ION
// lines start with "a contact", TOML has [[window]], anything else is CSV.
// epoch anchors ION's relative times. Windows over different stations are
// merged when they overlap (see LoadContacts to keep them apart).
func LoadFile(path string, epoch time.Time) (*Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ws, _, err := parseAny(data, path, epoch)
	if err != nil {
		return nil, err
	}
	if len(ws) == 0 {
		return nil, fmt.Errorf("%s: %w", path, ErrEmpty)
	}
	return New(ws)
}
