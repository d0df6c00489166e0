package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"gardend/codec"
	"gardend/dtn"
	"gardend/host"
	"gardend/plan"
	"gardend/record"
	"gardend/swim"
)

// Roles is a set of roles one process holds.
type Roles uint8

const (
	RoleNano Roles = 1 << iota
	RoleMaster
	RoleIndexer
	// RoleStation is a ground process beside an antenna: nanos reach it in
	// their passes over it, its master over the ground network.
	RoleStation
)

func (r Roles) Has(x Roles) bool { return r&x != 0 }

func (r Roles) String() string {
	var s []string
	for _, x := range []struct {
		r    Roles
		name string
	}{{RoleNano, "nano"}, {RoleMaster, "master"}, {RoleIndexer, "indexer"}, {RoleStation, "station"}} {
		if r.Has(x.r) {
			s = append(s, x.name)
		}
	}
	return strings.Join(s, "+")
}

// Options are a node's explicit dependencies and settings. Host, Key, Store,
// Codec and Roles are required; zero settings take the defaults noted.
type Options struct {
	Name     string
	Roles    Roles
	Host     *host.Host
	Key      crypto.PrivKey // signs records (the host's identity)
	Store    *dtn.Store
	Codec    *codec.Codec
	Log      *slog.Logger     // nil: discard
	Now      func() time.Time // nil: time.Now
	Master   peer.AddrInfo    // nano: the only peer allowed to change its catalogue
	Nanos    []peer.AddrInfo  // master: the nanos it governs
	Indexers []peer.AddrInfo  // indexers to heartbeat to
	Contact  Contact          // this node's profile and contact plan (zero: continuous)
	// NanoContacts are the profiles and plans of a master's nanos: when the
	// master may reach each, and when it should start to worry.
	NanoContacts map[peer.ID]Contact
	// Stations are the ground stations a nano may reach in its passes over
	// them (admitted and dialled like its master).
	Stations []peer.AddrInfo
	// PeerPlans narrow, on a nano, when a peer is in reach to that peer's
	// own windows inside the node's plan: a station in passes over it, a
	// master only in passes over its own antenna (an empty plan: never
	// directly). A peer without one is in reach whenever the plan is open.
	PeerPlans map[peer.ID]*plan.Plan

	HeartbeatInterval time.Duration // 0: 20 s
	RecordTTL         time.Duration // 0: 10 min; at most MaxRecordTTL
	IOTimeout         time.Duration // one message read or write; 0: 30 s
	// FrameTimeout bounds a frame from its first byte to its last; 0: sized
	// from the frame limit for a 64 kbit/s link (frameTimeout).
	FrameTimeout           time.Duration
	DeliveryWindow         int  // entries in flight per destination; 0: 128
	MaxDrains              int  // destinations drained at once; 0: 32
	MaxSessions            int  // indexer heartbeat sessions; 0: 16384
	MaxHeartbeatsPerMinute int  // per peer; 0: 30
	DHT                    bool // indexer: serve the Kademlia DHT
	DHTBootstrap           []peer.AddrInfo
	// OnApplied, if set, is told of every delivery applied here (kind is
	// "resource" or "booking"). It must not block.
	OnApplied func(from peer.ID, kind, id string)
	// Carriers are store-and-forward protocols of rooms above node (fleet
	// reports and pushes), delivered and applied like resources. Each
	// protocol must be registered with RegisterCarrier and given a level in
	// the store's policy.
	Carriers []Carrier
	// BeforeServe, if set, runs in Start once the node's loops run and
	// before it serves any protocol: what the Carriers read (the relay, the
	// fleet's state) is set up there, so that no stream, however early,
	// finds it half-built. An error fails Start.
	BeforeServe func(ctx context.Context, n *Node) error
	// Begin, if set, holds the node's background loops (deliveries, the
	// contact schedule, the kept session, heartbeats, the master's watch
	// over its nanos) until it is closed, while the node already serves:
	// a daemon closes it once it has reported itself ready, so that the
	// loops' first work (a dial, a commit) does not lengthen its start.
	// Nil: they begin with Start.
	Begin <-chan struct{}

	// Crash tests only: afterApply runs after a batch of deliveries is
	// durably applied (names: those applied for the first time) and before
	// any is acknowledged; beforeAckSave runs when acks have arrived and
	// before their entries are deleted, afterAckSave once the deletion of
	// n of them is durable (benchmarks: the pair is idle again).
	afterApply    func(names []string)
	beforeAckSave func(n int)
	afterAckSave  func(n int)
	// Tests only: how long an idle drain keeps its stream; 0: drainLinger.
	drainLinger time.Duration
	// Tests only: runs when a drain finds dest's queue empty, before its
	// worker lets dest go (a write may land in between).
	afterEmptyPeek func()
}

