package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"gardend/codec"
	"gardend/dtn"
	"gardend/host"
	"gardend/hsm"
	"gardend/internal/poll"
	"gardend/internal/testkeys"
	"gardend/plan"
)

// testNet is an in-process network on loopback: real hosts, real stores,
// links that can be cut (both gaters block the pair and the connections
// are closed).
type testNet struct {
	t     testing.TB
	psk   pnet.PSK
	codec *codec.Codec
	nodes []*tnode
}

type tnode struct {
	*Node
	name      string
	key       crypto.PrivKey
	ks        hsm.Keystore
	host      *host.Host
	store     *dtn.Store
	storeOpts dtn.Options
	opts      Options
}

func newTestNet(t testing.TB) *testNet {
	reg, err := NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	c, err := codec.New(reg, codec.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return &testNet{t: t, psk: testkeys.PSK(t), codec: c}
}

// peerOf makes a node's identity, host and store; the node itself is built
// by start once every peer's address is known.
func (tn *testNet) peerOf(name string, roles Roles, storeOpts ...func(*dtn.Options)) *tnode {
	t := tn.t
	dir := t.TempDir()
	ks, _, err := hsm.Create(context.Background(), hsm.KeyRef{File: filepath.Join(dir, "id.key")})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := hsm.NewPrivKey(ks)
	lim := LimitsFor(roles, 0)
	h, err := host.New(host.Config{Key: key, PSK: tn.psk, Listen: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
		DialTimeout: 3 * time.Second, Identify: roles.Has(RoleIndexer) && DHTBuilt, Limits: &lim})
	if err != nil {
		t.Fatal(err)
	}
	so := dtn.Options{Policy: DTNPolicy(), RetryBase: 500 * time.Millisecond, RetryCeiling: 2 * time.Second}
	for _, f := range storeOpts {
		f(&so)
	}
	st, err := dtn.Open(filepath.Join(dir, dtn.FileName), ks, so)
	if err != nil {
		t.Fatal(err)
	}
	tnd := &tnode{name: name, key: key, ks: ks, host: h, store: st, storeOpts: so}
	tnd.opts = Options{Name: name, Roles: roles, Host: h, Key: key, Store: st, Codec: tn.codec,
		HeartbeatInterval: 200 * time.Millisecond, IOTimeout: 5 * time.Second}
	t.Cleanup(func() {
		if tnd.Node != nil {
			tnd.Node.Close()
		}
		h.Close()
		tnd.store.Close()
		ks.Close()
	})
	tn.nodes = append(tn.nodes, tnd)
	return tnd
}

func (x *tnode) info() peer.AddrInfo { return peer.AddrInfo{ID: x.host.ID(), Addrs: x.host.Addrs()} }

// start builds and starts the node with its options as they stand.
func (x *tnode) start(t testing.TB) {
	t.Helper()
	n, err := New(x.opts)
	if err != nil {
		t.Fatal(err)
	}
	x.Node = n
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// cut and restore the link between a and b.
func cut(a, b *tnode) {
	a.host.Gater.Block(b.host.ID(), "link down")
	b.host.Gater.Block(a.host.ID(), "link down")
	a.host.Network().ClosePeer(b.host.ID())
	b.host.Network().ClosePeer(a.host.ID())
}

func restore(a, b *tnode) {
	a.host.Gater.Unblock(b.host.ID())
	b.host.Gater.Unblock(a.host.ID())
	a.host.ClearBackoff(b.host.ID())
	b.host.ClearBackoff(a.host.ID())
}

// eventually waits for cond on real I/O (poll.Until: no wait under a
// minute, since qemu on a loaded machine is slow).
func eventually(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	poll.Until(t, what, within, cond)
}

func hasResource(x *tnode, id string) bool {
	r, err := x.GetResource(id)
	return err == nil && r != nil
}

// groundAndNanos builds the test network of the issue: one master, two
// indexers, three nanos; every peer heartbeats to both indexers.
func groundAndNanos(t *testing.T) (tn *testNet, master *tnode, idx []*tnode, nanos []*tnode) {
	tn = newTestNet(t)
	master = tn.peerOf("master", RoleMaster)
	idx = []*tnode{tn.peerOf("idx-a", RoleIndexer), tn.peerOf("idx-b", RoleIndexer)}
	for i := range 3 {
		nanos = append(nanos, tn.peerOf(fmt.Sprint("nano-", i), RoleNano))
	}
	indexers := []peer.AddrInfo{idx[0].info(), idx[1].info()}
	for _, x := range idx {
		x.opts.DHT = DHTBuilt
		for _, y := range idx {
			if y != x {
				x.opts.DHTBootstrap = append(x.opts.DHTBootstrap, y.info())
			}
		}
	}
	master.opts.Indexers = indexers
	for _, nn := range nanos {
		master.opts.Nanos = append(master.opts.Nanos, nn.info())
		nn.opts.Master = master.info()
		nn.opts.Indexers = indexers
	}
	for _, x := range tn.nodes {
		x.start(t)
	}
	return tn, master, idx, nanos
}

func TestResourcesFlowBothWaysAcrossGaps(t *testing.T) {
	ctx := context.Background()
	_, master, _, nanos := groundAndNanos(t)
	// While connected: the master creates one resource per nano, each nano one of its own.
	for i, nn := range nanos {
		if err := master.PutResource(ctx, dtn.OpCreate, fmt.Sprint("ground-", i), nn.ID(), []byte("from ground")); err != nil {
			t.Fatal(err)
		}
		if err := nn.PutResource(ctx, dtn.OpCreate, fmt.Sprint("board-", i), nn.ID(), []byte("from board")); err != nil {
			t.Fatal(err)
		}
	}
	for i, nn := range nanos {
		eventually(t, "first deliveries", 10*time.Second, func() bool {
			return hasResource(nn, fmt.Sprint("ground-", i)) && hasResource(master, fmt.Sprint("board-", i))
		})
	}
	// A gap: nano 0 is out of sight; both sides keep working.
	cut(master, nanos[0])
	if err := master.PutResource(ctx, dtn.OpUpdate, "ground-0", nanos[0].ID(), []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if err := master.PutResource(ctx, dtn.OpCreate, "ground-0b", nanos[0].ID(), []byte("made in the gap")); err != nil {
		t.Fatal(err)
	}
	if err := nanos[0].PutResource(ctx, dtn.OpCreate, "board-0b", nanos[0].ID(), []byte("made in the gap")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if hasResource(nanos[0], "ground-0b") || hasResource(master, "board-0b") {
		t.Fatal("delivered across a cut link")
	}
	if master.store.Len(string(nanos[0].ID())) == 0 || nanos[0].store.Len(string(master.ID())) == 0 {
		t.Fatal("nothing waiting in the DTN stores during the gap")
	}
	restore(master, nanos[0])
	eventually(t, "delivery after the gap", 10*time.Second, func() bool {
		r, _ := nanos[0].GetResource("ground-0")
		return r != nil && string(r.Body) == "v2" && hasResource(nanos[0], "ground-0b") && hasResource(master, "board-0b")
	})
	eventually(t, "stores drained", 5*time.Second, func() bool {
		return master.store.Len("") == 0 && nanos[0].store.Len("") == 0
	})
	// Forwarding is by ownership: nano 1 never received nano 0's resources.
	for _, id := range []string{"ground-0", "ground-0b", "ground-2"} {
		if hasResource(nanos[1], id) {
			t.Fatalf("nano 1 received %s, which it does not own", id)
		}
	}
	if d := nanos[0].Metrics.Get("deliveries_duplicate") + master.Metrics.Get("deliveries_duplicate"); d > 0 {
		t.Logf("%d redeliveries acknowledged without re-applying", d)
	}
}

// putApplied puts resource id on from, owned by dest, and waits for it on
// applied (the receiver's OnApplied): a generous minute, real I/O.
func putApplied(t testing.TB, from *tnode, dest peer.ID, id string, body []byte, applied <-chan string) {
	t.Helper()
	if err := from.PutResource(context.Background(), dtn.OpCreate, id, dest, body); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-applied:
		if got != id {
			t.Fatalf("applied %s, want %s", got, id)
		}
	case <-time.After(time.Minute):
		t.Fatalf("%s not applied within a minute", id)
	}
}

// A trickle of writes, each delivered before the next, goes over one drain
// and one stream: the drain lingers for the next write instead of closing
// its stream. The signal of the last ack's deletion, when the deletion was
// quicker than the drain's look, used to end the linger at once (on a fast
// disk most writes opened a stream of their own).
func TestATrickleOfWritesSharesOneStream(t *testing.T) {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		t.Setenv("TMPDIR", "/dev/shm") // commits in microseconds: acks saved before the drain looks
	}
	tn := newTestNet(t)
	master := tn.peerOf("master", RoleMaster)
	nano := tn.peerOf("nano", RoleNano)
	applied := make(chan string, 1)
	master.opts.OnApplied = func(_ peer.ID, _, id string) { applied <- id }
	nano.opts.drainLinger = time.Hour // however slow the machine, the linger outlasts the gap
	master.opts.Nanos = []peer.AddrInfo{nano.info()}
	nano.opts.Master = master.info()
	master.start(t)
	nano.start(t)
	eventually(t, "nano connected", 10*time.Second, func() bool { return nano.Connected(master.ID()) })
	const writes = 20
	for i := range writes {
		id := fmt.Sprint("r", i)
		time.Sleep(5 * time.Millisecond) // the last ack comes home: the drain lingers
		putApplied(t, nano, nano.ID(), id, make([]byte, 300), applied)
	}
	if d, s := nano.Metrics.Get("drains_started"), nano.Metrics.Get("delivery_streams_opened"); d != 1 || s != 1 {
		t.Fatalf("%d writes took %d drains and %d streams, want 1 and 1", writes, d, s)
	}
	if s := nano.Metrics.Get("delivery_sent"); s != writes {
		t.Fatalf("delivery_sent %d, want %d", s, writes)
	}
}

// A drain lingering for more gives its worker up as soon as another
// destination waits for one: with a single worker, a write to a second nano
// is delivered while the first nano's drain would still be lingering.
func TestALingeringDrainGivesItsWorkerUp(t *testing.T) {
	tn := newTestNet(t)
	master := tn.peerOf("master", RoleMaster)
	nanos := []*tnode{tn.peerOf("nano-a", RoleNano), tn.peerOf("nano-b", RoleNano)}
	applied := make(chan string, 2)
	for _, nn := range nanos {
		nn.opts.OnApplied = func(_ peer.ID, _, id string) { applied <- id }
		nn.opts.Master = master.info()
		master.opts.Nanos = append(master.opts.Nanos, nn.info())
	}
	master.opts.MaxDrains = 1
	master.opts.drainLinger = time.Hour // longer than the test may take
	acksSaved := make(chan int, 2)
	master.opts.afterAckSave = func(n int) { acksSaved <- n }
	master.start(t)
	for _, nn := range nanos {
		nn.start(t)
		eventually(t, "nano connected", 10*time.Second, func() bool { return master.Connected(nn.ID()) })
	}
	for i, nn := range nanos {
		// Not applied in time: the first drain kept the only worker.
		putApplied(t, master, nn.ID(), fmt.Sprint("for-", i), []byte("x"), applied)
		if i == 0 {
			<-acksSaved
			time.Sleep(50 * time.Millisecond) // the drain is lingering by now (or the check before it catches the wait)
		}
	}
	if q := master.Metrics.Get("drains_queued"); q != 1 {
		t.Fatalf("drains_queued %d, want 1 (the second nano waited for the worker)", q)
	}
}

// A write that commits between a drain's last look at the queue (empty)
// and its worker letting the destination go was handed to that drain
// (its "more" signal), not left for the next: it is delivered all the
// same, without waiting for another write.
func TestAWriteAsADrainEndsIsDelivered(t *testing.T) {
	tn := newTestNet(t)
	master := tn.peerOf("master", RoleMaster)
	nano := tn.peerOf("nano", RoleNano)
	applied := make(chan string, 2)
	master.opts.OnApplied = func(_ peer.ID, _, id string) { applied <- id }
	master.opts.Nanos = []peer.AddrInfo{nano.info()}
	nano.opts.Master = master.info()
	nano.opts.drainLinger = time.Millisecond
	var once sync.Once
	nano.opts.afterEmptyPeek = func() {
		// The first drain's end, r0 delivered: write r1 and hold the
		// worker while the delivery loop hands the write to this drain.
		once.Do(func() {
			if err := nano.PutResource(context.Background(), dtn.OpCreate, "r1", nano.ID(), []byte("y")); err != nil {
				t.Error(err)
			}
			time.Sleep(100 * time.Millisecond)
		})
	}
	master.start(t)
	nano.start(t)
	eventually(t, "nano connected", 10*time.Second, func() bool { return nano.Connected(master.ID()) })
	putApplied(t, nano, nano.ID(), "r0", []byte("x"), applied)
	select {
	case got := <-applied:
		if got != "r1" {
			t.Fatalf("applied %q, want r1", got)
		}
	case <-time.After(time.Minute):
		t.Fatalf("r1 not delivered: %d entries queued, %d drains started", nano.store.Len(string(master.ID())), nano.Metrics.Get("drains_started"))
	}
}

// A destination that waited for a drain worker while its window closed is
// not drained when a worker frees (nothing is written outside a window): it
// waits for its next window, and is drained then. The master's clock is
// the test's.
func TestAQueuedDrainWaitsForItsNextWindow(t *testing.T) {
	ctx := context.Background()
	t0 := time.Now()
	clock := &simClock{t: t0}
	tn := newTestNet(t)
	master := tn.peerOf("master", RoleMaster, func(o *dtn.Options) { o.Now = clock.Now })
	a, b := tn.peerOf("nano-a", RoleNano), tn.peerOf("nano-b", RoleNano)
	release := make(chan struct{})
	var once sync.Once
	a.opts.afterApply = func([]string) { <-release } // nano-a holds its acks: the master's only worker waits
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	p, err := plan.New([]plan.Window{{Start: t0.Add(-time.Hour), End: t0.Add(time.Hour)}, {Start: t0.Add(3 * time.Hour), End: t0.Add(4 * time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	prof := ProfileFor(ProfileOrbital)
	prof.Guard = 0
	master.opts.Now = clock.Now
	master.opts.MaxDrains = 1
	master.opts.Nanos = []peer.AddrInfo{a.info(), b.info()}
	master.opts.NanoContacts = map[peer.ID]Contact{b.host.ID(): {Profile: prof, Plan: p}}
	a.opts.Master, b.opts.Master = master.info(), master.info()
	master.start(t)
	a.start(t)
	b.start(t)
	eventually(t, "both nanos connected", 10*time.Second, func() bool { return master.Connected(a.ID()) && master.Connected(b.ID()) })
	if err := master.PutResource(ctx, dtn.OpCreate, "for-a", a.ID(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the worker busy with nano-a", 10*time.Second, func() bool { return master.Metrics.Get("delivery_sent") >= 1 })
	if err := master.PutResource(ctx, dtn.OpCreate, "for-b", b.ID(), []byte("y")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "nano-b waiting for the worker", 10*time.Second, func() bool { return master.Metrics.Get("drains_queued") >= 1 })

	clock.Set(t0.Add(2 * time.Hour)) // nano-b's window is over
	once.Do(func() { close(release) })
	eventually(t, "the worker done", time.Minute, func() bool {
		master.deliveryMu.Lock()
		defer master.deliveryMu.Unlock()
		return master.running == 0
	})
	if hasResource(b, "for-b") {
		t.Fatal("for-b was delivered to nano-b outside its window")
	}

	clock.Set(t0.Add(3*time.Hour + time.Minute)) // its next window
	eventually(t, "for-b delivered in nano-b's next window", time.Minute, func() bool { return hasResource(b, "for-b") })
}

// A destination written to again and again in a gap is held once, at its
// earliest time, not once per write.
func TestDeferralsHoldEachDestinationOnce(t *testing.T) {
	d := deferrals{at: map[peer.ID]time.Time{}}
	t0 := time.Unix(1_000_000, 0)
	for i := range 1000 {
		d.add("a", t0.Add(time.Hour+time.Duration(i)*time.Second))
	}
	d.add("b", t0.Add(2*time.Hour))
	d.add("a", t0.Add(30*time.Minute)) // earlier: held for then
	if got := d.due(t0.Add(29 * time.Minute)); len(got) != 0 {
		t.Fatalf("due before any time: %v", got)
	}
	if got := d.due(t0.Add(time.Hour + time.Hour/2)); len(got) != 1 || got[0] != "a" {
		t.Fatalf("due after an hour and a half: %v, want a once", got)
	}
	if got := d.due(t0.Add(3 * time.Hour)); len(got) != 1 || got[0] != "b" {
		t.Fatalf("due at three hours: %v, want b", got)
	}
	if len(d.h) != 0 || len(d.at) != 0 {
		t.Fatalf("left: heap %d, times %d", len(d.h), len(d.at))
	}
}

// An update of a resource whose previous version is in flight replaces that
// entry in place (same queue position, new ID), behind the open stream's
// cursor; the previous version's ack then deletes nothing, and the stream
// goes back for the update instead of leaving it until the stream ends
// (here never: the idle stream is kept an hour at both ends).
func TestAnUpdateOfAnEntryInFlightGoesOnTheOpenStream(t *testing.T) {
	ctx := context.Background()
	tn := newTestNet(t)
	master := tn.peerOf("master", RoleMaster)
	nano := tn.peerOf("nano", RoleNano)
	var once sync.Once
	master.opts.afterApply = func(names []string) {
		// v1 applied at the master, its ack not sent yet: v2 replaces v1
		// in the nano's queue.
		once.Do(func() {
			if err := nano.PutResource(ctx, dtn.OpUpdate, "s", nano.ID(), []byte("v2")); err != nil {
				t.Error(err)
			}
		})
	}
	master.opts.Nanos = []peer.AddrInfo{nano.info()}
	nano.opts.Master = master.info()
	nano.opts.drainLinger = time.Hour
	master.opts.IOTimeout = time.Hour // nor does the master end it for idleness
	master.start(t)
	nano.start(t)
	eventually(t, "nano connected", 10*time.Second, func() bool { return nano.Connected(master.ID()) })
	if err := nano.PutResource(ctx, dtn.OpCreate, "s", nano.ID(), []byte("v1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "v2 at the master", time.Minute, func() bool {
		r, _ := master.GetResource("s")
		return r != nil && string(r.Body) == "v2"
	})
	eventually(t, "the nano's queue empty", time.Minute, func() bool { return nano.store.Len(string(master.ID())) == 0 })
	if got := nano.Metrics.Get("delivery_streams_opened"); got != 1 {
		t.Fatalf("%d streams opened, want 1 (v2 on v1's stream)", got)
	}
}

func TestMasterKeepsItsOwnResourcesAndRefusesForeignChanges(t *testing.T) {
	ctx := context.Background()
	_, master, _, nanos := groundAndNanos(t)
	if err := master.PutResource(ctx, dtn.OpCreate, "ground-only", master.ID(), nil); err != nil {
		t.Fatal(err)
	}
	if master.store.Len("") != 0 {
		t.Fatal("a master-owned resource was queued for a nano")
	}
	// A nano may not change another nano's resource, even through its master.
	var refusal *Refusal
	if err := nanos[0].PutResource(ctx, dtn.OpCreate, "stolen", nanos[1].ID(), nil); !asRefusal(err, &refusal) {
		t.Fatalf("nano changed a resource it does not own: %v", err)
	}
}

func asRefusal(err error, r **Refusal) bool {
	if err == nil {
		return false
	}
	x, ok := err.(*Refusal)
	*r = x
	return ok
}

// mustID is the peer ID of key.
func mustID(t testing.TB, k crypto.PrivKey) string {
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(id)
}

// TestBeforeServeRunsBeforeAnyProtocolIsServed: what the Carriers read (a
// relay, the fleet's state) is set up in BeforeServe, while the node's
// loops run and before it serves a single protocol; its error fails Start.
func TestBeforeServeRunsBeforeAnyProtocolIsServed(t *testing.T) {
	tn := newTestNet(t)
	x := tn.peerOf("master", RoleMaster)
	ran := false
	x.opts.BeforeServe = func(ctx context.Context, n *Node) error {
		ran = true
		if ctx.Err() != nil || n.ID() != x.host.ID() {
			t.Errorf("BeforeServe got context error %v, node %s", ctx.Err(), n.ID())
		}
		if served := x.host.Mux().Protocols(); len(served) != 0 {
			t.Errorf("protocols served before BeforeServe returned: %v", served)
		}
		return nil
	}
	x.start(t)
	if !ran {
		t.Fatal("BeforeServe did not run")
	}
	if served := x.host.Mux().Protocols(); !slices.Contains(served, protocol.ID(ProtoResource)) {
		t.Fatalf("after Start the node serves %v, not %s", served, ProtoResource)
	}

	y := tn.peerOf("master2", RoleMaster)
	boom := errors.New("relay not ready")
	y.opts.BeforeServe = func(context.Context, *Node) error { return boom }
	n, err := New(y.opts)
	if err != nil {
		t.Fatal(err)
	}
	y.Node = n
	if err := n.Start(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Start with a failing BeforeServe: %v", err)
	}
	if served := y.host.Mux().Protocols(); len(served) != 0 {
		t.Fatalf("a node whose BeforeServe failed serves %v", served)
	}
}

// TestBeginHoldsTheLoopsNotTheServing: with Options.Begin (the daemon
// closes it once READY is sent) a node serves at once but its loops wait:
// what the master sends is applied, what the nano owes the master stays
// queued until Begin closes, then goes.
func TestBeginHoldsTheLoopsNotTheServing(t *testing.T) {
	ctx := context.Background()
	tn := newTestNet(t)
	master := tn.peerOf("master", RoleMaster)
	nano := tn.peerOf("nano", RoleNano)
	master.opts.Nanos = []peer.AddrInfo{nano.info()}
	nano.opts.Master = master.info()
	begin := make(chan struct{})
	nano.opts.Begin = begin
	master.start(t)
	nano.start(t)
	if err := nano.PutResource(ctx, dtn.OpCreate, "board", nano.ID(), []byte("from board")); err != nil {
		t.Fatal(err)
	}
	if err := master.PutResource(ctx, dtn.OpCreate, "ground", nano.ID(), []byte("from ground")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the master's resource applied by the held nano", time.Minute, func() bool { return hasResource(nano, "ground") })
	if hasResource(master, "board") || nano.store.Len(string(master.ID())) != 1 {
		t.Fatal("the nano delivered before Begin closed")
	}
	close(begin)
	eventually(t, "the nano's resource delivered once Begin closed", time.Minute, func() bool {
		return hasResource(master, "board") && nano.store.Len("") == 0
	})
}

// A handler still running when Close begins may ask for background work
// (an indexer publishing to the DHT): Close must not return with it
// started, nor race its wait with the start (CI's race detector saw this).
func TestCloseStartsNoMoreLoops(t *testing.T) {
	tn := newTestNet(t)
	x := tn.peerOf("idx", RoleIndexer)
	x.start(t)
	x.Close()
	ran := make(chan struct{}, 1)
	x.loop(func() { ran <- struct{}{} })
	x.wg.Wait()
	select {
	case <-ran:
		t.Fatal("a loop started after Close")
	default:
	}
}
