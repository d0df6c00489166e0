package host

// This file is the one place that builds a libp2p host. It is assembled by
// hand from the lower-level packages instead of libp2p.New: the root package
// links QUIC, WebTransport, WebRTC and fx whatever options are given
// (FIELD_NOTES), none of which work with a private-network PSK, and they
// cost about 9 MB of binary. It does not use basichost either: basichost
// links AutoNAT v1 and v2, hole punching, circuit relay and UPnP/NAT-PMP
// (2.3 MB of an arm64 binary, measured) that a private network with fixed
// ground addresses never runs, and it waits for identify before every first
// stream, one round trip (600 ms on the radio link) per connection that
// gardend's own protocols do not need. Nor does it use go-libp2p's TCP
// transport, whose reuseport, shared-listener and metrics machinery a
// host that dials from ephemeral ports never runs (0.2 MB of the arm64
// nano): tcpTransport below dials and listens with the standard library
// and hands each connection to the upgrader. These are lower-level APIs:
// keep them here and keep go-libp2p pinned.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoremem"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	p2pconnmgr "github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	ma "github.com/multiformats/go-multiaddr"
	mafmt "github.com/multiformats/go-multiaddr-fmt"
	manet "github.com/multiformats/go-multiaddr/net"
	msmux "github.com/multiformats/go-multistream"

	"gardend/limits"
	"gardend/platform"
)

// Dial timeouts sized for a 600 ms RTT radio link: a connection costs three
// round trips before the first message can leave (TCP, then the security
// proposal with the first Noise message, then the rest of Noise XX with
// yamux chosen inside it; see eager.go), more with loss; libp2p's 5 s
// default is too tight once loss is added.
const (
	DefaultDialTimeout        = 15 * time.Second
	DefaultNegotiationTimeout = 15 * time.Second
)

// Config is what a host is built from.
type Config struct {
	Key                crypto.PrivKey // identity; signs the Noise handshake
	PSK                pnet.PSK       // private network key; required
	Listen             []ma.Multiaddr // TCP multiaddrs; none for a dial-only host
	Gater              *Gater         // nil: a new empty gater
	DialTimeout        time.Duration  // 0: DefaultDialTimeout
	NegotiationTimeout time.Duration  // 0: DefaultNegotiationTimeout
	UserAgent          string
	Identify           bool             // run identify from the start (indexers serving the DHT)
	Bandwidth          metrics.Reporter // nil: not measured
	// Limits bound what peers may make this host spend (package limits);
	// nil: a ground host's, with no fleet size and no per-protocol limits
	// (node.LimitsFor gives gardend's).
	Limits *limits.Config
	// TCP sets each connection's socket (tcptune.go); zero: the system's.
	TCP TCPTuning
	Log *slog.Logger // nil: discard
}

// Host is a libp2p host.Host over one swarm: TCP, Noise, yamux, PSK. It
// negotiates each stream's protocol lazily (the protocol header travels
// with the first message) and runs identify only when asked to
// (StartIdentify), for the DHT.
type Host struct {
	swarm      *swarm.Swarm
	mux        *msmux.MultistreamMuxer[protocol.ID]
	bus        event.Bus
	protosEmit event.Emitter
	cmgr       connmgr.ConnManager
	rcmgr      network.ResourceManager
	refusals   *limits.Refusals
	kept       *keptPeers // peers whose sessions survive planned gaps
	socks      *sockets   // each connection's TCP socket, paced (tcptune.go)
	negTimeout time.Duration
	userAgent  string
	Gater      *Gater

	idMu sync.Mutex
	ids  identifyService // nil until StartIdentify

	closeOnce sync.Once
}

var _ host.Host = (*Host)(nil)

