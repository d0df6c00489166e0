package fleet

import (
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	ma "github.com/multiformats/go-multiaddr"

	"gardend/codec"
	"gardend/dtn"
	"gardend/hsm"
	"gardend/node"
	"gardend/plan"
)

// simClock is the tests' clock: windows and intervals are played by
// setting it; only real I/O runs on real time.
type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *simClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
func (c *simClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// peerKit is one gardend process in a test: real key, host and store.
type peerKit struct {
	name  string
	key   crypto.PrivKey
	ks    hsm.Keystore
	host  *node.Host
	store *dtn.Store
	dir   string
	node  *node.Node
	nano  *Nano
	mstr  *Master
	ctx   context.Context
	stop  context.CancelFunc
	skew  time.Duration // this peer's clock runs ahead of the kit's by skew
}

func (p *peerKit) info() peer.AddrInfo { return peer.AddrInfo{ID: p.host.ID(), Addrs: p.host.Addrs()} }

type kit struct {
	t     testing.TB
	psk   pnet.PSK
	codec *codec.Codec
	clock *simClock
	log   *slog.Logger
}

func newKit(t testing.TB, start time.Time) *kit {
	reg, err := node.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	if err := Register(reg); err != nil {
		t.Fatal(err)
	}
	c, err := codec.New(reg, codec.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	psk := make(pnet.PSK, 32)
	rand.Read(psk)
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("FLEET_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return &kit{t: t, psk: psk, codec: c, clock: &simClock{t: start}, log: log}
}

func (k *kit) peer(name string, roles node.Roles, dir string) *peerKit {
	t := k.t
	if dir == "" {
		dir = t.TempDir()
	}
	ks, _, err := hsm.Create(context.Background(), hsm.KeyRef{File: filepath.Join(dir, "id.key")})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := hsm.NewPrivKey(ks)
	lim := node.LimitsFor(roles, 0)
	h, err := node.NewHost(node.HostConfig{Key: key, PSK: k.psk, Listen: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
		DialTimeout: 3 * time.Second, Limits: &lim})
	if err != nil {
		t.Fatal(err)
	}
	st, err := dtn.Open(filepath.Join(dir, dtn.FileName), ks, dtn.Options{Policy: Policy(node.DTNPolicy()), Now: k.clock.Now,
		RetryBase: 200 * time.Millisecond, RetryCeiling: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p := &peerKit{name: name, key: key, ks: ks, host: h, store: st, dir: dir}
	t.Cleanup(p.close)
	return p
}

func (p *peerKit) close() {
	if p.stop != nil {
		p.stop()
	}
	if p.node != nil {
		p.node.Close()
	}
	p.host.Close()
	p.store.Close()
	p.ks.Close()
	p.node, p.stop = nil, nil
}

// testStation is Toulouse.
var testStation = plan.Station{Lat: 43.6, Lon: 1.44, AltM: 150, MinElevation: 10}

// startNano starts p as the nano of master with contact c.
func (k *kit) startNano(p *peerKit, master peer.AddrInfo, c node.Contact) {
	t := k.t
	now := func() time.Time { return k.clock.Now().Add(p.skew) }
	// A board with two thermal zones, the hotter at 52 °C.
	thermal := filepath.Join(p.dir, "thermal")
	for zone, temp := range map[string]string{"thermal_zone0": "41250\n", "thermal_zone1": "52000\n"} {
		os.MkdirAll(filepath.Join(thermal, zone), 0o700)
		os.WriteFile(filepath.Join(thermal, zone, "temp"), []byte(temp), 0o600)
	}
	p.nano = NewNano(NanoOptions{Store: p.store, Codec: k.codec, Log: k.log, Now: now, DataDir: p.dir, Station: testStation, ThermalDir: thermal,
		Name: p.name, Version: "test", Flavour: hsm.Flavour, KeyBackend: "software", Tick: 20 * time.Millisecond,
		SetLogLevel: func(string) {}})
	n, err := node.New(node.Options{Name: p.name, Roles: node.RoleNano, Host: p.host, Key: p.key, Store: p.store, Codec: k.codec, Log: k.log,
		Now: now, Master: master, Contact: c, HeartbeatInterval: 50 * time.Millisecond, IOTimeout: 5 * time.Second,
		Carriers: p.nano.Carriers()})
	if err != nil {
		t.Fatal(err)
	}
	p.node = n
	p.ctx, p.stop = context.WithCancel(context.Background())
	if err := n.Start(p.ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.nano.Start(p.ctx, n); err != nil {
		t.Fatal(err)
	}
}

// startMaster starts p as the master of nanos, with what it knows of
// their contacts.
func (k *kit) startMaster(p *peerKit, nanos []peer.AddrInfo, contacts map[peer.ID]node.Contact) {
	t := k.t
	p.mstr = NewMaster(MasterOptions{Store: p.store, Codec: k.codec, Log: k.log, Now: k.clock.Now, Station: testStation})
	n, err := node.New(node.Options{Name: p.name, Roles: node.RoleMaster, Host: p.host, Key: p.key, Store: p.store, Codec: k.codec, Log: k.log,
		Now: k.clock.Now, Nanos: nanos, NanoContacts: contacts, HeartbeatInterval: 50 * time.Millisecond, IOTimeout: 5 * time.Second,
		Carriers: p.mstr.Carriers()})
	if err != nil {
		t.Fatal(err)
	}
	p.node = n
	p.ctx, p.stop = context.WithCancel(context.Background())
	if err := n.Start(p.ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.mstr.Start(p.ctx, n); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond on real time: the waits are on real I/O between
// real hosts, generous so that a slow machine only costs time.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cut and restore the link between a and b.
func cut(a, b *peerKit) {
	a.host.Gater.Block(b.host.ID(), "link down")
	b.host.Gater.Block(a.host.ID(), "link down")
	a.host.Network().ClosePeer(b.host.ID())
	b.host.Network().ClosePeer(a.host.ID())
}

func restore(a, b *peerKit) {
	a.host.Gater.Unblock(b.host.ID())
	b.host.Gater.Unblock(a.host.ID())
	a.host.ClearBackoff(b.host.ID())
	b.host.ClearBackoff(a.host.ID())
}

// healthQueued counts the health entries a nano holds for its master.
func healthQueued(t *testing.T, p *peerKit) int {
	rep, err := p.store.List()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range rep.Entries {
		if e.Protocol == ProtoHealth {
			n++
		}
	}
	return n
}

// windows builds a static plan of windows of length d every period.
func windows(t *testing.T, from time.Time, n int, period, d time.Duration) *plan.Plan {
	var ws []plan.Window
	for i := 0; i < n; i++ {
		s := from.Add(time.Duration(i) * period)
		ws = append(ws, plan.Window{Start: s, End: s.Add(d)})
	}
	p, err := plan.New(ws)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
