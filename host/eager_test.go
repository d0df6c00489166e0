package host

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"gardend/internal/testkeys"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	pnetconn "github.com/libp2p/go-libp2p/p2p/net/pnet"
	"github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	msmux "github.com/multiformats/go-multistream"
)

// stockTransport is go-libp2p's own TCP transport and upgrader, PSK
// included, as any libp2p peer on the private network would build them.
func stockTransport(t *testing.T, key crypto.PrivKey, psk pnet.PSK) transport.Transport {
	t.Helper()
	muxers := []upgrader.StreamMuxer{{ID: yamux.ID, Muxer: yamux.DefaultTransport}}
	secure, err := noise.New(noise.ID, key, muxers)
	if err != nil {
		t.Fatal(err)
	}
	rcmgr := &network.NullResourceManager{}
	upg, err := upgrader.New([]sec.SecureTransport{secure}, muxers, psk, rcmgr, nil)
	if err != nil {
		t.Fatal(err)
	}
	tpt, err := tcp.NewTCPTransport(upg, rcmgr, nil, tcp.DisableReuseport())
	if err != nil {
		t.Fatal(err)
	}
	return tpt
}

// TestEagerDialsAreStandardLibp2p: the eager dialler's bytes are the
// standard ones, so a stock go-libp2p listener accepts it, and a stock
// dialler reaches a gardend host.
func TestEagerDialsAreStandardLibp2p(t *testing.T) {
	psk := testkeys.PSK(t)
	stockKey := testkeys.SoftKey(t)
	stockID, err := peer.IDFromPrivateKey(stockKey)
	if err != nil {
		t.Fatal(err)
	}
	stock := stockTransport(t, stockKey, psk)
	l, err := stock.Listen(ma.StringCast("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h := newTestHost(t, testkeys.SoftKey(t), psk)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	accepted := make(chan transport.CapableConn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
			close(accepted)
			return
		}
		accepted <- c
	}()
	if err := h.Dial(ctx, stockID, l.Multiaddr()); err != nil {
		t.Fatalf("gardend dialling a stock listener: %v", err)
	}
	c := <-accepted
	if c == nil {
		t.FailNow()
	}
	defer c.Close()
	if c.RemotePeer() != h.ID() {
		t.Fatalf("stock listener sees %s, want %s", c.RemotePeer(), h.ID())
	}

	back, err := stock.Dial(ctx, h.Addrs()[0], h.ID())
	if err != nil {
		t.Fatalf("stock dialler reaching gardend: %v", err)
	}
	defer back.Close()
	s, err := back.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msg := "standard bytes both ways"
	rw := msmux.NewMSSelect(s, protocol.ID(protoEcho))
	if _, err := io.WriteString(rw, msg); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	got, err := io.ReadAll(rw)
	if err != nil || string(got) != msg {
		t.Fatalf("echo through a stock dialler: %q, %v", got, err)
	}
}

// TestEagerDialRefusedByAListenerWithoutNoise: a listener that does not
// speak Noise answers "na"; the dial fails with SecurityRefusedError
// instead of feeding its answer to Noise.
func TestEagerDialRefusedByAListenerWithoutNoise(t *testing.T) {
	psk := testkeys.PSK(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				pc, err := pnetconn.NewProtectedConn(psk, c)
				if err != nil {
					return
				}
				m := msmux.NewMultistreamMuxer[protocol.ID]()
				m.AddHandler("/tls/1.0.0", nil)
				m.Negotiate(pc) // answers "na" to /noise, then reads the rest as garbage
			}()
		}
	}()
	h := newTestHost(t, testkeys.SoftKey(t), psk)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	otherKey := testkeys.SoftKey(t)
	other, err := peer.IDFromPrivateKey(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := manet.FromNetAddr(l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	err = h.Dial(ctx, other, addr)
	var refused *SecurityRefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("dial to a listener without Noise: %v, want a SecurityRefusedError", err)
	}
	if refused.Offered != noise.ID {
		t.Fatalf("refused offer %q", refused.Offered)
	}
}

// flightProxy forwards TCP bytes both ways after a fixed delay, like a long
// link, and numbers flights: a chunk's flight is one more than the flight of
// the last chunk delivered to its sender when it arrives. A handshake that
// waits for an answer adds a flight; one that sends ahead does not. The
// delay only has to exceed the hosts' processing time for the count to be
// exact, and an error makes it larger, never smaller.
type flightProxy struct {
	l      net.Listener
	target string
	delay  time.Duration

	mu        sync.Mutex
	delivered [2]int // flight of the last chunk delivered to [0] the listener, [1] the dialler
}

func newFlightProxy(t *testing.T, target ma.Multiaddr, delay time.Duration) *flightProxy {
	t.Helper()
	_, addr, err := manet.DialArgs(target)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flightProxy{l: l, target: addr, delay: delay}
	t.Cleanup(func() { l.Close() })
	go p.serve()
	return p
}

