package node

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"gardend/host"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// pacingShare is the part of a window's planned rate that a connection is
// paced at while both sides drain, in bytes on the air (the host takes off
// each socket's TCP/IP headers: a 1500-byte packet carries 1448 bytes of
// payload with TCP timestamps, 1460 without). The 1 % left is room for
// retransmissions and the other direction's acknowledgements, so that the
// link's queue stays empty rather than slowly filling. Flight bench:
// README.
const pacingShare = 0.99

// pacingFor is the rate, in bytes per second on the air, at which this
// node sends to p now: pacingShare of the planned rate of the window that
// joins them, or 0 (no cap) when no plan gives one.
func (n *Node) pacingFor(p peer.ID, now time.Time) uint64 {
	rate := n.plannedRate(p, now)
	return uint64(math.Round(float64(rate) / 8 * pacingShare))
}

// plannedRate is the rate (bits/s) of the current window between this node
// and p: on a nano, of its own plan's window (a station's window when p has
// its own plan); on the ground, of the nano p's plan. 0 when p is not
// behind a planned link or the plan does not say.
func (n *Node) plannedRate(p peer.ID, now time.Time) uint64 {
	var c Contact
	if n.o.Roles.Has(RoleNano) {
		c = n.contact()
		if pp, ok := n.peerPlans()[p]; ok && pp != nil {
			if w, ok := pp.Current(now, c.Profile.Guard); ok && w.RateBps > 0 {
				return w.RateBps
			}
		}
	} else {
		n.contactMu.RLock()
		nc, ok := n.nanoContacts[p]
		n.contactMu.RUnlock()
		if !ok {
			return 0
		}
		c = nc
	}
	if c.Plan == nil {
		return 0
	}
	w, ok := c.Plan.Current(now, c.Profile.Guard)
	if !ok {
		return 0
	}
	return w.RateBps
}

// pace sets the pacing of the connections to p from the plan, before a
// drain writes to them, and reports whether they are paced. A refusal (a
// kernel without the option) is logged once by the host and the drain goes
// on unpaced.
func (n *Node) pace(p peer.ID) bool {
	planned := n.plannedRate(p, n.o.Now())
	if err := n.h.SetPacing(p, n.pacingNow(p, planned)); err != nil {
		n.Metrics.Inc("pacing_refused")
		return false
	}
	return planned > 0
}

// pacingNow is the pacing (bytes per second on the air) of a drain to
// p over a window planned at plannedBps: pacingShare of it while p drains
// to this node too, soloShare otherwise. Pacing keeps the link's queue
// short, so that the acknowledgements each side owes the other do not wait
// behind bulk. A drain alone on the link owes no application acks, but its
// TCP acknowledgements of the peer's segments (SACKs) wait behind it all
// the same: unpaced, the system's congestion control (BBR here, in its
// start-up phase for a whole pass) kept 2.6-3.4 s of bulk queued, so a
// segment the peer lost in the pass's first round trip (the one carrying
// the first delivery's ack) was repaired only after that queue, a ground
// drain starting at AOS before the board's own filled the downlink's queue
// (a two-way pass then failed to drain), and a loss at the end of a drain
// waited out a retransmission timeout sized from it (a 6 s tail).
func (n *Node) pacingNow(p peer.ID, plannedBps uint64) uint64 {
	share := soloShare
	if n.inbound.from(p) {
		share = pacingShare
	}
	return uint64(math.Round(float64(plannedBps) / 8 * share))
}

// soloShare is the pacing of a drain alone on the link, as a share of the
// planned rate on the air. A little more than the link keeps it busy
// whatever the kernel's pacing, in bursts of two segments, lets out, while
// the queue grows by less than a segment over a pass (at 1.02 it grew by
// five, and a loss near the end waited behind them). Flight bench: README.
const soloShare = 1.005

// A paced drain's writes wait below the drain, in yamux's queue and the
// socket, until TCP sends them at the paced rate. Left alone, a drain hands
// its whole window to the stream at once (120 kB on the flight bench, 15 s
// of link): the acks this side owes the peer's own drain then wait behind
// all of it (the first ack of a two-way drain came back after 31 round
// trips), and a yamux frame that cannot enter the full socket within its
// 10 s write timeout kills the connection, and the pass with it (seen on
// the flight bench with pacing alone). So a paced drain writes in chunks
// and, before each, waits until what it wrote and TCP has not sent is down
// to a little: a quarter of a second of the paced rate (at least three
// segments, so that TCP always has full segments to send) while the peer
// drains to this node too and acks are owed, otherwise two buffers' worth.
// The chunks are smaller while acks are owed: the peer acks each chunk it
// applies, so small chunks cost ack packets, worth it only then.
const (
	pacedChunk     = 3 * 1460 // while the peer drains to this node (three segments, with or without TCP timestamps)
	pacedChunkSolo = 14 << 10 // otherwise, about the 16 kB write buffer
)

// roomGate holds a paced drain. What the drain wrote may still be in
// yamux's queue, out of TCP's sight: it counts as unsent until the socket
// has taken as many bytes.
type roomGate struct {
	n       *Node
	conn    network.Conn
	rate    uint64 // the planned rate's pacing both ways (bytes/s on the air)
	planned uint64 // the planned rate (bits/s)
	base    uint64 // the socket's written count when the drain began
	flushed uint64 // bytes the drain has flushed since
	probed  uint64 // flushed when the last tail probe was asked for
	// flushedNow is flushed, for the tail probe's goroutine.
	flushedNow atomic.Uint64
}