// New builds and starts a host: TCP only, Noise, yamux, PSK.
func New(cfg Config) (*Host, error) {
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
	if cfg.Limits == nil {
		lim := limits.Ground(0, limits.PerProtocol{})
		cfg.Limits = &lim
	}
	refusals := new(limits.Refusals)
	rcmgr, err := limits.NewResourceManager(*cfg.Limits, refusals)
	if err != nil {
		return fail(fmt.Errorf("resource manager: %w", err))
	}
	var cmgr connmgr.ConnManager = &connmgr.NullConnMgr{}
	if cfg.Limits.ConnsHigh > 0 {
		cm, err := p2pconnmgr.NewConnManager(cfg.Limits.ConnsLow, cfg.Limits.ConnsHigh)
		if err != nil {
			rcmgr.Close()
			return fail(fmt.Errorf("connection manager: %w", err))
		}
		cmgr = cm
	}
	fail = func(err error) (*Host, error) {
		cmgr.Close()
		rcmgr.Close()
		ps.Close()
		return nil, fmt.Errorf("host: %w", err)
	}
	bus := eventbus.NewBus()
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
	// The TCP socket under each connection (tcptune.go), and yamux
	// configured per connection: kept peers' sessions survive gaps
	// (session.go).
	socks := newSockets(cfg.TCP, cfg.Log)
	kept := newKeptPeers(socks)
	muxers := []upgrader.StreamMuxer{{ID: yamux.ID, Muxer: &keptMuxer{kept: kept, streamsPerConn: cfg.Limits.StreamsPerConn}}}
	secure, err := noise.New(noise.ID, cfg.Key, muxers)
	if err != nil {
		sw.Close()
		return fail(err)
	}
	if pnet.ForcePrivateNetwork {
		// The wrapped upgrader is built without the PSK (the eager upgrader
		// applies it) and would refuse every connection under this variable.
		sw.Close()
		return fail(fmt.Errorf("%s is set: gardend always uses its private network key; unset the variable", pnet.EnvKey))
	}
	inner, err := upgrader.New([]sec.SecureTransport{secure}, muxers, nil, rcmgr, cfg.Gater)
	if err != nil {
		sw.Close()
		return fail(err)
	}
	upg := &eagerUpgrader{inner: inner, psk: cfg.PSK, security: secure.ID()}
	// No reuseport: dials leave from ephemeral ports. A nano and its master
	// dial each other at the same instant when a pass opens; from their
	// listening ports the crossing SYNs become one TCP simultaneous open on
	// which both sides act as Noise initiator, and the handshake fails.
	// Reuseport only helps NAT hole punching, which a private network with
	// fixed ground addresses does not do.
	tpt := &tcpTransport{upg: &tunedUpgrader{Upgrader: upg, socks: socks}, rcmgr: rcmgr, connectTimeout: tcpConnectTimeout,
		dialable: mafmt.And(mafmt.IP, mafmt.Base(ma.P_TCP))}
	if err := sw.AddTransport(tpt); err != nil {
		sw.Close()
		return fail(err)
	}
	if n, ok := cmgr.(interface{ Notifee() network.Notifiee }); ok {
		sw.Notify(n.Notifee())
	}
	h := &Host{swarm: sw, mux: msmux.NewMultistreamMuxer[protocol.ID](), bus: bus,
		cmgr: cmgr, rcmgr: rcmgr, refusals: refusals, kept: kept, socks: socks, negTimeout: cfg.NegotiationTimeout, userAgent: cfg.UserAgent, Gater: cfg.Gater}
	if h.protosEmit, err = bus.Emitter(&event.EvtLocalProtocolsUpdated{}); err != nil {
		sw.Close()
		return fail(err)
	}
	sw.SetStreamHandler(h.serveStream)
	if len(cfg.Listen) > 0 {
		if err := sw.Listen(cfg.Listen...); err != nil {
			h.Close()
			return nil, fmt.Errorf("host: listen on %v: %w", cfg.Listen, err)
		}
	}
	if cfg.Identify {
		if err := h.StartIdentify(); err != nil {
			h.Close()
			return nil, err
		}
	}
	return h, nil
}

// identifyService is the identify protocol running on a host. It is
// started by startIdentify, in identify.go: only the DHT needs it, so a build
// without the DHT (-tags nodht) links neither.
type identifyService interface {
	IdentifyConn(network.Conn)
	Close() error
}

