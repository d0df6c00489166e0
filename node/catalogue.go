package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
)

// Buckets of the node's state in the DTN database.
const (
	bucketCatalogue = "catalogue" // Hash(resource) → Resource
	bucketBookings  = "bookings"  // Hash(booking) → StoredBooking
	bucketApplied   = "applied"   // Hash(sender, entry ID) → time applied: each delivery applied once
	bucketAppliedAt = "applied-t" // time applied (Unix s, 8 bytes BE) ‖ Hash(sender, entry ID) → empty: pruning order
)

// Resource is a catalogue entry as stored.
type Resource struct {
	ID    string `cbor:"1,keyasint"`
	Owner []byte `cbor:"2,keyasint"`
	Body  []byte `cbor:"3,keyasint,omitempty"`
}

// StoredBooking is a booking as stored.
type StoredBooking struct {
	Booking Booking `cbor:"1,keyasint"`
	Local   bool    `cbor:"2,keyasint,omitempty"` // taken on this nano without its master
}

// Refusal is a mutation or booking the receiver will never apply.
type Refusal struct{ Reason string }

func (r *Refusal) Error() string { return "refused: " + r.Reason }

// PutResource changes a resource locally and queues what the peers that must
// know it are owed, in one transaction. On a master, a resource owned by one
// of its nanos is forwarded to that nano (and only to it); on a nano, only
// its own resources may change, and the change is queued for its master.
func (n *Node) PutResource(ctx context.Context, op dtn.Op, id string, owner peer.ID, body []byte) error {
	return n.PutResources(ctx, []ResourceChange{{Op: op, ID: id, Owner: owner, Body: body}})
}

// ResourceChange is one change given to PutResources.
type ResourceChange struct {
	Op    dtn.Op
	ID    string
	Owner peer.ID
	Body  []byte
}

// PutResources makes many changes as PutResource would, in one durable
// transaction (one commit instead of one each): all are kept, or none if
// one is refused or fails.
func (n *Node) PutResources(ctx context.Context, changes []ResourceChange) error {
	type prepared struct {
		m       Mutation
		dest    peer.ID
		payload []byte
	}
	ps := make([]prepared, 0, len(changes))
	for _, c := range changes {
		if c.ID == "" || c.Op < dtn.OpCreate || c.Op > dtn.OpDelete {
			return fmt.Errorf("resource: need an ID and create, update or delete")
		}
		var dest peer.ID
		switch {
		case n.o.Roles.Has(RoleNano):
			if c.Owner != n.id {
				return &Refusal{Reason: "a nano changes only its own resources"}
			}
			dest = n.o.Master.ID
		case n.o.Roles.Has(RoleMaster):
			if _, ok := n.nanos[c.Owner]; ok {
				dest = c.Owner
			}
		}
		p := prepared{m: Mutation{Op: uint8(c.Op), Resource: c.ID, Owner: []byte(c.Owner), Body: c.Body}, dest: dest}
		var err error
		if p.payload, err = n.c.Marshal(&p.m); err != nil {
			return err
		}
		ps = append(ps, p)
	}
	return n.store.Update(ctx, func(tx *dtn.Tx) error {
		for i := range ps {
			p := &ps[i]
			if err := n.applyResource(tx, &p.m); err != nil {
				return err
			}
			if p.dest == "" {
				continue
			}
			if _, _, err := tx.Enqueue(dtn.Entry{Dest: string(p.dest), Protocol: ProtoResource, ResourceID: p.m.Resource,
				Op: dtn.Op(p.m.Op), Payload: p.payload, Level: dtn.Critical}); err != nil {
				return err
			}
		}
		return nil
	})
}

func (n *Node) applyResource(tx *dtn.Tx, m *Mutation) error {
	key := tx.Hash("resource", []byte(m.Resource))
	if dtn.Op(m.Op) == dtn.OpDelete {
		return tx.Delete(bucketCatalogue, key)
	}
	v, err := n.c.Marshal(&Resource{ID: m.Resource, Owner: m.Owner, Body: m.Body})
	if err != nil {
		return err
	}
	return tx.Put(bucketCatalogue, key, v)
}

