package host

// This file shortens the opening of a connection by one round trip, which is
// 600 ms at every pass on the radio link. go-libp2p's upgrader negotiates the
// security protocol with multistream-select and waits for the listener's
// answer before it sends the first Noise message. gardend offers exactly one
// security protocol, so it knows the answer an accepting listener gives: the
// dialling side sends its proposal and the first Noise message together,
// hands multistream the expected answer at once, and checks the real answer
// when it arrives. The bytes on the wire are the standard ones, in the same
// order; only the wait is gone, so any libp2p listener that speaks Noise
// still accepts gardend's dials.
//
// The private-network protector must sit under this, so the upgrader is
// built without the PSK and the wrapper applies it (pnet) to every
// connection, dialled or accepted.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ipnet "github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/net/pnet"
	manet "github.com/multiformats/go-multiaddr/net"
	msmux "github.com/multiformats/go-multistream"
)

// SecurityRefusedError says the listener did not accept the one security
// protocol gardend offers: it is not a gardend peer, or it speaks another
// version.
type SecurityRefusedError struct {
	Offered protocol.ID
	Answer  []byte // what the listener sent instead, as far as it went
}

func (e *SecurityRefusedError) Error() string {
	return fmt.Sprintf("listener refused security protocol %s (answered %q)", e.Offered, e.Answer)
}

// eagerUpgrader applies the PSK to every connection and, on dialled ones,
// negotiates the security protocol without waiting; the wrapped upgrader
// (built without a PSK) does the rest.
type eagerUpgrader struct {
	inner    transport.Upgrader
	psk      ipnet.PSK
	security protocol.ID // the one protocol offered
}

var _ transport.Upgrader = (*eagerUpgrader)(nil)

func (u *eagerUpgrader) UpgradeListener(t transport.Transport, l manet.Listener) transport.Listener {
	return u.UpgradeGatedMaListener(t, u.inner.GateMaListener(l))
}

func (u *eagerUpgrader) GateMaListener(l manet.Listener) transport.GatedMaListener {
	return u.inner.GateMaListener(l)
}

// UpgradeGatedMaListener protects accepted connections after the transport
// has set its socket options on them (the protector hides the TCP socket).
func (u *eagerUpgrader) UpgradeGatedMaListener(t transport.Transport, l transport.GatedMaListener) transport.Listener {
	return u.inner.UpgradeGatedMaListener(t, &protectedListener{GatedMaListener: l, psk: u.psk})
}

func (u *eagerUpgrader) Upgrade(ctx context.Context, t transport.Transport, c manet.Conn, dir network.Direction, p peer.ID, scope network.ConnManagementScope) (transport.CapableConn, error) {
	pc, err := pnet.NewProtectedConn(u.psk, c)
	if err != nil {
		c.Close()
		scope.Done()
		return nil, fmt.Errorf("private network protector: %w", err)
	}
	var rw io.ReadWriter = pc
	if dir == network.DirOutbound {
		rw = &eagerSecurityConn{Conn: pc, answer: multistreamAnswer(u.security), offered: u.security}
	}
	return u.inner.Upgrade(ctx, t, &protectedConn{Conn: c, rw: rw}, dir, p, scope)
}

// multistreamAnswer is what a listener that accepts proto writes: the
// multistream header, then proto, each length-prefixed and newline-ended.
func multistreamAnswer(proto protocol.ID) []byte {
	var b []byte
	for _, tok := range []string{msmux.ProtocolID, string(proto)} {
		b = binary.AppendUvarint(b, uint64(len(tok)+1))
		b = append(b, tok...)
		b = append(b, '\n')
	}
	return b
}

// protectedListener applies the PSK to each accepted connection.
type protectedListener struct {
	transport.GatedMaListener
	psk ipnet.PSK
}

func (l *protectedListener) Accept() (manet.Conn, network.ConnManagementScope, error) {
	c, scope, err := l.GatedMaListener.Accept()
	if err != nil {
		return nil, nil, err
	}
	pc, err := pnet.NewProtectedConn(l.psk, c)
	if err != nil {
		// Only a malformed PSK fails here, and New checked its length.
		c.Close()
		scope.Done()
		return nil, nil, fmt.Errorf("private network protector: %w", err)
	}
	return &protectedConn{Conn: c, rw: pc}, scope, nil
}

// protectedConn is the TCP connection (addresses, deadlines, close) read and
// written through the protector.
type protectedConn struct {
	manet.Conn
	rw io.ReadWriter
}

func (c *protectedConn) Read(b []byte) (int, error)  { return c.rw.Read(b) }
func (c *protectedConn) Write(b []byte) (int, error) { return c.rw.Write(b) }

// eagerSecurityConn serves multistream the listener's expected answer at
// once, then checks the real answer before passing on what follows it (the
// Noise reply). Reads come from one goroutine at a time (multistream, then
// Noise); writes need no change.
type eagerSecurityConn struct {
	net.Conn
	answer  []byte
	offered protocol.ID
	served  int  // bytes of answer handed out ahead of the wire
	checked bool // the real answer has arrived and matched
}

func (c *eagerSecurityConn) Read(b []byte) (int, error) {
	if c.served < len(c.answer) {
		n := copy(b, c.answer[c.served:])
		c.served += n
		return n, nil
	}
	if !c.checked {
		got := make([]byte, len(c.answer))
		n, err := io.ReadFull(c.Conn, got)
		if !bytes.Equal(got[:n], c.answer[:n]) {
			return 0, &SecurityRefusedError{Offered: c.offered, Answer: got[:n]}
		}
		if err != nil {
			return 0, err
		}
		c.checked = true
	}
	return c.Conn.Read(b)
}
