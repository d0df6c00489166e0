package host

// This file reaches under libp2p to the TCP socket of each connection, to
// keep a slow radio link's queue short. A pass shares one connection both
// ways: each side's TCP acknowledgements ride on its data segments, so
// whatever waits in the link's queue in one direction delays the other
// direction's acknowledgements, and with them its sending. Congestion
// control keeps about one round trip of data queued (BBR's start-up phase,
// which a pass never leaves, three), so two drains at once see round trips
// of 2-3 s instead of 0.6 s, and BBR's periodic probe for the minimum round
// trip then holds the window at four segments for a whole (inflated) round
// trip. Pacing each connection at the link's planned rate keeps the queue
// short instead: below it while both sides drain, just above it for a
// drain alone on the link, whose queue still holds back the SACKs it owes
// the peer (node/pacing.go; flight bench: README). The sockets are found through the
// upgrader, which sees each raw connection, dialled or accepted, before
// the handshake hides it; options are applied per connection, never
// system-wide, and an option the kernel does not offer is logged once and
// left alone.

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/transport"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"golang.org/x/sys/unix"
)

// TCPTuning is how a host sets the TCP socket of each new connection. The
// zero value leaves the system's settings.
type TCPTuning struct {
	// Congestion names congestion controls (TCP_CONGESTION) to try in
	// order, e.g. "cubic", "reno", while a socket is paced; none: the
	// system's default. An unpaced socket keeps the system's default. An
	// unprivileged process may only pick one listed in
	// net.ipv4.tcp_allowed_congestion_control (reno always is).
	Congestion []string
	// NotSentLowat bounds the bytes written but not yet sent that a socket
	// holds before a write blocks (TCP_NOTSENT_LOWAT); 0: the system's.
	NotSentLowat int
}

// FlightTCP is the tuning gardend runs with. Its connections to peers
// behind a planned link are paced at the plan's rate (node/pacing.go), which
// keeps the link's queue empty; a loss-driven congestion control then only
// has to keep its window above what the pacing lets out. BBR, the default
// of some kernels, does worse there: it never leaves its start-up phase in
// a pass, and every 10 s without a lower round trip it cuts its window to
// four segments for a round trip (flight bench, both ways: 0.84-0.89 with
// BBR and pacing, 0.90-0.92 with cubic or reno and pacing). Reno is always
// built in and allowed. A connection with no planned rate is not paced and
// keeps the system's congestion control: unpaced, cubic fills the link's
// queue and a loss at the end of a drain then waits out a retransmission
// timeout sized from that queue (a 6 s tail seen on the flight bench).
func FlightTCP() TCPTuning { return TCPTuning{Congestion: []string{"cubic", "reno"}} }

// sockets are the TCP sockets under a host's connections, by their
// addresses, so that an option can be changed on a connection after its
// handshake (the pacing rate, per peer). Entries of closed sockets go when
// a new one comes.
type sockets struct {
	tune TCPTuning
	log  *slog.Logger

	policy atomic.Pointer[func(peer.ID) uint64] // pacing of a new connection to a peer

	mu      sync.Mutex
	byAddr  map[string]*socket
	sweepAt int             // entries at which closed sockets are next dropped
	warned  map[string]bool // options the kernel refused, logged once each
}

// addressed is a connection as the registry knows it: by its addresses.
type addressed interface {
	LocalMultiaddr() ma.Multiaddr
	RemoteMultiaddr() ma.Multiaddr
}

type socket struct {
	raw    syscall.RawConn
	pacing uint64 // bytes/s last set; 0: none
	native string // the congestion control it was born with ("": unknown)
	ipv6   bool   // its segments carry IPv6 headers
}

// minSweep is the registry's size below which closed sockets stay.
const minSweep = 64

func newSockets(tune TCPTuning, log *slog.Logger) *sockets {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &sockets{tune: tune, log: log, byAddr: map[string]*socket{}, sweepAt: minSweep, warned: map[string]bool{}}
}

func socketKey(local, remote ma.Multiaddr) string { return local.String() + " " + remote.String() }

// rawFor is the socket under the connection between local and remote (nil
// if none is known), for a layer that sees only net.Addrs (session.go).
func (ss *sockets) rawFor(local, remote net.Addr) syscall.RawConn {
	l, lerr := manet.FromNetAddr(local)
	r, rerr := manet.FromNetAddr(remote)
	if lerr != nil || rerr != nil {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s := ss.byAddr[socketKey(l, r)]; s != nil {
		return s.raw
	}
	return nil
}

// add sets the tuning on a new connection's socket and remembers it.
func (ss *sockets) add(c manet.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return // not a TCP socket (tests may hand other conns)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	var native string
	raw.Control(func(fd uintptr) { native, _ = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION) })
	if ss.tune.NotSentLowat > 0 {
		ss.set(raw, "TCP_NOTSENT_LOWAT", func(fd int) error {
			return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, ss.tune.NotSentLowat)
		})
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	// Closed sockets are dropped when the registry has doubled since the
	// last sweep: amortised constant work per connection, where a sweep on
	// every add would cost a ground of 10 000 nanos 10 000 checks a dial.
	if len(ss.byAddr) >= ss.sweepAt {
		for k, s := range ss.byAddr {
			if s.raw.Control(func(uintptr) {}) != nil { // closed
				delete(ss.byAddr, k)
			}
		}
		ss.sweepAt = max(minSweep, 2*len(ss.byAddr))
	}
	_, v6err := c.LocalMultiaddr().ValueForProtocol(ma.P_IP6)
	ss.byAddr[socketKey(c.LocalMultiaddr(), c.RemoteMultiaddr())] = &socket{raw: raw, native: native, ipv6: v6err == nil}
}