// StartIdentify runs the identify protocol on this host's connections from
// now on. Kademlia needs it to learn which peers serve the DHT; gardend's
// own protocols do not (every member speaks them), so a host that runs no
// DHT spares the radio link its exchange. A build without the DHT has no
// identify and returns an error.
func (h *Host) StartIdentify() error {
	h.idMu.Lock()
	defer h.idMu.Unlock()
	if h.ids != nil {
		return nil
	}
	ids, err := startIdentify(h, h.userAgent)
	if err != nil {
		return fmt.Errorf("host: identify: %w", err)
	}
	h.ids = ids
	for _, c := range h.swarm.Conns() { // connections made before now
		go ids.IdentifyConn(c)
	}
	return nil
}

// serveStream negotiates the protocol of a stream the remote opened and
// hands it to the protocol's handler.
func (h *Host) serveStream(s network.Stream) {
	s.SetDeadline(time.Now().Add(h.negTimeout))
	proto, handle, err := h.mux.Negotiate(s)
	if err != nil {
		s.ResetWithError(network.StreamProtocolNegotiationFailed)
		return
	}
	s.SetDeadline(time.Time{})
	if err := s.SetProtocol(proto); err != nil {
		s.ResetWithError(network.StreamResourceLimitExceeded)
		return
	}
	handle(proto, s)
}

func (h *Host) ID() peer.ID                      { return h.swarm.LocalPeer() }
func (h *Host) Peerstore() peerstore.Peerstore   { return h.swarm.Peerstore() }
func (h *Host) Network() network.Network         { return h.swarm }
func (h *Host) Mux() protocol.Switch             { return h.mux }
func (h *Host) EventBus() event.Bus              { return h.bus }
func (h *Host) ConnManager() connmgr.ConnManager { return h.cmgr }
func (h *Host) RemoveStreamHandler(pid protocol.ID) {
	h.mux.RemoveHandler(pid)
	h.protocolsChanged("", pid)
}

// Addrs returns the listen addresses, an unspecified IP (0.0.0.0, ::)
// expanded to this machine's interface addresses. The interfaces are read
// only when a listen address is unspecified: reading them costs a netlink
// dump (about 8 ms of a nano's start under qemu-aarch64).
func (h *Host) Addrs() []ma.Multiaddr {
	listen := h.swarm.ListenAddresses()
	if !slices.ContainsFunc(listen, manet.IsIPUnspecified) {
		return listen
	}
	ifaces, err := manet.InterfaceMultiaddrs()
	if err != nil {
		return listen
	}
	all, err := manet.ResolveUnspecifiedAddresses(listen, ifaces)
	if err != nil {
		return listen
	}
	out := all[:0]
	for _, a := range all {
		if !manet.IsIP6LinkLocal(a) {
			out = append(out, a)
		}
	}
	return out
}

func (h *Host) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.mux.AddHandler(pid, func(_ protocol.ID, rwc io.ReadWriteCloser) error {
		handler(rwc.(network.Stream))
		return nil
	})
	h.protocolsChanged(pid, "")
}

func (h *Host) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.mux.AddHandlerWithFunc(pid, match, func(_ protocol.ID, rwc io.ReadWriteCloser) error {
		handler(rwc.(network.Stream))
		return nil
	})
	h.protocolsChanged(pid, "")
}

// protocolsChanged tells identify (when it runs) to push the new set.
func (h *Host) protocolsChanged(added, removed protocol.ID) {
	var ev event.EvtLocalProtocolsUpdated
	if added != "" {
		ev.Added = []protocol.ID{added}
	}
	if removed != "" {
		ev.Removed = []protocol.ID{removed}
	}
	h.protosEmit.Emit(ev)
}

