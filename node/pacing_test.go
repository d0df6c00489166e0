package node

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
	"gardend/host"
	"gardend/plan"
)

// plannedPair is a master and its nano in a window planned at 64 kbit/s
// from an hour ago to an hour from now, not started.
func plannedPair(t *testing.T, now time.Time) (master, nn *tnode) {
	p, err := plan.New([]plan.Window{{Start: now.Add(-time.Hour), End: now.Add(time.Hour), RateBps: 64000}})
	if err != nil {
		t.Fatal(err)
	}
	contact := Contact{Profile: ProfileFor(ProfileOrbital), Plan: p}
	tn := newTestNet(t)
	master, nn = tn.peerOf("master", RoleMaster), tn.peerOf("nano", RoleNano)
	master.opts.Nanos = []peer.AddrInfo{nn.info()}
	master.opts.NanoContacts = map[peer.ID]Contact{nn.host.ID(): contact}
	nn.opts.Master = master.info()
	nn.opts.Contact = contact
	return master, nn
}

// The planned rate of the window a drain runs in reaches the socket, on
// the nano (its own plan) and on the master (the nano's plan).
func TestDrainsArePacedAtThePlannedRate(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	master, nn := plannedPair(t, now)
	master.start(t)
	nn.start(t)
	if err := nn.PutResource(ctx, dtn.OpCreate, "board", nn.ID(), []byte("from board")); err != nil {
		t.Fatal(err)
	}
	if err := master.PutResource(ctx, dtn.OpCreate, "ground", nn.ID(), []byte("from ground")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both deliveries", 30*time.Second, func() bool { return hasResource(master, "board") && hasResource(nn, "ground") })
	if !host.PacingPassesThrough() {
		for _, x := range []*tnode{nn, master} {
			to := master.ID()
			if x == master {
				to = nn.ID()
			}
			// A two-way drain asks for pacing; here it is refused.
			undo := x.inbound.add(to)
			x.pace(to)
			undo()
			if x.Metrics.Get("pacing_refused") == 0 {
				t.Errorf("%s: pacing refused but not counted", x.name)
			}
		}
		return
	}
	want := uint64(64000 / 8 * pacingShare)
	wantSolo := uint64(64000 / 8 * soloShare)
	for _, end := range []struct {
		x  *tnode
		to peer.ID
	}{{nn, master.ID()}, {master, nn.ID()}} {
		// A drain is paced at pacingShare of the planned rate while the
		// peer drains to this node too, and just above the link's rate
		// when it is alone on it. Both may have dialled at once: every
		// connection follows.
		undo := end.x.inbound.add(end.to)
		for _, twoWay := range []bool{true, false} {
			if !twoWay {
				undo()
				// The peer's own drain stream may linger a moment.
				eventually(t, "the peer's drain ended", 30*time.Second, func() bool { return !end.x.inbound.from(end.to) })
			}
			if !end.x.pace(end.to) {
				t.Fatalf("%s: pace reports no planned rate", end.x.name)
			}
			// What reaches the kernel is the host's tests' (package host).
			got := end.x.host.PacingOf(end.to)
			if twoWay && got != want {
				t.Errorf("%s, both ways: the socket is paced at %d B/s, want %d", end.x.name, got, want)
			}
			if !twoWay && got != wantSolo {
				t.Errorf("%s, one way: the socket is paced at %d B/s, want %d", end.x.name, got, wantSolo)
			}
		}
	}
	if got := nn.pacingFor(master.ID(), now.Add(2*time.Hour)); got != 0 {
		t.Errorf("outside any window: pacing %d, want 0 (none)", got)
	}
}

func TestGateCountsBytesNotYetInTheSocket(t *testing.T) {
	// 10 kB flushed since the drain began; the socket took 4 kB of them
	// and has sent 1 kB: 3 kB unsent there, 6 kB still above it.
	st := host.SocketState{Written: 1000 + 4000, Unsent: 3000, Pacing: 7640}
	if got := gateBacklog(st, 1000, 10000); got != 9000 {
		t.Errorf("backlog %d, want 9000", got)
	}
	// Everything flushed reached the socket (and other writers' bytes too).
	st = host.SocketState{Written: 1000 + 12000, Unsent: 2500, Pacing: 7640}
	if got := gateBacklog(st, 1000, 10000); got != 2500 {
		t.Errorf("backlog %d, want 2500", got)
	}
	if r := gateRoom(7640, true); r != pacedChunk {
		t.Errorf("room at 64 kbit/s with acks owed: %d, want three segments (%d)", r, pacedChunk)
	}
	if r := gateRoom(1<<20, true); r != 1<<18 {
		t.Errorf("room at 1 MB/s with acks owed: %d, want a quarter second (%d)", r, 1<<18)
	}
	if r := gateRoom(7640, false); r != 2*pacedChunkSolo {
		t.Errorf("room with no acks owed: %d, want two buffers (%d)", r, 2*pacedChunkSolo)
	}
}

// The gate counts payload and the pacing counts the air: at 8000 B/s on
// the air with 1460 of every 1500 bytes payload, 7,786 B of payload take
// a second to leave, not 0.97 s.
func TestGateWaitsInPayloadAtARateOnTheAir(t *testing.T) {
	g := &roomGate{rate: 8000}
	st := host.SocketState{PayloadShare: 1460.0 / 1500}
	if d := g.leaveIn(7786, st); d < 999*time.Millisecond || d > 1001*time.Millisecond {
		t.Errorf("7786 B of payload leave in %v at 8000 B/s on the air, want 1 s", d)
	}
	if r := gateRoom(g.payloadRate(st)*100, true); r != 194666 {
		t.Errorf("room %d, want a quarter second of payload (194666)", r)
	}
}

// A paced drain that has sent everything and waits for acks sends one tail
// probe (a yamux ping) once its last bytes have left the socket; an
// unpaced one (here: a kernel or emulator that refuses pacing) sends none.
func TestAPacedDrainProbesItsTail(t *testing.T) {
	ctx := context.Background()
	master, nn := plannedPair(t, time.Now())
	// The master holds its acks until the probe is out, so the drain is
	// still waiting for them when its bytes have left.
	release := make(chan struct{})
	master.opts.afterApply = func([]string) { <-release }
	master.start(t)
	nn.start(t)
	if err := nn.PutResource(ctx, dtn.OpCreate, "board", nn.ID(), make([]byte, 3000)); err != nil {
		t.Fatal(err)
	}
	if host.PacingPassesThrough() {
		eventually(t, "a tail probe", 30*time.Second, func() bool { return nn.Metrics.Get("delivery_tail_probes") == 1 })
	}
	close(release)
	eventually(t, "the delivery", 30*time.Second, func() bool { return hasResource(master, "board") })
	eventually(t, "the nano's queue empty", 30*time.Second, func() bool { return nn.store.Len(string(master.ID())) == 0 })
	want := uint64(1)
	if !host.PacingPassesThrough() {
		want = 0
	}
	if got := nn.Metrics.Get("delivery_tail_probes"); got != want {
		t.Fatalf("%d tail probes, want %d", got, want)
	}
}