func (o *Options) fill() {
	if o.Contact.Profile.Kind == 0 {
		o.Contact.Profile = ProfileFor(ProfileContinuous)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = o.Contact.Profile.HeartbeatInterval
	}
	if o.RecordTTL != 0 {
		o.Contact.Profile.RecordTTL = min(o.RecordTTL, record.MaxTTL)
	}
	if o.IOTimeout == 0 {
		o.IOTimeout = 30 * time.Second
	}
	if o.DeliveryWindow == 0 {
		// A lost segment holds back every entry behind it until its
		// retransmission has crossed the link queue (seconds at 64 kbit/s);
		// 32 entries ran dry in that time and left the link idle, 128 do not
		// (flight bench: goodput 0.87-0.90 with 32, 0.93 with 128).
		o.DeliveryWindow = 128
	}
	if o.MaxDrains == 0 {
		// A ground restart owes every nano its backlog: a bounded pool of
		// drains, not one stream and three goroutines per nano at once.
		o.MaxDrains = DefaultMaxDrains
	}
	if o.MaxSessions == 0 {
		o.MaxSessions = 16384
	}
	if o.MaxHeartbeatsPerMinute == 0 {
		o.MaxHeartbeatsPerMinute = 30
	}
}

// DefaultMaxDrains is how many destinations a node drains at once unless
// configured otherwise.
const DefaultMaxDrains = 32

// Node is one gardend process's roles running on one host.
type Node struct {
	o       Options
	id      peer.ID
	h       *host.Host
	c       *codec.Codec
	store   *dtn.Store
	log     *slog.Logger
	Metrics *Metrics

	nanos    map[peer.ID]peer.AddrInfo // master: governed nanos
	liveness *Liveness                 // master: planned absence versus failure of its nanos

	contactMu    sync.RWMutex // guards the contacts, which SetContact may replace (new plan)
	ownContact   Contact
	nanoContacts map[peer.ID]Contact

	seq atomic.Uint64 // last record sequence number

	idx *indexer // nil unless RoleIndexer

	members *swim.Membership // SWIM liveness gossip on heartbeats
	dht     recordDHT

	alive atomic.Int64 // Unix ns of the delivery loop's last turn

	heartbeatEvery atomic.Int64 // ns; Options.HeartbeatInterval, changed by SetContact
	acks           ackTimes     // when each destination last acknowledged a delivery (heartbeat.go)

	inbound inboundDrains // peers draining to this node now (pacing.go)

	deliveryMu sync.Mutex
	draining   map[peer.ID]chan struct{} // destinations being drained → "more was queued"
	kick       chan struct{}             // recheck has destinations: look again
	recheck    []peer.ID                 // destinations a drain ended with work possibly left, for deliveryLoop's contact check
	nanoEvents chan peer.ID              // master: nanos to look at now (watchNanos)
	running    int                       // drain workers
	peakDrains int                       // most drain workers at once (benchmarks)
	waiting    []peer.ID                 // due destinations waiting for a worker, oldest first
	waitingSet map[peer.ID]bool
	// Closed (and replaced) when a destination starts waiting for a
	// worker: a lingering drain gives its worker up.
	workerWanted chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
	// loopsMu orders loop's wg.Add against Close: a stream handler still
	// running when Close starts must not start a goroutine Close has
	// stopped waiting for.
	loopsMu  sync.Mutex
	stopping bool
}

