package fleet

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"gardend/codec"
	"gardend/dtn"
	"gardend/node"
	"gardend/plan"
	"gardend/platform"
)

// bucketNano holds a nano's own fleet state: boot count, report sequence,
// what each kind of push put in force, the last refusal.
const bucketNano = "fleet.nano"

// NanoOptions are a nano's fleet dependencies.
type NanoOptions struct {
	Store   *dtn.Store
	Codec   *codec.Codec
	Log     *slog.Logger     // nil: discard
	Now     func() time.Time // nil: time.Now
	DataDir string           // where the state database lives (free disk) and pushed files are written
	// Station and PredictSpan turn pushed elements into a plan; with
	// Stations (the configured [[stations]]), passes over every one of
	// them, merged, instead of Station's.
	Station     plan.Station
	Stations    []plan.Station
	PredictSpan time.Duration // 0: 7 days

	Name, Version, Flavour, KeyBackend string
	Watchdog                           func() string // "", "armed" or "failed"; nil: none
	// HealthInterval is how often a nano in continuous contact reports
	// (and a nano in a long window); 0: 10 min.
	HealthInterval time.Duration
	// Tick is how often the reporter looks at its contact; 0: 1 s.
	Tick time.Duration
	// SetLogLevel applies a pushed log level; nil: log_level is refused.
	SetLogLevel func(level string)
	// SetQuota applies a pushed store quota; nil: store_quota is refused.
	SetQuota func(bytes int64)
	// ThermalDir is /sys/class/thermal unless set (tests).
	ThermalDir string
}

// Nano is a nano's side of the fleet: it reports its health and takes its
// master's pushes.
type Nano struct {
	o       NanoOptions
	started time.Time
	node    *node.Node

	// contactMu serializes composing and setting the node's contact, so a
	// push and a reload never interleave their read-modify-write.
	contactMu sync.Mutex

	mu       sync.Mutex
	inForce  map[Kind]inForce
	elements *plan.Elements // of the elements in force
	refused  *PushRefusal
	interval time.Duration
	boots    uint32
	// configured is the configuration's contact: what holds where no push
	// is in force. The node's contact is always it with the pushes on top.
	configured node.Contact
	pushedPlan *plan.Plan // from the elements or plan push applied last; nil: none
	planFrom   Kind       // which kind pushedPlan came from
	settings   Settings   // the settings pushes in force

	report chan struct{} // report now (a push applied or refused)
}

// inForce is what one kind of push put in force, stored in one value so a
// version and its content change together or not at all.
type inForce struct {
	Version uint64 `cbor:"1,keyasint"`
	Content []byte `cbor:"2,keyasint"`
	Applied int64  `cbor:"3,keyasint"`
}

// NewNano builds a nano's fleet side; Carriers go into the node's options,
// then Start runs it with the node.
func NewNano(o NanoOptions) *Nano {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HealthInterval == 0 {
		o.HealthInterval = 10 * time.Minute
	}
	if o.Tick == 0 {
		o.Tick = time.Second
	}
	if o.PredictSpan == 0 {
		o.PredictSpan = 7 * 24 * time.Hour
	}
	if o.ThermalDir == "" {
		o.ThermalDir = "/sys/class/thermal"
	}
	return &Nano{o: o, inForce: map[Kind]inForce{}, interval: o.HealthInterval, report: make(chan struct{}, 1)}
}

// Carriers are the node.Carriers of a nano: it takes pushes.
func (f *Nano) Carriers() []node.Carrier {
	return []node.Carrier{{Protocol: ProtoPush, Prepare: f.preparePush}}
}

func key(tx *dtn.Tx, parts ...string) []byte {
	bs := make([][]byte, len(parts))
	for i, p := range parts {
		bs[i] = []byte(p)
	}
	return tx.Hash("fleet", bs...)
}