func (p *flightProxy) addr(t *testing.T) ma.Multiaddr {
	a, err := manet.FromNetAddr(p.l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// toListener is the flight of the last chunk delivered to the listener.
func (p *flightProxy) toListener() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delivered[0]
}

func (p *flightProxy) serve() {
	for {
		d, err := p.l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			d.Close()
			continue
		}
		go p.pump(d, s, 0)
		go p.pump(s, d, 1)
	}
}

// pump carries from → to, delivering to side `to` (0 listener, 1 dialler).
func (p *flightProxy) pump(from, to net.Conn, side int) {
	type chunk struct {
		b      []byte
		flight int
		due    time.Time
	}
	q := make(chan chunk, 1024)
	go func() {
		defer to.Close()
		for c := range q {
			time.Sleep(time.Until(c.due))
			// Count it delivered before writing: the answer can reach
			// the proxy before Write returns.
			p.mu.Lock()
			p.delivered[side] = max(p.delivered[side], c.flight)
			p.mu.Unlock()
			if _, err := to.Write(c.b); err != nil {
				return
			}
		}
	}()
	defer close(q)
	buf := make([]byte, 64<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			p.mu.Lock()
			flight := p.delivered[1-side] + 1
			p.mu.Unlock()
			q <- chunk{b: append([]byte(nil), buf[:n]...), flight: flight, due: time.Now().Add(p.delay)}
		}
		if err != nil {
			return
		}
	}
}

// TestFirstMessageTravelsInTheDiallersSecondFlight counts the one-way
// flights from the first byte a dialler sends to its first stream message
// reaching the listener's handler, TCP's own handshake aside. A gardend
// dialler: proposal + Noise 1 | answer + Noise 2 | Noise 3 + message = 3.
// A stock go-libp2p dialler waits for the multistream answer first:
// proposal | answer | Noise 1 | Noise 2 | Noise 3 + message = 5. On the
// radio link each flight is 300 ms.
func TestFirstMessageTravelsInTheDiallersSecondFlight(t *testing.T) {
	psk := testkeys.PSK(t)
	server := newTestHost(t, testkeys.SoftKey(t), psk)
	arrived := make(chan struct{}, 1)
	server.SetStreamHandler("/gardend-test/first/1", func(s network.Stream) {
		defer s.Close()
		io.Copy(io.Discard, s)
		arrived <- struct{}{}
	})
	const delay = 150 * time.Millisecond

	send := func(t *testing.T, w io.Writer, closeWrite func() error) {
		if _, err := io.WriteString(w, "first message of the pass"); err != nil {
			t.Fatal(err)
		}
		if err := closeWrite(); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(t *testing.T, p *flightProxy) int {
		select {
		case <-arrived:
			return p.toListener()
		case <-time.After(20 * time.Second):
			t.Fatal("the message never reached the handler")
			return 0
		}
	}

	t.Run("gardend", func(t *testing.T) {
		p := newFlightProxy(t, server.Addrs()[0], delay)
		client := newTestHost(t, testkeys.SoftKey(t), psk)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		client.Peerstore().AddAddr(server.ID(), p.addr(t), time.Hour)
		s, err := client.NewStream(ctx, server.ID(), "/gardend-test/first/1")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		send(t, s, s.CloseWrite)
		if got := wait(t, p); got != 3 {
			t.Fatalf("the first message arrived in flight %d, want 3", got)
		}
	})
	t.Run("stock", func(t *testing.T) {
		p := newFlightProxy(t, server.Addrs()[0], delay)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := stockTransport(t, testkeys.SoftKey(t), psk).Dial(ctx, p.addr(t), server.ID())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := c.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		send(t, msmux.NewMSSelect(s, protocol.ID("/gardend-test/first/1")), s.CloseWrite)
		if got := wait(t, p); got != 5 {
			t.Fatalf("the stock dialler's first message arrived in flight %d, want 5 (is the proxy counting?)", got)
		}
	})
}

// TestForcedPrivateNetworkVariableIsRefusedClearly: the inner upgrader is
// built without the PSK (the eager upgrader applies it), so under
// LIBP2P_FORCE_PNET it would refuse every connection; NewHost says so.
func TestForcedPrivateNetworkVariableIsRefusedClearly(t *testing.T) {
	defer func(v bool) { pnet.ForcePrivateNetwork = v }(pnet.ForcePrivateNetwork)
	pnet.ForcePrivateNetwork = true
	_, err := New(Config{Key: testkeys.SoftKey(t), PSK: testkeys.PSK(t)})
	if err == nil || !strings.Contains(err.Error(), pnet.EnvKey) {
		t.Fatalf("NewHost under %s: %v", pnet.EnvKey, err)
	}
}