// GetResource reads a resource from the local catalogue.
func (n *Node) GetResource(id string) (*Resource, error) {
	var r *Resource
	err := n.store.View(func(tx *dtn.Tx) error {
		v, err := tx.Get(bucketCatalogue, tx.Hash("resource", []byte(id)))
		if err != nil || v == nil {
			return err
		}
		r = new(Resource)
		return n.c.Unmarshal(v, r)
	})
	return r, err
}

// applyOnce runs apply for the delivery (from, id) unless it was applied
// before, and records it, in one transaction: a crash between apply and ack
// leads to a redelivery that is acknowledged without applying twice.
func (n *Node) applyOnce(ctx context.Context, from peer.ID, id uint64, apply func(tx *dtn.Tx) error) (dup bool, err error) {
	err = n.store.Update(ctx, func(tx *dtn.Tx) error {
		var err error
		dup, err = applyOnceTx(tx, from, id, apply)
		return err
	})
	return dup, err
}

// applyOnceTx is applyOnce inside a transaction the caller owns.
func applyOnceTx(tx *dtn.Tx, from peer.ID, id uint64, apply func(tx *dtn.Tx) error) (dup bool, err error) {
	key := tx.Hash("applied", []byte(from), binary.BigEndian.AppendUint64(nil, id))
	if v, err := tx.Get(bucketApplied, key); err != nil {
		return false, err
	} else if v != nil {
		return true, nil
	}
	if err := apply(tx); err != nil {
		return false, err
	}
	at := binary.BigEndian.AppendUint64(nil, uint64(tx.Now().Unix()))
	if err := tx.Put(bucketApplied, key, at); err != nil {
		return false, err
	}
	return false, tx.Put(bucketAppliedAt, append(at, key...), nil)
}

// received is one delivery read from a stream, judged before any
// transaction: refused for good, or to be applied once.
type received struct {
	id      uint64
	name    string
	refusal *Refusal
	apply   func(tx *dtn.Tx) error
	applied func() // after a first durable apply (Carrier.Applied)
	// Outcome, filled by applyReceived.
	dup bool
	err error // not applied (storage): no ack, the sender retries
}

