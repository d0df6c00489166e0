package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
	"gardend/node"
	"gardend/plan"
)

// tp is the push tests' start: a day after the test elements' epoch.
var tp = time.Date(2025, 9, 5, 0, 0, 0, 0, time.UTC)

// ommAt is the ISS element set of plan/testdata as OMM JSON with its epoch
// moved to epoch: a different set, the same orbit shifted in time.
func ommAt(epoch string) []byte {
	return []byte(fmt.Sprintf(`[{"OBJECT_NAME":"ISS (ZARYA)","OBJECT_ID":"1998-067A","EPOCH":%q,"MEAN_MOTION":15.50088696,
"ECCENTRICITY":0.0004179,"INCLINATION":51.6327,"RA_OF_ASC_NODE":275.9345,"ARG_OF_PERICENTER":299.5263,"MEAN_ANOMALY":60.5309,
"EPHEMERIS_TYPE":0,"CLASSIFICATION_TYPE":"U","NORAD_CAT_ID":25544,"ELEMENT_SET_NO":999,"REV_AT_EPOCH":52830,
"BSTAR":0.00021333,"MEAN_MOTION_DOT":0.00011777,"MEAN_MOTION_DDOT":0}]`, epoch))
}

func pushStatus(t *testing.T, m *peerKit, p peer.ID, k Kind, version uint64) (status, reason string) {
	pushes, err := m.mstr.Pushes(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range pushes {
		if pr.Kind == k && pr.Version == version {
			status, reason = pr.Status, pr.Reason
		}
	}
	return
}

// TestPushInGapAppliesAtNextPass: elements pushed while an orbital nano is
// in a gap wait at the master, go up at the nano's next pass, are put in
// force there (plan re-predicted), confirmed by the nano's report, and the
// master's copy of the nano's plan follows: both ends agree on the next
// windows.
func TestPushInGapAppliesAtNextPass(t *testing.T) {
	k := newKit(t, tp)
	master := k.peer("ground", node.RoleMaster, "")
	nano := k.peer("nano-1", node.RoleNano, "")
	p0 := windows(t, tp.Add(10*time.Minute), 12, 2*time.Hour, 10*time.Minute)
	orbital := node.Contact{Profile: node.ProfileFor(node.ProfileOrbital), Plan: p0}
	nid := nano.Host.ID()
	k.startMaster(master, []peer.AddrInfo{nano.info()}, map[peer.ID]node.Contact{nid: orbital})
	k.startNano(nano, master.info(), orbital)

	k.clock.Set(tp.Add(12 * time.Minute))
	eventually(t, "the first pass's report", func() bool { return latestSeq(t, master, nid) >= 1 })
	k.clock.Set(tp.Add(time.Hour)) // the gap
	eventually(t, "the nano to drop the link at LOS", func() bool { return !nano.node.Connected(master.Host.ID()) })

	v, err := master.mstr.Push(context.Background(), nid, KindElements, ommAt("2025-09-04T02:26:37.946976"), 0)
	if err != nil || v != 1 {
		t.Fatalf("push: version %d, %v", v, err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := nano.nano.InForce()[KindElements]; got != 0 {
		t.Fatalf("applied in the gap: version %d", got)
	}
	if s, _ := pushStatus(t, master, nid, KindElements, 1); s != "queued" {
		t.Fatalf("push status %q in the gap", s)
	}
	// The next pass by the plan the nano still follows.
	k.clock.Set(tp.Add(2*time.Hour + 12*time.Minute))
	eventually(t, "the push applied on board", func() bool { return nano.nano.InForce()[KindElements] == 1 })
	np := nano.node.Contact().Plan
	if np == nil || sameWindows(np, p0) {
		t.Fatal("the nano's plan did not change with its elements")
	}
	if _, err := os.Stat(filepath.Join(nano.Dir, "fleet", "elements")); err != nil {
		t.Fatalf("pushed elements not written on board: %v", err)
	}
	// The new plan's next window: the nano reports there, the master follows.
	next, ok := np.NextStart(k.clock.Now())
	if !ok {
		t.Fatal("no window ahead in the new plan")
	}
	k.clock.Set(next.Start.Add(time.Minute))
	eventually(t, "the master to learn the push is in force", func() bool {
		s, _ := pushStatus(t, master, nid, KindElements, 1)
		return s == "applied"
	})
	eventually(t, "the master's copy of the plan", func() bool {
		mp := master.node.NanoContact(nid).Plan
		return mp != nil && !sameWindows(mp, p0)
	})
	now := k.clock.Now()
	mw, _ := master.node.NanoContact(nid).Plan.NextStart(now)
	nw, _ := nano.node.Contact().Plan.NextStart(now)
	if d := mw.Start.Sub(nw.Start).Abs() + mw.End.Sub(nw.End).Abs(); d > 2*time.Second {
		t.Fatalf("next window: master %v–%v, nano %v–%v", mw.Start, mw.End, nw.Start, nw.End)
	}
	rc, _ := master.mstr.Latest(nid)
	if rc.Report.ElementsEpoch == 0 || len(rc.Report.InForce) != 1 {
		t.Fatalf("report after the push: %+v", rc.Report)
	}
}

// queueRaw queues a push for p without the master's own checks: what a
// master with another build, or a corrupted file, could send.
func queueRaw(t *testing.T, m *peerKit, p peer.ID, push Push) {
	t.Helper()
	err := m.Store.Update(context.Background(), func(tx *dtn.Tx) error {
		body, _ := m.mstr.o.Codec.Marshal(&push)
		if _, _, err := tx.Enqueue(dtn.Entry{Dest: string(p), Protocol: ProtoPush, ResourceID: "push/" + push.Kind.String(),
			Op: dtn.OpUpdate, Level: dtn.Critical, Payload: body}); err != nil {
			return err
		}
		log, err := m.mstr.pushLogTx(tx, p)
		if err != nil {
			return err
		}
		log.Pushes = append(log.Pushes, PushRecord{Kind: push.Kind, Version: push.Version, Status: "queued", Pushed: 1})
		return m.mstr.putPushLog(tx, p, log)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPushesRefused: a bad TLE, bad settings, a key that may not change in
// flight, an older version and a push from a master that is not the nano's
// are each refused, nothing changes on board, and the reason reaches the
// ground's push history through the nano's next report.
func TestPushesRefused(t *testing.T) {
	k := newKit(t, tp)
	master := k.peer("ground", node.RoleMaster, "")
	rogue := k.peer("rogue", node.RoleMaster, "")
	nano := k.peer("nano-1", node.RoleNano, "")
	nid := nano.Host.ID()
	k.startMaster(master, []peer.AddrInfo{nano.info()}, nil)
	k.startMaster(rogue, []peer.AddrInfo{nano.info()}, nil)
	k.startNano(nano, master.info(), node.Contact{})
	eventually(t, "the first report", func() bool { return latestSeq(t, master, nid) >= 1 })
	ctx := context.Background()

	// A good settings push first: version 1 in force.
	if _, err := master.mstr.Push(ctx, nid, KindSettings, []byte("health_interval = \"15m\"\n[profile]\nguard = \"3s\"\nheartbeat_interval = \"7s\"\n"), 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "settings v1 applied", func() bool { s, _ := pushStatus(t, master, nid, KindSettings, 1); return s == "applied" })
	if g, hb := nano.node.Contact().Profile.Guard, nano.node.HeartbeatInterval(); g != 3*time.Second || hb != 7*time.Second {
		t.Fatalf("guard %v, heartbeat interval %v after the settings push", g, hb)
	}

	// The master's own checks refuse bad input at once, and keep the reason.
	if _, err := master.mstr.Push(ctx, nid, KindSettings, []byte("name = \"x\"\n"), 0); err == nil || !strings.Contains(err.Error(), "name") {
		t.Fatalf("unknown key pushed: %v", err)
	}
	if _, err := master.mstr.Push(ctx, nid, KindElements, []byte("1 25544U garbage\n2 25544 junk\n"), 0); err == nil {
		t.Fatal("a bad TLE was queued")
	}

	var big strings.Builder
	big.WriteString("start,end,rate\n")
	for i := 0; big.Len() <= MaxPushContent; i++ {
		s := tp.Add(time.Duration(i) * time.Hour)
		fmt.Fprintf(&big, "%s,%s,64000\n", s.Format(time.RFC3339), s.Add(5*time.Minute).Format(time.RFC3339))
	}
	if _, err := master.mstr.Push(ctx, nid, KindPlan, []byte(big.String()), 0); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("an oversized plan pushed: %v", err)
	}

	cases := []struct {
		name   string
		push   Push
		reason string
	}{
		{"bad TLE", Push{Kind: KindElements, Version: 1, Content: []byte("ISS\n1 25544U 98067A   25247.10182809  .00011777  00000-0  21333-3 0  9990\n2 25544  51.6327 275.9345 0004179 299.5263  60.5309 15.50088696528307\n")}, "elements"},
		{"bad settings", Push{Kind: KindSettings, Version: 2, Content: []byte("log_level = \"loud\"\n")}, "settings: line 1: log_level"},
		{"unknown key", Push{Kind: KindSettings, Version: 3, Content: []byte("[profile]\nkind = \"continuous\"\n")}, "profile.kind: may not change in flight"},
		{"older version", Push{Kind: KindSettings, Version: 1, Content: []byte("health_interval = \"20m\"\n")}, "not newer than version 1"},
	}
	for _, c := range cases {
		queueRaw(t, master, nid, c.push)
		eventually(t, c.name+" refused in a report", func() bool {
			s, _ := pushStatus(t, master, nid, c.push.Kind, c.push.Version)
			return s == "refused"
		})
		if _, reason := pushStatus(t, master, nid, c.push.Kind, c.push.Version); !strings.Contains(reason, c.reason) {
			t.Errorf("%s: reason %q, want it to name %q", c.name, reason, c.reason)
		}
		if got := nano.nano.InForce(); got[KindSettings] != 1 || got[KindElements] != 0 {
			t.Fatalf("%s changed what is in force: %v", c.name, got)
		}
	}
	sr, err := master.mstr.Show("nano-1")
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, p := range sr.Pushes {
		if p.Status == "refused" {
			refused++
		}
	}
	if refused != 7 { // three on the ground, four on board
		t.Fatalf("%d refusals in the push history: %+v", refused, sr.Pushes)
	}

	// A master that is not the nano's: its push never gets through the
	// nano's gate, and the nano's next report counts the refused peer.
	if _, err := rogue.mstr.Push(ctx, nid, KindSettings, []byte("health_interval = \"11m\"\n"), 5); err != nil {
		t.Fatal(err)
	}
	rogue.Store.Nudge(ctx, string(nid))
	eventually(t, "the nano to refuse the stranger", func() bool { return nano.Host.Gater.RefusedStranger.Load() > 0 })
	if err := nano.nano.Report(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refusal counted in a report", func() bool {
		rc, _ := master.mstr.Latest(nid)
		return rc != nil && rc.Report.Refusals["refused_conn_stranger"] > 0
	})
	if got := nano.nano.InForce()[KindSettings]; got != 1 {
		t.Fatalf("a stranger's push changed the settings: version %d", got)
	}
	if s, _ := pushStatus(t, rogue, nid, KindSettings, 5); s != "queued" {
		t.Fatalf("the stranger's push is %q", s)
	}
}

// TestKilledMidApply: a nano stopped between the durable commit of a push
// and putting it in force restarts with the new version whole; one stopped
// before the commit restarts with the old one whole. The version and its
// content are one value in one transaction: never a mix.
func TestKilledMidApply(t *testing.T) {
	k := newKit(t, tp)
	dir := t.TempDir()
	master := k.peer("ground", node.RoleMaster, "")
	nano := k.peer("nano-1", node.RoleNano, dir)
	k.startNano(nano, master.info(), node.Contact{Profile: node.ProfileFor(node.ProfileOrbital), Plan: windows(t, tp.Add(time.Hour), 3, time.Hour, 5*time.Minute)})
	push := func(v uint64, epoch string) node.Delivery {
		body, _ := k.codec.Marshal(&Push{Kind: KindElements, Version: v, Content: ommAt(epoch)})
		return node.Delivery{From: master.Host.ID(), Body: body, Received: k.clock.Now()}
	}
	// Version 1 applied in full.
	d1 := push(1, "2025-09-04T02:26:37")
	apply, err := nano.nano.preparePush(d1)
	if err != nil {
		t.Fatal(err)
	}
	if err := nano.Store.Update(context.Background(), apply.Apply); err != nil {
		t.Fatal(err)
	}
	apply.Applied()
	plan1 := nano.node.Contact().Plan
	// Version 2 committed, then killed before it is put in force.
	apply, err = nano.nano.preparePush(push(2, "2025-09-04T14:26:37"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nano.Store.Update(context.Background(), apply.Apply); err != nil {
		t.Fatal(err)
	}
	// Version 3 killed inside its transaction (the commit never happens).
	apply, err = nano.nano.preparePush(push(3, "2025-09-04T20:26:37"))
	if err != nil {
		t.Fatal(err)
	}
	killed := fmt.Errorf("killed")
	nano.Store.Update(context.Background(), func(tx *dtn.Tx) error {
		if err := apply.Apply(tx); err != nil {
			return err
		}
		return killed
	})
	nano.close()

	again := k.peer("nano-1", node.RoleNano, dir)
	k.startNano(again, master.info(), node.Contact{Profile: node.ProfileFor(node.ProfileOrbital), Plan: windows(t, tp.Add(time.Hour), 3, time.Hour, 5*time.Minute)})
	if got := again.nano.InForce()[KindElements]; got != 2 {
		t.Fatalf("version %d in force after the restart, want 2", got)
	}
	o2, _ := plan.ParseOrbit(ommAt("2025-09-04T14:26:37"))
	r := again.nano.Measure()
	if r.ElementsEpoch != o2.Elements.Epoch.Unix() {
		t.Fatalf("elements epoch %v in force with version 2", time.Unix(r.ElementsEpoch, 0))
	}
	p2 := again.node.Contact().Plan
	if p2 == nil || sameWindows(p2, plan1) {
		t.Fatal("the plan in force is not version 2's")
	}
	if r.Boots != 2 {
		t.Fatalf("boots %d", r.Boots)
	}
}
