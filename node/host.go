package node

// This file is the one place that builds a libp2p host. It is assembled by
// hand from the lower-level packages instead of libp2p.New: the root package
// links QUIC, WebTransport, WebRTC and fx whatever options are given
// (FIELD_NOTES), none of which work with a private-network PSK, and they
// cost about 9 MB of binary. These are lower-level APIs: keep them here and
// keep go-libp2p pinned.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/sec"
	basichost "github.com/libp2p/go-libp2p/p2p/host/basic"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoremem"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"gardend/platform"
)

// Dial timeouts sized for a 600 ms RTT radio link: a connection costs about
// five round trips (TCP, multistream, Noise XX, yamux, the protocol), 3.3 s
// measured; libp2p's 5 s default is too tight once loss is added.
const (
	DefaultDialTimeout        = 15 * time.Second
	DefaultNegotiationTimeout = 15 * time.Second
)

// HostConfig is what a host is built from.
type HostConfig struct {
	Key                crypto.PrivKey // identity; signs the Noise handshake
	PSK                pnet.PSK       // private network key; required
	Listen             []ma.Multiaddr // TCP multiaddrs; none for a dial-only host
	Gater              *Gater         // nil: a new empty gater
	DialTimeout        time.Duration  // 0: DefaultDialTimeout
	NegotiationTimeout time.Duration  // 0: DefaultNegotiationTimeout
	UserAgent          string
	Bandwidth          metrics.Reporter // nil: not measured
}

// Host is a started libp2p host plus what gardend needs beyond host.Host.
type Host struct {
	host.Host
	swarm *swarm.Swarm
	Gater *Gater
}

// NewHost builds and starts a host: TCP only, Noise, yamux, PSK.
func NewHost(cfg HostConfig) (*Host, error) {
	if cfg.Key == nil {
		return nil, errors.New("host: no identity key")
	}
	if len(cfg.PSK) != 32 {
		return nil, errors.New("host: a 32-byte private network key is required")
	}
	if cfg.Gater == nil {
		cfg.Gater = NewGater()
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.NegotiationTimeout == 0 {
		cfg.NegotiationTimeout = DefaultNegotiationTimeout
	}
	id, err := peer.IDFromPrivateKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("host: peer ID: %w", err)
	}
	ps, err := pstoremem.NewPeerstore()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Host, error) {
		ps.Close()
		return nil, fmt.Errorf("host: %w", err)
	}
	if err := ps.AddPrivKey(id, cfg.Key); err != nil {
		return fail(err)
	}
	if err := ps.AddPubKey(id, cfg.Key.GetPublic()); err != nil {
		return fail(err)
	}
	bus := eventbus.NewBus()
	rcmgr := &network.NullResourceManager{}
	swOpts := []swarm.Option{
		swarm.WithConnectionGater(cfg.Gater),
		swarm.WithDialTimeout(cfg.DialTimeout),
		swarm.WithResourceManager(rcmgr),
	}
	if cfg.Bandwidth != nil {
		swOpts = append(swOpts, swarm.WithMetrics(cfg.Bandwidth))
	}
	sw, err := swarm.NewSwarm(id, ps, bus, swOpts...)
	if err != nil {
		return fail(err)
	}
	muxers := []upgrader.StreamMuxer{{ID: yamux.ID, Muxer: yamux.DefaultTransport}}
	secure, err := noise.New(noise.ID, cfg.Key, muxers)
	if err != nil {
		sw.Close()
		return fail(err)
	}
	upg, err := upgrader.New([]sec.SecureTransport{secure}, muxers, cfg.PSK, rcmgr, cfg.Gater)
	if err != nil {
		sw.Close()
		return fail(err)
	}
	// No reuseport: dials leave from ephemeral ports. A nano and its master
	// dial each other at the same instant when a pass opens; from their
	// listening ports the crossing SYNs become one TCP simultaneous open on
	// which both sides act as Noise initiator, and the handshake fails.
	// Reuseport only helps NAT hole punching, which a private network with
	// fixed ground addresses does not do.
	tpt, err := tcp.NewTCPTransport(upg, rcmgr, nil, tcp.DisableReuseport())
	if err != nil {
		sw.Close()
		return fail(err)
	}
	if err := sw.AddTransport(tpt); err != nil {
		sw.Close()
		return fail(err)
	}
	h, err := basichost.NewHost(sw, &basichost.HostOpts{
		EventBus:           bus,
		NegotiationTimeout: cfg.NegotiationTimeout,
		UserAgent:          cfg.UserAgent,
	})
	if err != nil {
		sw.Close()
		return fail(err)
	}
	// Listen before Start so identify advertises the listen addresses.
	if len(cfg.Listen) > 0 {
		if err := sw.Listen(cfg.Listen...); err != nil {
			h.Close()
			return nil, fmt.Errorf("host: listen on %v: %w", cfg.Listen, err)
		}
	}
	h.Start()
	return &Host{Host: h, swarm: sw, Gater: cfg.Gater}, nil
}

