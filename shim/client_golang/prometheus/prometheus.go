// Package prometheus stands in for github.com/prometheus/client_golang's
// package of the same name inside gardend (go.mod replaces the module with
// this directory). It offers the part of the API that the go-libp2p
// packages gardend links call (swarm, event bus, resource manager,
// identify, metricshelper), and every metric it hands out is inert.
//
// Why: those packages create their Prometheus metrics at package
// initialisation and register them on the client's default registry,
// which gardend never serves (gardend's own metrics are written by
// gardend/metrics in the text format). The real client linked 1.05 MB
// into the nano binary (arm64) with what it drags in (net/http's client,
// crypto/tls, expvar, regexp, procfs), and its packages took about 40 ms
// of a nano's initialisation under qemu-user, all for series nobody could
// read. go-libp2p itself is used unmodified.
//
// Keep it inert: anything that needs a real Prometheus series in gardend
// belongs in gardend/metrics. A signature here follows the real client's,
// so go-libp2p compiles against either; if a go-libp2p upgrade calls
// something missing, the build fails: add it here, inert.
package prometheus

// Labels maps label names to values.
type Labels map[string]string

// Opts are the options common to counters and gauges.
type Opts struct {
	Namespace   string
	Subsystem   string
	Name        string
	Help        string
	ConstLabels Labels
}

// CounterOpts are a counter's options.
type CounterOpts Opts

// GaugeOpts are a gauge's options.
type GaugeOpts Opts

// HistogramOpts are a histogram's options.
type HistogramOpts struct {
	Namespace   string
	Subsystem   string
	Name        string
	Help        string
	ConstLabels Labels
	Buckets     []float64
}

// Desc describes a metric.
type Desc struct{}

// NewDesc returns a description; the arguments are not kept.
func NewDesc(fqName, help string, variableLabels []string, constLabels Labels) *Desc {
	return &Desc{}
}

// Metric is one series.
type Metric interface{ Desc() *Desc }

// Collector yields metrics for a registry.
type Collector interface {
	Describe(chan<- *Desc)
	Collect(chan<- Metric)
}

// Registerer is where collectors are registered.
type Registerer interface {
	Register(Collector) error
	MustRegister(...Collector)
	Unregister(Collector) bool
}

// Registry accepts every collector and keeps none.
type Registry struct{}

// NewRegistry returns a registry that keeps nothing.
func NewRegistry() *Registry { return &Registry{} }

func (*Registry) Register(Collector) error  { return nil }
func (*Registry) MustRegister(...Collector) {}
func (*Registry) Unregister(Collector) bool { return false }

// DefaultRegisterer is the registry go-libp2p registers on by default.
// It is never read: variable only because the real client's is.
var DefaultRegisterer Registerer = NewRegistry()

// MustRegister registers on DefaultRegisterer.
func MustRegister(cs ...Collector) { DefaultRegisterer.MustRegister(cs...) }

// AlreadyRegisteredError is what the real client returns for a collector
// registered twice; this registry never returns it.
type AlreadyRegisteredError struct {
	ExistingCollector, NewCollector Collector
}

func (AlreadyRegisteredError) Error() string {
	return "duplicate metrics collector registration attempted"
}

// ValueType is the type of a constant metric.
type ValueType int

// The value types.
const (
	_ ValueType = iota
	CounterValue
	GaugeValue
	UntypedValue
)

// NewConstMetric returns an inert metric.
func NewConstMetric(desc *Desc, valueType ValueType, value float64, labelValues ...string) (Metric, error) {
	return inert{}, nil
}

// inert is every metric: it records nothing.
type inert struct{}

func (inert) Desc() *Desc                      { return &Desc{} }
func (inert) Describe(chan<- *Desc)            {}
func (inert) Collect(chan<- Metric)            {}
func (inert) Inc()                             {}
func (inert) Dec()                             {}
func (inert) Add(float64)                      {}
func (inert) Sub(float64)                      {}
func (inert) Set(float64)                      {}
func (inert) SetToCurrentTime()                {}
func (inert) Observe(float64)                  {}
func (inert) Reset()                           {}
func (inert) Delete(Labels) bool               { return false }
func (inert) DeleteLabelValues(...string) bool { return false }

// Counter counts up.
type Counter interface {
	Metric
	Collector
	Inc()
	Add(float64)
}

// Gauge goes up and down.
type Gauge interface {
	Metric
	Collector
	Set(float64)
	Inc()
	Dec()
	Add(float64)
	Sub(float64)
	SetToCurrentTime()
}

// Observer observes values.
type Observer interface{ Observe(float64) }

// Histogram buckets observations.
type Histogram interface {
	Metric
	Collector
	Observe(float64)
}

// NewCounter returns an inert counter.
func NewCounter(CounterOpts) Counter { return inert{} }

// NewGauge returns an inert gauge.
func NewGauge(GaugeOpts) Gauge { return inert{} }

// NewHistogram returns an inert histogram.
func NewHistogram(HistogramOpts) Histogram { return inert{} }

// CounterVec is a family of counters by label values.
type CounterVec struct{ inert }

// GaugeVec is a family of gauges by label values.
type GaugeVec struct{ inert }

// HistogramVec is a family of histograms by label values.
type HistogramVec struct{ inert }

// NewCounterVec returns an inert family.
func NewCounterVec(CounterOpts, []string) *CounterVec { return &CounterVec{} }

// NewGaugeVec returns an inert family.
func NewGaugeVec(GaugeOpts, []string) *GaugeVec { return &GaugeVec{} }

// NewHistogramVec returns an inert family.
func NewHistogramVec(HistogramOpts, []string) *HistogramVec { return &HistogramVec{} }

func (*CounterVec) WithLabelValues(...string) Counter    { return inert{} }
func (*CounterVec) With(Labels) Counter                  { return inert{} }
func (*GaugeVec) WithLabelValues(...string) Gauge        { return inert{} }
func (*GaugeVec) With(Labels) Gauge                      { return inert{} }
func (*HistogramVec) WithLabelValues(...string) Observer { return inert{} }
func (*HistogramVec) With(Labels) Observer               { return inert{} }

// ExponentialBuckets returns count bucket bounds, the first start, each
// factor times the previous, as the real client does.
func ExponentialBuckets(start, factor float64, count int) []float64 {
	if count < 1 || start <= 0 || factor <= 1 {
		return nil
	}
	b := make([]float64, count)
	for i := range b {
		b[i] = start
		start *= factor
	}
	return b
}

// LinearBuckets returns count bucket bounds, the first start, each width
// above the previous.
func LinearBuckets(start, width float64, count int) []float64 {
	if count < 1 {
		return nil
	}
	b := make([]float64, count)
	for i := range b {
		b[i] = start
		start += width
	}
	return b
}
