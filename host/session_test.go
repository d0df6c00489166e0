package host

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gardend/internal/poll"
	"gardend/internal/testkeys"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	pnet "github.com/libp2p/go-libp2p/core/pnet"
	yamuxtpt "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-yamux/v5"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"golang.org/x/sys/unix"
)

// TestKeptMuxerConfig: a kept peer's yamux session has no keepalive and no
// round-trip pings (the only writers left in a gap); others keep
// go-libp2p's defaults. Both carry the per-connection stream cap.
func TestKeptMuxerConfig(t *testing.T) {
	m := &keptMuxer{kept: newKeptPeers(newSockets(TCPTuning{}, nil)), streamsPerConn: 7}
	def := yamuxtpt.DefaultTransport
	plain, kept := m.config(false), m.config(true)
	if plain.EnableKeepAlive != def.EnableKeepAlive || plain.MeasureRTTInterval != def.MeasureRTTInterval || plain.MaxIncomingStreams != 7 {
		t.Errorf("a peer not kept: %+v", plain)
	}
	if kept.EnableKeepAlive || kept.MeasureRTTInterval < 10*365*24*time.Hour || kept.MaxIncomingStreams != 7 {
		t.Errorf("a kept peer: keepalive=%v rtt=%v streams=%d", kept.EnableKeepAlive, kept.MeasureRTTInterval, kept.MaxIncomingStreams)
	}
}

// keptHosts are two real hosts on loopback that keep each other's sessions.
func keptHosts(t *testing.T) (a, b *Host, bKey crypto.PrivKey, psk pnet.PSK) {
	psk = testkeys.PSK(t)
	bKey = testkeys.SoftKey(t)
	a, b = newTestHost(t, testkeys.SoftKey(t), psk), newTestHost(t, bKey, psk)
	a.KeepAcrossGaps(b.ID())
	b.KeepAcrossGaps(a.ID())
	return a, b, bKey, psk
}

func onlyConn(t *testing.T, h *Host, p peer.ID) network.Conn {
	t.Helper()
	cs := h.Network().ConnsToPeer(p)
	if len(cs) != 1 {
		t.Fatalf("%d connections to %s, want 1", len(cs), p)
	}
	return cs[0]
}

// settled waits until the session between a and b is quiet both ways at
// once: everything either sent is acknowledged (the kernel may delay an
// ACK), every stream is gone (the other end's close of the last one may
// still be on its way), and each side's yamux session has had the answer to
// the ping it sends once as it starts (a kept session sends no other). Only
// then does a session go dormant: a byte still to come would make it
// unacked, or wake it as it is read.
func settled(t *testing.T, a, b *Host) {
	t.Helper()
	quiet := func(h *Host, p peer.ID) bool {
		for _, c := range h.Network().ConnsToPeer(p) {
			k := keptOf(c)
			var s *yamux.Session
			if k == nil || k.unacked() != 0 || len(c.GetStreams()) > 0 || !c.As(&s) || s.RTT() == 0 {
				return false
			}
		}
		return true
	}
	poll.Until(t, "the session quiet both ways", time.Minute, func() bool { return quiet(a, b.ID()) && quiet(b, a.ID()) })
}

// needTCPInfo skips a test where the kernel's TCP_INFO cannot be read
// (qemu-user does not pass it through): without it a session's unacked
// bytes are unknown and it is never kept, as it should not be.
func needTCPInfo(t *testing.T, c network.Conn) {
	t.Helper()
	if k := keptOf(c); k == nil || k.tcpInfo() == nil {
		t.Skip("TCP_INFO cannot be read on this platform (qemu-user): sessions are not kept here")
	}
}

// keepAliveOn reads SO_KEEPALIVE from a kept session's socket.
func keepAliveOn(t *testing.T, c network.Conn) bool {
	t.Helper()
	k := keptOf(c)
	if k == nil || k.raw == nil {
		t.Fatalf("connection %s is not kept with its socket known", c.ID())
	}
	raw := k.raw
	var v int
	var gerr error
	if err := raw.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE) }); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	return v != 0
}

