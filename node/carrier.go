package node

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/codec"
	"gardend/dtn"
)

// TypeCarried is the wire type of a delivery on a protocol added by a
// room above node (a Carrier): its body is that room's own encoding.
const TypeCarried codec.Type = 10

// Carried is one DTN entry of a Carrier's protocol on the wire. Sent is the
// sender's clock when the entry left (Unix milliseconds): the receiver can
// measure the offset between the clocks from the connection itself.
type Carried struct {
	ID   uint64 `cbor:"1,keyasint"` // sender's DTN entry ID: applied once
	Sent int64  `cbor:"2,keyasint,omitempty"`
	Body []byte `cbor:"3,keyasint"`
}

// RegisterCarrier lets Carried messages and their acks travel on proto. It
// is called on the registry before the codec is built, once per protocol a
// Carrier of the node will serve.
func RegisterCarrier(r *codec.Registry, proto string) error {
	if err := r.Allow(TypeCarried, proto); err != nil {
		if err := codec.Register[Carried](r, TypeCarried, "carried", proto); err != nil {
			return err
		}
	}
	return r.Allow(TypeAck, proto)
}

// Delivery is one Carried message as the receiver sees it.
type Delivery struct {
	From     peer.ID // the authenticated sender (master or one of its nanos)
	ID       uint64
	Body     []byte
	Sent     time.Time     // the sender's clock as the entry left; zero if not stamped
	Received time.Time     // this node's clock as it arrived
	RTT      time.Duration // the connection's round trip as last measured; 0 if unknown
}

// Carrier is a store-and-forward protocol served by a room above node: its
// entries are queued in the DTN store like resources (dtn.Entry with the
// Carrier's protocol and the body as payload), delivered by the same drains,
// and applied by the receiver exactly once inside its batch transaction.
// Who may send is judged from the connection as for resources: a nano takes
// deliveries from its master only, a master from its own nanos only.
type Carrier struct {
	Protocol string
	// Prepare judges a delivery outside any transaction. It returns the
	// work to do for it, or a *Refusal to refuse the delivery for good (the
	// sender drops it).
	Prepare func(d Delivery) (Work, error)
	// Admit, if set, judges who may deliver on this protocol instead of the
	// node's rule (a nano takes from its master, a master from its nanos):
	// a relay through ground stations takes from others.
	Admit func(from peer.ID) error
	// Acked, if set, runs on the sender inside the transaction that deletes
	// entries of this protocol the receiver acknowledged (applied or
	// refused for good), with their refs: what left the queue is recorded
	// atomically with its leaving.
	Acked func(tx *dtn.Tx, dest peer.ID, acked []dtn.Ref) error
}

// Work is what a Carrier's delivery does once judged.
type Work struct {
	// Apply runs inside the receiver's batch transaction (nil: nothing to
	// store), only the first time the delivery arrives.
	Apply func(tx *dtn.Tx) error
	// Applied, if set, runs once Apply is durable (not for a duplicate). It
	// must not block for long: acks wait for it.
	Applied func()
}

func (n *Node) carrier(proto string) *Carrier {
	for i := range n.o.Carriers {
		if n.o.Carriers[i].Protocol == proto {
			return &n.o.Carriers[i]
		}
	}
	return nil
}

// serveCarried applies deliveries of a Carrier's protocol.
func (n *Node) serveCarried(c *Carrier) func(s network.Stream, r *codec.FrameReader) error {
	return func(s network.Stream, r *codec.FrameReader) error {
		return n.serveDeliveries(s, r, c.Protocol, func(from peer.ID, m any) (*received, error) {
			cm, ok := m.(*Carried)
			if !ok {
				return nil, fmt.Errorf("%w: expected a carried message", codec.ErrWrongProtocol)
			}
			d := Delivery{From: from, ID: cm.ID, Body: cm.Body, Received: n.o.Now(), RTT: n.h.Peerstore().LatencyEWMA(from)}
			if cm.Sent != 0 {
				d.Sent = time.UnixMilli(cm.Sent)
			}
			return n.prepareCarried(c, d), nil
		})
	}
}

// prepareCarried judges one delivery of a Carrier's protocol.
func (n *Node) prepareCarried(c *Carrier, d Delivery) *received {
	rc := &received{id: d.ID, name: c.Protocol}
	w, err := c.Prepare(d)
	if err != nil {
		ref, ok := err.(*Refusal)
		if !ok {
			ref = &Refusal{Reason: err.Error()}
		}
		rc.refusal = ref
		return rc
	}
	rc.apply = func(tx *dtn.Tx) error {
		if w.Apply == nil {
			return nil
		}
		return w.Apply(tx)
	}
	rc.applied = w.Applied
	return rc
}