// ClearBackoff forgets failed dials to p, so a contact that just opened is
// used at once instead of after the swarm's backoff (measured: 10.2 s → 4.1 s
// to reconnect after a 20 s outage).
func (h *Host) ClearBackoff(p peer.ID) { h.swarm.Backoff().Clear(p) }

// Dial connects to p at addrs within ctx.
func (h *Host) Dial(ctx context.Context, p peer.ID, addrs ...ma.Multiaddr) error {
	return h.Connect(ctx, peer.AddrInfo{ID: p, Addrs: addrs})
}

// LoadPSK reads a private network key in go-libp2p's pnet format
// ("/key/swarm/psk/1.0.0/", "/base16/", hex key).
func LoadPSK(path string) (pnet.PSK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	psk, err := pnet.DecodeV1PSK(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("%s: not a go-libp2p PSK file: %w", path, err)
	}
	if len(psk) != 32 {
		return nil, fmt.Errorf("%s: PSK is %d bytes, want 32", path, len(psk))
	}
	return psk, nil
}

// WriteNewPSK creates a random private network key at path (mode 0600) in
// go-libp2p's pnet format, for a new network.
func WriteNewPSK(path string) error {
	key := make([]byte, 32)
	rand.Read(key)
	return platform.WriteFileAtomic(path, []byte("/key/swarm/psk/1.0.0/\n/base16/\n"+hex.EncodeToString(key)+"\n"), 0o600)
}

// Gater refuses connections from and to blacklisted peers. The PSK keeps
// strangers out; the blacklist is for members that misbehave.
type Gater struct {
	mu      sync.RWMutex
	blocked map[peer.ID]string // peer → reason
	Refused atomic.Uint64      // connections refused, for metrics
}

var _ connmgr.ConnectionGater = (*Gater)(nil)

// NewGater returns a gater with an empty blacklist.
func NewGater() *Gater { return &Gater{blocked: map[peer.ID]string{}} }

// Block blacklists p; existing connections are not closed here.
func (g *Gater) Block(p peer.ID, reason string) {
	g.mu.Lock()
	g.blocked[p] = reason
	g.mu.Unlock()
}

// Unblock removes p from the blacklist.
func (g *Gater) Unblock(p peer.ID) {
	g.mu.Lock()
	delete(g.blocked, p)
	g.mu.Unlock()
}

// Blocked reports whether p is blacklisted.
func (g *Gater) Blocked(p peer.ID) bool {
	g.mu.RLock()
	_, ok := g.blocked[p]
	g.mu.RUnlock()
	return ok
}

func (g *Gater) allow(p peer.ID) bool {
	if g.Blocked(p) {
		g.Refused.Add(1)
		return false
	}
	return true
}

func (g *Gater) InterceptPeerDial(p peer.ID) bool                 { return g.allow(p) }
func (g *Gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allow(p) }
func (g *Gater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *Gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allow(p)
}
func (g *Gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