// TestKeptSessionSleepsAndWakes: a dormant session is hidden from the
// swarm (not connected, a dial makes a fresh connection); woken at AOS it
// answers, carries streams again and the fresh connection made meanwhile is
// closed; the ping wakes the other end's side.
func TestKeptSessionSleepsAndWakes(t *testing.T) {
	a, b, _, psk := keptHosts(t)
	plainKey := testkeys.SoftKey(t)
	plain := newTestHost(t, plainKey, psk)
	if err := echo(t, a, b); err != nil {
		t.Fatal(err)
	}
	kept := onlyConn(t, a, b.ID())
	if keptOf(kept) == nil || keptOf(onlyConn(t, b, a.ID())) == nil {
		t.Fatal("the connection between kept peers is not a kept session")
	}
	if keepAliveOn(t, kept) || keepAliveOn(t, onlyConn(t, b, a.ID())) {
		t.Fatal("TCP keepalive still on under a kept session")
	}
	needTCPInfo(t, kept)
	if a.SessionRTT(b.ID()) <= 0 {
		t.Fatal("no round trip read from the kept session's socket")
	}
	if err := echo(t, plain, a); err != nil { // plain is not kept by a
		t.Fatal(err)
	}
	if keptOf(onlyConn(t, a, plain.ID())) != nil {
		t.Fatal("a peer not kept got a kept session")
	}

	settled(t, a, b)
	if n, unacked, why := a.SleepSessions(b.ID()); n != 1 {
		t.Fatalf("SleepSessions = %d, want 1 (%d unacked: %s)", n, unacked, why)
	}
	if n, unacked, why := b.SleepSessions(a.ID()); n != 1 {
		t.Fatalf("b's side did not go dormant (%d bytes unacknowledged: %s)", unacked, why)
	}
	if a.Network().Connectedness(b.ID()) == network.Connected {
		t.Fatal("a dormant session counts as connected")
	}
	if ds := a.DormantSessions(b.ID()); len(ds) != 1 || ds[0] != kept {
		t.Fatalf("dormant sessions: %v", ds)
	}
	// A dial in the guard before AOS makes a fresh connection.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if got := len(a.Network().ConnsToPeer(b.ID())); got != 2 {
		t.Fatalf("%d connections after a dial past the dormant one, want 2", got)
	}

	if on, _ := a.OnProbation(b.ID()); on {
		t.Fatal("on probation before any wake")
	}
	readyCalled := false
	var heard <-chan struct{}
	found, alive := a.ResumeSessions(ctx, b.ID(), func() {
		readyCalled = true
		var on bool
		if on, heard = a.OnProbation(b.ID()); !on || heard == nil {
			t.Error("a woken session is not on probation before the other end answers")
		}
	})
	if !found || !alive || !readyCalled {
		t.Fatalf("resume: found=%v alive=%v ready=%v", found, alive, readyCalled)
	}
	select {
	case <-heard: // the ping's answer ended it
	default:
		t.Fatal("probation still on after the other end answered")
	}
	if on, _ := a.OnProbation(b.ID()); on {
		t.Fatal("OnProbation after the answer")
	}
	if c := onlyConn(t, a, b.ID()); c != kept {
		t.Fatalf("after resume a holds %s, not the kept %s", c.ID(), kept.ID())
	}
	if len(b.DormantSessions(a.ID())) != 0 || b.Network().Connectedness(a.ID()) != network.Connected {
		t.Fatal("the ping at AOS did not wake b's side")
	}
	if err := echo(t, a, b); err != nil {
		t.Fatal(err)
	}
	if c := onlyConn(t, a, b.ID()); c != kept {
		t.Fatalf("the stream went on %s, not the kept %s", c.ID(), kept.ID())
	}

	// A session still dormant at the next window's end was not woken by
	// that window: it is closed, not kept for another gap.
	settled(t, a, b)
	if n, _, _ := a.SleepSessions(b.ID()); n != 1 {
		t.Fatal("the resumed session did not go dormant again")
	}
	if n, _, _ := a.SleepSessions(b.ID()); n != 0 || len(a.Network().ConnsToPeer(b.ID())) != 0 {
		t.Fatalf("a session dormant through a whole window was kept (slept %d)", n)
	}
}

