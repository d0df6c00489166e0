package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/codec"
	"gardend/dtn"
	"gardend/node"
	"gardend/plan"
)

// bucketMaster holds a master's view of its nanos: latest report, a
// bounded history, the push log.
const bucketMaster = "fleet.master"

// MasterOptions are a master's fleet dependencies.
type MasterOptions struct {
	Store *dtn.Store
	Codec *codec.Codec
	Log   *slog.Logger     // nil: discard
	Now   func() time.Time // nil: time.Now
	// History is how many reports are kept per nano besides the latest;
	// 0: 32.
	History int
	// Station and PredictSpan turn pushed elements into the master's copy
	// of the nano's plan; with Stations (the configured [[stations]]),
	// passes over every one of them, merged, instead of Station's.
	Station     plan.Station
	Stations    []plan.Station
	PredictSpan time.Duration // 0: 7 days
	// Names of the nanos as configured; a report's own name is used else.
	Names map[peer.ID]string
}

// Master is a master's side of the fleet: it keeps its nanos' reports and
// pushes plans and settings to them.
type Master struct {
	o    MasterOptions
	node *node.Node

	// contactMu serializes setting a nano's contact on the node, so a
	// confirmed push and a reload never interleave their read-modify-write.
	contactMu sync.Mutex

	mu     sync.Mutex
	latest map[peer.ID]*Received // cache of the stored latest reports
	// followed is, per nano, the plan of the elements or plan it last
	// confirmed: the master's copy keeps it on top of the configured one.
	followed map[peer.ID]followed
	// stale counts reports ignored because a newer one was in hand.
	stale uint64
}

// followed is a confirmed push's plan and what it came from, so confirmed
// elements can be predicted anew.
type followed struct {
	kind    Kind
	content []byte
	plan    *plan.Plan
}

// Received is a report as the master keeps it.
type Received struct {
	Report   HealthReport `cbor:"1,keyasint" json:"report"`
	Received int64        `cbor:"2,keyasint" json:"received"` // master's Unix ns when it arrived
	// ClockOffset is the nano's clock minus the master's, measured from the
	// connection as the report arrived (the sender's stamp plus half the
	// round trip against the arrival), in ms; Measured says whether it was.
	ClockOffsetMs int64 `cbor:"3,keyasint,omitempty" json:"clock_offset_ms"`
	OffsetKnown   bool  `cbor:"4,keyasint,omitempty" json:"clock_offset_known"`
}

// PushRecord is one push in a nano's push history.
type PushRecord struct {
	Kind    Kind   `cbor:"1,keyasint" json:"-"`
	KindS   string `cbor:"-" json:"kind"`
	Version uint64 `cbor:"2,keyasint" json:"version"`
	Pushed  int64  `cbor:"3,keyasint" json:"pushed"` // Unix ns
	Size    int    `cbor:"4,keyasint" json:"size"`
	Status  string `cbor:"5,keyasint" json:"status"` // queued, applied, refused
	Reason  string `cbor:"6,keyasint,omitempty" json:"reason,omitempty"`
	Done    int64  `cbor:"7,keyasint,omitempty" json:"done,omitempty"` // Unix ns the outcome was learnt
	Content []byte `cbor:"8,keyasint,omitempty" json:"-"`              // kept until applied (elements: the master's copy of the plan)
}

// pushLog is a nano's push history, newest last.
type pushLog struct {
	Pushes []PushRecord `cbor:"1,keyasint"`
}

const maxPushLog = 32

// NewMaster builds a master's fleet side; Carriers go into the node's
// options, then Start runs it with the node.
func NewMaster(o MasterOptions) *Master {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.History == 0 {
		o.History = 32
	}
	if o.PredictSpan == 0 {
		o.PredictSpan = 7 * 24 * time.Hour
	}
	return &Master{o: o, latest: map[peer.ID]*Received{}, followed: map[peer.ID]followed{}}
}

// Carriers are the node.Carriers of a master: it takes health reports.
func (m *Master) Carriers() []node.Carrier {
	return []node.Carrier{{Protocol: ProtoHealth, Prepare: m.prepareReport}}
}