// applyReceived applies every delivery in hand that is not refused in one
// transaction, each with its applied-once record. If that transaction
// fails, each is applied alone, so one bad delivery cannot fail the rest.
func (n *Node) applyReceived(ctx context.Context, from peer.ID, rs []*received) {
	var todo []*received
	for _, r := range rs {
		if r.refusal == nil {
			todo = append(todo, r)
		}
	}
	if len(todo) == 0 {
		return
	}
	err := n.store.Update(ctx, func(tx *dtn.Tx) error {
		for _, r := range todo {
			var err error
			if r.dup, err = applyOnceTx(tx, from, r.id, r.apply); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		n.Metrics.Inc("delivery_apply_commits")
		return
	}
	if len(todo) == 1 || ctx.Err() != nil {
		todo[0].err = err
		for _, r := range todo[1:] {
			r.err = err
		}
		return
	}
	n.Metrics.Inc("delivery_apply_batch_fallbacks")
	for _, r := range todo {
		r.dup, r.err = n.applyOnce(ctx, from, r.id, r.apply)
	}
}

// receiveMutation applies a mutation delivered by from (see prepareMutation).
func (n *Node) receiveMutation(ctx context.Context, from peer.ID, m *Mutation) (dup bool, err error) {
	r := n.prepareMutation(from, m)
	if r.refusal != nil {
		return false, r.refusal
	}
	return n.applyOnce(ctx, from, m.ID, r.apply)
}

// prepareMutation judges a mutation delivered by from, enforcing who may
// change what: a nano accepts only its master (checked on the connection
// before this is called) and only resources it owns; a master accepts from
// its nanos only changes to their own resources.
func (n *Node) prepareMutation(from peer.ID, m *Mutation) *received {
	r := &received{id: m.ID, name: m.Resource}
	if len(m.Owner) == 0 { // the nano at this link's end: this node, or the sender
		if n.o.Roles.Has(RoleNano) {
			m.Owner = []byte(n.id)
		} else {
			m.Owner = []byte(from)
		}
	}
	owner, oerr := peer.IDFromBytes(m.Owner)
	switch {
	case oerr != nil || m.Resource == "" || m.Op < uint8(dtn.OpCreate) || m.Op > uint8(dtn.OpDelete):
		r.refusal = &Refusal{Reason: "malformed mutation"}
	case n.o.Roles.Has(RoleNano) && owner != n.id:
		r.refusal = &Refusal{Reason: "resource not owned by this nano"}
	case !n.o.Roles.Has(RoleNano) && owner != from:
		r.refusal = &Refusal{Reason: "a nano may only change its own resources"}
	}
	r.apply = func(tx *dtn.Tx) error { return n.applyResource(tx, m) }
	return r
}

// Book takes a booking. On a master, a booking for one of its nanos is taken
// as a proxy and delivered to the nano through the DTN store; on a nano, a
// booking of its own resource is stored as local (it yields to the master's
// if they conflict).
func (n *Node) Book(ctx context.Context, b Booking) error {
	dest, err := peer.IDFromBytes(b.Dest)
	if err != nil || b.Booking == "" || b.End <= b.Start {
		return fmt.Errorf("booking: need an ID, a destination and a slot")
	}
	b.ID = 0
	local := n.o.Roles.Has(RoleNano)
	if local && dest != n.id {
		return &Refusal{Reason: "a nano takes bookings only for itself"}
	}
	_, isNano := n.nanos[dest]
	b.Proxy = isNano
	payload, err := n.c.Marshal(&b)
	if err != nil {
		return err
	}
	return n.store.Update(ctx, func(tx *dtn.Tx) error {
		if err := n.putBooking(tx, StoredBooking{Booking: b, Local: local}); err != nil {
			return err
		}
		if !isNano {
			return nil
		}
		_, _, err := tx.Enqueue(dtn.Entry{Dest: string(dest), Protocol: ProtoBooking, ResourceID: "booking/" + b.Booking,
			Op: dtn.Op(b.Op), Payload: payload, Level: dtn.Critical})
		return err
	})
}

func (n *Node) putBooking(tx *dtn.Tx, sb StoredBooking) error {
	key := tx.Hash("booking", []byte(sb.Booking.Booking))
	if dtn.Op(sb.Booking.Op) == dtn.OpDelete {
		return tx.Delete(bucketBookings, key)
	}
	v, err := n.c.Marshal(&sb)
	if err != nil {
		return err
	}
	return tx.Put(bucketBookings, key, v)
}

// Bookings returns every stored booking.
func (n *Node) Bookings() ([]StoredBooking, error) {
	var out []StoredBooking
	err := n.store.View(func(tx *dtn.Tx) error {
		return tx.ForEach(bucketBookings, func(_, v []byte) error {
			var sb StoredBooking
			if err := n.c.Unmarshal(v, &sb); err != nil {
				return err
			}
			out = append(out, sb)
			return nil
		})
	})
	return out, err
}

// prepareBooking judges a booking from the master. Split brain: when the
// master's booking overlaps one this nano took alone, the master wins; the
// local booking is cancelled and the cancellation queued for the master so
// the requester can be told.
func (n *Node) prepareBooking(from peer.ID, b *Booking) *received {
	r := &received{id: b.ID, name: b.Booking}
	if b.Booking == "" || b.End <= b.Start && b.Op != uint8(dtn.OpDelete) {
		r.refusal = &Refusal{Reason: "malformed booking"}
		return r
	}
	if dest, err := peer.IDFromBytes(b.Dest); err != nil || dest != n.id {
		r.refusal = &Refusal{Reason: "booking not for this nano"}
		return r
	}
	r.apply = func(tx *dtn.Tx) error {
		if dtn.Op(b.Op) != dtn.OpDelete {
			var losers []Booking
			err := tx.ForEach(bucketBookings, func(_, v []byte) error {
				var sb StoredBooking
				if err := n.c.Unmarshal(v, &sb); err != nil {
					return err
				}
				o := sb.Booking
				if sb.Local && o.Resource == b.Resource && o.Booking != b.Booking && o.Start < b.End && b.Start < o.End {
					losers = append(losers, o)
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, o := range losers {
				o.Op = uint8(dtn.OpDelete)
				if err := n.putBooking(tx, StoredBooking{Booking: o}); err != nil {
					return err
				}
				o.ID = 0
				payload, err := n.c.Marshal(&o)
				if err != nil {
					return err
				}
				if _, _, err := tx.Enqueue(dtn.Entry{Dest: string(from), Protocol: ProtoBooking,
					ResourceID: "booking/" + o.Booking, Op: dtn.OpDelete, Payload: payload, Level: dtn.Critical}); err != nil {
					return err
				}
				n.Metrics.Inc("bookings_cancelled_master_wins")
			}
		}
		sb := *b
		sb.ID = 0
		return n.putBooking(tx, StoredBooking{Booking: sb})
	}
	return r
}

// prepareBookingAtMaster judges a booking change a nano reports (a local
// booking cancelled because the master's won).
func (n *Node) prepareBookingAtMaster(from peer.ID, b *Booking) *received {
	r := &received{id: b.ID, name: b.Booking}
	if dest, err := peer.IDFromBytes(b.Dest); err != nil || dest != from {
		r.refusal = &Refusal{Reason: "a nano reports only its own bookings"}
		return r
	}
	r.apply = func(tx *dtn.Tx) error {
		sb := *b
		sb.ID = 0
		if dtn.Op(b.Op) == dtn.OpDelete {
			n.Metrics.Inc("bookings_cancelled_reported")
		}
		return n.putBooking(tx, StoredBooking{Booking: sb})
	}
	return r
}

// The applied-once set keeps a delivery for appliedKeep; pruning runs every
// pruneEvery.
const (
	appliedKeep = 30 * 24 * time.Hour
	pruneEvery  = 10 * time.Minute
)

// pruneBatch bounds the applied-once records one pruning transaction
// deletes; pruneRound bounds the transactions of one round.
const (
	pruneBatch = 4096
	pruneRound = 16
)

// pruneApplied forgets deliveries applied longer ago than keep: a sender
// stops redelivering an entry once acknowledged, so the set need not grow
// for ever. The records are found in time order (bucketAppliedAt), oldest
// first, so a round touches only what it deletes, at most
// pruneBatch × pruneRound records; what is left waits for the next round.
// It returns how many it deleted.
func (n *Node) pruneApplied(ctx context.Context, keep time.Duration) error {
	_, err := n.pruneAppliedRound(ctx, keep)
	return err
}

func (n *Node) pruneAppliedRound(ctx context.Context, keep time.Duration) (int, error) {
	if err := n.indexLegacyApplied(ctx); err != nil {
		return 0, err
	}
	cutoff := uint64(n.o.Now().Add(-keep).Unix())
	deleted := 0
	for range pruneRound {
		k := 0
		err := n.store.Update(ctx, func(tx *dtn.Tx) error {
			k = 0
			var old [][]byte
			// From just past the legacy marker (8 zero bytes).
			err := tx.Range(bucketAppliedAt, make([]byte, 9), func(key, _ []byte) (bool, error) {
				if len(key) <= 8 || binary.BigEndian.Uint64(key) >= cutoff || len(old) >= pruneBatch {
					return false, nil
				}
				old = append(old, append([]byte(nil), key...))
				return true, nil
			})
			if err != nil {
				return err
			}
			for _, key := range old {
				if err := tx.Delete(bucketApplied, key[8:]); err != nil {
					return err
				}
				if err := tx.Delete(bucketAppliedAt, key); err != nil {
					return err
				}
			}
			k = len(old)
			return nil
		})
		deleted += k
		if err != nil || k < pruneBatch {
			n.Metrics.Add("applied_pruned", uint64(deleted))
			return deleted, err
		}
	}
	n.Metrics.Add("applied_pruned", uint64(deleted))
	return deleted, nil
}

// indexLegacyApplied gives the applied-once records written before the
// time index their index entries, once per database (marked in
// bucketAppliedAt by an all-zero key).
func (n *Node) indexLegacyApplied(ctx context.Context) error {
	marker := make([]byte, 8)
	done := false
	if err := n.store.View(func(tx *dtn.Tx) error {
		v, err := tx.Get(bucketAppliedAt, marker)
		done = v != nil
		return err
	}); err != nil || done {
		return err
	}
	return n.store.Update(ctx, func(tx *dtn.Tx) error {
		var keys, ats [][]byte
		err := tx.ForEach(bucketApplied, func(k, v []byte) error {
			if len(v) == 8 {
				keys, ats = append(keys, append([]byte(nil), k...)), append(ats, append([]byte(nil), v...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i, k := range keys {
			if err := tx.Put(bucketAppliedAt, append(ats[i], k...), nil); err != nil {
				return err
			}
		}
		return tx.Put(bucketAppliedAt, marker, []byte{1})
	})
}
