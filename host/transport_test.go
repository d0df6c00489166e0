package host

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"golang.org/x/sys/unix"
)

// TestTuneTCPSetsKeepaliveAndLinger checks, on real loopback sockets made
// the way tcpTransport makes them (manet's dialer, listenTCP), that
// tuneTCP reaches the socket: keepalive on with a 30 s idle time, as
// go-libp2p's TCP transport set it (its probes then go every 15 s, Go's
// default interval, logged here), and linger 0. manet wraps each
// connection in its own type, so a method set that no longer matched
// would silently leave the kernel's defaults.
func TestTuneTCPSetsKeepaliveAndLinger(t *testing.T) {
	l, err := listenTCP(ma.StringCast("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dialed, inbound := loopbackPair(t, l)

	for name, c := range map[string]manet.Conn{"dialed": dialed, "accepted": inbound} {
		before := sockopts(t, c)
		tuneTCP(c)
		after := sockopts(t, c)
		if after.keepalive != 1 || after.idle != int(tcpKeepAlive/time.Second) {
			t.Errorf("%s: keepalive %d, idle %d s; want 1, %d (before: %+v)", name,
				after.keepalive, after.idle, int(tcpKeepAlive/time.Second), before)
		}
		t.Logf("%s: keepalive idle %d s, probe interval %d s", name, after.idle, after.interval)
		if after.linger.Onoff != 1 || after.linger.Linger != 0 {
			t.Errorf("%s: linger %+v, want on with 0 s (before: %+v)", name, after.linger, before.linger)
		}
	}
}

type tcpOpts struct {
	keepalive, idle, interval int
	linger                    unix.Linger
}

func sockopts(t *testing.T, c manet.Conn) tcpOpts {
	t.Helper()
	sc, ok := c.(syscall.Conn)
	if !ok {
		t.Fatalf("%T has no SyscallConn", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var o tcpOpts
	var gerr error
	err = raw.Control(func(fd uintptr) {
		var l *unix.Linger
		if o.keepalive, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE); gerr != nil {
			return
		}
		if o.idle, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE); gerr != nil {
			return
		}
		if o.interval, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPINTVL); gerr != nil {
			return
		}
		if l, gerr = unix.GetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER); gerr == nil {
			o.linger = *l
		}
	})
	if err != nil || gerr != nil {
		t.Fatalf("getsockopt: %v %v", err, gerr)
	}
	return o
}

// TestListenTCPIsPlainTCP checks that the host's listening socket, and a
// connection it accepts from gardend's dialer, are TCP sockets
// (SO_PROTOCOL IPPROTO_TCP), not Multipath TCP, which Go's listeners take
// by default on a kernel that has it (as this one may: logged).
func TestListenTCPIsPlainTCP(t *testing.T) {
	laddr := ma.StringCast("/ip4/127.0.0.1/tcp/0")
	if def, err := net.Listen("tcp4", "127.0.0.1:0"); err == nil {
		t.Logf("Go's default listener here: SO_PROTOCOL %d (IPPROTO_MPTCP is %d)", soProtocol(t, def.(syscall.Conn)), unix.IPPROTO_MPTCP)
		def.Close()
	}
	nl, err := listenPlainTCP(laddr)
	if err != nil {
		t.Fatal(err)
	}
	l, err := manet.WrapNetListener(nl)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if p := soProtocol(t, nl.(syscall.Conn)); p != unix.IPPROTO_TCP {
		t.Fatalf("listener SO_PROTOCOL %d, want IPPROTO_TCP (%d)", p, unix.IPPROTO_TCP)
	}
	dialed, inbound := loopbackPair(t, l)
	for name, c := range map[string]manet.Conn{"dialed": dialed, "accepted": inbound} {
		if p := soProtocol(t, c.(syscall.Conn)); p != unix.IPPROTO_TCP {
			t.Errorf("%s connection: SO_PROTOCOL %d, want IPPROTO_TCP (%d)", name, p, unix.IPPROTO_TCP)
		}
	}
}

func soProtocol(t *testing.T, c syscall.Conn) int {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var p int
	var gerr error
	if err := raw.Control(func(fd uintptr) { p, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PROTOCOL) }); err != nil || gerr != nil {
		t.Fatalf("getsockopt SO_PROTOCOL: %v %v", err, gerr)
	}
	return p
}

// loopbackPair dials l with gardend's dialer and returns both ends, closed
// when the test ends.
func loopbackPair(t *testing.T, l manet.Listener) (dialed, accepted manet.Conn) {
	t.Helper()
	in := make(chan manet.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(in)
			return
		}
		in <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d manet.Dialer
	dialed, err := d.DialContext(ctx, l.Multiaddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialed.Close() })
	accepted, ok := <-in
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { accepted.Close() })
	return dialed, accepted
}
