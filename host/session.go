package host

// Kept sessions: a nano's connection to its master survives a planned gap,
// so the next pass starts on it instead of paying TCP and Noise again (two
// of the 3.8 round trips a pass with a backlog took to its first delivery).
//
// A TCP connection nothing writes to survives any silence. What writes in a
// gap: the TCP transport's keepalive (30 s idle, host.go), yamux's
// keepalive pings (30 s) and go-yamux's round-trip measurement pings (every
// 30 s, keepalive or not). All three are off on the connections between a nano and its master
// ("kept" peers): the host builds each yamux session once the peer is known
// (keptMuxer) and switches the socket's keepalive off.
//
// From the end of a window (with guard) to the next planned AOS a kept
// connection is dormant: it tells the swarm it is closed, so no stream is
// opened on it and a dial makes a fresh connection instead of returning it
// (go-libp2p offers no other way to dial a connected peer). At AOS the nano
// wakes it, tells the master at once (a wake stream) and pings it; anything
// read on a dormant session wakes it (the master's side). The fresh dial
// the nano's contact loop makes from the guard before AOS races it, and the
// first to answer carries the pass: a dead kept session (the master
// restarted, an address changed) costs what a pass cost before, never a
// TCP retransmission timeout. When the kept session answers first, the
// fresh dial is dropped where it stands (Connect, raceKeptWake), so the
// rest of its handshake and the acks it draws stay off the link. Until the
// woken session answers, drains send it one round trip's worth of bytes
// (probation).
//
// A connection that goes into a gap with bytes unacknowledged is closed,
// not kept: TCP's retransmission timer, backed off through the gap, would
// hold everything behind those bytes. So nothing new starts on a kept
// session in its last three round trips before LOS (the quiet time: a
// request, its answer, and the streams' ends), the heartbeat stream is
// reset as it begins, and the last call's health report leaves as the last
// call begins (fleet), ahead of the quiet time when the last call is the
// longer.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	yamuxtpt "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-yamux/v5"
	"golang.org/x/sys/unix"
)

// keptPeers is the set of peers whose connections survive planned gaps;
// the host's socket registry (tcptune.go) finds the TCP socket under each.
type keptPeers struct {
	socks *sockets
	mu    sync.Mutex
	peers map[peer.ID]bool
	heard map[peer.ID]chan struct{} // closed when a woken session of the peer answers
}

func newKeptPeers(socks *sockets) *keptPeers {
	return &keptPeers{socks: socks, peers: map[peer.ID]bool{}, heard: map[peer.ID]chan struct{}{}}
}

// answers is closed the next time a woken session of p answers.
func (k *keptPeers) answers(p peer.ID) <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	ch := k.heard[p]
	if ch == nil {
		ch = make(chan struct{})
		k.heard[p] = ch
	}
	return ch
}

// answeredBy tells those waiting in answers that a session of p answered.
func (k *keptPeers) answeredBy(p peer.ID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if ch := k.heard[p]; ch != nil {
		close(ch)
		delete(k.heard, p)
	}
}

func (k *keptPeers) has(p peer.ID) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.peers[p]
}

// keptMuxer is yamux with one configuration per connection: go-libp2p's
// defaults, and for kept peers no keepalive pings and no round-trip pings.
type keptMuxer struct {
	kept           *keptPeers
	streamsPerConn uint32
}

var _ network.Multiplexer = (*keptMuxer)(nil)

// rttNever stands for "no round-trip pings": go-yamux requires an interval.
const rttNever = 100 * 365 * 24 * time.Hour

// config is the yamux configuration of a connection to p.
func (m *keptMuxer) config(kept bool) *yamuxtpt.Transport {
	cfg := *yamuxtpt.DefaultTransport
	// go-libp2p lifts yamux's cap on incoming streams and leaves it to the
	// resource manager; a cap per connection refuses a flood before the
	// resource manager is even asked.
	cfg.MaxIncomingStreams = m.streamsPerConn
	if kept {
		cfg.EnableKeepAlive = false
		cfg.MeasureRTTInterval = rttNever
	}
	return &cfg
}

func (m *keptMuxer) NewConn(nc net.Conn, isServer bool, scope network.PeerScope) (network.MuxedConn, error) {
	sc, ok := nc.(sec.SecureConn)
	if !ok || !m.kept.has(sc.RemotePeer()) {
		return m.config(false).NewConn(nc, isServer, scope)
	}
	raw := m.kept.socks.rawFor(nc.LocalAddr(), nc.RemoteAddr())
	if raw != nil {
		// An unanswered probe in a gap would end the connection.
		var err error
		if cerr := raw.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE, 0) }); cerr != nil || err != nil {
			return nil, fmt.Errorf("kept session: keepalive off: %w", errors.Join(cerr, err))
		}
	}
	k := &keptSession{raw: raw, peer: sc.RemotePeer(), kept: m.kept}
	mc, err := m.config(true).NewConn(&wakingConn{Conn: nc, k: k}, isServer, scope)
	if err != nil {
		return nil, err
	}
	k.MuxedConn = mc
	return k, nil
}