// New checks the options and builds a node; Start runs it.
func New(o Options) (*Node, error) {
	o.fill()
	if o.Host == nil || o.Key == nil || o.Store == nil || o.Codec == nil {
		return nil, errors.New("node: Host, Key, Store and Codec are required")
	}
	if o.Roles == 0 {
		return nil, errors.New("node: no role")
	}
	if o.Roles.Has(RoleNano) && o.Master.ID == "" {
		return nil, errors.New("node: a nano needs its master's peer ID")
	}
	n := &Node{o: o, id: o.Host.ID(), h: o.Host, c: o.Codec, store: o.Store, log: o.Log,
		Metrics: NewMetrics(), nanos: map[peer.ID]peer.AddrInfo{}, draining: map[peer.ID]chan struct{}{}, kick: make(chan struct{}, 1), waitingSet: map[peer.ID]bool{}, workerWanted: make(chan struct{}), nanoEvents: make(chan peer.ID, 1024), liveness: NewLiveness(),
		ownContact: o.Contact, nanoContacts: map[peer.ID]Contact{}}
	for p, c := range o.NanoContacts {
		n.nanoContacts[p] = c
	}
	n.members = swim.New(n.id, o.Now())
	// Configured peers are never the connection manager's to trim.
	for _, ai := range append(append([]peer.AddrInfo{o.Master}, o.Nanos...), o.Indexers...) {
		if ai.ID != "" {
			o.Host.ConnManager().Protect(ai.ID, "configured")
		}
	}
	for _, ai := range o.Nanos {
		n.nanos[ai.ID] = ai
		n.liveness.Watch(ai.ID, n.nanoContact(ai.ID), o.Now())
		o.Host.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour*24*365)
	}
	if o.Master.ID != "" {
		o.Host.Peerstore().AddAddrs(o.Master.ID, o.Master.Addrs, time.Hour*24*365)
	}
	// A nano that keeps to windows and its master keep their connection
	// across planned gaps (host/session.go); a master reached through windows of
	// its own (PeerPlans) does not.
	if keepsMaster(o, o.Contact.Profile) {
		o.Host.KeepAcrossGaps(o.Master.ID)
	}
	for p, c := range o.NanoContacts {
		if keepsToWindows(c) {
			o.Host.KeepAcrossGaps(p)
		}
	}
	for _, ai := range append(append([]peer.AddrInfo(nil), o.Indexers...), o.Stations...) {
		o.Host.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour*24*365)
	}
	if o.Roles == RoleNano {
		// A nano talks only to its own: its master, its indexers and the
		// ground stations that relay for its master.
		admitted := []peer.ID{o.Master.ID}
		for _, ai := range append(append([]peer.AddrInfo(nil), o.Indexers...), o.Stations...) {
			admitted = append(admitted, ai.ID)
		}
		o.Host.Gater.AdmitOnly(admitted...)
		for _, c := range o.Host.Network().Conns() {
			if !o.Host.Gater.Admits(c.RemotePeer()) {
				c.Close()
			}
		}
	}
	// Sequence numbers start from the clock so a restarted peer's records
	// are newer than those it signed before.
	n.seq.Store(uint64(o.Now().UnixNano()))
	n.heartbeatEvery.Store(int64(o.HeartbeatInterval))
	return n, nil
}

// LastTurn is when the delivery loop last went round: a watchdog's proof
// that the node is not stuck.
func (n *Node) LastTurn() time.Time { return time.Unix(0, n.alive.Load()) }

// ID is the node's peer ID.
func (n *Node) ID() peer.ID { return n.id }

// Roles are the roles the node holds.
func (n *Node) Roles() Roles { return n.o.Roles }

