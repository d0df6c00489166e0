package relay

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"

	"gardend/codec"
	"gardend/internal/testnet"
	"gardend/node"
	"gardend/plan"
)

// member is one gardend process of a test fleet, with its node and relay.
type member struct {
	*testnet.Process
	name  string
	dir   string
	node  *node.Node
	relay *Relay
	opts  node.Options // as last started, to start again on the same store
	ropts Options
}

func (m *member) id() peer.ID         { return m.ID() }
func (m *member) info() peer.AddrInfo { return m.Info() }

// fleet is a master, stations and nanos on loopback, one clock.
type fleet struct {
	t     testing.TB
	psk   pnet.PSK
	codec *codec.Codec
	clock *testnet.Clock
	log   *slog.Logger
}

func newFleet(t testing.TB, start time.Time) *fleet {
	return &fleet{t: t, psk: testnet.NewPSK(), codec: testnet.Codec(t, Register), clock: testnet.NewClock(start), log: testnet.Logger("RELAY_TEST_LOG")}
}

// member makes a process with its key, host and store in dir ("": new).
// Its store backs off failed deliveries on real time: a delivery that
// fails on real I/O (a dial slow under load) is retried after real
// milliseconds, not after simulated time the test may never play.
func (f *fleet) member(name string, roles node.Roles, dir string) *member {
	p := testnet.New(f.t, name, roles, dir, testnet.Options{PSK: f.psk, Policy: Policy(node.DTNPolicy()), Now: time.Now})
	return &member{Process: p, name: name, dir: p.Dir}
}

// closing is member, whose close is also added to closers (a benchmark
// closes one configuration's processes before the next).
func (f *fleet) closing(closers *[]func(), name string, roles node.Roles) *member {
	m := f.member(name, roles, "")
	*closers = append(*closers, m.close)
	return m
}

func (m *member) close() { m.Close() }

// orbital is the nanos' profile, with a short guard.
func orbital() node.Profile {
	p := node.ProfileFor(node.ProfileOrbital)
	p.Guard = time.Second
	return p
}

// start builds m's node with its relay and starts both.
func (f *fleet) start(m *member, o node.Options, ro Options) {
	t := f.t
	m.opts, m.ropts = o, ro
	o.Name, o.Host, o.Key, o.Store, o.Codec, o.Log, o.Now = m.name, m.Host, m.Key, m.Store, f.codec, f.log, f.clock.Now
	o.HeartbeatInterval, o.IOTimeout = 50*time.Millisecond, 5*time.Second
	ro.Store, ro.Codec, ro.Signer, ro.Log, ro.Now, ro.Tick = m.Store, f.codec, m.KS, f.log, f.clock.Now, 20*time.Millisecond
	m.relay = New(ro)
	o.Carriers = append(o.Carriers, m.relay.Carriers()...)
	o.BeforeServe = func(ctx context.Context, n *node.Node) error { m.relay.Start(ctx, n); return nil } // as the daemon does
	n, err := node.New(o)
	if err != nil {
		t.Fatal(err)
	}
	m.node = n
	ctx, stop := context.WithCancel(context.Background())
	m.BeforeClose(func() { stop(); n.Close() })
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// contacts builds a multi-station plan from windows.
func contacts(t testing.TB, ws ...plan.Window) *plan.Contacts {
	c, err := plan.NewContacts(ws)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testnet.Eventually(t, what, cond)
}

// catalogue is what a node holds: resource ID → body.
func catalogue(t testing.TB, m *member) map[string]string {
	rs, err := m.node.Catalogue()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rs {
		out[r.ID] = string(r.Body)
	}
	return out
}

func bodies(prefix string, n int) map[string]string {
	out := map[string]string{}
	for i := range n {
		out[fmt.Sprintf("%s-%d", prefix, i)] = fmt.Sprintf("%s body %d", prefix, i)
	}
	return out
}

func metric(m *member, name string) uint64 { return m.node.Metrics.Get(name) }