// TestAFreshDialGivesWayToAKeptSessionThatAnswers: a dial made past a
// dormant session (the contact loop's, from the guard before AOS) is
// dropped once that session answers its wake, so the rest of its handshake
// never crosses the link; Connect then reports the peer reached.
func TestAFreshDialGivesWayToAKeptSessionThatAnswers(t *testing.T) {
	a, b, _, _ := keptHosts(t)
	if err := echo(t, a, b); err != nil {
		t.Fatal(err)
	}
	kept := onlyConn(t, a, b.ID())
	needTCPInfo(t, kept)
	settled(t, a, b)
	if n, unacked, why := a.SleepSessions(b.ID()); n != 1 {
		t.Fatalf("SleepSessions = %d, want 1 (%d unacked: %s)", n, unacked, why)
	}
	if n, _, _ := b.SleepSessions(a.ID()); n != 1 {
		t.Fatal("b's side did not go dormant")
	}

	// b seen at an address where the TCP handshake completes and nothing
	// more ever comes: a fresh dial there stays in its security handshake.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	accepted, dropped := make(chan struct{}), make(chan struct{})
	go func() {
		c, err := silent.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		close(accepted)
		io.Copy(io.Discard, c) // until the dialler lets go
		close(dropped)
	}()
	silentAddr, err := manet.FromNetAddr(silent.Addr())
	if err != nil {
		t.Fatal(err)
	}
	a.Peerstore().ClearAddrs(b.ID())

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	raced, stopRace := a.raceKeptWake(ctx, b.ID())
	defer stopRace()
	dialed := make(chan error, 1)
	go func() { dialed <- a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{silentAddr}}) }()
	select {
	case <-accepted: // the fresh dial is in its handshake
	case err := <-dialed:
		t.Fatalf("Connect returned before the dial reached b's address: %v", err)
	}
	select {
	case <-raced.Done():
		t.Fatal("the race ended before any wake")
	default:
	}

	if found, alive := a.ResumeSessions(ctx, b.ID(), func() {}); !found || !alive {
		t.Fatalf("resume: found=%v alive=%v", found, alive)
	}
	// Without the race both would wait for ctx's 2 minutes.
	if <-raced.Done(); raced.Err() != context.Canceled {
		t.Fatalf("the race ended by %v, not by the kept session's answer", raced.Err())
	}
	if err := <-dialed; err != nil {
		t.Fatalf("Connect after the kept session answered: %v", err)
	}
	<-dropped
	if c := onlyConn(t, a, b.ID()); c != kept {
		t.Fatalf("a holds %s, not the kept %s", c.ID(), kept.ID())
	}
}

// radioLink relays TCP connections to target over loopback, as a radio
// link would carry them: cut stops carrying the bytes of the connections
// open at that moment without closing anything (neither end hears of it),
// while later connections are carried.
type radioLink struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cutOff []*atomic.Bool // one per relayed connection
}

func newRadioLink(t *testing.T, target string) *radioLink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &radioLink{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				down.Close()
				continue
			}
			cut := new(atomic.Bool)
			l.mu.Lock()
			l.cutOff = append(l.cutOff, cut)
			l.mu.Unlock()
			t.Cleanup(func() { down.Close(); up.Close() })
			go l.carry(down, up, cut)
			go l.carry(up, down, cut)
		}
	}()
	return l
}

