package plan

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// The CCSDS OMM (502.0-B-3) keywords this package reads or checks; others
// (CREATION_DATE, Space-Track's DECAY_DATE, ...) are ignored.
var ommKeywords = map[string]bool{
	"CCSDS_OMM_VERS": true, "CREATION_DATE": true, "ORIGINATOR": true,
	"OBJECT_NAME": true, "OBJECT_ID": true, "CENTER_NAME": true, "REF_FRAME": true, "TIME_SYSTEM": true, "MEAN_ELEMENT_THEORY": true,
	"EPOCH": true, "MEAN_MOTION": true, "ECCENTRICITY": true, "INCLINATION": true, "RA_OF_ASC_NODE": true,
	"ARG_OF_PERICENTER": true, "MEAN_ANOMALY": true, "EPHEMERIS_TYPE": true, "CLASSIFICATION_TYPE": true,
	"NORAD_CAT_ID": true, "ELEMENT_SET_NO": true, "REV_AT_EPOCH": true, "BSTAR": true,
	"MEAN_MOTION_DOT": true, "MEAN_MOTION_DDOT": true,
}

// ommRequired are the fields SGP4 cannot do without.
var ommRequired = []string{"EPOCH", "MEAN_MOTION", "ECCENTRICITY", "INCLINATION", "RA_OF_ASC_NODE",
	"ARG_OF_PERICENTER", "MEAN_ANOMALY", "BSTAR"}

// ommValue is one keyword's value and the line it is on (0: unknown).
type ommValue struct {
	v    string
	line int
}

// ommFields is one OMM's keywords, whatever the form it was written in.
type ommFields map[string]ommValue

func (f ommFields) line(field string) int { return f[field].line }

// elements checks and converts one OMM. object is its 1-based position in
// the file, 0 when the file holds one.
func (f ommFields) elements(format Format, object int) (Elements, error) {
	bad := func(field, format_ string, args ...any) error {
		return &ElementsError{Format: format, Line: f.line(field), Object: object, Field: field, Msg: fmt.Sprintf(format_, args...)}
	}
	for _, k := range ommRequired {
		if strings.TrimSpace(f[k].v) == "" {
			return Elements{}, bad(k, "missing (SGP4 needs it)")
		}
	}
	// Metadata that, when given, must say these are SGP4 elements.
	for _, m := range []struct{ key, want string }{{"CENTER_NAME", "EARTH"}, {"REF_FRAME", "TEME"}, {"TIME_SYSTEM", "UTC"}} {
		if v := strings.TrimSpace(f[m.key].v); v != "" && !strings.EqualFold(v, m.want) {
			return Elements{}, bad(m.key, "%q: SGP4 elements are %s", v, m.want)
		}
	}
	if v := strings.ToUpper(strings.TrimSpace(f["MEAN_ELEMENT_THEORY"].v)); v != "" && v != "SGP4" && v != "SGP/SGP4" {
		return Elements{}, bad("MEAN_ELEMENT_THEORY", "%q: only SGP4 mean elements can be propagated", v)
	}
	e := Elements{Format: format, Name: strings.TrimSpace(f["OBJECT_NAME"].v), ObjectID: strings.TrimSpace(f["OBJECT_ID"].v),
		Classification: strings.TrimSpace(f["CLASSIFICATION_TYPE"].v)}
	var err error
	if e.Epoch, err = parseOMMEpoch(f["EPOCH"].v); err != nil {
		return Elements{}, bad("EPOCH", "%v", err)
	}
	for _, n := range []struct {
		key string
		dst *float64
	}{{"MEAN_MOTION", &e.MeanMotion}, {"ECCENTRICITY", &e.Eccentricity}, {"INCLINATION", &e.Inclination},
		{"RA_OF_ASC_NODE", &e.RAAN}, {"ARG_OF_PERICENTER", &e.ArgPericenter}, {"MEAN_ANOMALY", &e.MeanAnomaly},
		{"BSTAR", &e.BStar}, {"MEAN_MOTION_DOT", &e.MeanMotionDot}, {"MEAN_MOTION_DDOT", &e.MeanMotionDDot}} {
		v := strings.TrimSpace(f[n.key].v)
		if v == "" {
			continue // only the optional derivatives can be empty here
		}
		if *n.dst, err = parseDecimal(v); err != nil {
			return Elements{}, bad(n.key, "%q is not a decimal number", v)
		}
	}
	for _, n := range []struct {
		key string
		dst *int
	}{{"NORAD_CAT_ID", &e.CatalogNumber}, {"ELEMENT_SET_NO", &e.ElementSetNo}, {"REV_AT_EPOCH", &e.RevAtEpoch}} {
		v := strings.TrimSpace(f[n.key].v)
		if v == "" {
			continue
		}
		if *n.dst, err = strconv.Atoi(v); err != nil || *n.dst < 0 || *n.dst > 999_999_999 {
			return Elements{}, bad(n.key, "%q is not a whole number in 0..999999999", v)
		}
	}
	if v := strings.TrimSpace(f["EPHEMERIS_TYPE"].v); v != "" && v != "0" {
		return Elements{}, bad("EPHEMERIS_TYPE", "%q: only type 0 (SGP4) can be propagated", v)
	}
	if err := e.validate(f.line, object); err != nil {
		return Elements{}, err
	}
	return e, nil
}