// Connect makes sure there is a connection to pi.ID, dialling pi.Addrs and
// the addresses already known. Unlike basichost it does not wait for
// identify: the first message follows the handshake at once. A dial that a
// kept session overtakes at its wake is dropped, and the peer counts as
// reached (session.go).
func (h *Host) Connect(ctx context.Context, pi peer.AddrInfo) error {
	h.Peerstore().AddAddrs(pi.ID, pi.Addrs, peerstore.TempAddrTTL)
	if h.swarm.Connectedness(pi.ID) == network.Connected {
		return nil
	}
	ctx, cancel := h.raceKeptWake(ctx, pi.ID)
	defer cancel()
	if _, err := h.swarm.DialPeer(ctx, pi.ID); err != nil {
		if h.swarm.Connectedness(pi.ID) == network.Connected {
			return nil // a kept session answered meanwhile
		}
		return fmt.Errorf("failed to dial: %w", err)
	}
	return nil
}

// NewStream opens a stream to p for the first of pids the peer speaks,
// dialling if needed (unless ctx says no dial). With one protocol, or one
// the peer is known to speak, the multistream header is sent with the
// first write instead of costing a round trip of its own.
func (h *Host) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.negTimeout)
		defer cancel()
	}
	if len(pids) == 0 {
		return nil, errors.New("host: new stream: no protocol")
	}
	if nodial, _ := network.GetNoDial(ctx); !nodial {
		if err := h.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
			return nil, err
		}
	}
	s, err := h.swarm.NewStream(network.WithNoDial(ctx, "already dialed"), p)
	if err != nil {
		return nil, fmt.Errorf("failed to open stream: %w", err)
	}
	pref := pids[0]
	if len(pids) > 1 {
		pref = ""
		if known, _ := h.Peerstore().SupportsProtocols(p, pids...); len(known) > 0 {
			pref = known[0]
		}
	}
	if pref != "" {
		if err := s.SetProtocol(pref); err != nil {
			s.ResetWithError(network.StreamResourceLimitExceeded)
			return nil, err
		}
		return &lazyStream{Stream: s, rw: msmux.NewMSSelect(s, pref)}, nil
	}
	// Several protocols and none known: negotiate now, within ctx.
	type result struct {
		proto protocol.ID
		err   error
	}
	done := make(chan result, 1)
	go func() {
		proto, err := msmux.SelectOneOf(pids, s)
		done <- result{proto, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		s.ResetWithError(network.StreamProtocolNegotiationFailed)
		<-done
		return nil, fmt.Errorf("failed to negotiate protocol: %w", ctx.Err())
	}
	if r.err != nil {
		s.ResetWithError(network.StreamProtocolNegotiationFailed)
		return nil, fmt.Errorf("failed to negotiate protocol: %w", r.err)
	}
	if err := s.SetProtocol(r.proto); err != nil {
		s.ResetWithError(network.StreamResourceLimitExceeded)
		return nil, err
	}
	_ = h.Peerstore().AddProtocols(p, r.proto)
	return s, nil
}

// Close stops identify, closes every connection and listener, and the
// peerstore.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.idMu.Lock()
		if h.ids != nil {
			h.ids.Close()
		}
		h.idMu.Unlock()
		h.protosEmit.Close()
		h.swarm.Close()
		h.cmgr.Close()
		h.rcmgr.Close()
		h.Peerstore().Close()
	})
	return nil
}

// lazyStream is a stream whose protocol header goes out with the first
// write; reads wait for the peer's confirmation.
type lazyStream struct {
	network.Stream
	rw io.ReadWriteCloser
}

func (s *lazyStream) Read(b []byte) (int, error)  { return s.rw.Read(b) }
func (s *lazyStream) Write(b []byte) (int, error) { return s.rw.Write(b) }

func (s *lazyStream) Close() error {
	// Bounded: closing waits for the peer's protocol confirmation.
	_ = s.Stream.SetReadDeadline(time.Now().Add(DefaultNegotiationTimeout))
	return s.rw.Close()
}

// CloseWrite sends the protocol header if nothing was written yet, so the
// peer sees a well-formed (empty) stream.
func (s *lazyStream) CloseWrite() error {
	if f, ok := s.rw.(interface{ Flush() error }); ok {
		_ = f.Flush()
	}
	return s.Stream.CloseWrite()
}

// ClearBackoff forgets failed dials to p, so a contact that just opened is
// used at once instead of after the swarm's backoff (measured: 10.2 s → 4.1 s
// to reconnect after a 20 s outage).
func (h *Host) ClearBackoff(p peer.ID) { h.swarm.Backoff().Clear(p) }