func (n *Node) newRoomGate(s network.Stream) *roomGate {
	rate := n.pacingFor(s.Conn().RemotePeer(), n.o.Now())
	st, ok := n.h.Socket(s.Conn())
	if !ok || rate == 0 {
		return nil
	}
	return &roomGate{n: n, conn: s.Conn(), rate: rate, planned: n.plannedRate(s.Conn().RemotePeer(), n.o.Now()), base: st.Written}
}

// acksOwed says whether the peer drains to this node now.
func (g *roomGate) acksOwed() bool { return g.n.inbound.from(g.conn.RemotePeer()) }

// chunk is how much the drain buffers before it writes and waits.
func (g *roomGate) chunk() int {
	if g.acksOwed() {
		return pacedChunk
	}
	return pacedChunkSolo
}

// wait returns once the backlog below the drain is small enough.
func (g *roomGate) wait() error {
	for {
		st, ok := g.n.h.Socket(g.conn)
		if !ok {
			return nil
		}
		// Paced while the peer drains to this node, not otherwise: it may
		// have begun or ended since the last chunk (a refusal was counted
		// when the drain began).
		if want := g.n.pacingNow(g.conn.RemotePeer(), g.planned); want != st.Pacing {
			g.n.h.SetPacing(g.conn.RemotePeer(), want)
		}
		queued, room := gateBacklog(st, g.base, g.flushed), gateRoom(g.payloadRate(st), g.acksOwed())
		if queued <= room {
			return nil
		}
		d := g.leaveIn(queued-room, st)
		t := time.NewTimer(min(max(d, 20*time.Millisecond), 500*time.Millisecond))
		select {
		case <-t.C:
		case <-g.n.ctx.Done():
			t.Stop()
			return g.n.ctx.Err()
		}
	}
}

// tailProbeWithin bounds how long a tail probe waits for the drain's last
// bytes to leave the socket (two 14 kB chunks take 3.6 s at 64 kbit/s).
const tailProbeWithin = 30 * time.Second

// probeTail sends a tail probe (host.ProbeTail) once everything the drain
// has flushed has left the socket, unless the drain writes more meanwhile
// (its next tail is probed then). Called when the drain has nothing more
// to send and waits for acks; once per tail.
func (g *roomGate) probeTail() {
	mark := g.flushed
	if mark == g.probed {
		return
	}
	g.probed = mark
	g.n.loop(func() {
		var last uint64
		for start := time.Now(); time.Since(start) < tailProbeWithin; {
			st, ok := g.n.h.Socket(g.conn)
			if !ok || g.flushedNow.Load() != mark {
				return
			}
			// All of it in the socket and sent once, and nothing written
			// since the last look (yamux holds nothing back).
			if st.Unsent == 0 && st.Written-g.base >= mark && st.Written == last {
				if g.n.h.ProbeTail(g.conn) {
					g.n.Metrics.Inc("delivery_tail_probes")
				}
				return
			}
			last = st.Written
			d := g.leaveIn(gateBacklog(st, g.base, mark), st)
			t := time.NewTimer(min(max(d, 20*time.Millisecond), 500*time.Millisecond))
			select {
			case <-t.C:
			case <-g.n.ctx.Done():
				t.Stop()
				return
			}
		}
	})
}

// payloadRate is the paced rate in bytes of payload per second: the gate
// counts what the drain wrote, the pacing counts the air, headers and all.
func (g *roomGate) payloadRate(st host.SocketState) float64 {
	return float64(g.rate) * st.PayloadShare
}

// leaveIn is how long the paced socket takes to send n bytes of payload.
func (g *roomGate) leaveIn(n int, st host.SocketState) time.Duration {
	return time.Duration(float64(n) / g.payloadRate(st) * float64(time.Second))
}

// gateBacklog is what a drain has written that TCP has not sent: unsent in
// the socket, plus what it flushed that the socket has not taken yet.
func gateBacklog(st host.SocketState, base, flushed uint64) int {
	queued := st.Unsent
	if taken := st.Written - base; taken < flushed {
		queued += int(flushed - taken)
	}
	return queued
}

// gateRoom is the backlog a paced drain may leave below itself, given the
// paced rate in payload bytes per second.
func gateRoom(payloadPerSec float64, acksOwed bool) int {
	if !acksOwed {
		return 2 * pacedChunkSolo
	}
	return max(pacedChunk, int(payloadPerSec/4))
}

// inboundDrains counts the delivery streams each peer has open to this
// node: while one is open, this node owes that peer acks.
type inboundDrains struct {
	mu sync.Mutex
	n  map[peer.ID]int
}

// add counts one more stream from p; the function returned uncounts it.
func (d *inboundDrains) add(p peer.ID) func() {
	d.mu.Lock()
	if d.n == nil {
		d.n = map[peer.ID]int{}
	}
	d.n[p]++
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		if d.n[p]--; d.n[p] <= 0 {
			delete(d.n, p)
		}
		d.mu.Unlock()
	}
}

func (d *inboundDrains) from(p peer.ID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[p] > 0
}