// Start loads the latest reports; the master's copies of its nanos' plans
// follow the elements or plans each nano last confirmed. Call it from the
// node's Options.BeforeServe, before reports can arrive.
func (m *Master) Start(ctx context.Context, n *node.Node) error {
	m.node = n
	for _, p := range n.Nanos() {
		rc, err := m.Latest(p)
		if err != nil {
			return err
		}
		if rc != nil {
			m.mu.Lock()
			m.latest[p] = rc
			m.mu.Unlock()
		}
		log, err := m.pushLog(p)
		if err != nil {
			return err
		}
		m.followApplied(p, log)
	}
	return nil
}

func (m *Master) latestKey(tx *dtn.Tx, p peer.ID) []byte { return key(tx, "latest", string(p)) }

// prepareReport judges a report from one of this master's nanos (the node
// checked the sender on the connection).
func (m *Master) prepareReport(d node.Delivery) (node.Work, error) {
	var r HealthReport
	if err := m.o.Codec.Unmarshal(d.Body, &r); err != nil {
		return node.Work{}, &node.Refusal{Reason: "malformed health report: " + err.Error()}
	}
	if r.Seq == 0 {
		return node.Work{}, &node.Refusal{Reason: "health report without a sequence number"}
	}
	rc := Received{Report: r, Received: d.Received.UnixNano()}
	if !d.Sent.IsZero() {
		rc.ClockOffsetMs = d.Sent.Add(d.RTT / 2).Sub(d.Received).Milliseconds()
		rc.OffsetKnown = true
	}
	from := d.From
	apply := func(tx *dtn.Tx) error {
		k := m.latestKey(tx, from)
		if v, err := tx.Get(bucketMaster, k); err != nil {
			return err
		} else if v != nil {
			var old Received
			if err := m.o.Codec.Unmarshal(v, &old); err == nil && old.Report.Seq >= r.Seq {
				m.mu.Lock()
				m.stale++
				m.mu.Unlock()
				return nil // an older report never replaces a newer one
			}
		}
		v, err := m.o.Codec.Marshal(&rc)
		if err != nil {
			return err
		}
		if err := tx.Put(bucketMaster, k, v); err != nil {
			return err
		}
		slot := fmt.Sprint(r.Seq % uint64(m.o.History))
		if err := tx.Put(bucketMaster, key(tx, "hist", string(from), slot), v); err != nil {
			return err
		}
		return m.settlePushes(tx, from, &r)
	}
	return node.Work{Apply: apply, Applied: func() { m.reportApplied(d) }}, nil
}

// settlePushes marks the pushes a report shows applied or refused.
func (m *Master) settlePushes(tx *dtn.Tx, p peer.ID, r *HealthReport) error {
	log, err := m.pushLogTx(tx, p)
	if err != nil {
		return err
	}
	inForce := map[Kind]uint64{}
	for _, v := range r.InForce {
		inForce[v.Kind] = v.Version
	}
	changed := false
	now := m.o.Now().UnixNano()
	for i := range log.Pushes {
		pr := &log.Pushes[i]
		if pr.Status != "queued" {
			continue
		}
		switch {
		case r.Refused != nil && r.Refused.Kind == pr.Kind && r.Refused.Version == pr.Version:
			pr.Status, pr.Reason, pr.Done, pr.Content, changed = "refused", r.Refused.Reason, now, nil, true
		case inForce[pr.Kind] == pr.Version:
			pr.Status, pr.Done, changed = "applied", now, true
			// Only the newest applied content is kept (the master's copy
			// of the plan follows it): the log stays small.
			for j := 0; j < i; j++ {
				if log.Pushes[j].Kind == pr.Kind {
					log.Pushes[j].Content = nil
				}
			}
		case inForce[pr.Kind] > pr.Version:
			pr.Status, pr.Reason, pr.Done, pr.Content, changed = "superseded", fmt.Sprintf("version %d in force", inForce[pr.Kind]), now, nil, true
		}
	}
	if !changed {
		return nil
	}
	return m.putPushLog(tx, p, log)
}

// reportApplied refreshes the cache and, when a push is newly in force,
// the master's copy of the nano's plan.
func (m *Master) reportApplied(d node.Delivery) {
	rc, err := m.Latest(d.From)
	if err != nil || rc == nil {
		return
	}
	m.mu.Lock()
	m.latest[d.From] = rc
	m.mu.Unlock()
	if log, err := m.pushLog(d.From); err == nil {
		m.followApplied(d.From, log)
	}
}