// carry copies src to dst until src ends; past the cut it drops what it
// reads and never passes an end on.
func (l *radioLink) carry(src, dst net.Conn, cut *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !cut.Load() {
			dst.Write(buf[:n])
		}
		if err != nil {
			if !cut.Load() {
				dst.Close()
			}
			return
		}
	}
}

func (l *radioLink) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.cutOff {
		c.Store(true)
	}
}

func (l *radioLink) addr(t *testing.T) ma.Multiaddr {
	m, err := manet.FromNetAddr(l.ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDeadKeptSessionGivesWayToAFreshOne: the other end restarts during the
// gap (same identity and address) and the old connection's end never
// reaches this side. At AOS the kept session is woken, but what is sent
// then goes on the fresh connection dialled in the guard, and the kept
// session, which does not answer its ping, is closed.
func TestDeadKeptSessionGivesWayToAFreshOne(t *testing.T) {
	a, b, bKey, psk := keptHosts(t)
	target := b.Addrs()[0]
	hostPort, err := manet.ToNetAddr(target)
	if err != nil {
		t.Fatal(err)
	}
	link := newRadioLink(t, hostPort.String())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	via := peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{link.addr(t)}}
	if err := a.Connect(ctx, via); err != nil {
		t.Fatal(err)
	}
	kept := onlyConn(t, a, b.ID())
	needTCPInfo(t, kept)
	// A round trip on the session: all b sent before has reached a (a
	// late byte would wake the dormant session, as it should).
	s, err := a.NewStream(ctx, b.ID(), protoEcho)
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("last of the pass"))
	s.CloseWrite()
	if _, err := io.ReadAll(s); err != nil {
		t.Fatal(err)
	}
	s.Close()
	settled(t, a, b)
	if n, unacked, why := a.SleepSessions(b.ID()); n != 1 {
		t.Fatalf("not dormant (%d unacked: %s)", unacked, why)
	}
	link.cut() // LOS
	b.Close()  // the ground restarts in the gap
	b2, err := New(Config{Key: bKey, PSK: psk, Listen: []ma.Multiaddr{target}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b2.Close() })
	b2.SetStreamHandler(protoEcho, func(s network.Stream) {
		defer s.Close()
		io.Copy(s, s)
	})
	if a.Network().Connectedness(b.ID()) == network.Connected || len(a.DormantSessions(b.ID())) != 1 {
		t.Fatalf("the dead session's end reached the nano: the test does not test what it says (connectedness %v, dormant %d, conns %d)", a.Network().Connectedness(b.ID()), len(a.DormantSessions(b.ID())), len(a.Network().ConnsToPeer(b.ID())))
	}
	// The guard before AOS: a fresh dial over the link, up again.
	if err := a.Connect(ctx, via); err != nil {
		t.Fatal(err)
	}
	var sentOn network.Conn
	var echoErr error
	found, alive := a.ResumeSessions(ctx, b.ID(), func() {
		// AOS: the first message of the pass, while the kept session is
		// awake and not yet known dead.
		s, err := a.NewStream(ctx, b.ID(), protoEcho)
		if err != nil {
			echoErr = err
			return
		}
		defer s.Close()
		sentOn = s.Conn()
		if _, err := s.Write([]byte("first")); err != nil {
			echoErr = err
			return
		}
		s.CloseWrite()
		got, err := io.ReadAll(s)
		if err == nil && string(got) != "first" {
			err = fmt.Errorf("echo returned %q", got)
		}
		echoErr = err
	})
	if echoErr != nil || sentOn == kept {
		t.Fatalf("the first message of the pass: err=%v, on the dead kept session=%v", echoErr, sentOn == kept)
	}
	if !found || alive {
		t.Fatalf("resume: found=%v alive=%v, want a dead session found", found, alive)
	}
	if !kept.IsClosed() {
		t.Fatal("the dead kept session was not closed")
	}
	if c := onlyConn(t, a, b.ID()); c == kept || a.Network().Connectedness(b.ID()) != network.Connected {
		t.Fatal("the fresh connection did not carry on")
	}
}