// wakingConn is the secured connection under a kept session: anything read
// from it proves the link is up and the other end holds the session (it
// sends nothing in a gap), so a dormant session wakes. This is how the
// master's side wakes when the nano pings at AOS, whichever connection the
// nano's first streams then take.
type wakingConn struct {
	net.Conn
	k *keptSession
}

func (c *wakingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.k.received.Add(int64(n))
		if c.k.probation.CompareAndSwap(true, false) {
			c.k.answered()
		}
		if c.k.dormant.Load() {
			c.k.dormant.Store(false)
		}
	}
	return n, err
}

// keptSession is a kept peer's muxed connection. While dormant it tells the
// swarm it is closed: no stream is opened on it, and a dial to the peer
// makes a fresh connection.
type keptSession struct {
	network.MuxedConn
	raw      syscall.RawConn // the TCP socket; nil if the transport hid it
	peer     peer.ID
	kept     *keptPeers
	dormant  atomic.Bool
	received atomic.Int64 // bytes read from the secured connection
	// probation: woken at AOS, nothing read since. Until the other end
	// answers, a drain sends one round trip of the link's rate (at least
	// one entry): a whole backlog sent into a dead session, or queued on
	// the link ahead of a lost first segment, would delay the pass by as
	// long as it takes to cross.
	probation atomic.Bool
	mu        sync.Mutex
	answer    chan struct{} // closed when probation ends
}

// startProbation puts k on probation until the other end is heard from.
func (k *keptSession) startProbation() {
	k.mu.Lock()
	k.answer = make(chan struct{})
	k.mu.Unlock()
	k.probation.Store(true)
}

func (k *keptSession) answered() {
	k.mu.Lock()
	if k.answer != nil {
		close(k.answer)
		k.answer = nil
	}
	k.mu.Unlock()
	k.kept.answeredBy(k.peer)
}

// heard is closed when k's probation ends (nil if it is not on probation).
func (k *keptSession) heard() <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.answer
}

func (k *keptSession) IsClosed() bool { return k.dormant.Load() || k.MuxedConn.IsClosed() }

func (k *keptSession) As(target any) bool {
	if t, ok := target.(**keptSession); ok {
		*t = k
		return true
	}
	if as, ok := k.MuxedConn.(interface{ As(any) bool }); ok {
		return as.As(target)
	}
	return false
}

// keptOf is c's kept session, nil if c is not one.
func keptOf(c network.Conn) *keptSession {
	var k *keptSession
	if c.As(&k) {
		return k
	}
	return nil
}

// unacked is how many segments sent on k's socket wait for an
// acknowledgement (-1 if the socket cannot be read).
func (k *keptSession) unacked() int {
	info := k.tcpInfo()
	if info == nil {
		return -1
	}
	return int(info.Unacked)
}

// tcpInfo is the kernel's view of k's socket (nil if it cannot be read).
func (k *keptSession) tcpInfo() *unix.TCPInfo { return tcpInfo(k.raw) }

// rtt is the shortest round trip the kernel measured on k's socket (0
// unknown): the link's own, without the time spent in its queue, which a
// bulk drain makes many times longer.
func (k *keptSession) rtt() time.Duration {
	info := k.tcpInfo()
	if info == nil || info.Min_rtt == ^uint32(0) { // all ones: no sample yet
		return 0
	}
	return time.Duration(info.Min_rtt) * time.Microsecond
}