// set applies one option; a refusal is logged once per option, and the
// connection goes on without it.
func (ss *sockets) set(raw syscall.RawConn, what string, apply func(fd int) error) bool {
	var err error
	if cerr := raw.Control(func(fd uintptr) { err = apply(int(fd)) }); cerr != nil {
		return false // the socket closed meanwhile
	}
	if err == nil {
		return true
	}
	ss.mu.Lock()
	first := !ss.warned[what]
	ss.warned[what] = true
	ss.mu.Unlock()
	if first {
		ss.log.Warn("TCP option not available here; connections go on without it", "option", what, "err", err)
	}
	return false
}

// congestion sets the tuned congestion control on a socket about to be
// paced, and gives an unpaced one back its own.
func (ss *sockets) congestion(s *socket, paced bool) {
	if len(ss.tune.Congestion) == 0 {
		return
	}
	if !paced {
		if s.native != "" {
			s.raw.Control(func(fd uintptr) { unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, s.native) })
		}
		return
	}
	ss.set(s.raw, "congestion control "+strings.Join(ss.tune.Congestion, " or "), func(fd int) (err error) {
		for _, cc := range ss.tune.Congestion {
			if err = unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, cc); err == nil {
				return nil
			}
		}
		return err
	})
}

// tcpiOptTimestamps is TCPI_OPT_TIMESTAMPS (linux/tcp.h): the connection
// carries TCP timestamps.
const tcpiOptTimestamps = 1

// payloadShare is the share of a full segment's bytes on the wire that is
// TCP payload: the segment size over the segment with its IP and TCP
// headers and, when the connection has them, TCP timestamps (1448 of 1500
// bytes with them over IPv4, 1460 without). tcpi_snd_mss already leaves the
// options out, and it is the peer's to lower, so the headers are added to it
// rather than read off this host's path MTU. 1448/1500 when TCP_INFO cannot
// be read (qemu-user returns only its first four bytes).
func payloadShare(info *unix.TCPInfo, ipv6 bool) float64 {
	if info == nil || info.Snd_mss == 0 {
		return 1448.0 / 1500
	}
	headers := 20 + 20
	if ipv6 {
		headers = 40 + 20
	}
	if info.Options&tcpiOptTimestamps != 0 {
		headers += 12
	}
	return float64(info.Snd_mss) / float64(int(info.Snd_mss)+headers)
}

// pace caps the sending rate of the sockets under conns at bytesPerSec on
// the wire (SO_MAX_PACING_RATE; 0: no cap). The kernel paces TCP payload,
// so each socket gets the rate less its own headers (payloadShare). It
// reports whether every socket found took it.
func (ss *sockets) pace(conns []addressed, bytesPerSec uint64) bool {
	ok := true
	for _, c := range conns {
		ss.mu.Lock()
		s := ss.byAddr[socketKey(c.LocalMultiaddr(), c.RemoteMultiaddr())]
		same := s != nil && s.pacing == bytesPerSec
		ss.mu.Unlock()
		if s == nil || same {
			continue
		}
		// At least 1: the kernel takes 0 as no pacing at all.
		v := max(uint64(float64(bytesPerSec)*payloadShare(tcpInfo(s.raw), s.ipv6)), 1)
		if bytesPerSec == 0 {
			v = ^uint64(0) // the kernel's "unlimited"
		}
		if ss.set(s.raw, "SO_MAX_PACING_RATE", func(fd int) error {
			return unix.SetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE, v)
		}) {
			ss.mu.Lock()
			s.pacing = bytesPerSec
			ss.mu.Unlock()
			ss.congestion(s, bytesPerSec > 0)
		} else {
			ok = false
		}
	}
	return ok
}

// SetPacing caps the rate at which this host sends to p, over every
// connection to p, at bytesPerSec on the wire: IP packets, headers
// included (0 lifts the cap). The kernel paces each segment out at that
// rate instead of in bursts as fast as the congestion window allows. An
// error says the kernel would not.
func (h *Host) SetPacing(p peer.ID, bytesPerSec uint64) error {
	var conns []addressed
	for _, c := range h.swarm.ConnsToPeer(p) {
		conns = append(conns, c)
	}
	if !h.socks.pace(conns, bytesPerSec) {
		return errors.New("host: SO_MAX_PACING_RATE refused")
	}
	return nil
}

// SetPacingPolicy gives the pacing (bytes/s on the wire, 0: none) of each new
// connection, by peer, once its handshake names the peer; SetPacing changes
// it later (a new window on a kept connection).
func (h *Host) SetPacingPolicy(rate func(p peer.ID) uint64) { h.socks.policy.Store(&rate) }