// followApplied gives the master's copy of a nano's plan the elements or
// plan the nano has confirmed in force, so both ends agree on the next
// windows. Until the nano confirms, the master keeps the plan the nano
// still follows.
func (m *Master) followApplied(p peer.ID, log pushLog) {
	var last *PushRecord
	for i := range log.Pushes {
		pr := &log.Pushes[i]
		if pr.Status == "applied" && (pr.Kind == KindElements || pr.Kind == KindPlan) && pr.Content != nil {
			last = pr
		}
	}
	if last == nil {
		return
	}
	pl, err := m.planOf(last.Kind, last.Content)
	if err != nil {
		m.o.Log.Warn("master's copy of a pushed plan", "nano", p, "err", err)
		return
	}
	m.follow(p, followed{kind: last.Kind, content: last.Content, plan: pl}, nil)
}

// follow puts fw on top of the master's copy of nano p's plan. With
// unless set, it does nothing once the push followed is no longer the one
// with that content (a newer one was confirmed meanwhile).
func (m *Master) follow(p peer.ID, fw followed, unless []byte) {
	m.contactMu.Lock()
	defer m.contactMu.Unlock()
	m.mu.Lock()
	if unless != nil && !bytes.Equal(m.followed[p].content, unless) {
		m.mu.Unlock()
		return
	}
	m.followed[p] = fw
	m.mu.Unlock()
	c := m.node.NanoContact(p)
	if c.Plan != nil && sameWindows(c.Plan, fw.plan) {
		return
	}
	c.Plan = fw.plan
	m.node.SetNanoContact(p, c)
}

// Repredict predicts anew, from now, the elements each nano confirmed, as
// the nano does (Nano.Repredict), so the master's copy never runs out
// either. A confirmed plan (not elements) is left as it is.
func (m *Master) Repredict() error {
	m.mu.Lock()
	todo := map[peer.ID][]byte{}
	for p, fw := range m.followed {
		if fw.kind == KindElements {
			todo[p] = fw.content
		}
	}
	m.mu.Unlock()
	var errs []error
	for p, content := range todo {
		pl, err := m.planOf(KindElements, content)
		if err != nil {
			errs = append(errs, fmt.Errorf("nano %s: %w", p, err))
			continue
		}
		m.follow(p, followed{kind: KindElements, content: content, plan: pl}, content)
	}
	return errors.Join(errs...)
}

// SetNanoConfigured replaces the configuration's contact for nano p (a
// reload, passes predicted anew from the configured elements). The plan
// the nano confirmed from a push stays on top, as it does on the nano.
func (m *Master) SetNanoConfigured(p peer.ID, c node.Contact) {
	m.contactMu.Lock()
	defer m.contactMu.Unlock()
	m.mu.Lock()
	if fw := m.followed[p]; fw.plan != nil {
		c.Plan = fw.plan
	}
	m.mu.Unlock()
	m.node.SetNanoContact(p, c)
}

func sameWindows(a, b *plan.Plan) bool {
	wa, wb := a.Windows(), b.Windows()
	if len(wa) != len(wb) {
		return false
	}
	for i := range wa {
		if !wa[i].Start.Equal(wb[i].Start) || !wa[i].End.Equal(wb[i].End) {
			return false
		}
	}
	return true
}

func (m *Master) planOf(k Kind, content []byte) (*plan.Plan, error) {
	now := m.o.Now()
	switch k {
	case KindElements:
		o, err := plan.ParseOrbit(content)
		if err != nil {
			return nil, err
		}
		passes, err := o.PassesOver(predictOver(m.o.Station, m.o.Stations), now.Add(-time.Hour), m.o.PredictSpan)
		if err != nil {
			return nil, err
		}
		return plan.New(plan.Windows(passes, 0))
	case KindPlan:
		return ParsePlan(content, now)
	}
	return nil, errors.New("not a plan")
}

// Latest returns nano p's latest report, nil if none.
func (m *Master) Latest(p peer.ID) (*Received, error) {
	var rc *Received
	err := m.o.Store.View(func(tx *dtn.Tx) error {
		v, err := tx.Get(bucketMaster, m.latestKey(tx, p))
		if err != nil || v == nil {
			return err
		}
		rc = new(Received)
		return m.o.Codec.Unmarshal(v, rc)
	})
	return rc, err
}

