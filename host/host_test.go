package host

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gardend/internal/testkeys"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/pnet"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

const protoEcho = "/gardend-test/echo/1"

func newTestHost(t testing.TB, key crypto.PrivKey, psk pnet.PSK) *Host {
	t.Helper()
	h, err := New(Config{
		Key: key, PSK: psk,
		Listen:      []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	h.SetStreamHandler(protoEcho, func(s network.Stream) {
		defer s.Close()
		io.Copy(s, s)
	})
	return h
}

// echo opens a stream from a to b and checks a round trip.
func echo(t testing.TB, a, b *Host) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Dial(ctx, b.ID(), b.Addrs()...); err != nil {
		return err
	}
	s, err := a.NewStream(ctx, b.ID(), protoEcho)
	if err != nil {
		return err
	}
	defer s.Close()
	msg := []byte("over noise and yamux")
	if _, err := s.Write(msg); err != nil {
		return err
	}
	s.CloseWrite()
	got, err := io.ReadAll(s)
	if err != nil {
		return err
	}
	if string(got) != string(msg) {
		t.Fatalf("echo returned %q", got)
	}
	return nil
}

func TestHostsHandshakeOnThePrivateNetwork(t *testing.T) {
	psk := testkeys.PSK(t)
	a := newTestHost(t, testkeys.SoftKey(t), psk)
	b := newTestHost(t, testkeys.SoftKey(t), psk)
	if err := echo(t, a, b); err != nil {
		t.Fatal(err)
	}
}

func TestHostWithoutThePSKCannotConnect(t *testing.T) {
	a := newTestHost(t, testkeys.SoftKey(t), testkeys.PSK(t))
	b := newTestHost(t, testkeys.SoftKey(t), testkeys.PSK(t)) // another network key
	if err := echo(t, a, b); err == nil {
		t.Fatal("connected across different PSKs")
	}
}

func TestGaterRefusesBlacklistedPeers(t *testing.T) {
	psk := testkeys.PSK(t)
	a := newTestHost(t, testkeys.SoftKey(t), psk)
	b := newTestHost(t, testkeys.SoftKey(t), psk)
	b.Gater.Block(a.ID(), "test")
	if err := echo(t, a, b); err == nil {
		t.Fatal("blacklisted peer got through")
	}
	if b.Gater.Refused.Load() == 0 {
		t.Fatal("refusal not counted")
	}
	b.Gater.Unblock(a.ID())
	a.ClearBackoff(b.ID())
	if err := echo(t, a, b); err != nil {
		t.Fatalf("after unblock: %v", err)
	}
}

// At a pass's acquisition the nano and its master dial each other at the
// same moment. If both dialled from their listening ports (TCP reuseport),
// crossing SYNs would make one TCP connection on which both sides believe
// they are the initiator, and the Noise handshake fails ("message is too
// short"): seen under qemu. Dials must come from ephemeral ports, so each
// crossing dial is its own connection.
func TestCrossingDialsBothSucceed(t *testing.T) {
	psk := testkeys.PSK(t)
	a := newTestHost(t, testkeys.SoftKey(t), psk)
	b := newTestHost(t, testkeys.SoftKey(t), psk)
	for round := 0; round < 30; round++ {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, pair := range [][2]*Host{{a, b}, {b, a}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				errs[i] = pair[0].Dial(ctx, pair[1].ID(), pair[1].Addrs()...)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		for _, c := range a.Network().ConnsToPeer(b.ID()) {
			if c.Stat().Direction == network.DirOutbound && port(t, c.LocalMultiaddr()) == port(t, a.Addrs()[0]) {
				t.Fatalf("round %d: dial from the listening port %s", round, c.LocalMultiaddr())
			}
		}
		a.Network().ClosePeer(b.ID())
		b.Network().ClosePeer(a.ID())
		a.ClearBackoff(b.ID())
		b.ClearBackoff(a.ID())
	}
}

func port(t testing.TB, m ma.Multiaddr) string {
	p, err := m.ValueForProtocol(ma.P_TCP)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHostAddrs checks what a host advertises: its listen addresses as they
// are when each names an IP, an unspecified one (0.0.0.0) expanded to the
// machine's interfaces, loopback included, on the same port; and that the
// "node started" log line writes them.
func TestHostAddrs(t *testing.T) {
	psk := testkeys.PSK(t)
	specific := newTestHost(t, testkeys.SoftKey(t), psk)
	got, listen := specific.Addrs(), specific.swarm.ListenAddresses()
	if len(got) != 1 || len(listen) != 1 || !got[0].Equal(listen[0]) {
		t.Fatalf("a host listening on 127.0.0.1 advertises %v, want its listen address %v", got, listen)
	}
	if port(t, got[0]) == "0" {
		t.Fatalf("advertised %v without its port", got[0])
	}

	wildHost, err := New(Config{Key: testkeys.SoftKey(t), PSK: psk, Listen: []ma.Multiaddr{ma.StringCast("/ip4/0.0.0.0/tcp/0")}})
	if err != nil {
		t.Fatal(err)
	}
	defer wildHost.Close()
	wildHost.SetStreamHandler(protoEcho, func(s network.Stream) {
		defer s.Close()
		io.Copy(s, s)
	})
	wild := wildHost.swarm.ListenAddresses()[0]
	loop := ma.StringCast("/ip4/127.0.0.1/tcp/" + port(t, wild))
	expanded := wildHost.Addrs()
	if !slices.ContainsFunc(expanded, loop.Equal) {
		t.Fatalf("a host listening on %v advertises %v, without %v", wild, expanded, loop)
	}
	for _, a := range expanded {
		if manet.IsIPUnspecified(a) {
			t.Fatalf("advertised an unspecified address: %v", expanded)
		}
	}
	if err := echo(t, specific, wildHost); err != nil {
		t.Fatalf("dial the expanded addresses: %v", err)
	}

	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("node started", "addrs", specific.LoggedAddrs())
	if !strings.Contains(buf.String(), got[0].String()) {
		t.Fatalf("the log line %q does not name %v", buf.String(), got[0])
	}
}
