package sat

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// expectAll checks that a daemon's catalogue holds every id with its body.
func expectAll(t testing.TB, d *daemon, want map[string]string) {
	t.Helper()
	got := d.catalogue(t)
	var missing []string
	for id, body := range want {
		if got[id] != body {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%s is missing %d of %d resources: %v", d.name, len(missing), len(want), missing)
	}
}

// makeGapWork creates n resources on each side, bodies of size bytes.
func makeGapWork(t testing.TB, b *bench, tag string, n, size int) (toNano, toGround map[string]string) {
	toNano, toGround = map[string]string{}, map[string]string{}
	for i := range n {
		g, s := fmt.Sprintf("%s-ground-%d", tag, i), fmt.Sprintf("%s-board-%d", tag, i)
		gb := g + ":" + strings.Repeat("g", max(0, size-len(g)-1))
		sb := s + ":" + strings.Repeat("s", max(0, size-len(s)-1))
		b.ground.put(t, g, b.nano.id, gb)
		b.nano.put(t, s, "", sb)
		toNano[g], toGround[s] = gb, sb
	}
	return toNano, toGround
}

// scenarioGap: mutations made on the ground and on board during gaps all
// arrive at the next pass, none lost, none applied twice.
func scenarioGap(t *testing.T, arch string) {
	b := newBench(t, benchOpts{arch: arch, pass: 25 * time.Second, gap: 15 * time.Second, passes: 2})
	if b.link.Up() {
		t.Fatal("the link is up before the first window")
	}
	allNano, allGround := map[string]string{}, map[string]string{}
	for p := range 2 {
		// We are in a gap: make work on both sides.
		toNano, toGround := makeGapWork(t, b, fmt.Sprint("p", p), 5, 200)
		for k, v := range toNano {
			allNano[k] = v
		}
		for k, v := range toGround {
			allGround[k] = v
		}
		w := b.window(p)
		sleepUntil(w.End.Add(time.Second))
		expectAll(t, b.nano, allNano)
		expectAll(t, b.ground, allGround)
	}
	gs, ns := b.ground.status(t), b.nano.status(t)
	if a := metric(gs, "deliveries_applied"); a != uint64(len(allGround)) {
		t.Fatalf("ground applied %d deliveries for %d resources", a, len(allGround))
	}
	if a := metric(ns, "deliveries_applied"); a != uint64(len(allNano)) {
		t.Fatalf("nano applied %d deliveries for %d resources", a, len(allNano))
	}
	if gs.DTNEntries != 0 {
		t.Fatalf("entries left at the ground: %d", gs.DTNEntries)
	}
	expectNothingOwed(t, ns)
	if len(gs.Suspected) != 0 {
		t.Fatalf("the master suspects the nano after passes it used: %v", gs.Suspected)
	}
	t.Logf("link a→b %d bytes, b→a %d bytes, %d lost packets", b.link.AtoB.Bytes.Load(), b.link.BtoA.Bytes.Load(), b.link.AtoB.Lost.Load()+b.link.BtoA.Lost.Load())
	b.nano.stop(t)
	b.ground.stop(t)
}

func TestGapWorkArrivesArm64(t *testing.T)   { scenarioGap(t, "arm64") }
func TestGapWorkArrivesRISCV64(t *testing.T) { scenarioGap(t, "riscv64") }

// TestNanoKilledMidDrain: the nano is SIGKILLed while a backlog drains and
// restarted in the same pass; everything still arrives once.
func TestNanoKilledMidDrain(t *testing.T) {
	b := newBench(t, benchOpts{arch: "arm64", pass: 40 * time.Second, gap: 15 * time.Second, passes: 2})
	toNano, toGround := makeGapWork(t, b, "bk", 40, 1000)
	w := b.window(0)
	sleepUntil(w.Start)
	boardAtGround := func() int {
		n := 0
		for id := range b.ground.catalogue(t) {
			if _, ok := toGround[id]; ok {
				n++
			}
		}
		return n
	}
	waitFor(t, "part of the backlog at the ground", 30*time.Second, func() bool { return boardAtGround() >= 5 })
	got := boardAtGround()
	if got == len(toGround) {
		t.Fatal("the whole backlog drained before the kill: the test proves nothing")
	}
	checkBoardTCP(t, b.sns) // the board's sysctl file holds for the qemu nano's sockets
	b.nano.kill()
	t.Logf("nano killed with %d of %d board resources at the ground", got, len(toGround))
	b.nano.start(t)
	sleepUntil(b.window(1).End.Add(time.Second))
	expectAll(t, b.ground, toGround)
	expectAll(t, b.nano, toNano)
	if a := metric(b.ground.status(t), "deliveries_applied"); a != uint64(len(toGround)) {
		t.Fatalf("ground applied %d deliveries for %d resources: something was applied twice", a, len(toGround))
	}
	b.nano.stop(t)
	b.ground.stop(t)
}

// TestMasterDownForTwoPasses: the master is down through two passes, then
// returns; what both sides made meanwhile arrives at the next pass.
func TestMasterDownForTwoPasses(t *testing.T) {
	b := newBench(t, benchOpts{arch: "arm64", pass: 15 * time.Second, gap: 10 * time.Second, passes: 4})
	toNano, toGround := makeGapWork(t, b, "down", 5, 200)
	b.ground.stop(t)
	sleepUntil(b.window(1).End.Add(2 * time.Second))
	if n := len(b.nano.catalogue(t)); n != len(toGround) {
		t.Fatalf("nano catalogue has %d entries while the master is down", n)
	}
	if st := b.nano.status(t); st.DTNEntries != len(toGround) {
		t.Fatalf("nano holds %d entries for the absent master, want %d", st.DTNEntries, len(toGround))
	}
	b.ground.start(t) // in the gap before window 2
	sleepUntil(b.window(2).End.Add(time.Second))
	expectAll(t, b.ground, toGround)
	expectAll(t, b.nano, toNano)
	b.nano.stop(t)
	b.ground.stop(t)
}

// TestRoguePeerIsRefused: a peer that has the PSK, but is not the nano's
// master, tries to change the nano's catalogue: its connection is refused
// right after the handshake (the nano admits only its master and indexers)
// and counted.
func TestRoguePeerIsRefused(t *testing.T) {
	b := newBench(t, benchOpts{arch: "arm64", pass: 20 * time.Second, gap: 10 * time.Second, passes: 1, rogue: true})
	b.rogue.put(t, "hijack", b.nano.id, "evil") // queued by the rogue for the nano
	b.ground.put(t, "legit", b.nano.id, "good")
	sleepUntil(b.window(0).End)
	cat := b.nano.catalogue(t)
	if _, ok := cat["hijack"]; ok {
		t.Fatal("the nano applied a mutation from a peer that is not its master")
	}
	if cat["legit"] != "good" {
		t.Fatal("the master's mutation did not arrive")
	}
	if n := metric(b.nano.status(t), "refused_conn_stranger"); n == 0 {
		t.Fatal("refusals not counted")
	}
	if st := b.rogue.status(t); st.DTNEntries != 1 {
		t.Fatalf("the rogue's entry should still wait (refused, never acknowledged): %d", st.DTNEntries)
	}
	b.rogue.stop(t)
	b.nano.stop(t)
	b.ground.stop(t)
}

// TestLinkFlapsInsideAPass: the link drops three times during a pass while a
// backlog drains both ways; everything arrives once.
func TestLinkFlapsInsideAPass(t *testing.T) {
	b := newBench(t, benchOpts{arch: "arm64", pass: 45 * time.Second, gap: 10 * time.Second, passes: 2})
	toNano, toGround := makeGapWork(t, b, "flap", 25, 1000)
	w := b.window(0)
	sleepUntil(w.Start.Add(8 * time.Second))
	for range 3 {
		b.link.SetUp(false)
		time.Sleep(2 * time.Second)
		b.link.SetUp(true)
		time.Sleep(5 * time.Second)
	}
	sleepUntil(b.window(1).End.Add(time.Second))
	expectAll(t, b.ground, toGround)
	expectAll(t, b.nano, toNano)
	if a := metric(b.ground.status(t), "deliveries_applied"); a != uint64(len(toGround)) {
		t.Fatalf("ground applied %d for %d", a, len(toGround))
	}
	if a := metric(b.nano.status(t), "deliveries_applied"); a != uint64(len(toNano)) {
		t.Fatalf("nano applied %d for %d", a, len(toNano))
	}
	b.nano.stop(t)
	b.ground.stop(t)
}