// paceNew paces a new connection as the policy says.
func (ss *sockets) paceNew(c transport.CapableConn) {
	if f := ss.policy.Load(); f != nil {
		if v := (*f)(c.RemotePeer()); v > 0 {
			ss.pace([]addressed{c}, v)
		}
	}
}

// SocketState is what TCP holds of one connection's writes.
type SocketState struct {
	Written uint64 // bytes written to the socket since it opened
	Unsent  int    // of which TCP has not sent yet
	Pacing  uint64 // the pacing cap set (bytes/s on the wire); 0: none
	// PayloadShare is the share of the socket's bytes on the wire that is
	// TCP payload (payloadShare): Written and Unsent count payload, a
	// pacing cap counts the wire, so a wait for the unsent bytes to leave
	// takes Unsent / (Pacing × PayloadShare).
	PayloadShare float64
}

// Socket reports the state of the TCP socket under c; ok is false when
// none is known (not TCP, or closed).
func (h *Host) Socket(c network.Conn) (st SocketState, ok bool) {
	h.socks.mu.Lock()
	s := h.socks.byAddr[socketKey(c.LocalMultiaddr(), c.RemoteMultiaddr())]
	h.socks.mu.Unlock()
	if s == nil {
		return st, false
	}
	info := tcpInfo(s.raw)
	if info == nil {
		return st, false // and a drain gated on zeros would wait for ever
	}
	h.socks.mu.Lock()
	st.Pacing = s.pacing
	h.socks.mu.Unlock()
	// Sent once (retransmissions apart), plus not sent yet.
	st.Written = info.Bytes_sent - info.Bytes_retrans + uint64(info.Notsent_bytes)
	st.Unsent = int(info.Notsent_bytes)
	st.PayloadShare = payloadShare(info, s.ipv6)
	return st, true
}

// PacingOf reports the pacing cap set on the connections to p (the first
// found; 0: none), for tests and status.
func (h *Host) PacingOf(p peer.ID) uint64 {
	for _, c := range h.swarm.ConnsToPeer(p) {
		h.socks.mu.Lock()
		s := h.socks.byAddr[socketKey(c.LocalMultiaddr(), c.RemoteMultiaddr())]
		h.socks.mu.Unlock()
		if s != nil {
			return s.pacing
		}
	}
	return 0
}

// tcpInfo is the kernel's view of a TCP socket, nil if it cannot be read.
// A connected socket always has a round-trip sample (its handshake): an
// answer without one did not come from the kernel (qemu-user fills the
// state and zeroes the rest) and is no answer.
func tcpInfo(raw syscall.RawConn) *unix.TCPInfo {
	if raw == nil {
		return nil
	}
	var info *unix.TCPInfo
	var err error
	if cerr := raw.Control(func(fd uintptr) {
		info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); cerr != nil || err != nil || info.Rtt == 0 {
		return nil
	}
	return info
}

// tunedUpgrader hands each raw connection to the socket registry before
// the wrapped upgrader (PSK, handshake) takes it.
type tunedUpgrader struct {
	transport.Upgrader
	socks *sockets
}

func (u *tunedUpgrader) Upgrade(ctx context.Context, t transport.Transport, c manet.Conn, dir network.Direction, p peer.ID, scope network.ConnManagementScope) (transport.CapableConn, error) {
	u.socks.add(c)
	cc, err := u.Upgrader.Upgrade(ctx, t, c, dir, p, scope)
	if err == nil {
		u.socks.paceNew(cc)
	}
	return cc, err
}

func (u *tunedUpgrader) UpgradeListener(t transport.Transport, l manet.Listener) transport.Listener {
	return u.UpgradeGatedMaListener(t, u.Upgrader.GateMaListener(l))
}

func (u *tunedUpgrader) UpgradeGatedMaListener(t transport.Transport, l transport.GatedMaListener) transport.Listener {
	l = &registeringListener{GatedMaListener: l, socks: u.socks}
	return &pacedListener{Listener: u.Upgrader.UpgradeGatedMaListener(t, l), socks: u.socks}
}

// pacedListener paces each accepted connection once its peer is known.
type pacedListener struct {
	transport.Listener
	socks *sockets
}

func (l *pacedListener) Accept() (transport.CapableConn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.socks.paceNew(c)
	}
	return c, err
}

type registeringListener struct {
	transport.GatedMaListener
	socks *sockets
}

func (l *registeringListener) Accept() (manet.Conn, network.ConnManagementScope, error) {
	c, scope, err := l.GatedMaListener.Accept()
	if err == nil {
		l.socks.add(c)
	}
	return c, scope, err
}

// PacingPassesThrough reports whether SO_MAX_PACING_RATE reaches a kernel
// that takes it. qemu-user (the cross tests) refuses the option without
// asking the kernel; gardend then goes on unpaced (SetPacing's error, the
// log line and the pacing_refused metric say so).
func PacingPassesThrough() bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return unix.SetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE, 1000) == nil
}
