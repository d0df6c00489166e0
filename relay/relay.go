// Package relay carries what a master and its nanos owe each other through
// ground stations, the way DTN systems do it: custody transfer hop by hop
// (a hop acknowledges an entry only once it is in its own durable store,
// and only then does the previous hop delete it), routing over contact
// plans (the master hands a nano's entries to the station whose window
// with that nano comes first, and gets them back when that window passes
// without delivery), and end-to-end signatures by each entry's origin, so
// a station can neither forge nor alter what it carries.
//
// An entry keeps the ID its origin gave it across every hop: its
// destination applies it once by (origin, ID), whichever station brings
// it, as many times as it comes. The same Relay type runs on the three
// roles; which part runs follows the node's roles.
package relay

import (
	"context"
	"crypto/ed25519"
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
	"gardend/origin"
	"gardend/plan"
)

// Signer signs what this node originates (hsm.Keystore is one).
type Signer interface {
	PublicKey() ed25519.PublicKey
	Sign(msg []byte) ([]byte, error)
}

// Options are a Relay's dependencies.
type Options struct {
	Node   *node.Node // set by Start
	Store  *dtn.Store
	Codec  *codec.Codec
	Signer Signer
	Log    *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
	// Stations by the names plans use. A master's own antenna, when it has
	// one, is listed under its own peer ID.
	Stations map[string]peer.ID
	// Contacts are the windows over each station: on a nano its own, on a
	// master each nano's (keyed by nano). A station needs none.
	Contacts map[peer.ID]*plan.Contacts
	Guard    time.Duration // windows open this much early and close late
	Tick     time.Duration // how often routes are looked at; 0: 1 s
	Chunk    int           // entries moved (and signed together) at once; 0: 256
}

// Relay is the relay's part of one node.
type Relay struct {
	o    Options
	self peer.ID
	role node.Roles
	log  *slog.Logger

	mu       sync.Mutex
	contacts map[peer.ID]*plan.Contacts
	stations map[peer.ID]string
	counts   map[string]uint64
}

// New makes the relay of a node. The node must be built with the Carriers
// this returns (Carriers) among its options; Start it once the node runs.
func New(o Options) *Relay {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Tick == 0 {
		o.Tick = time.Second
	}
	if o.Chunk == 0 {
		o.Chunk = 256
	}
	r := &Relay{o: o, log: o.Log, contacts: o.Contacts, stations: map[peer.ID]string{}, counts: map[string]uint64{}}
	for name, id := range o.Stations {
		r.stations[id] = name
	}
	return r
}

// errStoreFull ends a routing pass: the store has no room to move more
// entries into envelopes until the next hop takes some (counted as
// relay_move_full; not worth a warning every tick).
var errStoreFull = errors.New("relay: no room in the store to move more entries")

func (r *Relay) count(name string) { r.add(name, 1) }

func (r *Relay) add(name string, n uint64) {
	r.mu.Lock()
	r.counts[name] += n
	r.mu.Unlock()
}

// Counts are the relay's counters (custody taken, refused by reason,
// entries handed over, returned, re-routed).
func (r *Relay) Counts() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]uint64, len(r.counts))
	for k, v := range r.counts {
		out["relay_"+k] = v
	}
	return out
}

// SetContacts replaces the windows of one nano (or, on a nano, its own).
func (r *Relay) SetContacts(p peer.ID, c *plan.Contacts) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[peer.ID]*plan.Contacts, len(r.contacts)+1)
	for k, v := range r.contacts {
		m[k] = v
	}
	m[p] = c
	r.contacts = m
}

func (r *Relay) contactsOf(p peer.ID) *plan.Contacts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.contacts[p]
}

func (r *Relay) isStation(p peer.ID) bool { _, ok := r.stations[p]; return ok }

// Carriers are the node Carriers of the relay's protocols: envelopes, and
// stations' receipts to their master.
func (r *Relay) Carriers() []node.Carrier {
	return []node.Carrier{{Protocol: Protocol, Prepare: r.prepare, Admit: r.admit, Acked: r.acked}, r.receiptCarrier()}
}

