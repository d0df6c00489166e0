package node

import (
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
)

// PrepareRelayed judges an entry that origin queued for this node and a
// relay (a ground station) brought, exactly as its protocol's receiver
// would judge it had origin delivered it over a direct link: who may send
// (the rule a direct stream applies to its peer, applied to origin: the
// protocol's carrier's Admit where it has one, else a nano takes from its
// master and a master from its nanos) and who may change what. e is the
// entry as origin queued it: e.Ref.ID is origin's entry ID. The returned
// Work applies it inside the caller's transaction once by (origin, entry
// ID), the key a direct delivery uses too, so an entry brought by two
// stations, or by a station and directly, is applied once. The caller must
// have checked that origin really made e (its end-to-end signature); a
// refusal is a *Refusal.
func (n *Node) PrepareRelayed(origin peer.ID, e dtn.Entry) (Work, error) {
	// The sender is origin, who signed the entry, not the station that
	// brought it; and a carrier that admits its own senders (receipts come
	// only from stations) must judge relayed entries too, or a nano could
	// send through a station what it may not send directly.
	if err := n.admitSender(e.Protocol, origin); err != nil {
		return Work{}, err
	}
	msg, err := n.deliveryMessage(e)
	if err != nil {
		n.Metrics.Inc("relayed_undecodable")
		return Work{}, &Refusal{Reason: "relayed entry: " + err.Error()}
	}
	var rc *received
	carried := false
	switch m := msg.(type) {
	case *Mutation:
		rc = n.prepareMutation(origin, m)
	case *Booking:
		if n.o.Roles.Has(RoleNano) {
			rc = n.prepareBooking(origin, m)
		} else {
			rc = n.prepareBookingAtMaster(origin, m)
		}
	case *Carried:
		c := n.carrier(e.Protocol)
		if c == nil {
			return Work{}, &Refusal{Reason: fmt.Sprintf("relayed entry of protocol %s, not served here", e.Protocol)}
		}
		carried = true
		rc = n.prepareCarried(c, Delivery{From: origin, ID: e.Ref.ID, Body: m.Body, Received: n.o.Now()})
	default:
		return Work{}, &Refusal{Reason: "relayed entry of protocol " + e.Protocol}
	}
	if rc.refusal != nil {
		return Work{}, rc.refusal // counted where it is acknowledged as refused
	}
	var dup bool
	return Work{
		Apply: func(tx *dtn.Tx) error {
			var err error
			dup, err = applyOnceTx(tx, origin, e.Ref.ID, rc.apply)
			return err
		},
		Applied: func() {
			switch {
			case dup && carried:
				n.Metrics.Inc("carried_duplicate")
			case dup:
				n.Metrics.Inc("deliveries_duplicate")
			case carried:
				n.Metrics.Inc("carried_applied")
			default:
				n.Metrics.Inc("deliveries_applied")
			}
			if dup {
				return
			}
			n.Metrics.Inc("relayed_applied")
			if rc.applied != nil {
				rc.applied()
			}
			if n.o.OnApplied != nil && !carried {
				n.o.OnApplied(origin, strings.TrimPrefix(e.Protocol, ProtocolPrefix+"/"), rc.name)
			}
		},
	}, nil
}

// admitSender is the rule a direct stream of proto applies to its peer
// (serveDeliveries): the carrier's Admit where it has one, else the
// node's.
func (n *Node) admitSender(proto string, from peer.ID) error {
	if c := n.carrier(proto); c != nil && c.Admit != nil {
		return c.Admit(from)
	}
	return n.gateSender(from)
}