// Start counts a boot, puts back in force what was pushed before (the
// state database is the truth: a crash mid-apply left the old version or
// the new one, whole), and starts reporting. The boot is counted at once
// for the reports; the count is written, and the reports begin, on a
// goroutine of their own once the node's loops begin (node.Options.Begin),
// so the start does not wait for the first write of the state database.
// Call it from the node's Options.BeforeServe, before pushes can arrive.
func (f *Nano) Start(ctx context.Context, n *node.Node) error {
	f.node = n
	f.started = f.o.Now()
	f.mu.Lock()
	f.configured = n.Contact()
	f.mu.Unlock()
	var boots uint64
	var stored map[Kind]inForce
	var refused *PushRefusal
	err := f.o.Store.View(func(tx *dtn.Tx) error {
		if v, err := tx.Get(bucketNano, key(tx, "boots")); err != nil {
			return err
		} else if len(v) == 8 {
			boots = binary.BigEndian.Uint64(v)
		}
		stored = map[Kind]inForce{}
		for _, k := range []Kind{KindElements, KindPlan, KindSettings} {
			v, err := tx.Get(bucketNano, key(tx, "inforce", k.String()))
			if err != nil || v == nil {
				if err != nil {
					return err
				}
				continue
			}
			var in inForce
			if err := f.o.Codec.Unmarshal(v, &in); err != nil {
				return err
			}
			stored[k] = in
		}
		if v, err := tx.Get(bucketNano, key(tx, "refused")); err == nil && v != nil {
			refused = new(PushRefusal)
			if f.o.Codec.Unmarshal(v, refused) != nil {
				refused = nil
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	boots++
	f.boots = uint32(boots)
	f.mu.Lock()
	f.refused = refused
	f.mu.Unlock()
	// Elements first, then a plan pushed later wins (both set the plan):
	// the one applied last is the one in force.
	kinds := []Kind{KindElements, KindPlan, KindSettings}
	sort.SliceStable(kinds, func(i, j int) bool { return stored[kinds[i]].Applied < stored[kinds[j]].Applied })
	for _, k := range kinds {
		in, ok := stored[k]
		if !ok {
			continue
		}
		c, err := f.validate(k, in.Content, false)
		if err != nil {
			f.o.Log.Error("pushed configuration in force no longer valid; keeping the configured one", "kind", k, "version", in.Version, "err", err)
			continue
		}
		f.put(k, in, c)
	}
	go func() {
		if !n.AwaitBegin(ctx) {
			return
		}
		f.countBoot(ctx, boots)
		f.reportLoop(ctx)
	}()
	return nil
}

// countBoot writes this boot's count, on the reports' goroutine before the
// first report: a crash before its commit leaves this boot uncounted (the
// reports already use the count held in memory).
func (f *Nano) countBoot(ctx context.Context, boots uint64) {
	counted, err := f.o.Store.Submit(ctx, func(tx *dtn.Tx) error {
		return tx.Put(bucketNano, key(tx, "boots"), binary.BigEndian.AppendUint64(nil, boots))
	})
	if err == nil {
		err = <-counted
	}
	if err != nil && ctx.Err() == nil {
		f.o.Log.Warn("counting this boot in the state database", "boots", boots, "err", err)
	}
}

// checked is a push validated and ready to put in force.
type checked struct {
	plan     *plan.Plan
	elements *plan.Elements
	settings *Settings
}

// validate checks a push's content fully, changing nothing. fresh also
// refuses elements not newer than those in force.
func (f *Nano) validate(k Kind, content []byte, fresh bool) (*checked, error) {
	now := f.o.Now()
	switch k {
	case KindElements:
		o, err := plan.ParseOrbit(content)
		if err != nil {
			return nil, &PushError{Kind: k, Msg: err.Error()}
		}
		f.mu.Lock()
		cur := f.elements
		f.mu.Unlock()
		if fresh {
			if err := plan.CheckNewer(cur, &o.Elements); err != nil {
				return nil, &PushError{Kind: k, Field: "EPOCH", Msg: err.Error()}
			}
		}
		passes, err := o.PassesOver(predictOver(f.o.Station, f.o.Stations), now.Add(-time.Hour), f.o.PredictSpan)
		if err != nil {
			return nil, &PushError{Kind: k, Msg: "predicting passes: " + err.Error()}
		}
		if len(passes) == 0 {
			return nil, &PushError{Kind: k, Msg: fmt.Sprintf("no pass over the station in the next %s", f.o.PredictSpan)}
		}
		p, err := plan.New(plan.Windows(passes, 0))
		if err != nil {
			return nil, &PushError{Kind: k, Msg: err.Error()}
		}
		e := o.Elements
		return &checked{plan: p, elements: &e}, nil
	case KindPlan:
		p, err := ParsePlan(content, now)
		if err != nil {
			return nil, &PushError{Kind: k, Msg: err.Error()}
		}
		return &checked{plan: p}, nil
	case KindSettings:
		parse := parseSettingsInForce // stored: checked as a push already
		if fresh {
			parse = ParseSettings
		}
		s, err := parse(content)
		if err != nil {
			return nil, err
		}
		if s.LogLevel != "" && f.o.SetLogLevel == nil {
			return nil, &PushError{Kind: k, Field: "log_level", Line: lineOf(content, "log_level"), Msg: "this nano cannot change its log level"}
		}
		if s.StoreQuota != 0 && f.o.SetQuota == nil {
			return nil, &PushError{Kind: k, Field: "store_quota", Line: lineOf(content, "store_quota"), Msg: "this nano cannot change its store quota"}
		}
		return &checked{settings: s}, nil
	}
	return nil, &PushError{Kind: k, Msg: "unknown kind of push"}
}

// ParsePlan reads a contact plan in any form a plan file may take.
func ParsePlan(data []byte, epoch time.Time) (*plan.Plan, error) {
	var ws []plan.Window
	var err error
	switch s := string(data); {
	case strings.Contains(s, "[[window]]"):
		ws, err = plan.ParseTOML(data, "plan")
	case strings.Contains(s, "a contact"):
		ws, err = plan.ParseION(bytes.NewReader(data), "plan", epoch)
	default:
		ws, err = plan.ParseCSV(bytes.NewReader(data), "plan")
	}
	if err != nil {
		return nil, err
	}
	if len(ws) == 0 {
		return nil, plan.ErrEmpty
	}
	return plan.New(ws)
}

// preparePush judges a push outside any transaction: it is decoded and
// validated in full here, so a bad one changes nothing; the version check
// is made again inside the transaction, which is the truth.
func (f *Nano) preparePush(d node.Delivery) (node.Work, error) {
	var p Push
	if err := f.o.Codec.Unmarshal(d.Body, &p); err != nil {
		return node.Work{}, f.refuse(context.Background(), PushRefusal{Reason: "malformed push: " + err.Error()})
	}
	f.mu.Lock()
	cur := f.inForce[p.Kind].Version
	f.mu.Unlock()
	if p.Version <= cur {
		return node.Work{}, f.refuse(context.Background(), PushRefusal{Kind: p.Kind, Version: p.Version, Reason: fmt.Sprintf("version %d is not newer than version %d in force", p.Version, cur)})
	}
	if _, err := f.validate(p.Kind, p.Content, true); err != nil {
		return node.Work{}, f.refuse(context.Background(), PushRefusal{Kind: p.Kind, Version: p.Version, Reason: err.Error()})
	}
	// stored is what apply stored, put in force once it committed; nil: a
	// newer version won meanwhile.
	var stored *inForce
	apply := func(tx *dtn.Tx) error {
		stored = nil
		in := inForce{Version: p.Version, Content: p.Content, Applied: f.o.Now().UnixNano()}
		k := key(tx, "inforce", p.Kind.String())
		var old inForce
		if v, err := tx.Get(bucketNano, k); err != nil {
			return err
		} else if v != nil {
			if err := f.o.Codec.Unmarshal(v, &old); err == nil && old.Version >= p.Version {
				return nil // a newer one won meanwhile: nothing to do
			}
		}
		if p.Kind == KindSettings {
			// A settings push changes only what it names: the settings
			// stored are the whole in force, so a restart puts back what
			// was in force, not just the last fragment.
			merged, err := mergeStored(old.Content, p.Content)
			if err != nil {
				return err
			}
			in.Content = merged
		}
		v, err := f.o.Codec.Marshal(&in)
		if err != nil {
			return err
		}
		if err := tx.Put(bucketNano, k, v); err != nil {
			return err
		}
		stored = &in
		return nil
	}
	applied := func() {
		if stored != nil {
			f.pushApplied(p.Kind, *stored)
		}
	}
	return node.Work{Apply: apply, Applied: applied}, nil
}

// mergeStored is the settings stored in force (nil: none) with the pushed
// fragment on top, as a settings fragment.
func mergeStored(stored, fragment []byte) ([]byte, error) {
	var base Settings
	if len(stored) > 0 {
		s, err := parseSettingsInForce(stored)
		if err != nil {
			return nil, fmt.Errorf("settings in force: %w", err)
		}
		base = *s
	}
	frag, err := ParseSettings(fragment)
	if err != nil {
		return nil, err
	}
	merged := mergeSettings(base, frag)
	return merged.encode(), nil
}

// refuse remembers a refusal for the next report and returns it as the
// delivery's refusal.
func (f *Nano) refuse(ctx context.Context, r PushRefusal) error {
	f.o.Log.Warn("push refused", "kind", r.Kind, "version", r.Version, "reason", r.Reason)
	f.mu.Lock()
	f.refused = &r
	f.mu.Unlock()
	if v, err := f.o.Codec.Marshal(&r); err == nil {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		f.o.Store.Update(ctx, func(tx *dtn.Tx) error { return tx.Put(bucketNano, key(tx, "refused"), v) })
		cancel()
	}
	signalNow(f.report)
	return &node.Refusal{Reason: r.Reason}
}

// pushApplied puts a durably stored push in force: a copy of what was
// stored in the data directory (atomic write), then the new plan or
// settings.
func (f *Nano) pushApplied(k Kind, in inForce) {
	c, err := f.validate(k, in.Content, false)
	if err != nil {
		f.o.Log.Error("push stored but not valid in force", "kind", k, "version", in.Version, "err", err)
		return
	}
	if f.o.DataDir != "" {
		// A copy for operators on board; the state database stays the truth.
		path := filepath.Join(f.o.DataDir, "fleet", k.String())
		if err := platform.WriteFileAtomic(path, in.Content, 0o600); err != nil {
			f.o.Log.Warn("writing pushed file", "path", path, "err", err)
		}
	}
	f.put(k, in, c)
	f.o.Log.Info("push applied", "kind", k, "version", in.Version)
	signalNow(f.report)
}

// put makes a validated push the one in force.
func (f *Nano) put(k Kind, in inForce, c *checked) {
	f.mu.Lock()
	if f.inForce[k].Version > in.Version {
		f.mu.Unlock()
		return
	}
	f.inForce[k] = in
	if c.elements != nil {
		f.elements = c.elements
	}
	if c.plan != nil {
		f.pushedPlan, f.planFrom = c.plan, k
	}
	if c.settings != nil {
		f.settings = *c.settings // the whole in force, as stored
		if v := f.settings.HealthInterval.Duration; v > 0 {
			f.interval = v
		}
	}
	f.mu.Unlock()
	f.compose()
}

// SetConfigured replaces the configuration's contact (a reload, passes
// predicted anew from the configured elements). What pushes put in force
// stays on top: the pushed plan, profile timings and log level, so the
// nano keeps following what its reports say is in force.
func (f *Nano) SetConfigured(c node.Contact) {
	f.mu.Lock()
	f.configured = c
	f.mu.Unlock()
	f.compose()
}

// Repredict predicts the pushed elements in force anew from now. They are
// predicted PredictSpan ahead when applied; without this an orbital nano
// runs out of windows and cannot even take the next push. A pushed plan
// (not elements) is left as it is; on an error the plan in force stays.
func (f *Nano) Repredict() error {
	f.mu.Lock()
	in, from := f.inForce[KindElements], f.planFrom
	f.mu.Unlock()
	if from != KindElements {
		return nil
	}
	c, err := f.validate(KindElements, in.Content, false)
	if err != nil {
		return err
	}
	f.mu.Lock()
	// A push applied meanwhile holds: this prediction is of older elements.
	if f.planFrom == KindElements && f.inForce[KindElements].Version == in.Version {
		f.pushedPlan = c.plan
	}
	f.mu.Unlock()
	f.compose()
	return nil
}

// compose sets the node's contact to the configured one with the pushes in
// force on top, and puts pushed settings back in force (the caller may just
// have set the configured log level). It reads the state under contactMu,
// so whichever call comes last sets the latest state.
func (f *Nano) compose() {
	f.contactMu.Lock()
	defer f.contactMu.Unlock()
	f.mu.Lock()
	c, s := f.configured, f.settings
	if f.pushedPlan != nil {
		c.Plan = f.pushedPlan
	}
	f.mu.Unlock()
	p := &c.Profile
	for _, o := range []struct {
		v   time.Duration
		dst *time.Duration
	}{{s.Profile.HeartbeatInterval.Duration, &p.HeartbeatInterval}, {s.Profile.Guard.Duration, &p.Guard},
		{s.Profile.Grace.Duration, &p.Grace}} {
		if o.v > 0 {
			*o.dst = o.v
		}
	}
	f.node.SetContact(c)
	if s.LogLevel != "" && f.o.SetLogLevel != nil {
		f.o.SetLogLevel(s.LogLevel)
	}
	if s.StoreQuota != 0 && f.o.SetQuota != nil {
		f.o.SetQuota(s.StoreQuota)
	}
}

// InForce returns the version of each kind of push in force.
func (f *Nano) InForce() map[Kind]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[Kind]uint64{}
	for k, v := range f.inForce {
		out[k] = v.Version
	}
	return out
}

func signalNow(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// reportLoop reports at AOS, once more in the last call before LOS, every
// health interval while in contact, and as soon as a push was applied or
// refused. Out of contact it reports nothing: the report queued at the last
// pass is replaced by the next one, so a long gap never piles them up.
func (f *Nano) reportLoop(ctx context.Context) {
	tick := time.NewTicker(f.o.Tick)
	defer tick.Stop()
	var sched reportSchedule
	for {
		now := f.o.Now()
		c := f.node.Contact()
		f.mu.Lock()
		interval := f.interval
		f.mu.Unlock()
		forced := false
		select {
		case <-f.report:
			forced = true
		default:
		}
		if sched.due(c, interval, now) || (forced && c.Open(now)) {
			if err := f.Report(ctx); err != nil && ctx.Err() == nil {
				f.o.Log.Warn("health report", "err", err)
			}
			sched.last = now
		}
		// The last call's report leaves as the last call begins: a tick
		// later it may miss the pass.
		var lastCall <-chan time.Time
		var stop func() bool
		if from, ok := c.LastCallFrom(now); ok && now.Before(from) && from.Sub(now) < f.o.Tick {
			t := time.NewTimer(from.Sub(now))
			lastCall, stop = t.C, t.Stop
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-lastCall:
		case <-f.report:
			signalNow(f.report) // looked at above, at once
		}
		if stop != nil {
			stop()
		}
	}
}

// reportSchedule decides when a report is due.
type reportSchedule struct {
	last     time.Time
	inWindow bool // a report was made at this window's AOS
	lastCall bool // and in its last call
}

func (s *reportSchedule) due(c node.Contact, interval time.Duration, now time.Time) bool {
	if !c.Open(now) {
		s.inWindow, s.lastCall = false, false
		return false
	}
	if c.Plan == nil || !c.Profile.WindowsOnly {
		return s.last.IsZero() || now.Sub(s.last) >= interval
	}
	if !s.inWindow {
		s.inWindow = true
		return true
	}
	if c.LastCall(now) && !s.lastCall {
		s.lastCall = true
		return true
	}
	return now.Sub(s.last) >= interval
}

// Report measures the nano's health and queues it for the master,
// replacing a report still queued.
func (f *Nano) Report(ctx context.Context) error {
	r := f.Measure()
	master := f.node.Master()
	return f.o.Store.Update(ctx, func(tx *dtn.Tx) error {
		var seq uint64
		if v, err := tx.Get(bucketNano, key(tx, "seq")); err != nil {
			return err
		} else if len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		seq++
		r.Seq = seq
		body, err := f.o.Codec.Marshal(&r)
		if err != nil {
			return err
		}
		if err := tx.Put(bucketNano, key(tx, "seq"), binary.BigEndian.AppendUint64(nil, seq)); err != nil {
			return err
		}
		_, _, err = tx.Enqueue(dtn.Entry{Dest: string(master), Protocol: ProtoHealth, ResourceID: healthResource,
			Op: dtn.OpUpdate, Level: dtn.Moderate, Payload: body})
		return err
	})
}

// Measure takes the nano's health now (Seq is set when queued).
func (f *Nano) Measure() HealthReport {
	now := f.o.Now()
	r := HealthReport{Name: f.o.Name, Measured: now.Unix(), Version: f.o.Version, Flavour: f.o.Flavour, KeyBackend: f.o.KeyBackend,
		Uptime: uint64(max(now.Sub(f.started), 0) / time.Second), Boots: f.boots}
	if f.o.DataDir != "" {
		if b, err := platform.FreeBytes(f.o.DataDir); err == nil {
			r.DiskFree = b
		}
	}
	if m, err := platform.ReadMemory(); err == nil {
		r.MemFree = m.Available
	}
	master := string(f.node.Master())
	if rep, err := f.o.Store.Stats(); err == nil {
		var oldest time.Time
		for _, q := range rep.Queues {
			qs := QueueStat{Level: q.Level, Count: uint64(q.Count), Bytes: uint64(q.Bytes)}
			if q.Dest != master {
				qs.Dest = []byte(q.Dest)
			}
			r.Queues = append(r.Queues, qs)
			if oldest.IsZero() || q.Oldest.Before(oldest) {
				oldest = q.Oldest
			}
		}
		if !oldest.IsZero() && now.After(oldest) {
			r.OldestAge = uint64(now.Sub(oldest) / time.Second)
		}
		r.Corrupt = uint64(rep.Corrupt)
	}
	r.Corrupt += f.o.Store.Metrics.Corrupt.Load()
	st := f.node.Status()
	for k, v := range st.Metrics {
		if v == 0 {
			continue
		}
		switch {
		case k == "delivery_failures":
			r.DeliveryFailures = v
		case strings.HasPrefix(k, "refused_") || strings.HasPrefix(k, "rejected_") || strings.HasPrefix(k, "limit_refused_"):
			if r.Refusals == nil {
				r.Refusals = map[string]uint64{}
			}
			r.Refusals[k] = v
		}
	}
	if f.o.Watchdog != nil {
		r.Watchdog = f.o.Watchdog()
	}
	f.mu.Lock()
	for _, k := range []Kind{KindElements, KindPlan, KindSettings} {
		if in, ok := f.inForce[k]; ok {
			r.InForce = append(r.InForce, Version{Kind: k, Version: in.Version})
		}
	}
	if f.elements != nil {
		r.ElementsEpoch = f.elements.Epoch.Unix()
	}
	if f.refused != nil {
		rf := *f.refused
		r.Refused = &rf
	}
	f.mu.Unlock()
	if t, ok := hottest(f.o.ThermalDir); ok {
		r.TempMilliC, r.HasTemp = t, true
	}
	return r
}

// hottest reads the hottest thermal zone, in m°C.
func hottest(dir string) (int32, bool) {
	zones, _ := filepath.Glob(filepath.Join(dir, "thermal_zone*", "temp"))
	var best int64
	found := false
	for _, z := range zones {
		b, err := os.ReadFile(z)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 32)
		if err != nil {
			continue
		}
		if !found || v > best {
			best, found = v, true
		}
	}
	return int32(best), found
}