// History returns nano p's kept reports, oldest first.
func (m *Master) History(p peer.ID) ([]Received, error) {
	var out []Received
	err := m.o.Store.View(func(tx *dtn.Tx) error {
		for i := 0; i < m.o.History; i++ {
			v, err := tx.Get(bucketMaster, key(tx, "hist", string(p), fmt.Sprint(i)))
			if err != nil {
				return err
			}
			if v == nil {
				continue
			}
			var rc Received
			if err := m.o.Codec.Unmarshal(v, &rc); err != nil {
				return err
			}
			out = append(out, rc)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Report.Seq < out[j].Report.Seq })
	return out, err
}

func (m *Master) pushLogTx(tx *dtn.Tx, p peer.ID) (pushLog, error) {
	var log pushLog
	v, err := tx.Get(bucketMaster, key(tx, "push", string(p)))
	if err != nil || v == nil {
		return log, err
	}
	err = m.o.Codec.Unmarshal(v, &log)
	return log, err
}

func (m *Master) putPushLog(tx *dtn.Tx, p peer.ID, log pushLog) error {
	// Bounded: the oldest settled entries go first. A queued push is kept
	// (its outcome is still to be marked), and so is an applied one that
	// still holds content: the master's copy of the nano's plan and the
	// ground's epoch check follow it.
	for len(log.Pushes) > maxPushLog {
		drop := 0 // at most five are kept this way, so this stays the oldest only if maxPushLog shrank below that
		for i, pr := range log.Pushes {
			if pr.Status != "queued" && !(pr.Status == "applied" && pr.Content != nil) {
				drop = i
				break
			}
		}
		log.Pushes = append(log.Pushes[:drop], log.Pushes[drop+1:]...)
	}
	v, err := m.o.Codec.Marshal(&log)
	if err != nil {
		return err
	}
	return tx.Put(bucketMaster, key(tx, "push", string(p)), v)
}

func (m *Master) pushLog(p peer.ID) (pushLog, error) {
	var log pushLog
	err := m.o.Store.View(func(tx *dtn.Tx) error {
		var err error
		log, err = m.pushLogTx(tx, p)
		return err
	})
	return log, err
}

// Pushes returns nano p's push history, oldest first.
func (m *Master) Pushes(p peer.ID) ([]PushRecord, error) {
	log, err := m.pushLog(p)
	for i := range log.Pushes {
		log.Pushes[i].KindS = log.Pushes[i].Kind.String()
	}
	return log.Pushes, err
}

// MaxPushContent bounds what one push carries: it travels in one frame
// (64 KiB), and a week of passes is a few KiB in any plan form.
const MaxPushContent = 48 << 10

// ErrNotANano: a push for a peer this master does not govern.
var ErrNotANano = errors.New("not a nano of this master")

// Push validates content as the nano will (elements also against the
// elements last pushed) and queues it for nano p as a critical entry; a
// push of the same kind still queued is replaced. version 0 takes the next
// one. It returns the version queued.
func (m *Master) Push(ctx context.Context, p peer.ID, k Kind, content []byte, version uint64) (uint64, error) {
	if !m.governs(p) {
		return 0, fmt.Errorf("%s: %w", p, ErrNotANano)
	}
	now := m.o.Now()
	err := m.check(p, k, content)
	if err == nil && len(content) > MaxPushContent {
		err = &PushError{Kind: k, Msg: fmt.Sprintf("%d bytes; a push carries at most %d (one frame)", len(content), MaxPushContent)}
	}
	if err != nil {
		// Kept in the history too: the operator sees it in fleet show.
		m.o.Store.Update(ctx, func(tx *dtn.Tx) error {
			log, lerr := m.pushLogTx(tx, p)
			if lerr != nil {
				return lerr
			}
			log.Pushes = append(log.Pushes, PushRecord{Kind: k, Version: version, Pushed: now.UnixNano(), Size: len(content),
				Status: "refused", Reason: "on the ground: " + err.Error(), Done: now.UnixNano()})
			return m.putPushLog(tx, p, log)
		})
		return 0, err
	}
	err = m.o.Store.Update(ctx, func(tx *dtn.Tx) error {
		log, err := m.pushLogTx(tx, p)
		if err != nil {
			return err
		}
		if version == 0 {
			for _, pr := range log.Pushes {
				version = max(version, pr.Version)
			}
			if rc := m.cached(p); rc != nil {
				for _, v := range rc.Report.InForce {
					if v.Kind == k {
						version = max(version, v.Version)
					}
				}
			}
			version++
		}
		body, err := m.o.Codec.Marshal(&Push{Kind: k, Version: version, Content: content, Pushed: now.Unix()})
		if err != nil {
			return err
		}
		if _, _, err := tx.Enqueue(dtn.Entry{Dest: string(p), Protocol: ProtoPush, ResourceID: "push/" + k.String(),
			Op: dtn.OpUpdate, Level: dtn.Critical, Payload: body}); err != nil {
			return err
		}
		for i := range log.Pushes {
			if pr := &log.Pushes[i]; pr.Kind == k && pr.Status == "queued" {
				pr.Status, pr.Reason, pr.Done, pr.Content = "replaced", fmt.Sprintf("by version %d before delivery", version), now.UnixNano(), nil
			}
		}
		pr := PushRecord{Kind: k, Version: version, Pushed: now.UnixNano(), Size: len(content), Status: "queued"}
		if k == KindElements || k == KindPlan {
			pr.Content = content
		}
		log.Pushes = append(log.Pushes, pr)
		return m.putPushLog(tx, p, log)
	})
	if err != nil {
		return 0, err
	}
	m.o.Log.Info("push queued", "nano", p, "kind", k, "version", version)
	return version, nil
}

// check validates a push on the ground, so an operator's mistake is told
// at once rather than a pass later.
func (m *Master) check(p peer.ID, k Kind, content []byte) error {
	switch k {
	case KindElements:
		o, err := plan.ParseOrbit(content)
		if err != nil {
			return &PushError{Kind: k, Msg: err.Error()}
		}
		if log, err := m.pushLog(p); err == nil {
			for i := len(log.Pushes) - 1; i >= 0; i-- {
				pr := log.Pushes[i]
				if pr.Kind == KindElements && pr.Status == "applied" && pr.Content != nil {
					if prev, err := plan.ParseOrbit(pr.Content); err == nil {
						if err := plan.CheckNewer(&prev.Elements, &o.Elements); err != nil {
							return &PushError{Kind: k, Field: "EPOCH", Msg: err.Error()}
						}
					}
					break
				}
			}
		}
	case KindPlan:
		if _, err := ParsePlan(content, m.o.Now()); err != nil {
			return &PushError{Kind: k, Msg: err.Error()}
		}
	case KindSettings:
		if _, err := ParseSettings(content); err != nil {
			return err
		}
	default:
		return &PushError{Kind: k, Msg: "unknown kind of push"}
	}
	return nil
}

func (m *Master) governs(p peer.ID) bool {
	for _, q := range m.node.Nanos() {
		if q == p {
			return true
		}
	}
	return false
}

func (m *Master) cached(p peer.ID) *Received {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.latest[p]
}

// Stale is how many reports were ignored because a newer one was kept.
func (m *Master) Stale() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stale
}

// Name is nano p's name: configured, else reported, else its peer ID.
func (m *Master) Name(p peer.ID) string { return m.nameWith(p, m.cached(p)) }

// nameWith is Name given p's latest report rc (nil: none), for a caller
// that reads the report too: one look, so a report arriving in between
// cannot give a row its age and not its name.
func (m *Master) nameWith(p peer.ID, rc *Received) string {
	if n := m.o.Names[p]; n != "" {
		return n
	}
	if rc != nil && rc.Report.Name != "" {
		return rc.Report.Name
	}
	return p.String()
}

// Resolve finds a nano by name or peer ID.
func (m *Master) Resolve(s string) (peer.ID, error) {
	for _, p := range m.node.Nanos() {
		if p.String() == s || m.Name(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("no nano %q on this master", s)
}

// predictOver is what pushed elements are predicted over: the configured
// stations when there are some, else the one station.
func predictOver(one plan.Station, several []plan.Station) []plan.Station {
	if len(several) > 0 {
		return several
	}
	return []plan.Station{one}
}