// ping checks within ctx that the other end of k answers.
func (k *keptSession) ping(ctx context.Context) error {
	var s *yamux.Session
	if !k.As(&s) {
		return errors.New("kept session: not yamux")
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Ping()
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ProbeTail sends one yamux ping on c and does not wait for its answer. A
// drain sends it once its last bytes have left the socket: should the
// link lose the last segment, the ping arrives behind the gap and the
// receiver's SACK lets TCP repair it within about a round trip, where
// nothing following it would leave it to TCP's tail loss probe (two
// smoothed round trips, 2-3 s on the flight bench). It reports whether a
// ping went out (c is not yamux, or one is in flight already: false).
func (h *Host) ProbeTail(c network.Conn) bool {
	var s *yamux.Session
	if !c.As(&s) || s.IsClosed() {
		return false
	}
	go s.Ping() // bounded by yamux's write timeout, twice; a lost answer costs nothing
	return true
}

// KeepAcrossGaps marks peers whose connections survive planned gaps (no TCP
// keepalive, no yamux pings). It applies to connections made afterwards.
func (h *Host) KeepAcrossGaps(peers ...peer.ID) { h.kept.mark(true, peers) }

// StopKeeping undoes KeepAcrossGaps (a contact that no longer keeps to
// windows): the peers' next connections have keepalives again. A session
// already kept stays as it is until it closes.
func (h *Host) StopKeeping(peers ...peer.ID) { h.kept.mark(false, peers) }

func (k *keptPeers) mark(kept bool, peers []peer.ID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range peers {
		if kept {
			k.peers[p] = true
		} else {
			delete(k.peers, p)
		}
	}
}

// Kept reports whether p's connections survive planned gaps.
func (h *Host) Kept(p peer.ID) bool { return h.kept.has(p) }

// SleepSessions runs once at the end of each window with p: one quiet kept
// connection goes dormant, the others close (one dormant since before the
// window was not woken by it: its other end is gone; one with bytes
// unacknowledged would stall at the next pass; one with a stream open would
// write in the gap). It reports how many went dormant, and how many kept
// sessions were closed for bytes unacknowledged or streams open.
func (h *Host) SleepSessions(p peer.ID) (slept, unacked int, why string) {
	for _, c := range h.swarm.ConnsToPeer(p) {
		k := keptOf(c)
		switch {
		case k == nil || k.dormant.Load() || slept > 0:
			c.Close()
		case k.unacked() != 0 || len(c.GetStreams()) > 0:
			// A stream left open would write in the gap (its end, a
			// timeout's reset).
			unacked++
			why = fmt.Sprintf("unacked=%d", k.unacked())
			for _, s := range c.GetStreams() {
				why += fmt.Sprintf(" stream=%s/%s", s.Protocol(), s.Stat().Direction)
			}
			c.Close()
		default:
			k.dormant.Store(true)
			slept++
		}
	}
	return slept, unacked, why
}

// SessionRTT is the link's round trip as the kernel measured it on p's
// kept connections (the shortest; 0 if none has a sample).
func (h *Host) SessionRTT(p peer.ID) time.Duration {
	var shortest time.Duration
	for _, c := range h.swarm.ConnsToPeer(p) {
		if k := keptOf(c); k != nil {
			if r := k.rtt(); r > 0 && (shortest == 0 || r < shortest) {
				shortest = r
			}
		}
	}
	return shortest
}

// DormantSessions are p's dormant connections (the swarm does not count
// them as connected).
func (h *Host) DormantSessions(p peer.ID) []network.Conn {
	var out []network.Conn
	for _, c := range h.swarm.ConnsToPeer(p) {
		if k := keptOf(c); k != nil && k.dormant.Load() && !k.MuxedConn.IsClosed() {
			out = append(out, c)
		}
	}
	return out
}

// raceKeptWake returns ctx, cancelled as soon as a dormant session of p
// answers its wake at AOS: a fresh dial made under it past that session
// is then dropped where it stands.
func (h *Host) raceKeptWake(ctx context.Context, p peer.ID) (context.Context, context.CancelFunc) {
	if !h.kept.has(p) {
		return ctx, func() {}
	}
	answered := h.kept.answers(p) // taken before the look, so no answer after it is missed
	if len(h.DormantSessions(p)) == 0 {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-answered:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// resumeWait bounds the wait for a woken session's ping answer. The fresh
// dial racing it is what bounds the cost of a dead session; this only frees
// the dormant connection.
const resumeWait = 5 * time.Second

// ResumeSessions runs at a planned AOS: it wakes p's dormant connections,
// calls ready (which may open streams on them at once), and pings them; one
// that does not answer within resumeWait closes, and the fresh connection
// dialled meanwhile, if any, carries on. When one answers, idle fresh
// connections made while it slept are closed (one busy already is left to
// finish; SleepSessions keeps one connection per peer). It reports whether there was one to wake, and whether it answered.
func (h *Host) ResumeSessions(ctx context.Context, p peer.ID, ready func()) (found, alive bool) {
	woken := h.DormantSessions(p)
	if len(woken) == 0 {
		return false, false
	}
	before := make([]int64, len(woken))
	for i, c := range woken {
		k := keptOf(c)
		before[i] = k.received.Load()
		k.startProbation()
		k.dormant.Store(false)
	}
	ready()
	ctx, cancel := context.WithTimeout(ctx, resumeWait)
	defer cancel()
	answered := map[network.Conn]bool{}
	for i, c := range woken {
		k := keptOf(c)
		// Anything read since the wake answers as well as the ping: on a
		// link whose queue is full of the pass's bulk, the pong can take
		// longer than resumeWait.
		if err := k.ping(ctx); err != nil && (k.MuxedConn.IsClosed() || k.received.Load() == before[i]) {
			c.Close()
			continue
		}
		answered[c] = true
	}
	if len(answered) == 0 {
		return true, false
	}
	for _, c := range h.swarm.ConnsToPeer(p) {
		if !answered[c] && len(c.GetStreams()) == 0 {
			c.Close()
		}
	}
	return true, true
}

// OnProbation reports whether p's connection is a kept session woken at
// AOS whose other end has not answered yet, and a channel closed when it
// does.
func (h *Host) OnProbation(p peer.ID) (bool, <-chan struct{}) {
	for _, c := range h.swarm.ConnsToPeer(p) {
		if k := keptOf(c); k != nil && k.probation.Load() && !k.MuxedConn.IsClosed() {
			if heard := k.heard(); heard != nil {
				return true, heard
			}
		}
	}
	return false, nil
}
