// Package testnet builds, for the tests of the rooms above node (fleet,
// relay), gardend processes inside one test process: each with a key file,
// a libp2p host on loopback and an encrypted store, all sharing a
// private-network key and one simulated clock. Node's own tests keep
// their harness (they cannot import a package that imports node).
package testnet

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
	"gardend/host"
	"gardend/hsm"
	"gardend/internal/poll"
	"gardend/node"
)

// Clock is a test's clock: windows and intervals are played by setting
// it; only real I/O between real hosts runs on real time.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

func (c *Clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *Clock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Codec is the node's codec with the messages of the rooms register adds.
func Codec(t testing.TB, register ...func(*codec.Registry) error) *codec.Codec {
	t.Helper()
	reg, err := node.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range register {
		if err := r(reg); err != nil {
			t.Fatal(err)
		}
	}
	c, err := codec.New(reg, codec.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// NewPSK is a fresh private-network key.
func NewPSK() pnet.PSK {
	psk := make(pnet.PSK, 32)
	rand.Read(psk)
	return psk
}

// Logger discards, unless the environment variable env is set: then debug
// lines go to stderr.
func Logger(env string) *slog.Logger {
	if os.Getenv(env) == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Process is one gardend process's parts, before its node.
type Process struct {
	Name  string
	Dir   string
	Key   crypto.PrivKey
	KS    hsm.Keystore
	Host  *host.Host
	Store *dtn.Store

	before []func() // run first at Close (the node and what runs on it)
	closed bool
}

// Options are what a Process's store and host take from the test.
type Options struct {
	PSK    pnet.PSK
	Policy dtn.Policy
	Now    func() time.Time
}

// New makes a process in dir ("": a new temporary one; an existing one is
// the same process started again: same key, same store). It is closed at
// the end of the test.
func New(t testing.TB, name string, roles node.Roles, dir string, o Options) *Process {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ks, _, err := hsm.Create(context.Background(), hsm.KeyRef{File: filepath.Join(dir, "id.key")})
	if err != nil {
		t.Fatal(err)
	}
	key, err := hsm.NewPrivKey(ks)
	if err != nil {
		t.Fatal(err)
	}
	lim := node.LimitsFor(roles, 0)
	h, err := host.New(host.Config{Key: key, PSK: o.PSK, Listen: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
		DialTimeout: 3 * time.Second, Limits: &lim})
	if err != nil {
		t.Fatal(err)
	}
	st, err := dtn.Open(filepath.Join(dir, dtn.FileName), ks, dtn.Options{Policy: o.Policy, Now: o.Now,
		RetryBase: 200 * time.Millisecond, RetryCeiling: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p := &Process{Name: name, Dir: dir, Key: key, KS: ks, Host: h, Store: st}
	t.Cleanup(p.Close)
	return p
}

// ID is the process's peer ID.
func (p *Process) ID() peer.ID { return p.Host.ID() }

// Info is its peer ID and addresses.
func (p *Process) Info() peer.AddrInfo { return peer.AddrInfo{ID: p.Host.ID(), Addrs: p.Host.Addrs()} }

// BeforeClose runs f first when the process closes (stop its node).
func (p *Process) BeforeClose(f func()) { p.before = append(p.before, f) }

// Close stops what runs on the process, then its host, store and key;
// once.
func (p *Process) Close() {
	if p.closed {
		return
	}
	p.closed = true
	for _, f := range p.before {
		f()
	}
	p.Host.Close()
	p.Store.Close()
	p.KS.Close()
}

// Eventually polls cond on real time: the waits are on real I/O between
// real hosts, generous so that a slow machine only costs time.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, what, 90*time.Second, cond)
}

// Cut blocks a and b from each other and closes their connections: the
// link is down.
func Cut(a, b *Process) {
	a.Host.Gater.Block(b.ID(), "link down")
	b.Host.Gater.Block(a.ID(), "link down")
	a.Host.Network().ClosePeer(b.ID())
	b.Host.Network().ClosePeer(a.ID())
}

// Restore lets a and b reach each other again.
func Restore(a, b *Process) {
	a.Host.Gater.Unblock(b.ID())
	b.Host.Gater.Unblock(a.ID())
	a.Host.ClearBackoff(b.ID())
	b.Host.ClearBackoff(a.ID())
}
