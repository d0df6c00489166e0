package node

import (
	"context"
	"testing"
	"time"

	"gardend/dtn"
)

// A nano whose master is also its indexer does not ask the master, in the
// heartbeats it sends it, to call the master: the claim would cost the
// link 42 bytes a beat during every drain and the master nothing to do. A
// heartbeat to another indexer still names the master, and an indexer
// named in a claim it receives does not keep it.
func TestAHeartbeatDoesNotAskItsIndexerToCallItself(t *testing.T) {
	tn := newTestNet(t)
	master := tn.peerOf("master", RoleMaster|RoleIndexer)
	other := tn.peerOf("other", RoleIndexer)
	nano := tn.peerOf("nano", RoleNano)
	master.start(t)
	nano.opts.Master = master.info()
	nano.start(t)
	cut(nano, master) // the entry stays pending
	if err := nano.PutResource(context.Background(), dtn.OpCreate, "pending", nano.ID(), nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	toMaster, _, err := nano.heartbeatTo(master.ID(), &recordSent{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(toMaster.PendingContact) != 0 {
		t.Errorf("the heartbeat to the master asks it to call %d peers, want none", len(toMaster.PendingContact))
	}
	toOther, _, err := nano.heartbeatTo(other.host.ID(), &recordSent{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(toOther.PendingContact) != 1 || string(toOther.PendingContact[0]) != string(master.ID()) {
		t.Errorf("the heartbeat to another indexer asks it to call %v, want the master", toOther.PendingContact)
	}
	// A sender that still names the indexer leaves no claim there.
	master.idx.process(nano.ID(), toOther, now)
	master.idx.mu.Lock()
	claims := len(master.idx.pending)
	master.idx.mu.Unlock()
	if claims != 0 {
		t.Errorf("the master keeps %d claims naming itself, want none", claims)
	}
}