// parseDecimal reads a plain decimal number ("15.5", ".21333E-3"): no hex,
// no infinities, no NaN.
func parseDecimal(s string) (float64, error) {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E') {
			return 0, strconv.ErrSyntax
		}
	}
	return strconv.ParseFloat(s, 64)
}

// parseOMMEpoch reads a CCSDS UTC time: calendar (2025-09-04T02:26:37.946976)
// or day-of-year (2025-247T02:26:37.946976), optionally ending in Z; a
// space for the T as Space-Track's older classes write it.
func parseOMMEpoch(s string) (time.Time, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "Z")
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-002T15:04:05", "2006-01-02 15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a UTC time such as 2025-09-04T02:26:37.946976", s)
}

// lineAt is the 1-based line of byte offset off in data.
func lineAt(data []byte, off int64) int {
	off = min(max(off, 0), int64(len(data)))
	return 1 + bytes.Count(data[:off], []byte("\n"))
}

// ParseOMMJSON reads OMMs in JSON: an array of objects (CelesTrak's
// FORMAT=JSON and JSON-PRETTY) or a single object. Values may be numbers
// or strings (Space-Track quotes every value).
func ParseOMMJSON(data []byte) ([]Elements, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	bad := func(off int64, object int, msg string) error {
		return &ElementsError{Format: FormatOMMJSON, Line: lineAt(data, off), Object: object, Msg: msg}
	}
	syntax := func(err error, object int) error {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return bad(se.Offset, object, "not JSON: "+se.Error())
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return bad(te.Offset, object, "not an OMM object: "+te.Error())
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return bad(int64(len(data)), object, "JSON ends early")
		}
		return bad(0, object, err.Error())
	}
	type raw struct {
		off  int64
		body json.RawMessage
	}
	var objs []raw
	dec := json.NewDecoder(bytes.NewReader(data))
	start := bytes.TrimLeft(data, " \t\r\n")
	if len(start) > 0 && start[0] == '[' {
		if _, err := dec.Token(); err != nil {
			return nil, syntax(err, 0)
		}
		for dec.More() {
			off := dec.InputOffset()
			var b json.RawMessage
			if err := dec.Decode(&b); err != nil {
				return nil, syntax(err, len(objs)+1)
			}
			// InputOffset was at the previous token's end: skip the comma
			// and spaces to the object itself.
			for off < int64(len(data)) && bytes.IndexByte([]byte(", \t\r\n"), data[off]) >= 0 {
				off++
			}
			objs = append(objs, raw{off, b})
		}
		if _, err := dec.Token(); err != nil {
			return nil, syntax(err, 0)
		}
	} else {
		var b json.RawMessage
		if err := dec.Decode(&b); err != nil {
			return nil, syntax(err, 0)
		}
		objs = append(objs, raw{int64(len(data) - len(start)), b})
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad(dec.InputOffset(), 0, "data after the JSON value")
	}
	var out []Elements
	for i, o := range objs {
		object := i + 1
		if len(objs) == 1 {
			object = 0
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(o.body, &m); err != nil {
			return nil, bad(o.off, object, "not a JSON object of OMM keywords")
		}
		base := lineAt(data, o.off)
		f := ommFields{}
		for k, v := range m {
			if !ommKeywords[k] {
				continue
			}
			line := base
			if at := bytes.Index(o.body, []byte(`"`+k+`"`)); at >= 0 {
				line += bytes.Count(o.body[:at], []byte("\n"))
			}
			s, ok := jsonScalar(v)
			if !ok {
				return nil, &ElementsError{Format: FormatOMMJSON, Line: line, Object: object, Field: k, Msg: "want a number or a string, got " + truncate(string(v), 40)}
			}
			f[k] = ommValue{s, line}
		}
		e, err := f.elements(FormatOMMJSON, object)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// jsonScalar returns a JSON number's text or a string's content; null is
// an empty value (missing).
func jsonScalar(v json.RawMessage) (string, bool) {
	v = bytes.TrimSpace(v)
	switch {
	case len(v) == 0, string(v) == "null":
		return "", true
	case v[0] == '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", false
		}
		return s, true
	case v[0] == '-' || v[0] >= '0' && v[0] <= '9':
		return string(v), true
	}
	return "", false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ParseOMMKVN reads OMMs as CCSDS keyword = value lines. Each OMM starts
// with CCSDS_OMM_VERS; COMMENT lines, units in brackets ("[rev/day]") and
// unknown keywords are ignored.
func ParseOMMKVN(data []byte) ([]Elements, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var objs []ommFields
	cur := ommFields{}
	for i, raw := range strings.Split(string(data), "\n") {
		line := i + 1
		l := strings.TrimSpace(raw)
		if l == "" || strings.HasPrefix(l, "COMMENT") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			if strings.HasSuffix(l, "_START") || strings.HasSuffix(l, "_STOP") {
				continue // block delimiters of other CCSDS messages
			}
			return nil, &ElementsError{Format: FormatOMMKVN, Line: line, Msg: fmt.Sprintf("want KEYWORD = value, got %q", truncate(l, 40))}
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if at := strings.LastIndexByte(v, '['); at > 0 && strings.HasSuffix(v, "]") {
			v = strings.TrimSpace(v[:at])
		}
		if k == "CCSDS_OMM_VERS" && len(cur) > 0 {
			objs, cur = append(objs, cur), ommFields{}
		}
		if !ommKeywords[k] {
			continue
		}
		if prev, dup := cur[k]; dup {
			return nil, &ElementsError{Format: FormatOMMKVN, Line: line, Field: k, Msg: fmt.Sprintf("given again (first on line %d) without a new CCSDS_OMM_VERS", prev.line)}
		}
		cur[k] = ommValue{v, line}
	}
	if len(cur) > 0 {
		objs = append(objs, cur)
	}
	return convertOMMs(objs, FormatOMMKVN)
}

func convertOMMs(objs []ommFields, format Format) ([]Elements, error) {
	var out []Elements
	for i, f := range objs {
		object := i + 1
		if len(objs) == 1 {
			object = 0
		}
		e, err := f.elements(format, object)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// ParseOMMXML reads CCSDS NDM/XML: every <omm> element (in an <ndm>
// document, as CelesTrak serves them, or alone). Keywords are read from
// the <omm>'s leaf elements wherever they sit (metadata, meanElements,
// tleParameters); namespaces and unit attributes are ignored.
func ParseOMMXML(data []byte) ([]Elements, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var objs []ommFields
	var cur ommFields
	var text strings.Builder
	textLine := 0
	depth := 0
	for {
		line, _ := dec.InputPos()
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				line = se.Line
			}
			return nil, &ElementsError{Format: FormatOMMXML, Line: line, Msg: "not XML: " + err.Error()}
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > 64 {
				return nil, &ElementsError{Format: FormatOMMXML, Line: line, Msg: "nested too deep"}
			}
			if t.Name.Local == "omm" {
				if cur != nil {
					return nil, &ElementsError{Format: FormatOMMXML, Line: line, Msg: "<omm> inside <omm>"}
				}
				cur = ommFields{}
			}
			text.Reset()
			textLine, _ = dec.InputPos()
		case xml.CharData:
			if text.Len() < 4096 {
				text.Write(t)
			}
		case xml.EndElement:
			depth--
			k := t.Name.Local
			switch {
			case k == "omm":
				objs, cur = append(objs, cur), nil
			case cur != nil && ommKeywords[k]:
				if prev, dup := cur[k]; dup {
					return nil, &ElementsError{Format: FormatOMMXML, Line: textLine, Field: k, Msg: fmt.Sprintf("given again (first on line %d)", prev.line)}
				}
				cur[k] = ommValue{strings.TrimSpace(text.String()), textLine}
			}
			text.Reset()
		}
	}
	if cur != nil {
		return nil, &ElementsError{Format: FormatOMMXML, Msg: "<omm> not closed"}
	}
	return convertOMMs(objs, FormatOMMXML)
}

// ParseOMMCSV reads CelesTrak's FORMAT=CSV: a header row of OMM keywords
// (any order, any case), then one element set per row.
func ParseOMMCSV(data []byte) ([]Elements, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = false
	header, err := cr.Read()
	if err != nil {
		return nil, &ElementsError{Format: FormatOMMCSV, Line: 1, Msg: "no header row: " + err.Error()}
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToUpper(strings.TrimSpace(h))
		if _, dup := col[h]; dup && ommKeywords[h] {
			return nil, &ElementsError{Format: FormatOMMCSV, Line: 1, Field: h, Msg: "column given twice"}
		}
		col[h] = i
	}
	for _, k := range ommRequired {
		if _, ok := col[k]; !ok {
			return nil, &ElementsError{Format: FormatOMMCSV, Line: 1, Field: k, Msg: "no such column in the header (SGP4 needs it)"}
		}
	}
	var objs []ommFields
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			line := 0
			if errors.As(err, &pe) {
				line = pe.Line
			}
			return nil, &ElementsError{Format: FormatOMMCSV, Line: line, Msg: "not CSV: " + err.Error()}
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(rec) != len(header) {
			return nil, &ElementsError{Format: FormatOMMCSV, Line: line, Msg: fmt.Sprintf("%d fields, the header has %d", len(rec), len(header))}
		}
		f := ommFields{}
		for k, i := range col {
			if ommKeywords[k] {
				f[k] = ommValue{rec[i], line}
			}
		}
		objs = append(objs, f)
	}
	// Rows are numbered by their line already: report no object index.
	out := make([]Elements, 0, len(objs))
	for _, f := range objs {
		e, err := f.elements(FormatOMMCSV, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
