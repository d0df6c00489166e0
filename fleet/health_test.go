package fleet

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
	"gardend/node"
)

var t0 = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)

func latestSeq(t *testing.T, m *peerKit, p peer.ID) uint64 {
	rc, err := m.mstr.Latest(p)
	if err != nil {
		t.Fatal(err)
	}
	if rc == nil {
		return 0
	}
	return rc.Report.Seq
}

// TestReportsOncePerPassNeverPileUp plays three passes of an orbital nano
// on the simulated clock: a report at each AOS and one in each last call
// reach the master; through a long gap nothing is reported, and a report
// that cannot be delivered is replaced by the next, never queued beside it.
func TestReportsOncePerPassNeverPileUp(t *testing.T) {
	k := newKit(t, t0)
	master := k.peer("ground", node.RoleMaster, "")
	nano := k.peer("nano-1", node.RoleNano, "")
	// Windows of 10 min every 6 h, from 00:10.
	pl := windows(t, t0.Add(10*time.Minute), 8, 6*time.Hour, 10*time.Minute)
	orbital := node.Contact{Profile: node.ProfileFor(node.ProfileOrbital), Plan: pl}
	k.startMaster(master, []peer.AddrInfo{nano.info()}, map[peer.ID]node.Contact{nano.Host.ID(): orbital})
	k.startNano(nano, master.info(), orbital)
	nid := nano.Host.ID()

	// Before the first window: nothing.
	time.Sleep(200 * time.Millisecond)
	if got := healthQueued(t, nano); got != 0 {
		t.Fatalf("%d reports queued before any window", got)
	}
	for pass := 0; pass < 3; pass++ {
		start := t0.Add(10*time.Minute + time.Duration(pass)*6*time.Hour)
		k.clock.Set(start.Add(30 * time.Second))
		want := uint64(2*pass + 1)
		eventually(t, "the AOS report", func() bool { return latestSeq(t, master, nid) == want })
		rc, _ := master.mstr.Latest(nid)
		if rc.Report.Name != "nano-1" || rc.Report.Boots != 1 || rc.Report.Version != "test" || !rc.OffsetKnown ||
			rc.Report.DiskFree == 0 || rc.Report.MemFree == 0 || rc.Report.KeyBackend != "software" || !rc.Report.HasTemp || rc.Report.TempMilliC != 52000 {
			t.Fatalf("report: %+v", rc)
		}
		// Mid-pass (under the health interval): no more reports.
		k.clock.Set(start.Add(4 * time.Minute))
		time.Sleep(200 * time.Millisecond)
		if got := latestSeq(t, master, nid); got != want {
			t.Fatalf("pass %d: seq %d mid-pass, want %d", pass, got, want)
		}
		// The last call before LOS: one more.
		k.clock.Set(start.Add(10*time.Minute - node.ProfileFor(node.ProfileOrbital).Guard/2))
		eventually(t, "the last-call report", func() bool { return latestSeq(t, master, nid) == want+1 })
		// The master has applied it; its acknowledgement may still be on
		// the way back. Wait for it inside the window, so that the gap's
		// check below sees only what the gap itself queued.
		eventually(t, "the last-call report acknowledged", func() bool { return healthQueued(t, nano) == 0 })
		// The long gap: many health intervals, no report.
		for h := 1; h <= 5; h++ {
			k.clock.Set(start.Add(time.Duration(h) * time.Hour))
			time.Sleep(50 * time.Millisecond)
		}
		if got := healthQueued(t, nano); got != 0 {
			t.Fatalf("pass %d: %d reports queued in the gap", pass, got)
		}
	}
	hist, err := master.mstr.History(nid)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 6 {
		t.Fatalf("history holds %d reports, want 6 (two per pass)", len(hist))
	}
}

// TestBootCountAndReportsWaitForTheNodesBegin: a daemon lets its node
// begin once READY is sent (node.Options.Begin); until then the boot is
// counted in memory but neither written nor reported, then both happen.
func TestBootCountAndReportsWaitForTheNodesBegin(t *testing.T) {
	k := newKit(t, t0)
	master := k.peer("ground", node.RoleMaster, "")
	nano := k.peer("nano-1", node.RoleNano, "")
	begin := make(chan struct{})
	nano.begin = begin
	k.startMaster(master, []peer.AddrInfo{nano.info()}, nil)
	k.startNano(nano, master.info(), node.Contact{})
	nid := nano.Host.ID()
	storedBoots := func() uint64 {
		var boots uint64
		nano.Store.View(func(tx *dtn.Tx) error {
			if v, _ := tx.Get(bucketNano, key(tx, "boots")); len(v) == 8 {
				boots = binary.BigEndian.Uint64(v)
			}
			return nil
		})
		return boots
	}
	time.Sleep(200 * time.Millisecond)
	if b, seq := storedBoots(), latestSeq(t, master, nid); b != 0 || seq != 0 {
		t.Fatalf("before begin: boots %d written, report %d received", b, seq)
	}
	if r := nano.nano.Measure(); r.Boots != 1 {
		t.Fatalf("the report would say %d boots, want 1", r.Boots)
	}
	close(begin)
	eventually(t, "the boot written and reported", func() bool {
		rc, err := master.mstr.Latest(nid)
		return err == nil && rc != nil && rc.Report.Boots == 1 && storedBoots() == 1
	})
}