// Start registers the protocol handlers and starts the loops. Handlers are
// registered last, once every structure they touch exists, so a peer that
// talks during start-up cannot find the node half-built.
func (n *Node) Start(ctx context.Context) error {
	n.ctx, n.cancel = context.WithCancel(ctx)
	if n.o.Roles.Has(RoleIndexer) {
		n.idx = newIndexer(n)
		d, err := startDHT(n.ctx, n)
		if err != nil {
			return fmt.Errorf("node: DHT: %w", err)
		}
		n.dht = d
	}
	sub, err := n.h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return err
	}
	n.h.SetPacingPolicy(func(p peer.ID) uint64 { return n.pacingNow(p, n.plannedRate(p, n.o.Now())) })
	n.loop(func() { n.watchConnections(sub) })
	n.loop(n.begun(n.deliveryLoop))
	for _, ai := range n.o.Indexers {
		if ai.ID != n.id {
			n.loop(n.begun(func() { n.heartbeatLoop(ai) }))
		}
	}
	if n.o.Roles.Has(RoleNano) {
		n.loop(n.begun(n.contactLoop))
		if n.h.Kept(n.o.Master.ID) {
			n.loop(n.begun(n.sessionLoop))
		}
	}
	if len(n.nanos) > 0 {
		n.loop(n.begun(n.watchNanos))
	}
	if n.o.BeforeServe != nil {
		if err := n.o.BeforeServe(n.ctx, n); err != nil {
			return err
		}
	}
	if n.idx != nil {
		n.loop(n.begun(n.idx.gcLoop))
		n.handle(ProtoHeartbeat, n.idx.serveHeartbeat)
		n.handle(ProtoRecordPublish, n.idx.servePublish)
		n.handle(ProtoRecordDelete, n.idx.servePublish)
		n.handle(ProtoRecordGet, n.idx.serveGet)
	}
	if n.o.Roles.Has(RoleNano) || n.o.Roles.Has(RoleMaster) {
		n.handle(ProtoResource, n.serveResource)
		n.handle(ProtoBooking, n.serveBooking)
	}
	for i := range n.o.Carriers {
		n.handle(n.o.Carriers[i].Protocol, n.serveCarried(&n.o.Carriers[i]))
	}
	n.handle(ProtoWake, n.serveWake)
	n.log.Info("node started", "peer", n.id, "roles", n.o.Roles.String(), "addrs", n.h.LoggedAddrs())
	return nil
}

// Close stops the loops and the handlers; it does not close the host or
// the store, which the caller owns.
func (n *Node) Close() error {
	n.closed.Do(func() {
		n.loopsMu.Lock()
		n.stopping = true
		n.loopsMu.Unlock()
		for _, p := range []string{ProtoHeartbeat, ProtoRecordPublish, ProtoRecordDelete, ProtoRecordGet, ProtoResource, ProtoBooking, ProtoWake} {
			n.h.RemoveStreamHandler(protocol.ID(p))
		}
		for _, c := range n.o.Carriers {
			n.h.RemoveStreamHandler(protocol.ID(c.Protocol))
		}
		if n.cancel != nil {
			n.cancel()
		}
		if n.dht != nil {
			n.dht.Close()
		}
		n.wg.Wait()
	})
	return nil
}

