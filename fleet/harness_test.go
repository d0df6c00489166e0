package fleet

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"

	"gardend/codec"
	"gardend/hsm"
	"gardend/internal/testnet"
	"gardend/node"
	"gardend/plan"
)

// peerKit is one gardend process in a test: real key, host and store,
// with its node and fleet parts once started.
type peerKit struct {
	*testnet.Process
	name string
	node *node.Node
	nano *Nano
	mstr *Master
	ctx  context.Context
	skew time.Duration // this peer's clock runs ahead of the kit's by skew
	// begin, if set before startNano, is the node's Options.Begin.
	begin <-chan struct{}
}

func (p *peerKit) info() peer.AddrInfo { return p.Info() }

type kit struct {
	t     testing.TB
	psk   pnet.PSK
	codec *codec.Codec
	clock *testnet.Clock
	log   *slog.Logger
}

func newKit(t testing.TB, start time.Time) *kit {
	return &kit{t: t, psk: testnet.NewPSK(), codec: testnet.Codec(t, Register), clock: testnet.NewClock(start), log: testnet.Logger("FLEET_TEST_LOG")}
}

func (k *kit) peer(name string, roles node.Roles, dir string) *peerKit {
	p := testnet.New(k.t, name, roles, dir, testnet.Options{PSK: k.psk, Policy: Policy(node.DTNPolicy()), Now: k.clock.Now})
	return &peerKit{Process: p, name: name}
}

// run starts n on p and stops it when p closes.
func (p *peerKit) run(t testing.TB, n *node.Node) {
	p.node = n
	ctx, stop := context.WithCancel(context.Background())
	p.ctx = ctx
	p.BeforeClose(func() { stop(); n.Close() })
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

func (p *peerKit) close() { p.Close() }

// testStation is Toulouse.
var testStation = plan.Station{Lat: 43.6, Lon: 1.44, AltM: 150, MinElevation: 10}

// startNano starts p as the nano of master with contact c.
func (k *kit) startNano(p *peerKit, master peer.AddrInfo, c node.Contact) {
	t := k.t
	now := func() time.Time { return k.clock.Now().Add(p.skew) }
	// A board with two thermal zones, the hotter at 52 °C.
	thermal := filepath.Join(p.Dir, "thermal")
	for zone, temp := range map[string]string{"thermal_zone0": "41250\n", "thermal_zone1": "52000\n"} {
		os.MkdirAll(filepath.Join(thermal, zone), 0o700)
		os.WriteFile(filepath.Join(thermal, zone, "temp"), []byte(temp), 0o600)
	}
	p.nano = NewNano(NanoOptions{Store: p.Store, Codec: k.codec, Log: k.log, Now: now, DataDir: p.Dir, Station: testStation, ThermalDir: thermal,
		Name: p.name, Version: "test", Flavour: hsm.Flavour, KeyBackend: "software", Tick: 20 * time.Millisecond,
		SetLogLevel: func(string) {}})
	n, err := node.New(node.Options{Name: p.name, Roles: node.RoleNano, Host: p.Host, Key: p.Key, Store: p.Store, Codec: k.codec, Log: k.log,
		Now: now, Master: master, Contact: c, HeartbeatInterval: 50 * time.Millisecond, IOTimeout: 5 * time.Second,
		Carriers: p.nano.Carriers(), Begin: p.begin})
	if err != nil {
		t.Fatal(err)
	}
	p.run(t, n)
	if err := p.nano.Start(p.ctx, n); err != nil {
		t.Fatal(err)
	}
}

// startMaster starts p as the master of nanos, with what it knows of
// their contacts.
func (k *kit) startMaster(p *peerKit, nanos []peer.AddrInfo, contacts map[peer.ID]node.Contact) {
	t := k.t
	p.mstr = NewMaster(MasterOptions{Store: p.Store, Codec: k.codec, Log: k.log, Now: k.clock.Now, Station: testStation})
	n, err := node.New(node.Options{Name: p.name, Roles: node.RoleMaster, Host: p.Host, Key: p.Key, Store: p.Store, Codec: k.codec, Log: k.log,
		Now: k.clock.Now, Nanos: nanos, NanoContacts: contacts, HeartbeatInterval: 50 * time.Millisecond, IOTimeout: 5 * time.Second,
		Carriers: p.mstr.Carriers()})
	if err != nil {
		t.Fatal(err)
	}
	p.run(t, n)
	if err := p.mstr.Start(p.ctx, n); err != nil {
		t.Fatal(err)
	}
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testnet.Eventually(t, what, cond)
}

func cut(a, b *peerKit)     { testnet.Cut(a.Process, b.Process) }
func restore(a, b *peerKit) { testnet.Restore(a.Process, b.Process) }

// healthQueued counts the health entries a nano holds for its master.
func healthQueued(t *testing.T, p *peerKit) int {
	rep, err := p.Store.List()
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
