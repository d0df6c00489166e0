package relay

import (
	"context"
	"crypto/rand"
	"fmt"
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

// simClock is the tests' clock: windows are played by setting it; only
// real I/O between real hosts runs on real time.
type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *simClock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *simClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// member is one gardend process of a test fleet: real key, host, store.
type member struct {
	name  string
	dir   string
	key   crypto.PrivKey
	ks    hsm.Keystore
	host  *node.Host
	store *dtn.Store
	node  *node.Node
	relay *Relay
	stop  context.CancelFunc
	done  bool
	opts  node.Options // as last started, to start again on the same store
	ropts Options
}

func (m *member) id() peer.ID         { return m.host.ID() }
func (m *member) info() peer.AddrInfo { return peer.AddrInfo{ID: m.host.ID(), Addrs: m.host.Addrs()} }

// fleet is a master, stations and nanos on loopback, one clock.
type fleet struct {
	t     testing.TB
	psk   pnet.PSK
	codec *codec.Codec
	clock *simClock
	log   *slog.Logger
}

func newFleet(t testing.TB, start time.Time) *fleet {
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
	if os.Getenv("RELAY_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return &fleet{t: t, psk: psk, codec: c, clock: &simClock{t: start}, log: log}
}

// member makes a process with its key, host and store in dir ("": new).
func (f *fleet) member(name string, roles node.Roles, dir string) *member {
	t := f.t
	if dir == "" {
		dir = t.TempDir()
	}
	ks, _, err := hsm.Create(context.Background(), hsm.KeyRef{File: filepath.Join(dir, "id.key")})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := hsm.NewPrivKey(ks)
	lim := node.LimitsFor(roles, 0)
	h, err := node.NewHost(node.HostConfig{Key: key, PSK: f.psk, Listen: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
		DialTimeout: 3 * time.Second, Limits: &lim})
	if err != nil {
		t.Fatal(err)
	}
	st, err := dtn.Open(filepath.Join(dir, dtn.FileName), ks, dtn.Options{Policy: Policy(node.DTNPolicy()), Now: f.clock.Now,
		RetryBase: 200 * time.Millisecond, RetryCeiling: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m := &member{name: name, dir: dir, key: key, ks: ks, host: h, store: st}
	t.Cleanup(m.close)
	return m
}

// closing is member, whose close is also added to closers (a benchmark
// closes one configuration's processes before the next).
func (f *fleet) closing(closers *[]func(), name string, roles node.Roles) *member {
	m := f.member(name, roles, "")
	*closers = append(*closers, m.close)
	return m
}

func (m *member) close() {
	if m.done {
		return
	}
	m.done = true
	if m.stop != nil {
		m.stop()
	}
	if m.node != nil {
		m.node.Close()
	}
	m.host.Close()
	m.store.Close()
	m.ks.Close()
	m.node, m.stop = nil, nil
}

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
	o.Name, o.Host, o.Key, o.Store, o.Codec, o.Log, o.Now = m.name, m.host, m.key, m.store, f.codec, f.log, f.clock.Now
	o.HeartbeatInterval, o.IOTimeout = 50*time.Millisecond, 5*time.Second
	ro.Store, ro.Codec, ro.Signer, ro.Log, ro.Now, ro.Tick = m.store, f.codec, m.ks, f.log, f.clock.Now, 20*time.Millisecond
	m.relay = New(ro)
	o.Carriers = append(o.Carriers, m.relay.Carriers()...)
	n, err := node.New(o)
	if err != nil {
		t.Fatal(err)
	}
	m.node = n
	var ctx context.Context
	ctx, m.stop = context.WithCancel(context.Background())
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	m.relay.Start(ctx, n)
}

// contacts builds a multi-station plan from windows.
func contacts(t testing.TB, ws ...plan.Window) *plan.Contacts {
	c, err := plan.NewContacts(ws)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// eventually polls cond on real time: the waits are on real I/O between
// real hosts, generous so that a slow machine only costs time.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
