package relay

import (
	"context"
	"testing"

	"gardend/dtn"
	"gardend/origin"
)

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
	atts, err := origin.SignEntries(x.n.KS, x.n.KS.PublicKey(), []origin.Entry{env.signed(x.n.id(), x.master.id())})
	if err != nil {
		t.Fatal(err)
	}
	env.Att = atts[0]
	body, err := x.f.codec.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
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