// Dial connects to p at addrs within ctx.
func (h *Host) Dial(ctx context.Context, p peer.ID, addrs ...ma.Multiaddr) error {
	return h.Connect(ctx, peer.AddrInfo{ID: p, Addrs: addrs})
}

// What go-libp2p's TCP transport did, kept as it was: a TCP connect gives up
// after 5 s (the swarm's dial timeout bounds the whole handshake); every
// connection sends keepalive probes after 30 s idle (then every 15 s, Go's
// default interval) and is reset rather than left in TIME-WAIT when closed
// (linger 0), so a peer can reconnect at once.
const (
	tcpConnectTimeout = 5 * time.Second
	tcpKeepAlive      = 30 * time.Second
)

// tcpTransport is the host's one transport: TCP, each connection handed
// to the upgrader (PSK, Noise, yamux; eager.go). Dials leave from
// ephemeral ports (see New). The resource manager is asked before
// each dial; accepted connections go through the upgrader's gate, which
// asks it and the gater.
type tcpTransport struct {
	upg            transport.Upgrader
	rcmgr          network.ResourceManager
	connectTimeout time.Duration
	dialable       mafmt.Pattern // IP, then TCP: names are resolved by the swarm
}

var _ transport.Transport = (*tcpTransport)(nil)

// Dial connects to p at raddr and upgrades the connection.
func (t *tcpTransport) Dial(ctx context.Context, raddr ma.Multiaddr, p peer.ID) (transport.CapableConn, error) {
	scope, err := t.rcmgr.OpenConnection(network.DirOutbound, true, raddr)
	if err != nil {
		return nil, err
	}
	c, err := t.dial(ctx, raddr, p, scope)
	if err != nil {
		scope.Done()
		return nil, err
	}
	return c, nil
}

func (t *tcpTransport) dial(ctx context.Context, raddr ma.Multiaddr, p peer.ID, scope network.ConnManagementScope) (transport.CapableConn, error) {
	if err := scope.SetPeer(p); err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, t.connectTimeout)
	var d manet.Dialer
	conn, err := d.DialContext(dctx, raddr)
	cancel()
	if err != nil {
		return nil, err
	}
	tuneTCP(conn)
	dir := network.DirOutbound
	if ok, isClient, _ := network.GetSimultaneousConnect(ctx); ok && !isClient {
		dir = network.DirInbound
	}
	return t.upg.Upgrade(ctx, t, conn, dir, p, scope)
}

// CanDial reports whether raddr is an IP address with a TCP port.
func (t *tcpTransport) CanDial(raddr ma.Multiaddr) bool { return t.dialable.Matches(raddr) }

// Listen listens on laddr; connections are gated, tuned, then upgraded.
func (t *tcpTransport) Listen(laddr ma.Multiaddr) (transport.Listener, error) {
	l, err := listenTCP(laddr)
	if err != nil {
		return nil, err
	}
	return t.upg.UpgradeGatedMaListener(t, tunedListener{t.upg.GateMaListener(l)}), nil
}

// listenTCP listens on laddr with a plain TCP socket. Go's listeners take
// Multipath TCP by default where the kernel offers it, and hand an MPTCP
// client an MPTCP socket; what gardend sets on a connection (keepalive,
// linger, pacing, congestion control) and reads (TCP_INFO) belongs to a TCP
// socket. Skipping Go's MPTCP probe also spares a nano's start about 7 ms
// under qemu-aarch64.
func listenTCP(laddr ma.Multiaddr) (manet.Listener, error) {
	nl, err := listenPlainTCP(laddr)
	if err != nil {
		return nil, err
	}
	l, err := manet.WrapNetListener(nl)
	if err != nil {
		nl.Close()
		return nil, err
	}
	return l, nil
}

func listenPlainTCP(laddr ma.Multiaddr) (net.Listener, error) {
	network, addr, err := manet.DialArgs(laddr)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	return lc.Listen(context.Background(), network, addr)
}

