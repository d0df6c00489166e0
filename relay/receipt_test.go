package relay

import (
	"context"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
)

// ledgerIDs are the master's entry IDs its ledger shows handed to a
// station.
func ledgerIDs(t *testing.T, m *member) []uint64 {
	t.Helper()
	var ids []uint64
	err := m.Store.View(func(tx *dtn.Tx) error {
		return tx.ForEach(bucketLedger, func(_, v []byte) error {
			var h handed
			if err := m.relay.o.Codec.Unmarshal(v, &h); err != nil {
				return err
			}
			ids = append(ids, h.ID)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// sendReceipt has svalbard send the master a receipt for ids over its
// ground link, as it does when the nano acknowledges entries, and waits
// until the master has acknowledged it (applied or refused).
func (x *twoStations) sendReceipt(t *testing.T, payload []byte, protocol string) {
	t.Helper()
	if _, _, err := x.s1.Store.Enqueue(context.Background(), dtn.Entry{Dest: string(x.master.id()), Protocol: protocol,
		Payload: payload, Level: dtn.Critical}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the master acknowledges what svalbard sent", func() bool { return x.s1.Store.Len(string(x.master.id())) == 0 })
}

// TestNanoCannotSendReceiptThroughStation: receipts come only from the
// master's stations, and that holds for one a nano signs and has a station
// carry, as it holds on a direct stream: the master refuses it, counts the
// refusal, and its ledger still shows what the station holds.
func TestNanoCannotSendReceiptThroughStation(t *testing.T) {
	x := newTwoStations(t)
	down := bodies("ground", 5)
	x.put(t, x.master, down)
	eventually(t, "svalbard takes custody", func() bool {
		return x.s1.Store.Len(string(x.n.id())) == len(down) && x.master.Store.Len("") == 0
	})
	expectHanded(t, x, "svalbard", x.svalbard.End, len(down))

	// The nano's receipt for every ID the master may have used, signed by
	// the nano for the master as any of its uplink entries.
	var ids []uint64
	for id := uint64(1); id < 200; id++ {
		ids = append(ids, id)
	}
	receipt, err := x.f.codec.Marshal(&Receipt{Nano: []byte(x.n.id()), IDs: ids})
	if err != nil {
		t.Fatal(err)
	}
	env := &Envelope{Origin: []byte(x.n.id()), Dest: []byte(x.master.id()), ID: 1 << 40, Protocol: ReceiptProtocol,
		Level: uint8(dtn.Critical), Payload: receipt}
	body := x.signedByNano(t, env)
	x.sendReceipt(t, body, Protocol)

	expectHanded(t, x, "svalbard", x.svalbard.End, len(down))
	if got := x.s1.Store.Len(string(x.n.id())); got != len(down) {
		t.Fatalf("svalbard holds %d entries for the nano, want %d", got, len(down))
	}
	c := x.master.relay.Counts()
	if c["relay_refused_receipt_stranger"] != 1 || c["relay_refused_by_receiver"] != 1 || c["relay_delivered"] != 0 {
		t.Fatalf("the master's counts: %v; want one receipt refused from a stranger, nothing delivered", c)
	}
	if got := metric(x.master, "relayed_applied"); got != 0 {
		t.Fatalf("the master applied %d relayed entries", got)
	}
}

// TestReceiptCountsOnlyLedgerRecords: relay_delivered counts the ledger
// records a station's receipt cleared, not the IDs it names (some may
// already be gone: a give-back, a receipt sent again).
func TestReceiptCountsOnlyLedgerRecords(t *testing.T) {
	x := newTwoStations(t)
	down := bodies("ground", 5)
	x.put(t, x.master, down)
	eventually(t, "svalbard takes custody", func() bool {
		return x.s1.Store.Len(string(x.n.id())) == len(down) && x.master.Store.Len("") == 0
	})
	ids := ledgerIDs(t, x.master)
	if len(ids) != len(down) {
		t.Fatalf("the ledger has %d records, want %d", len(ids), len(down))
	}
	receipt := func(nano peer.ID, ids ...uint64) []byte {
		b, err := x.f.codec.Marshal(&Receipt{Nano: []byte(nano), IDs: ids})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Two of the IDs named are not in the ledger.
	x.sendReceipt(t, receipt(x.n.id(), append(ids, 1<<40, 1<<40+1)...), ReceiptProtocol)
	expectHanded(t, x, "", x.svalbard.End, 0)
	if got := x.master.relay.Counts()["relay_delivered"]; got != uint64(len(down)) {
		t.Fatalf("relay_delivered is %d, want %d", got, len(down))
	}
	// The same receipt again clears nothing and counts nothing.
	x.sendReceipt(t, receipt(x.n.id(), ids...), ReceiptProtocol)
	if got := x.master.relay.Counts()["relay_delivered"]; got != uint64(len(down)) {
		t.Fatalf("relay_delivered is %d after a receipt for cleared records, want %d", got, len(down))
	}
}
