package node

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"gardend/codec"
	"gardend/dtn"
	"gardend/host"
	"gardend/hsm"
	"gardend/internal/freeport"
)

// The delivery crash tests run one end of a link in a child process that
// SIGKILLs itself at a chosen point of the batched paths, many times:
//   - a receiver (master) killed after a batch of deliveries is durably
//     applied and before any of it is acknowledged;
//   - a sender (nano) killed after acks have arrived and before the acked
//     entries are deleted.
// Nothing may be lost and nothing applied twice.

const (
	envCrashRole = "GARDEND_NODE_CRASH_ROLE" // receiver or sender
	envCrashDir  = "GARDEND_NODE_CRASH_DIR"  // the child's data dir (id.key, state.db)
	envCrashPSK  = "GARDEND_NODE_CRASH_PSK"
	envCrashPort = "GARDEND_NODE_CRASH_PORT"
	envCrashPeer = "GARDEND_NODE_CRASH_PEER" // the other end: peer ID
	envCrashAddr = "GARDEND_NODE_CRASH_ADDR" // the other end: multiaddr
	envCrashKill = "GARDEND_NODE_CRASH_KILL" // die at this batch (1-based); 0: never
	envCrashFrom = "GARDEND_NODE_CRASH_FROM" // sender: first resource number
	envCrashN    = "GARDEND_NODE_CRASH_N"    // sender: resources to put
)