func (t *tcpTransport) Protocols() []int { return []int{ma.P_TCP} }
func (t *tcpTransport) Proxy() bool      { return false }
func (t *tcpTransport) String() string   { return "TCP" }

// tunedListener sets keepalive and linger on each accepted connection.
type tunedListener struct{ transport.GatedMaListener }

func (l tunedListener) Accept() (manet.Conn, network.ConnManagementScope, error) {
	c, scope, err := l.GatedMaListener.Accept()
	if err != nil {
		return nil, nil, err
	}
	tuneTCP(c)
	return c, scope, nil
}

// tuneTCP sets keepalive (tcpKeepAlive) and linger 0 on a TCP connection,
// with the calls go-libp2p's transport made; a failure leaves the
// connection as the kernel made it.
func tuneTCP(c manet.Conn) {
	if k, ok := c.(interface {
		SetKeepAlive(bool) error
		SetKeepAlivePeriod(time.Duration) error
	}); ok && k.SetKeepAlive(true) == nil {
		_ = k.SetKeepAlivePeriod(tcpKeepAlive)
	}
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		_ = l.SetLinger(0)
	}
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

// Gater decides, once a connection's peer is authenticated and before any
// stream, whether to keep it. The PSK keeps strangers out; the blacklist is
// for members that misbehave; an admission list (a nano: its master and
// indexers) refuses every other member.
type Gater struct {
	mu       sync.RWMutex
	blocked  map[peer.ID]string // peer → reason
	admitted map[peer.ID]bool   // nil: every member
	// Refusals, for metrics: the total, and by reason.
	Refused         atomic.Uint64
	RefusedBlocked  atomic.Uint64 // blacklisted
	RefusedStranger atomic.Uint64 // not on the admission list
}

var _ connmgr.ConnectionGater = (*Gater)(nil)

// NewGater returns a gater with an empty blacklist that admits every member.
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

// AdmitOnly restricts connections, both ways, to peers: everyone else who
// holds the PSK is refused right after the handshake. Existing connections
// are not closed here.
func (g *Gater) AdmitOnly(peers ...peer.ID) {
	g.mu.Lock()
	g.admitted = make(map[peer.ID]bool, len(peers))
	for _, p := range peers {
		g.admitted[p] = true
	}
	g.mu.Unlock()
}

// Admits reports whether p may connect: not blacklisted, and admitted if
// there is an admission list.
func (g *Gater) Admits(p peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, blocked := g.blocked[p]
	return !blocked && (g.admitted == nil || g.admitted[p])
}

func (g *Gater) allow(p peer.ID) bool {
	g.mu.RLock()
	_, blocked := g.blocked[p]
	stranger := g.admitted != nil && !g.admitted[p]
	g.mu.RUnlock()
	switch {
	case blocked:
		g.RefusedBlocked.Add(1)
	case stranger:
		g.RefusedStranger.Add(1)
	default:
		return true
	}
	g.Refused.Add(1)
	return false
}

func (g *Gater) InterceptPeerDial(p peer.ID) bool                 { return g.allow(p) }
func (g *Gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allow(p) }
func (g *Gater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *Gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allow(p)
}
func (g *Gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// Refusals returns what this host refused to its peers, by reason: the
// gater's (blacklisted, not admitted) and the resource manager's (streams,
// connections, memory over a limit).
func (h *Host) Refusals() map[string]uint64 {
	return map[string]uint64{
		"refused_conn_blocked":  h.Gater.RefusedBlocked.Load(),
		"refused_conn_stranger": h.Gater.RefusedStranger.Load(),
		"limit_refused_streams": h.refusals.Streams.Load(),
		"limit_refused_conns":   h.refusals.Conns.Load(),
		"limit_refused_memory":  h.refusals.Memory.Load(),
	}
}

// LoggedAddrs is h's addresses as a log value, read only when a line is
// written (a nano runs at level warn: its start does not pay for them).
func (h *Host) LoggedAddrs() slog.LogValuer { return loggedAddrs{h} }

type loggedAddrs struct{ h *Host }

func (a loggedAddrs) LogValue() slog.Value { return slog.AnyValue(a.h.Addrs()) }