// loop runs f in a goroutine that Close waits for. Once Close has begun it
// runs nothing: work asked for by a handler still finishing is dropped with
// the node.
func (n *Node) loop(f func()) {
	n.loopsMu.Lock()
	defer n.loopsMu.Unlock()
	if n.stopping {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// begun returns f held until Options.Begin closes; it is dropped if the
// node stops first.
func (n *Node) begun(f func()) func() {
	if n.o.Begin == nil {
		return f
	}
	return func() {
		if n.AwaitBegin(n.ctx) {
			f()
		}
	}
}

// AwaitBegin waits until the node's loops may begin (Options.Begin) and
// says whether they may, false if ctx ended first: the fleet's and the
// relay's loops wait on it as the node's own do.
func (n *Node) AwaitBegin(ctx context.Context) bool {
	if n.o.Begin == nil {
		return ctx.Err() == nil
	}
	select {
	case <-n.o.Begin:
		return ctx.Err() == nil
	case <-ctx.Done():
		return false
	}
}

// handle registers a stream handler that reads through the codec; an error
// from the handler resets the stream and is counted, never crashes the node.
// Frames are bounded by the protocol's own limit, and their buffers are
// reserved from the stream's resource scope as they arrive.
func (n *Node) handle(proto string, h func(s network.Stream, r *codec.FrameReader) error) {
	short := strings.TrimPrefix(proto, ProtocolPrefix+"/")
	n.h.SetStreamHandler(protocol.ID(proto), func(s network.Stream) {
		var src io.Reader = s
		reserved := false
		if proto == ProtoResource || proto == ProtoBooking || n.carrier(proto) != nil {
			// A receiver applies every delivery in hand in one transaction:
			// the read buffer bounds how many that can be (≈ 80 mutations
			// of 400 bytes). It is reserved from the stream's budget; without
			// room the stream reads through the small default buffer.
			if s.Scope().ReserveMemory(deliveryReadBuffer, network.ReservationPriorityAlways) == nil {
				reserved = true
				src = bufio.NewReaderSize(s, deliveryReadBuffer)
			}
		}
		r := n.c.NewReaderMax(src, frameLimit(proto))
		r.SetBudget(s.Scope())
		err := h(s, r)
		if reserved {
			s.Scope().ReleaseMemory(deliveryReadBuffer)
		}
		if err == nil || errors.Is(err, io.EOF) {
			s.Close()
			return
		}
		s.Reset()
		reason := codec.Reason(err)
		if reason == "other" {
			reason = record.Reason(err)
		}
		n.Metrics.Inc("rejected_" + short + "_" + reason)
		n.log.Debug("stream rejected", "protocol", short, "peer", s.Conn().RemotePeer(), "err", err)
	})
}

// read reads one message of protocol proto: it waits up to wait (0: the
// I/O timeout) for the message's first byte, then gives the rest of the
// frame its own deadline. A peer may stay quiet as long as its protocol
// allows, but not trickle a frame a byte at a time. These deadlines are on
// sockets, so they run on real time.
func (n *Node) read(s network.Stream, r *codec.FrameReader, proto string, wait time.Duration) (any, error) {
	if wait == 0 {
		wait = n.o.IOTimeout
	}
	s.SetReadDeadline(time.Now().Add(wait))
	if err := r.Wait(); err != nil {
		return nil, err
	}
	s.SetReadDeadline(time.Now().Add(n.frameTimeout(r.MaxFrame())))
	m, _, err := n.c.ReadMessage(r, proto)
	return m, err
}

// frameTimeout is how long a frame of up to maxFrame bytes may take from
// its first byte to its last: twice its time on a 64 kbit/s link (loss and
// retransmissions), plus 5 s for the round trips around it. 21 s for a
// 64 KiB frame, 5 s for a wake.
func (n *Node) frameTimeout(maxFrame int) time.Duration {
	if n.o.FrameTimeout > 0 {
		return n.o.FrameTimeout
	}
	const linkBitsPerSecond = 64000
	return 5*time.Second + time.Duration(2*8*int64(maxFrame))*time.Second/linkBitsPerSecond
}

// write writes one message within the I/O timeout.
func (n *Node) write(s network.Stream, m any) error {
	s.SetWriteDeadline(time.Now().Add(n.o.IOTimeout))
	return n.c.WriteMessage(s, m)
}

// newStream opens a stream to p, dialling it if needed. The stream is reset
// when ctx ends, so a loop blocked on it (a heartbeat waiting for an answer
// across a link that just went down) lets the node stop at once instead of
// after the I/O timeout.
func (n *Node) newStream(ctx context.Context, p peer.ID, proto string) (network.Stream, error) {
	dctx, cancel := context.WithTimeout(ctx, host.DefaultDialTimeout)
	defer cancel()
	s, err := n.h.NewStream(dctx, p, protocol.ID(proto))
	if err != nil {
		return nil, err
	}
	return &stoppableStream{Stream: s, stop: context.AfterFunc(ctx, func() { s.Reset() })}, nil
}

// stoppableStream unregisters its reset-on-stop when it is closed.
type stoppableStream struct {
	network.Stream
	stop func() bool
}

func (s *stoppableStream) Close() error { s.stop(); return s.Stream.Close() }
func (s *stoppableStream) Reset() error { s.stop(); return s.Stream.Reset() }

// signedRecord signs a fresh record of this node.
func (n *Node) signedRecord() ([]byte, error) { return n.signRecord(n.peerRecord()) }

// peerRecord describes this node as it stands now, unsigned and without a
// sequence number.
func (n *Node) peerRecord() record.PeerRecord {
	rec := record.PeerRecord{
		Peer:    []byte(n.id),
		Name:    n.o.Name,
		Expires: uint64(n.contact().RecordExpiry(n.o.Now()).Unix()),
		IsNano:  n.o.Roles.Has(RoleNano),
		Profile: uint8(n.contact().Profile.Kind),
	}
	if n.o.Roles.Has(RoleNano) {
		rec.Master = []byte(n.o.Master.ID)
	}
	for _, a := range n.h.Addrs() {
		rec.Addrs = append(rec.Addrs, a.Bytes())
	}
	return rec
}

// signRecord gives rec the next sequence number and signs it.
func (n *Node) signRecord(rec record.PeerRecord) ([]byte, error) {
	rec.Seq = n.seq.Add(1)
	return record.Sign(n.c, n.o.Key, rec)
}

// Connected reports whether a connection to p is open.
func (n *Node) Connected(p peer.ID) bool {
	return n.h.Network().Connectedness(p) == network.Connected
}

// watchConnections nudges the DTN store when a peer we owe something to
// connects: its entries are delivered at once, not at the next retry.
func (n *Node) watchConnections(sub event.Subscription) {
	defer sub.Close()
	for {
		select {
		case <-n.ctx.Done():
			return
		case ev, ok := <-sub.Out():
			if !ok {
				return
			}
			e := ev.(event.EvtPeerConnectednessChanged)
			if e.Connectedness == network.Connected {
				n.liveness.Seen(e.Peer, n.o.Now())
				if _, ok := n.nanos[e.Peer]; ok {
					n.nanoChanged(e.Peer)
				}
			}
			if e.Connectedness == network.Connected && n.store.Len(string(e.Peer)) > 0 {
				n.h.ClearBackoff(e.Peer)
				if err := n.store.Nudge(n.ctx, string(e.Peer)); err != nil && !errors.Is(err, context.Canceled) {
					n.log.Warn("nudge on connect", "peer", e.Peer, "err", err)
				}
			}
		}
	}
}

// Metrics are named counters, created on first use.
type Metrics struct {
	mu sync.Mutex
	m  map[string]*atomic.Uint64
}

// NewMetrics returns an empty set.
func NewMetrics() *Metrics { return &Metrics{m: map[string]*atomic.Uint64{}} }

func (m *Metrics) counter(name string) *atomic.Uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.m[name]
	if c == nil {
		c = new(atomic.Uint64)
		m.m[name] = c
	}
	return c
}

// Inc adds one to name.
func (m *Metrics) Inc(name string) { m.counter(name).Add(1) }

// Add adds v to name.
func (m *Metrics) Add(name string, v uint64) { m.counter(name).Add(v) }

// Get returns name's value.
func (m *Metrics) Get(name string) uint64 { return m.counter(name).Load() }

// Snapshot returns every counter, sorted by name when printed.
func (m *Metrics) Snapshot() map[string]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]uint64, len(m.m))
	for k, v := range m.m {
		out[k] = v.Load()
	}
	return out
}

// keepsMaster says whether a nano under profile keeps its connection to its
// master across planned gaps: only when it talks to it in windows alone,
// and not when the master is reached through windows of its own.
func keepsMaster(o Options, profile Profile) bool {
	_, own := o.PeerPlans[o.Master.ID]
	return o.Roles.Has(RoleNano) && o.Master.ID != "" && profile.WindowsOnly && !own
}