// TestDeliveryCrashChild is the child side of the delivery crash tests.
func TestDeliveryCrashChild(t *testing.T) {
	role := os.Getenv(envCrashRole)
	if role == "" {
		return // not a child: nothing to do
	}
	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex
	say := func(format string, a ...any) {
		outMu.Lock()
		fmt.Fprintf(out, format+"\n", a...)
		out.Flush()
		outMu.Unlock()
	}
	fail := func(err error) {
		say("ERR %v", err)
		os.Exit(3)
	}
	dir := os.Getenv(envCrashDir)
	ctx := context.Background()
	ks, err := hsm.Open(ctx, hsm.KeyRef{File: filepath.Join(dir, "id.key")})
	if err != nil {
		fail(err)
	}
	key, _ := hsm.NewPrivKey(ks)
	psk, _ := hex.DecodeString(os.Getenv(envCrashPSK))
	h, err := host.New(host.Config{Key: key, PSK: psk, DialTimeout: 3 * time.Second,
		Listen: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/" + os.Getenv(envCrashPort))}})
	if err != nil {
		fail(err)
	}
	st, err := dtn.Open(filepath.Join(dir, dtn.FileName), ks, dtn.Options{Policy: DTNPolicy(),
		RetryBase: 200 * time.Millisecond, RetryCeiling: time.Second, LockTimeout: 10 * time.Second})
	if err != nil {
		fail(err)
	}
	reg, _ := NewRegistry()
	c, _ := codec.New(reg, codec.DefaultLimits())
	other, err := peer.Decode(os.Getenv(envCrashPeer))
	if err != nil {
		fail(err)
	}
	otherInfo := peer.AddrInfo{ID: other, Addrs: []ma.Multiaddr{ma.StringCast(os.Getenv(envCrashAddr))}}
	killAt, _ := strconv.Atoi(os.Getenv(envCrashKill))
	batches := 0
	die := func() {
		batches++
		if batches == killAt {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
	o := Options{Name: role, Host: h, Key: key, Store: st, Codec: c, IOTimeout: 10 * time.Second}
	switch role {
	case "receiver":
		o.Roles, o.Nanos = RoleMaster, []peer.AddrInfo{otherInfo}
		o.afterApply = func(names []string) {
			// Committed: any name printed twice was applied twice.
			say("C %s", strings.Join(names, " "))
			die()
		}
	case "sender":
		o.Roles, o.Master = RoleNano, otherInfo
		o.beforeAckSave = func(int) { die() }
	}
	n, err := New(o)
	if err != nil {
		fail(err)
	}
	if err := n.Start(ctx); err != nil {
		fail(err)
	}
	say("READY")
	if role == "receiver" {
		select {} // until killed
	}
	from, _ := strconv.Atoi(os.Getenv(envCrashFrom))
	count, _ := strconv.Atoi(os.Getenv(envCrashN))
	for k := from; k < from+count; k += 50 {
		var changes []ResourceChange
		for j := k; j < min(k+50, from+count); j++ {
			changes = append(changes, ResourceChange{Op: dtn.OpCreate, ID: fmt.Sprint("r", j), Owner: n.ID(), Body: []byte("x")})
		}
		if err := n.PutResources(ctx, changes); err != nil {
			fail(err)
		}
		for _, ch := range changes {
			say("P %s", ch.ID) // durable: must reach the master
		}
	}
	for st.Len("") > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	say("DONE")
	n.Close()
	h.Close()
	st.Close()
	os.Exit(0)
}

// crashChild runs the child side with env and returns its output lines
// once it has exited (killed itself, or was killed by stop).
type crashChild struct {
	cmd   *exec.Cmd
	lines chan string
}

func startCrashChild(t *testing.T, env ...string) *crashChild {
	t.Helper()
	args := []string{os.Args[0], "-test.run=^TestDeliveryCrashChild$", "-test.count=1"}
	if w := os.Getenv("GARDEND_EXEC_WRAPPER"); w != "" {
		args = append([]string{w}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &crashChild{cmd: cmd, lines: make(chan string, 1<<16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	return c
}

// next returns the child's next line, "" once it has exited.
func (c *crashChild) next(t *testing.T, within time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			return ""
		}
		if strings.HasPrefix(l, "ERR") {
			t.Fatalf("child failed: %s", l)
		}
		return l
	case <-time.After(within):
		c.cmd.Process.Signal(syscall.SIGKILL)
		t.Fatalf("child silent for %v", within)
	}
	return ""
}

func (c *crashChild) kill() { c.cmd.Process.Signal(syscall.SIGKILL); c.cmd.Wait() }

// childIdentity makes the child's key file (so its peer ID is known
// before it runs) and returns its data dir and peer ID.
func childIdentity(t *testing.T) (string, peer.ID) {
	dir := t.TempDir()
	ks, _, err := hsm.Create(context.Background(), hsm.KeyRef{File: filepath.Join(dir, "id.key")})
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	key, _ := hsm.NewPrivKey(ks)
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return dir, id
}

func crashRounds() int {
	if testing.Short() {
		return 4
	}
	return 12
}

// TestReceiverKilledBetweenBatchCommitAndAcks: a master dies right after
// committing a batch of deliveries, before acknowledging any; the nano
// redelivers them and the master acknowledges them as duplicates.
func TestReceiverKilledBetweenBatchCommitAndAcks(t *testing.T) {
	if os.Getenv(envCrashRole) != "" {
		t.Skip("child process")
	}
	ctx := context.Background()
	tn := newTestNet(t)
	nano := tn.peerOf("nano", RoleNano)
	dir, masterID := childIdentity(t)
	port := strconv.Itoa(freeport.Port(t))
	nano.opts.Master = peer.AddrInfo{ID: masterID, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/" + port)}}
	nano.start(t)
	rng := rand.New(rand.NewPCG(11, uint64(time.Now().UnixNano())))
	committed := map[string]int{}
	var put []string
	kills := 0
	rounds := crashRounds()
	for round := range rounds {
		// A backlog while the master is down.
		for k := 0; k < 300; k += 50 {
			var changes []ResourceChange
			for j := k; j < k+50; j++ {
				id := fmt.Sprintf("r%d-%d", round, j)
				changes = append(changes, ResourceChange{Op: dtn.OpCreate, ID: id, Owner: nano.ID(), Body: []byte("x")})
				put = append(put, id)
			}
			if err := nano.PutResources(ctx, changes); err != nil {
				t.Fatal(err)
			}
		}
		last := round == rounds-1
		killAt := 1 + rng.IntN(4)
		if last {
			killAt = 0
		}
		c := startCrashChild(t, envCrashRole+"=receiver", envCrashDir+"="+dir, envCrashPSK+"="+hex.EncodeToString(tn.psk),
			envCrashPort+"="+port, envCrashPeer+"="+nano.ID().String(), envCrashAddr+"="+nano.host.Addrs()[0].String(),
			envCrashKill+"="+strconv.Itoa(killAt))
		if l := c.next(t, time.Minute); l != "READY" {
			t.Fatalf("round %d: child said %q", round, l)
		}
		nano.host.ClearBackoff(masterID)
		if err := nano.store.Nudge(ctx, string(masterID)); err != nil {
			t.Fatal(err)
		}
		// Until the child kills itself, or the backlog is drained (then it
		// is killed at whatever point it stands).
		selfKilled := false
		deadline := time.Now().Add(2 * time.Minute)
	read:
		for {
			select {
			case l, ok := <-c.lines:
				if !ok {
					selfKilled = true
					break read
				}
				if strings.HasPrefix(l, "ERR") {
					t.Fatalf("child failed: %s", l)
				}
				if names, ok := strings.CutPrefix(l, "C"); ok {
					for _, name := range strings.Fields(names) {
						committed[name]++
					}
				}
			case <-time.After(20 * time.Millisecond):
				if nano.store.Len("") == 0 {
					c.cmd.Process.Signal(syscall.SIGKILL)
				}
				if time.Now().After(deadline) {
					c.kill()
					t.Fatalf("round %d: the backlog did not drain", round)
				}
			}
		}
		c.cmd.Wait()
		if last && selfKilled && nano.store.Len("") != 0 {
			t.Fatalf("round %d: the child died on its own", round)
		}
		if !last && selfKilled && nano.store.Len("") != 0 {
			kills++
		}
	}
	if kills == 0 {
		t.Fatal("the receiver was never killed between a batch commit and its acks: the test proved nothing")
	}
	for name, k := range committed {
		if k > 1 {
			t.Fatalf("%s applied %d times", name, k)
		}
	}
	// Every resource put on the nano was applied (and its entry acked).
	ks, err := hsm.Open(ctx, hsm.KeyRef{File: filepath.Join(dir, "id.key")})
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	st, err := dtn.Open(filepath.Join(dir, dtn.FileName), ks, dtn.Options{Policy: DTNPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		t.Fatal(err)
	}
	st.View(func(tx *dtn.Tx) error {
		for _, id := range put {
			if v, err := tx.Get(bucketCatalogue, tx.Hash("resource", []byte(id))); err != nil || v == nil {
				t.Fatalf("%s lost: acked by a master that does not hold it (%v)", id, err)
			}
			if committed[id] != 1 {
				t.Fatalf("%s in the catalogue, applied %d times", id, committed[id])
			}
		}
		return nil
	})
	if dups := nano.Metrics.Get("delivery_acked"); dups < uint64(len(put)) {
		t.Fatalf("only %d acks for %d resources", dups, len(put))
	}
	t.Logf("%d rounds, %d kills between a batch commit and its acks, %d resources applied once each", rounds, kills, len(put))
}

// TestSenderKilledBetweenAcksAndDeletion: a nano dies when acks have
// arrived and before the acked entries are deleted; it redelivers them
// after restart and the master does not apply them again.
func TestSenderKilledBetweenAcksAndDeletion(t *testing.T) {
	if os.Getenv(envCrashRole) != "" {
		t.Skip("child process")
	}
	tn := newTestNet(t)
	master := tn.peerOf("master", RoleMaster)
	dir, nanoID := childIdentity(t)
	port := strconv.Itoa(freeport.Port(t))
	var mu sync.Mutex
	applied := map[string]int{}
	master.opts.OnApplied = func(_ peer.ID, _, id string) {
		mu.Lock()
		applied[id]++
		mu.Unlock()
	}
	master.opts.Nanos = []peer.AddrInfo{{ID: nanoID, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/" + port)}}}
	master.start(t)
	rng := rand.New(rand.NewPCG(13, uint64(time.Now().UnixNano())))
	var put []string
	kills := 0
	rounds := crashRounds()
	for round := range rounds {
		last := round == rounds-1
		killAt := 1 + rng.IntN(5)
		if last {
			killAt = 0
		}
		c := startCrashChild(t, envCrashRole+"=sender", envCrashDir+"="+dir, envCrashPSK+"="+hex.EncodeToString(tn.psk),
			envCrashPort+"="+port, envCrashPeer+"="+master.ID().String(), envCrashAddr+"="+master.host.Addrs()[0].String(),
			envCrashKill+"="+strconv.Itoa(killAt), envCrashFrom+"="+strconv.Itoa(round*1000), envCrashN+"=400")
		done := false
		for l := c.next(t, 2*time.Minute); l != ""; l = c.next(t, 2*time.Minute) {
			if id, ok := strings.CutPrefix(l, "P "); ok {
				put = append(put, id)
			}
			done = done || l == "DONE"
		}
		err := c.cmd.Wait()
		switch {
		case last && !done:
			t.Fatalf("last round: the nano never drained its queue: %v", err)
		case !last && done:
			t.Logf("round %d: drained before batch %d", round, killAt)
		case !last:
			kills++
		}
		master.host.ClearBackoff(nanoID)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, k := range applied {
		if k > 1 {
			t.Fatalf("%s applied %d times at the master", id, k)
		}
	}
	for _, id := range put {
		if applied[id] != 1 || !hasResource(master, id) {
			t.Fatalf("%s lost: its PutResources returned on the nano, never applied at the master", id)
		}
	}
	if kills == 0 {
		t.Fatal("the sender was never killed between acks and deletion: the test proved nothing")
	}
	t.Logf("%d rounds, %d kills between acks and their deletion, %d resources applied once each, %d duplicates acked",
		rounds, kills, len(put), master.Metrics.Get("deliveries_duplicate"))
}
