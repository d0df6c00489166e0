// Package metrics serves gardend's counters and gauges in the Prometheus
// text exposition format (version 0.0.4) on the net/http server the binary
// already links. It holds no metrics itself: collectors registered under a
// name produce their families at each scrape — the daemon's own counters,
// its DTN store, and later a master's per-nano series (fleet/ registers a
// collector emitting gardend_nano_* families labelled nano="<name>").
//
// It is written by hand rather than with prometheus/client_golang: the text
// format is a few rules, and promhttp plus a registry would add ~450 KiB to
// the nano's arm64 binary (README, Metrics). Samples never carry
// timestamps: a value measured on board hours before it reaches the ground
// is exposed as its last value with its measurement time as a gauge of its
// own, which Prometheus and node_exporter's textfile collector both accept.
package metrics

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// Type is a metric family's type, as written on its # TYPE line.
type Type string

// The types this package writes. Histograms and summaries are not needed.
const (
	Counter Type = "counter"
	Gauge   Type = "gauge"
)

// Label is one name="value" pair of a sample.
type Label struct{ Name, Value string }

// Sample is one series of a family: its labels and current value.
type Sample struct {
	Labels []Label
	Value  float64
}

// Family is a metric: a name, help text, type and its samples.
type Family struct {
	Name    string
	Help    string
	Type    Type
	Samples []Sample
}

// Collector produces families at scrape time. It must be safe to call
// from several goroutines and should be quick: it runs inside the scrape.
type Collector func() []Family

// Registry holds named collectors. The zero value is not usable: use
// NewRegistry.
type Registry struct {
	mu         sync.Mutex
	collectors map[string]Collector
	dropped    atomic.Uint64 // families or samples refused as invalid
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{collectors: map[string]Collector{}} }

// ErrDuplicate is returned by Register for a name already taken.
var ErrDuplicate = errors.New("metrics: collector already registered")

// Register adds c under name; its families appear from the next scrape.
// Families of the same name from several collectors are merged, so a
// collector may add series (e.g. one per nano) to a family another owns,
// provided the types agree and no series is given twice.
func (r *Registry) Register(name string, c Collector) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.collectors[name]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicate, name)
	}
	r.collectors[name] = c
	return nil
}

// Unregister removes the collector registered under name, if any.
func (r *Registry) Unregister(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.collectors, name)
}