// Start runs the routing loop of n, the node the Carrier was given to,
// from when n's loops begin (node.Options.Begin) until ctx ends. Call it
// from n's Options.BeforeServe: the Carriers read what it sets, and n may
// serve them as soon as Start returns.
func (r *Relay) Start(ctx context.Context, n *node.Node) {
	r.o.Node = n
	r.self = n.ID()
	r.role = r.o.Node.Roles()
	go func() {
		if !n.AwaitBegin(ctx) {
			return
		}
		t := time.NewTicker(r.o.Tick)
		defer t.Stop()
		for {
			r.Route(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// refuse counts a refusal by reason and returns it as the node's Refusal.
func (r *Relay) refuse(reason string, err error) error {
	r.count("refused_" + reason)
	r.log.Warn("relay refused an envelope", "reason", reason, "err", err)
	return &node.Refusal{Reason: fmt.Sprintf("relay: %s: %v", reason, err)}
}

// admit judges, from the connection, who may hand envelopes to this node:
// a nano takes them from its master and the stations; a station from its
// master and the master's nanos; a master from its stations and nanos.
func (r *Relay) admit(from peer.ID) error {
	n := r.o.Node
	ok := false
	switch {
	case r.role.Has(node.RoleNano):
		ok = from == n.Master() || r.isStation(from)
	case r.role.Has(node.RoleMaster):
		ok = r.isStation(from) || n.IsNano(from)
	case r.role.Has(node.RoleStation):
		ok = from == n.Master() || n.IsNano(from)
	}
	if !ok {
		r.count("refused_stranger")
		return &node.Refusal{Reason: "relay: not a peer of this fleet"}
	}
	return nil
}

// prepare judges one envelope handed to this node: that its origin signed
// it for its destination, that origin and destination are the pair this
// hop may carry between, then what to do with it: apply it here (its
// destination), or take custody of it (store it for the next hop).
func (r *Relay) prepare(d node.Delivery) (node.Work, error) {
	env, from, to, err := Decode(r.o.Codec, d.Body)
	if err != nil {
		return node.Work{}, r.refuse("malformed", err)
	}
	n := r.o.Node
	master := n.Master()
	if r.role.Has(node.RoleMaster) {
		master = r.self
	}
	// Who may be the origin, given who hands it over and where it goes.
	switch {
	case to == master && n.IsNano(from) && (d.From == from || r.isStation(d.From)):
		// uplink: a nano's own entry, from the nano or a station
	case from == master && n.IsNano(to) && (d.From == master || r.isStation(d.From) || r.role.Has(node.RoleNano)):
		// downlink, or a station giving a master's entry back to it
	case r.role.Has(node.RoleNano) && from == master && to == r.self:
	default:
		return node.Work{}, r.refuse("route", fmt.Errorf("%s may not carry an entry from %s to %s", d.From, from, to))
	}
	// from and to are the envelope's own, so VerifyEntry's wrong origin or
	// destination cannot come up here: the switch above has judged the pair
	// (a misdelivered entry is refused as "route"), and the signature binds
	// the origin to it (a rewritten destination is a bad signature).
	if err := origin.VerifyEntry(from, to, env.signed(from, to), env.Att); err != nil {
		return node.Work{}, r.refuse("signature_"+origin.Reason(err), err)
	}
	if to == r.self {
		w, err := n.PrepareRelayed(from, env.inner(to))
		if err != nil {
			r.count("refused_by_receiver")
			return node.Work{}, err
		}
		return w, nil
	}
	// Custody: stored in this node's own store for the next hop, which is
	// always the destination (a station holds a master's entry for its
	// nano, a nano's for the master; a master queues an entry a station
	// gave back for its nano again, to be routed anew), in the same
	// transaction that records the hand-over applied; acknowledged only
	// once that is durable.
	next := to
	if r.role.Has(node.RoleMaster) {
		env.DeliverBy = 0
	}
	body, err := r.o.Codec.Marshal(env)
	if err != nil {
		return node.Work{}, err
	}
	kind := "custody_uplink"
	switch {
	case r.role.Has(node.RoleMaster):
		kind = "returned"
	case to != master:
		kind = "custody_downlink"
	}
	return node.Work{
		Apply: func(tx *dtn.Tx) error {
			_, ref, err := tx.Enqueue(dtn.Entry{Dest: string(next), Protocol: Protocol, Payload: body, Level: dtn.Level(env.Level)})
			switch {
			case err != nil:
				return err
			case kind == "custody_downlink":
				return r.hold(tx, ref, to, env.ID)
			case kind == "returned":
				return tx.Delete(bucketLedger, ledgerKey(tx, to, env.ID))
			}
			return nil
		},
		Applied: func() { r.count(kind) },
	}, nil
}

// Route moves what waits here toward its next hop; it runs every tick.
// A nano wraps what it owes its master into envelopes for the station in
// view; a master hands each nano's entries to the station of the nano's
// earliest window; a station gives back to the master what a window
// passed without delivering.
func (r *Relay) Route(ctx context.Context) {
	var err error
	switch {
	case r.role.Has(node.RoleNano):
		err = r.routeNano(ctx)
	case r.role.Has(node.RoleMaster):
		err = r.routeMaster(ctx)
	case r.role.Has(node.RoleStation):
		err = r.giveBack(ctx)
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, errStoreFull) {
		r.log.Warn("relay routing", "err", err)
	}
}

// inView is the station a nano should hand its entries to now: of the
// windows open (from a guard time before AOS, so the entries wait in that
// station's queue when the link comes up), the one that lasts longest.
func (r *Relay) inView(now time.Time) (peer.ID, bool) {
	c := r.contactsOf(r.self)
	if c == nil {
		return "", false
	}
	var best plan.Window
	found := false
	for _, w := range c.Open(now, r.o.Guard) {
		if _, ok := r.o.Stations[w.Station]; ok && (!found || w.End.After(best.End)) {
			best, found = w, true
		}
	}
	if !found {
		return "", false
	}
	return r.o.Stations[best.Station], true
}

func (r *Relay) routeNano(ctx context.Context) error {
	hop, ok := r.inView(r.o.Now())
	if !ok {
		return nil
	}
	master := r.o.Node.Master()
	// Envelopes waiting for a station out of view go to the one in view,
	// ahead of the entries wrapped now: they are older, and the master
	// applies a resource's changes in the order they arrive (an older
	// update behind a newer one would win, an older create behind a delete
	// would bring the resource back).
	for _, d := range r.o.Store.Destinations() {
		p := peer.ID(d)
		if p != hop && (r.isStation(p) || p == master) {
			if err := r.retarget(ctx, p, hop); err != nil {
				return err
			}
		}
	}
	if hop != master {
		return r.wrapFor(ctx, master, hop, 0)
	}
	return nil
}

// routeMaster hands every nano's waiting entries to the station of its
// earliest window, unless that is the master's own antenna. Entries still
// queued for a station the master could not reach before their window
// ended come back first, to be routed anew.
func (r *Relay) routeMaster(ctx context.Context) error {
	now := r.o.Now()
	for _, d := range r.o.Store.Destinations() {
		if s := peer.ID(d); r.isStation(s) && s != r.self {
			if err := r.reclaim(ctx, s, now); err != nil {
				return err
			}
		}
	}
	for _, d := range r.o.Store.Destinations() {
		nano := peer.ID(d)
		c := r.contactsOf(nano)
		if c == nil || !r.o.Node.IsNano(nano) {
			continue
		}
		w, ok := c.Next(now)
		if !ok {
			continue
		}
		hop, ok := r.o.Stations[w.Station]
		if !ok || hop == r.self {
			continue // its own antenna: the node delivers directly
		}
		if err := r.wrapFor(ctx, nano, hop, w.End.UnixMilli()); err != nil {
			return err
		}
	}
	return nil
}

// reclaim moves back to each nano's queue, on a master, the envelopes
// still queued for station whose window ended before now: the station was
// out of reach and will not carry them in time.
func (r *Relay) reclaim(ctx context.Context, station peer.ID, now time.Time) error {
	return r.queued(station, overdue(now), func(envs []*Envelope, refs []dtn.Ref) error {
		byNano := map[peer.ID][]int{}
		for i, env := range envs {
			env.DeliverBy = 0
			byNano[peer.ID(env.Dest)] = append(byNano[peer.ID(env.Dest)], i)
		}
		for nano, idx := range byNano {
			es, rs := make([]*Envelope, len(idx)), make([]dtn.Ref, len(idx))
			for k, i := range idx {
				es[k], rs[k] = envs[i], refs[i]
			}
			if err := r.move(ctx, station, nano, es, rs, 0); err != nil {
				return err
			}
			r.add("reclaimed", uint64(len(es)))
		}
		return nil
	})
}

// giveBack returns to the master, on a station, the entries for a nano
// whose window passed without delivering them, so it routes them anew.
func (r *Relay) giveBack(ctx context.Context) error {
	now := r.o.Now()
	master := r.o.Node.Master()
	for _, d := range r.o.Store.Destinations() {
		nano := peer.ID(d)
		if nano == master || !r.o.Node.IsNano(nano) || r.o.Node.Connected(nano) {
			continue
		}
		err := r.queued(nano, overdue(now), func(envs []*Envelope, refs []dtn.Ref) error {
			if err := r.move(ctx, nano, master, envs, refs, 0); err != nil {
				return err
			}
			r.add("given_back", uint64(len(envs)))
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// wrapFor moves the entries queued for dest into envelopes for hop, each
// batch signed once by this node; envelopes already queued for dest (given
// back) move as they are. deliverBy is set on every envelope (0: none).
func (r *Relay) wrapFor(ctx context.Context, dest, hop peer.ID, deliverBy int64) error {
	var after uint64
	for {
		es, err := r.o.Store.PeekAfter(string(dest), after, r.o.Chunk)
		if err != nil || len(es) == 0 {
			return err
		}
		after = es[len(es)-1].Ref.Pos
		var own []dtn.Entry
		var envs []*Envelope
		var refs []dtn.Ref
		for _, e := range es {
			if e.Protocol == Protocol {
				env, _, _, err := Decode(r.o.Codec, e.Payload)
				if err != nil {
					r.count("undecodable_queued")
					continue
				}
				envs, refs = append(envs, env), append(refs, e.Ref)
				continue
			}
			own = append(own, e)
		}
		if len(own) > 0 {
			signed := make([]origin.Entry, len(own))
			for i, e := range own {
				signed[i] = wrap(r.self, e).signed(r.self, dest)
			}
			atts, err := origin.SignEntries(r.o.Signer, r.o.Signer.PublicKey(), signed)
			if err != nil {
				return fmt.Errorf("sign %d entries for %s: %w", len(own), dest, err)
			}
			for i, e := range own {
				env := wrap(r.self, e)
				env.Att = atts[i]
				envs, refs = append(envs, env), append(refs, e.Ref)
			}
			r.count("signatures")
		}
		if err := r.move(ctx, dest, hop, envs, refs, deliverBy); err != nil {
			return err
		}
		if len(es) < r.o.Chunk {
			return nil
		}
	}
}

// queued walks the envelopes queued for dest a chunk at a time and hands
// those pick accepts (nil: all) to do.
func (r *Relay) queued(dest peer.ID, pick func(*Envelope) bool, do func(envs []*Envelope, refs []dtn.Ref) error) error {
	var after uint64
	for {
		es, err := r.o.Store.PeekAfter(string(dest), after, r.o.Chunk)
		if err != nil || len(es) == 0 {
			return err
		}
		after = es[len(es)-1].Ref.Pos
		var envs []*Envelope
		var refs []dtn.Ref
		for _, e := range es {
			if e.Protocol != Protocol {
				continue
			}
			env, _, _, err := Decode(r.o.Codec, e.Payload)
			if err != nil {
				r.count("undecodable_queued")
				continue
			}
			if pick == nil || pick(env) {
				envs, refs = append(envs, env), append(refs, e.Ref)
			}
		}
		if len(envs) > 0 {
			if err := do(envs, refs); err != nil {
				return err
			}
		}
		if len(es) < r.o.Chunk {
			return nil
		}
	}
}

// overdue picks envelopes handed over for a window that ended before now.
func overdue(now time.Time) func(*Envelope) bool {
	return func(env *Envelope) bool { return env.DeliverBy != 0 && env.DeliverBy <= now.UnixMilli() }
}

// retarget moves every envelope queued for from to hop, as it is.
func (r *Relay) retarget(ctx context.Context, from, hop peer.ID) error {
	return r.queued(from, nil, func(envs []*Envelope, refs []dtn.Ref) error {
		return r.move(ctx, from, hop, envs, refs, 0)
	})
}

// move re-queues envelopes from one queue to another in one transaction:
// each leaves from only if it is still there (not acknowledged meanwhile),
// so nothing is lost between the queues and nothing doubled.
func (r *Relay) move(ctx context.Context, from, hop peer.ID, envs []*Envelope, refs []dtn.Ref, deliverBy int64) error {
	master, station := r.role.Has(node.RoleMaster), r.role.Has(node.RoleStation) && !r.role.Has(node.RoleMaster)
	if len(envs) == 0 {
		return nil
	}
	bodies := make([][]byte, len(envs))
	for i, env := range envs {
		if deliverBy > 0 {
			env.DeliverBy = deliverBy
		}
		b, err := r.o.Codec.Marshal(env)
		if err != nil {
			return err
		}
		bodies[i] = b
	}
	moved, full := 0, false
	err := r.o.Store.Update(ctx, func(tx *dtn.Tx) error {
		moved, full = 0, false
		for i, env := range envs {
			taken, err := tx.Move(string(from), refs[i], dtn.Entry{Dest: string(hop), Protocol: Protocol, Payload: bodies[i], Level: dtn.Level(env.Level)})
			var fe *dtn.FullError
			if errors.As(err, &fe) {
				// No room for this envelope (nor, likely, the next): what
				// moved so far goes; the rest waits for the hop to take it.
				full = true
				break
			}
			if err != nil {
				return err
			}
			if !taken {
				continue
			}
			switch {
			case master && r.isStation(hop):
				// The ledger: where each of the nano's entries is.
				v, err := r.o.Codec.Marshal(&handed{Nano: []byte(from), ID: env.ID, Station: r.stations[hop], DeliverBy: env.DeliverBy})
				if err != nil {
					return err
				}
				if err := tx.Put(bucketLedger, ledgerKey(tx, from, env.ID), v); err != nil {
					return err
				}
			case master && r.isStation(from): // reclaimed: at the master again
				if err := tx.Delete(bucketLedger, ledgerKey(tx, hop, env.ID)); err != nil {
					return err
				}
			case station && r.o.Node.IsNano(from):
				if err := tx.Delete(bucketHeld, heldKey(tx, refs[i])); err != nil { // given back
					return err
				}
			}
			moved++
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.add("moved", uint64(moved))
	if full {
		r.count("move_full")
		return errStoreFull
	}
	return nil
}

// Held is what a node holds per next hop, split by direction.
type Held struct {
	Peer     string `json:"peer"`
	Station  string `json:"station,omitempty"` // its name, when the peer is a station
	Entries  int    `json:"entries"`
	Relayed  int    `json:"relayed"`            // envelopes among them
	Uplink   int    `json:"uplink,omitempty"`   // envelopes toward the master
	Downlink int    `json:"downlink,omitempty"` // envelopes toward a nano
	// UplinkFrom counts the envelopes toward the master by the nano that
	// made them.
	UplinkFrom map[string]int `json:"uplink_from,omitempty"`
	Earliest   string         `json:"deliver_by,omitempty"` // downlink: the earliest window end they were handed over for
}

// Report is what a relay holds: per destination queue, and on a master
// what it handed to which station for which window.
type Report struct {
	Held   []Held   `json:"held"`
	Handed []Handed `json:"handed,omitempty"`
}

// Status reports what this node holds and, on a master, where the entries
// it handed to stations wait.
func (r *Relay) Status() (Report, error) {
	held, err := r.heldList()
	if err != nil {
		return Report{}, err
	}
	rep := Report{Held: held}
	if r.role.Has(node.RoleMaster) {
		if rep.Handed, err = r.handedList(); err != nil {
			return Report{}, err
		}
	}
	return rep, nil
}

// heldList lists, per destination queue, the entries held and how many of
// them are envelopes in each direction.
func (r *Relay) heldList() ([]Held, error) {
	var out []Held
	master := r.o.Node.Master()
	if r.role.Has(node.RoleMaster) {
		master = r.self
	}
	for _, d := range r.o.Store.Destinations() {
		p := peer.ID(d)
		h := Held{Peer: p.String(), Station: r.stations[p]}
		var earliest int64
		var after uint64
		for {
			es, err := r.o.Store.PeekAfter(d, after, 512)
			if err != nil {
				return nil, err
			}
			for _, e := range es {
				h.Entries++
				if e.Protocol != Protocol {
					continue
				}
				h.Relayed++
				env, from, to, err := Decode(r.o.Codec, e.Payload)
				if err != nil {
					continue
				}
				if to == master {
					h.Uplink++
					if h.UplinkFrom == nil {
						h.UplinkFrom = map[string]int{}
					}
					h.UplinkFrom[from.String()]++
				} else {
					h.Downlink++
					if env.DeliverBy > 0 && (earliest == 0 || env.DeliverBy < earliest) {
						earliest = env.DeliverBy
					}
				}
			}
			if len(es) < 512 {
				break
			}
			after = es[len(es)-1].Ref.Pos
		}
		if earliest > 0 {
			h.Earliest = time.UnixMilli(earliest).UTC().Format(time.RFC3339)
		}
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Peer < out[j].Peer })
	return out, nil
}