// TestUndeliverableReportsAreReplaced: a continuous nano cut from its
// master for many health intervals holds one report, the newest.
func TestUndeliverableReportsAreReplaced(t *testing.T) {
	k := newKit(t, t0)
	master := k.peer("ground", node.RoleMaster, "")
	nano := k.peer("nano-1", node.RoleNano, "")
	k.startMaster(master, []peer.AddrInfo{nano.info()}, nil)
	k.startNano(nano, master.info(), node.Contact{})
	nid := nano.Host.ID()
	eventually(t, "the first report", func() bool { return latestSeq(t, master, nid) == 1 })
	cut(nano, master)
	for i := 0; i < 6; i++ {
		k.clock.Add(11 * time.Minute)
		before := i + 2
		eventually(t, "a report made in the gap", func() bool {
			var seq uint64
			nano.Store.View(func(tx *dtn.Tx) error {
				v, _ := tx.Get(bucketNano, key(tx, "seq"))
				if len(v) == 8 {
					seq = uint64(v[7]) | uint64(v[6])<<8
				}
				return nil
			})
			return seq >= uint64(before)
		})
		if got := healthQueued(t, nano); got != 1 {
			t.Fatalf("%d reports queued after %d intervals cut off, want 1", got, i+1)
		}
	}
	restore(nano, master)
	eventually(t, "the newest report", func() bool { return latestSeq(t, master, nid) >= 7 })
	hist, _ := master.mstr.History(nid)
	if len(hist) != 2 {
		t.Fatalf("history: %d reports, want 2 (before the cut, and the newest after it)", len(hist))
	}
}

// TestOlderReportIgnored: a report with a lower sequence number than the
// one kept never replaces it.
func TestOlderReportIgnored(t *testing.T) {
	k := newKit(t, t0)
	master := k.peer("ground", node.RoleMaster, "")
	nanoID := k.peer("nano-1", node.RoleNano, "").Host.ID()
	k.startMaster(master, []peer.AddrInfo{{ID: nanoID}}, nil)
	deliver := func(seq uint64, name string) {
		t.Helper()
		body, _ := k.codec.Marshal(&HealthReport{Seq: seq, Name: name, Measured: k.clock.Now().Unix()})
		apply, err := master.mstr.prepareReport(node.Delivery{From: nanoID, Body: body, Received: k.clock.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if err := master.Store.Update(context.Background(), apply.Apply); err != nil {
			t.Fatal(err)
		}
	}
	deliver(5, "new")
	deliver(3, "old")
	rc, _ := master.mstr.Latest(nanoID)
	if rc.Report.Seq != 5 || rc.Report.Name != "new" {
		t.Fatalf("latest is %d %q after an older report", rc.Report.Seq, rc.Report.Name)
	}
	if master.mstr.Stale() != 1 {
		t.Fatalf("stale count %d", master.mstr.Stale())
	}
	if _, err := master.mstr.prepareReport(node.Delivery{From: nanoID, Body: []byte{0xff, 0x00}}); err == nil {
		t.Fatal("garbage accepted as a report")
	}
}

// TestClockOffsetMeasuredOnTheConnection: a nano whose clock runs 90 s
// ahead is seen 90 s ahead by its master, from the delivery's own stamp
// against the arrival, whatever the report says of itself.
func TestClockOffsetMeasuredOnTheConnection(t *testing.T) {
	k := newKit(t, t0)
	master := k.peer("ground", node.RoleMaster, "")
	nano := k.peer("nano-1", node.RoleNano, "")
	nano.skew = 90 * time.Second
	nid := nano.Host.ID()
	k.startMaster(master, []peer.AddrInfo{nano.info()}, nil)
	k.startNano(nano, master.info(), node.Contact{})
	eventually(t, "a report", func() bool { return latestSeq(t, master, nid) >= 1 })
	rc, _ := master.mstr.Latest(nid)
	if !rc.OffsetKnown || rc.ClockOffsetMs < 88000 || rc.ClockOffsetMs > 92000 {
		t.Fatalf("clock offset %d ms (known %v), want ≈ 90000", rc.ClockOffsetMs, rc.OffsetKnown)
	}
	if got := time.Unix(rc.Report.Measured, 0); !got.After(t0.Add(80 * time.Second)) {
		t.Fatalf("measured %v: the report carries the nano's own clock", got)
	}
}