// Gather runs every collector and returns valid families sorted by name,
// samples sorted by labels. What cannot be written validly (a bad name, no
// help text from any collector, a type clash between collectors, a series
// given twice, a sample with a bad label) is left out and reported in the
// error; the rest is returned.
func (r *Registry) Gather() ([]Family, error) {
	r.mu.Lock()
	names := make([]string, 0, len(r.collectors))
	for n := range r.collectors {
		names = append(names, n)
	}
	sort.Strings(names)
	cs := make([]Collector, len(names))
	for i, n := range names {
		cs[i] = r.collectors[n]
	}
	r.mu.Unlock()

	var errs []error
	byName := map[string]*Family{}
	seen := map[string]map[string]bool{} // family → series keys
	for i, c := range cs {
		for _, f := range c() {
			if !ValidName(f.Name) {
				errs = append(errs, fmt.Errorf("collector %q: invalid metric name %q", names[i], f.Name))
				continue
			}
			if f.Type != Counter && f.Type != Gauge {
				errs = append(errs, fmt.Errorf("collector %q: %s: unknown type %q", names[i], f.Name, f.Type))
				continue
			}
			have := byName[f.Name]
			if have == nil {
				have = &Family{Name: f.Name, Help: f.Help, Type: f.Type}
				byName[f.Name] = have
				seen[f.Name] = map[string]bool{}
			} else if have.Type != f.Type {
				errs = append(errs, fmt.Errorf("collector %q: %s is a %s elsewhere, not a %s", names[i], f.Name, have.Type, f.Type))
				continue
			}
			if have.Help == "" {
				have.Help = f.Help
			}
			for _, s := range f.Samples {
				s.Labels = sortedLabels(s.Labels)
				key, err := seriesKey(s.Labels)
				if err != nil {
					errs = append(errs, fmt.Errorf("collector %q: %s: %w", names[i], f.Name, err))
					continue
				}
				if seen[f.Name][key] {
					errs = append(errs, fmt.Errorf("collector %q: %s{%s} given twice", names[i], f.Name, key))
					continue
				}
				seen[f.Name][key] = true
				have.Samples = append(have.Samples, s)
			}
		}
	}
	out := make([]Family, 0, len(byName))
	for _, f := range byName {
		if len(f.Samples) == 0 {
			continue
		}
		if strings.TrimSpace(f.Help) == "" {
			// promtool's lint refuses it; a collector must say what it is.
			errs = append(errs, fmt.Errorf("%s has no help text", f.Name))
			continue
		}
		sort.Slice(f.Samples, func(i, j int) bool { return lessLabels(f.Samples[i].Labels, f.Samples[j].Labels) })
		out = append(out, *f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	r.dropped.Add(uint64(len(errs)))
	// The registry's own health, so a scrape shows that something was left out.
	out = append(out, Family{Name: "gardend_metrics_dropped_total", Type: Counter,
		Help:    "Families or samples left out of a scrape because they could not be written validly.",
		Samples: []Sample{{Value: float64(r.dropped.Load())}}})
	return out, errors.Join(errs...)
}

// ValidName reports whether s is a valid metric name.
func ValidName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// validLabelName: like a metric name without colons; "__" is reserved.
func validLabelName(s string) bool {
	return ValidName(s) && !strings.Contains(s, ":") && !strings.HasPrefix(s, "__")
}

// SanitizeName turns s into a valid metric name fragment: every character
// that may not appear becomes '_' (a leading digit gets a '_' before it).
func SanitizeName(s string) string {
	var b strings.Builder
	for i, c := range s {
		switch {
		case c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			b.WriteRune(c)
		case c >= '0' && c <= '9':
			if i == 0 {
				b.WriteByte('_')
			}
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}

func sortedLabels(ls []Label) []Label {
	out := append([]Label(nil), ls...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// seriesKey identifies a sample's label set; labels are sorted.
func seriesKey(ls []Label) (string, error) {
	var b strings.Builder
	for i, l := range ls {
		if !validLabelName(l.Name) {
			return "", fmt.Errorf("invalid label name %q", l.Name)
		}
		if i > 0 && ls[i-1].Name == l.Name {
			return "", fmt.Errorf("label %q given twice", l.Name)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.Name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l.Value))
	}
	return b.String(), nil
}

func lessLabels(a, b []Label) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i].Name != b[i].Name {
			return a[i].Name < b[i].Name
		}
		if a[i].Value != b[i].Value {
			return a[i].Value < b[i].Value
		}
	}
	return len(a) < len(b)
}

// ContentType is the text exposition format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// WriteText writes families in the text exposition format: # HELP and
// # TYPE lines, then one line per sample, without timestamps. Families
// should come from Gather (valid and sorted).
func WriteText(w io.Writer, fams []Family) error {
	bw := bufio.NewWriter(w)
	for _, f := range fams {
		if f.Help != "" {
			fmt.Fprintf(bw, "# HELP %s %s\n", f.Name, escape(f.Help, false))
		}
		fmt.Fprintf(bw, "# TYPE %s %s\n", f.Name, f.Type)
		for _, s := range f.Samples {
			bw.WriteString(f.Name)
			if len(s.Labels) > 0 {
				bw.WriteByte('{')
				for i, l := range s.Labels {
					if i > 0 {
						bw.WriteByte(',')
					}
					bw.WriteString(l.Name)
					bw.WriteString(`="`)
					bw.WriteString(escape(l.Value, true))
					bw.WriteByte('"')
				}
				bw.WriteByte('}')
			}
			bw.WriteByte(' ')
			bw.WriteString(formatValue(s.Value))
			bw.WriteByte('\n')
		}
	}
	return bw.Flush()
}

// escape applies the format's escapes: backslash and newline everywhere,
// double quotes in label values. Invalid UTF-8 becomes U+FFFD.
func escape(s string, quote bool) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if !strings.ContainsAny(s, "\\\n\"") {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '"' && quote:
			b.WriteString(`\"`)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// formatValue writes whole numbers exactly (counters read better as 12345
// than 1.2345e+04) and other values in Go's shortest form.
func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case v == math.Trunc(v) && math.Abs(v) < 1<<53:
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
