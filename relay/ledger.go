package relay

import (
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/codec"
	"gardend/dtn"
	"gardend/node"
)

// ReceiptProtocol carries a station's receipts to its master: which of the
// master's entries a nano acknowledged, so the master knows where every
// entry it handed over is.
const ReceiptProtocol = node.ProtocolPrefix + "/relay-receipt/1"

// Receipt says a nano acknowledged these entries of the master's (by the
// master's entry IDs), brought by the station that sends it.
type Receipt struct {
	Nano []byte   `cbor:"1,keyasint"`
	IDs  []uint64 `cbor:"2,keyasint"`
}

// maxReceiptIDs bounds a receipt (a station sends one per acknowledged
// batch, at most a drain's window).
const maxReceiptIDs = 4096

// Buckets: a station's record of the master's entries it holds for each
// nano (by its own queue ref), and the master's ledger of what it handed
// to which station.
const (
	bucketHeld   = "relay.held"
	bucketLedger = "relay.ledger"
)

// heldRecord is, on a station, the master's entry a queued envelope holds.
type heldRecord struct {
	Nano []byte `cbor:"1,keyasint"`
	ID   uint64 `cbor:"2,keyasint"`
}

// handed is, on a master, one entry handed to a station for a window.
type handed struct {
	Nano      []byte `cbor:"1,keyasint"`
	ID        uint64 `cbor:"2,keyasint"`
	Station   string `cbor:"3,keyasint"`
	DeliverBy int64  `cbor:"4,keyasint"`
}

func heldKey(tx *dtn.Tx, ref dtn.Ref) []byte {
	return tx.Hash("relay.held", binary.BigEndian.AppendUint64(nil, ref.ID))
}

func ledgerKey(tx *dtn.Tx, nano peer.ID, id uint64) []byte {
	return tx.Hash("relay.ledger", []byte(nano), binary.BigEndian.AppendUint64(nil, id))
}

// hold records, on a station, which of the master's entries ref holds.
func (r *Relay) hold(tx *dtn.Tx, ref dtn.Ref, nano peer.ID, id uint64) error {
	v, err := r.o.Codec.Marshal(&heldRecord{Nano: []byte(nano), ID: id})
	if err != nil {
		return err
	}
	return tx.Put(bucketHeld, heldKey(tx, ref), v)
}

// acked runs on a station in the transaction that deletes what a nano
// acknowledged: the records go, and a receipt for the master is queued in
// the same commit, so a crash cannot lose one without the other.
func (r *Relay) acked(tx *dtn.Tx, dest peer.ID, refs []dtn.Ref) error {
	if !r.role.Has(node.RoleStation) || r.role.Has(node.RoleMaster) || !r.o.Node.IsNano(dest) {
		return nil
	}
	var ids []uint64
	for _, ref := range refs {
		k := heldKey(tx, ref)
		v, err := tx.Get(bucketHeld, k)
		if err != nil || v == nil {
			continue // not a master's entry (or its record is damaged): no receipt
		}
		var h heldRecord
		if err := r.o.Codec.Unmarshal(v, &h); err != nil {
			continue
		}
		ids = append(ids, h.ID)
		if err := tx.Delete(bucketHeld, k); err != nil {
			return err
		}
	}
	if len(ids) == 0 {
		return nil
	}
	body, err := r.o.Codec.Marshal(&Receipt{Nano: []byte(dest), IDs: ids})
	if err != nil {
		return err
	}
	_, _, err = tx.Enqueue(dtn.Entry{Dest: string(r.o.Node.Master()), Protocol: ReceiptProtocol, Payload: body, Level: dtn.Critical})
	return err
}

// receiptCarrier is the master's side of receipts: the ledger forgets what
// was delivered.
func (r *Relay) receiptCarrier() node.Carrier {
	return node.Carrier{Protocol: ReceiptProtocol, Prepare: r.prepareReceipt, Admit: func(from peer.ID) error {
		if !r.role.Has(node.RoleMaster) || !r.isStation(from) {
			r.count("refused_receipt_stranger")
			return &node.Refusal{Reason: "relay: receipts come from this master's stations"}
		}
		return nil
	}}
}

// DecodeReceipt reads a receipt; anything it cannot use is ErrMalformed.
func DecodeReceipt(c *codec.Codec, body []byte) (*Receipt, peer.ID, error) {
	var rc Receipt
	if err := c.Unmarshal(body, &rc); err != nil {
		return nil, "", fmt.Errorf("%w: receipt: %v", ErrMalformed, err)
	}
	nano, err := peer.IDFromBytes(rc.Nano)
	if err != nil || len(rc.IDs) == 0 || len(rc.IDs) > maxReceiptIDs {
		return nil, "", fmt.Errorf("%w: receipt for %x with %d IDs", ErrMalformed, rc.Nano, len(rc.IDs))
	}
	return &rc, nano, nil
}

func (r *Relay) prepareReceipt(d node.Delivery) (node.Work, error) {
	rc, nano, err := DecodeReceipt(r.o.Codec, d.Body)
	if err != nil {
		return node.Work{}, r.refuse("malformed", err)
	}
	if !r.o.Node.IsNano(nano) {
		return node.Work{}, r.refuse("route", fmt.Errorf("receipt for %s, not a nano of this master", nano))
	}
	// Only records that were in the ledger count as delivered: a receipt
	// may name entries already cleared (a give-back, a receipt sent again).
	var cleared uint64
	return node.Work{
		Apply: func(tx *dtn.Tx) error {
			cleared = 0 // Apply runs again alone if its group commit fails
			for _, id := range rc.IDs {
				k := ledgerKey(tx, nano, id)
				if v, err := tx.Get(bucketLedger, k); v == nil && err == nil {
					continue // not in the ledger; a damaged record goes as any other
				}
				if err := tx.Delete(bucketLedger, k); err != nil {
					return err
				}
				cleared++
			}
			return nil
		},
		Applied: func() {
			r.add("delivered", cleared)
		},
	}, nil
}

// Handed is, on a master, what waits at one station for one nano's window.
type Handed struct {
	Nano      string `json:"nano"`
	Station   string `json:"station"`
	DeliverBy string `json:"deliver_by"` // the window's end
	Entries   int    `json:"entries"`
}

// handedList reads the master's ledger, grouped by nano, station and window.
func (r *Relay) handedList() ([]Handed, error) {
	type group struct {
		nano, station string
		by            int64
	}
	counts := map[group]int{}
	err := r.o.Store.View(func(tx *dtn.Tx) error {
		return tx.ForEach(bucketLedger, func(_, v []byte) error {
			var h handed
			if err := r.o.Codec.Unmarshal(v, &h); err != nil {
				return nil
			}
			counts[group{peer.ID(h.Nano).String(), h.Station, h.DeliverBy}]++
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	out := make([]Handed, 0, len(counts))
	for g, n := range counts {
		out = append(out, Handed{Nano: g.nano, Station: g.station, DeliverBy: time.UnixMilli(g.by).UTC().Format(time.RFC3339), Entries: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Nano != out[j].Nano {
			return out[i].Nano < out[j].Nano
		}
		return out[i].DeliverBy < out[j].DeliverBy
	})
	return out, nil
}
