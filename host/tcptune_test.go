package host

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"gardend/internal/poll"
	"gardend/internal/testkeys"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/sys/unix"
)

// sockopt reads an option of the socket under c as the kernel holds it.
func sockopt(t *testing.T, h *Host, c network.Conn, read func(fd int) error) {
	t.Helper()
	h.socks.mu.Lock()
	s := h.socks.byAddr[socketKey(c.LocalMultiaddr(), c.RemoteMultiaddr())]
	h.socks.mu.Unlock()
	if s == nil {
		t.Fatalf("no socket registered under %s", c.RemoteMultiaddr())
	}
	var err error
	if cerr := s.raw.Control(func(fd uintptr) { err = read(int(fd)) }); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestPacingReachesTheSocketsOfBothEnds(t *testing.T) {
	psk := testkeys.PSK(t)
	a := newTestHost(t, testkeys.SoftKey(t), psk)
	b := newTestHost(t, testkeys.SoftKey(t), psk)
	if err := echo(t, a, b); err != nil {
		t.Fatal(err)
	}
	if !PacingPassesThrough() {
		if err := a.SetPacing(b.ID(), 7640); err == nil {
			t.Error("SetPacing reported success where the option is refused")
		}
		if p := a.PacingOf(b.ID()); p != 0 {
			t.Errorf("PacingOf = %d after a refusal, want 0", p)
		}
		if err := echo(t, a, b); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, tc := range []struct {
		h    *Host
		to   peer.ID
		rate uint64
	}{
		{a, b.ID(), 7640},    // the dialled side
		{b, a.ID(), 3000},    // the accepted side
		{a, b.ID(), 0},       // lifted: the kernel's "unlimited"
		{b, a.ID(), 1 << 20}, // changed on a live connection
	} {
		if err := tc.h.SetPacing(tc.to, tc.rate); err != nil {
			t.Fatal(err)
		}
		c := onlyConn(t, tc.h, tc.to)
		got, err := tc.h.socketPacing(c)
		if err != nil {
			t.Fatal(err)
		}
		// The kernel paces payload: the rate on the wire less this
		// socket's headers, IPv4 and TCP, and TCP timestamps when the
		// connection has them (loopback: segments of its MSS, half the
		// largest window, in a 64 KiB MTU).
		var info *unix.TCPInfo
		sockopt(t, tc.h, c, func(fd int) (err error) {
			info, err = unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
			return err
		})
		headers := 40
		if info.Options&tcpiOptTimestamps != 0 {
			headers += 12
		}
		want := uint64(float64(tc.rate) * float64(info.Snd_mss) / float64(int(info.Snd_mss)+headers))
		if tc.rate == 0 {
			want = 0xffffffff
		}
		if info.Snd_mss == 0 || got != want {
			t.Errorf("pacing %d on the wire: the kernel holds %d, want %d (MSS %d, headers %d)", tc.rate, got, want, info.Snd_mss, headers)
		}
		if p := tc.h.PacingOf(tc.to); p != tc.rate {
			t.Errorf("PacingOf = %d, want %d", p, tc.rate)
		}
	}
	// The paced connection still carries data.
	if err := echo(t, a, b); err != nil {
		t.Fatal(err)
	}
}

func TestPayloadShareIsTheSegmentOverItsPacket(t *testing.T) {
	for _, tc := range []struct {
		name string
		info *unix.TCPInfo
		ipv6 bool
		want float64
	}{
		{"TCP timestamps", &unix.TCPInfo{Snd_mss: 1448, Pmtu: 1500, Options: tcpiOptTimestamps}, false, 1448.0 / 1500},
		{"no timestamps", &unix.TCPInfo{Snd_mss: 1460, Pmtu: 1500}, false, 1460.0 / 1500},
		{"IPv6, timestamps", &unix.TCPInfo{Snd_mss: 1428, Pmtu: 1500, Options: tcpiOptTimestamps}, true, 1428.0 / 1500},
		{"IPv6", &unix.TCPInfo{Snd_mss: 1440, Pmtu: 1500}, true, 1440.0 / 1500},
		// The peer's radio has a 576-byte MTU: its MSS bounds this side's
		// segments while this host's own path MTU stays 1500.
		{"a peer's smaller MSS", &unix.TCPInfo{Snd_mss: 536, Pmtu: 1500}, false, 536.0 / 576},
		{"unreadable", nil, false, 1448.0 / 1500},
		{"qemu-user: the first four bytes only", &unix.TCPInfo{State: 1}, false, 1448.0 / 1500},
	} {
		if got := payloadShare(tc.info, tc.ipv6); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func tunedHost(t *testing.T, tune TCPTuning, log *slog.Logger, psk []byte) *Host {
	t.Helper()
	h, err := New(Config{Key: testkeys.SoftKey(t), PSK: psk, Listen: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
		DialTimeout: 5 * time.Second, TCP: tune, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestTCPTuningIsSetOnDialledAndAcceptedSockets(t *testing.T) {
	psk := testkeys.PSK(t)
	tune := TCPTuning{Congestion: []string{"no-such-algorithm", "reno"}, NotSentLowat: 16 << 10} // reno is built in and always allowed
	a := tunedHost(t, tune, nil, psk)
	b := tunedHost(t, tune, nil, psk)
	b.SetStreamHandler(protoEcho, func(s network.Stream) { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Dial(ctx, b.ID(), b.Addrs()...); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the accepted connection", 10*time.Second, func() bool { return len(b.Network().ConnsToPeer(a.ID())) == 1 })
	for name, end := range map[string]struct {
		h  *Host
		to peer.ID
	}{"dialled": {a, b.ID()}, "accepted": {b, a.ID()}} {
		var cc string
		var lowat int
		sockopt(t, end.h, onlyConn(t, end.h, end.to), func(fd int) (err error) {
			if cc, err = unix.GetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION); err != nil {
				return err
			}
			lowat, err = unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT)
			return err
		})
		if cc != systemCongestion(t) || lowat != 16<<10 {
			t.Errorf("%s socket, unpaced: congestion %q, notsent lowat %d; want the system's %q, %d", name, cc, lowat, systemCongestion(t), 16<<10)
		}
		if !PacingPassesThrough() {
			continue
		}
		// Paced, the tuned congestion control; unpaced again, its own.
		for _, rate := range []uint64{8000, 0} {
			if err := end.h.SetPacing(end.to, rate); err != nil {
				t.Fatal(err)
			}
			sockopt(t, end.h, onlyConn(t, end.h, end.to), func(fd int) (err error) {
				cc, err = unix.GetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION)
				return err
			})
			if want := map[bool]string{true: "reno", false: systemCongestion(t)}[rate > 0]; cc != want {
				t.Errorf("%s socket, paced at %d B/s: congestion %q, want %q", name, rate, cc, want)
			}
		}
	}
}

// systemCongestion is the congestion control new sockets get here.
func systemCongestion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
	if err != nil {
		t.Skipf("no congestion control to compare with: %v", err)
	}
	return strings.TrimSpace(string(b))
}

func TestAnUnavailableTCPOptionIsLoggedOnceAndTheConnectionWorks(t *testing.T) {
	psk := testkeys.PSK(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	a := tunedHost(t, TCPTuning{Congestion: []string{"no-such-algorithm"}}, log, psk)
	b := newTestHost(t, testkeys.SoftKey(t), psk)
	c := newTestHost(t, testkeys.SoftKey(t), psk)
	if !PacingPassesThrough() {
		t.Skip("qemu-user refuses pacing, before the congestion control is ever asked for")
	}
	for _, to := range []*Host{b, c} {
		if err := echo(t, a, to); err != nil {
			t.Fatalf("a connection with a refused option: %v", err)
		}
		// The congestion control is asked for when a connection is paced.
		if err := a.SetPacing(to.ID(), 8000); err != nil {
			t.Fatal(err)
		}
		if err := echo(t, a, to); err != nil {
			t.Fatalf("a paced connection with a refused option: %v", err)
		}
	}
	if n := bytes.Count(logs.Bytes(), []byte("TCP option not available")); n != 1 {
		t.Errorf("%d log lines for the refused option, want 1:\n%s", n, logs.String())
	}
	if !bytes.Contains(logs.Bytes(), []byte("no-such-algorithm")) {
		t.Errorf("the log line does not name the option:\n%s", logs.String())
	}
}

func TestClosedSocketsLeaveTheRegistry(t *testing.T) {
	psk := testkeys.PSK(t)
	a := newTestHost(t, testkeys.SoftKey(t), psk)
	peers := []*Host{newTestHost(t, testkeys.SoftKey(t), psk), newTestHost(t, testkeys.SoftKey(t), psk), newTestHost(t, testkeys.SoftKey(t), psk)}
	// Sweeps come when the registry has doubled (at least minSweep); here
	// the fourth connection is the one that finds three closed sockets.
	a.socks.mu.Lock()
	a.socks.sweepAt = len(peers)
	a.socks.mu.Unlock()
	for _, p := range peers {
		if err := echo(t, a, p); err != nil {
			t.Fatal(err)
		}
		a.Network().ClosePeer(p.ID()) // closed before the next one comes
	}
	poll.Until(t, "closed connections", 10*time.Second, func() bool { return len(a.Network().Conns()) == 0 })
	if err := echo(t, a, peers[0]); err != nil {
		t.Fatal(err)
	}
	a.socks.mu.Lock()
	n := len(a.socks.byAddr)
	a.socks.mu.Unlock()
	if n != 1 {
		t.Errorf("%d sockets registered with one connection open, want 1", n)
	}
}

func TestSocketCountsWhatWasWritten(t *testing.T) {
	psk := testkeys.PSK(t)
	a := newTestHost(t, testkeys.SoftKey(t), psk)
	b := newTestHost(t, testkeys.SoftKey(t), psk)
	if err := echo(t, a, b); err != nil {
		t.Fatal(err)
	}
	c := onlyConn(t, a, b.ID())
	before, ok := a.Socket(c)
	if !ok {
		// TCP_INFO does not come through here (qemu-user zeroes it): no
		// state, so no drain is gated on it; pacing is refused there too.
		if PacingPassesThrough() {
			t.Fatal("no socket state for a live connection, yet pacing works")
		}
		return
	}
	if before.Written == 0 {
		t.Fatal("TCP_INFO reports nothing written after an echo")
	}
	paced := a.SetPacing(b.ID(), 50000) == nil
	if paced != PacingPassesThrough() {
		t.Fatalf("SetPacing succeeded: %v, but the option passes through: %v", paced, !paced)
	}
	s, err := a.NewStream(context.Background(), b.ID(), protoEcho)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	const n = 40000
	go s.Write(make([]byte, n)) // the echo comes back; nobody reads it
	poll.Until(t, "the socket to take the stream's bytes", 10*time.Second, func() bool {
		st, ok := a.Socket(c)
		return ok && st.Written-before.Written >= n
	})
	st, _ := a.Socket(c)
	if paced && st.Pacing != 50000 || st.Unsent < 0 || uint64(st.Unsent) > st.Written {
		t.Errorf("socket state %+v", st)
	}
}

// socketPacing reads the kernel's current pacing cap of the socket under
// c, for tests: what the kernel holds, not what was asked.
func (h *Host) socketPacing(c network.Conn) (uint64, error) {
	h.socks.mu.Lock()
	s := h.socks.byAddr[socketKey(c.LocalMultiaddr(), c.RemoteMultiaddr())]
	h.socks.mu.Unlock()
	if s == nil {
		return 0, fmt.Errorf("no socket known for %s", c.RemoteMultiaddr())
	}
	var v uint64
	var err error
	if cerr := s.raw.Control(func(fd uintptr) {
		var n int
		n, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE)
		v = uint64(uint32(n))
	}); cerr != nil {
		return 0, cerr
	}
	return v, err
}
