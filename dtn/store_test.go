package dtn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"gardend/hsm"
)

const (
	protoCreate  = "/t/resource/create"
	protoUpdate  = "/t/resource/update"
	protoDelete  = "/t/resource/delete"
	protoPlanner = "/t/planner"
	protoConfig  = "/t/config"
	protoSearch  = "/t/search"
)

var testPolicy = Policy{
	Levels: map[string]Level{protoCreate: Critical, protoUpdate: Critical, protoDelete: Critical,
		protoPlanner: Moderate, protoConfig: Moderate},
	Families: map[string]string{protoCreate: "resource", protoUpdate: "resource", protoDelete: "resource"},
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	dir   string
	path  string
	ks    hsm.Keystore
	clock *fakeClock
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	ks, _, err := hsm.Create(context.Background(), hsm.KeyRef{File: filepath.Join(dir, "id.key")})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: dir, path: filepath.Join(dir, "state.db"), ks: ks,
		clock: &fakeClock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}}
}

func (f *fixture) open(t testing.TB, mod ...func(*Options)) *Store {
	t.Helper()
	o := Options{Policy: testPolicy, Now: f.clock.Now}
	for _, m := range mod {
		m(&o)
	}
	s, err := Open(f.path, f.ks, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func entry(dest, proto, res string, op Op, payload string) Entry {
	l := testPolicy.Levels[proto]
	return Entry{Dest: dest, Protocol: proto, ResourceID: res, Op: op, Payload: []byte(payload), Level: l}
}

func enqueue(t testing.TB, s *Store, e Entry) (Outcome, Ref) {
	t.Helper()
	out, ref, err := s.Enqueue(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	return out, ref
}

func payloads(t testing.TB, s *Store, dest string) []string {
	t.Helper()
	es, err := s.Peek(dest, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s:%s", e.Op, e.Payload))
	}
	return out
}

func TestFIFOPerDestinationAndAck(t *testing.T) {
	ctx := context.Background()
	s := newFixture(t).open(t)
	for i := range 5 {
		enqueue(t, s, entry("A", protoCreate, fmt.Sprint("a", i), OpCreate, fmt.Sprint(i)))
		enqueue(t, s, entry("B", protoCreate, fmt.Sprint("b", i), OpCreate, fmt.Sprint(10+i)))
	}
	if got := fmt.Sprint(payloads(t, s, "A")); got != "[create:0 create:1 create:2 create:3 create:4]" {
		t.Fatalf("A = %s", got)
	}
	es, _ := s.Peek("A", 2)
	for _, e := range es {
		if err := s.Ack(ctx, "A", e.Ref); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Ack(ctx, "A", es[0].Ref); err != nil { // duplicate ack: harmless
		t.Fatal(err)
	}
	if got := fmt.Sprint(payloads(t, s, "A")); got != "[create:2 create:3 create:4]" {
		t.Fatalf("after acks A = %s", got)
	}
	if s.Len("B") != 5 || s.Len("") != 8 || s.Metrics.StaleAcks.Load() != 1 {
		t.Fatalf("len B %d all %d stale %d", s.Len("B"), s.Len(""), s.Metrics.StaleAcks.Load())
	}
}

func TestLifecycleRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []Entry
		want  string
		outs  []Outcome
	}{
		{"delete is terminal", []Entry{
			entry("N", protoCreate, "r", OpCreate, "v1"), entry("N", protoDelete, "r", OpDelete, "gone"),
			entry("N", protoUpdate, "r", OpUpdate, "v2"), entry("N", protoCreate, "r", OpCreate, "v3")},
			"[delete:gone]", []Outcome{Queued, Replaced, Dropped, Dropped}},
		{"create after update dropped", []Entry{
			entry("N", protoUpdate, "r", OpUpdate, "u1"), entry("N", protoCreate, "r", OpCreate, "c")},
			"[update:u1]", []Outcome{Queued, Dropped}},
		{"update replaces update in place", []Entry{
			entry("N", protoUpdate, "r", OpUpdate, "u1"), entry("N", protoCreate, "x", OpCreate, "x"),
			entry("N", protoUpdate, "r", OpUpdate, "u2")},
			"[update:u2 create:x]", []Outcome{Queued, Queued, Replaced}},
		{"create then update stays a create", []Entry{
			entry("N", protoCreate, "r", OpCreate, "c1"), entry("N", protoUpdate, "r", OpUpdate, "u1")},
			"[create:u1]", []Outcome{Queued, Replaced}},
		{"other protocols are not merged", []Entry{
			entry("N", protoPlanner, "r", OpOther, "plan"), entry("N", protoConfig, "r", OpOther, "conf"),
			entry("N", protoCreate, "r", OpCreate, "c")},
			"[other:plan other:conf create:c]", []Outcome{Queued, Queued, Queued}},
		{"no resource id: never merged", []Entry{
			entry("N", protoPlanner, "", OpOther, "p1"), entry("N", protoPlanner, "", OpOther, "p2")},
			"[other:p1 other:p2]", []Outcome{Queued, Queued}},
		{"other destinations are not merged", []Entry{
			entry("N", protoDelete, "r", OpDelete, "d"), entry("M", protoCreate, "r", OpCreate, "c")},
			"[delete:d]", []Outcome{Queued, Queued}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFixture(t).open(t)
			for i, e := range tc.steps {
				if out, _ := enqueue(t, s, e); out != tc.outs[i] {
					t.Fatalf("step %d: %v, want %v", i, out, tc.outs[i])
				}
			}
			if got := fmt.Sprint(payloads(t, s, "N")); got != tc.want {
				t.Fatalf("queue = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestReplacedEntryGetsNewIDAndStaleAckKeepsIt(t *testing.T) {
	ctx := context.Background()
	s := newFixture(t).open(t)
	_, v1 := enqueue(t, s, entry("N", protoUpdate, "r", OpUpdate, "v1"))
	_, v2 := enqueue(t, s, entry("N", protoUpdate, "r", OpUpdate, "v2"))
	if v1.Pos != v2.Pos || v1.ID == v2.ID {
		t.Fatalf("v1 %+v v2 %+v: want same position, new ID", v1, v2)
	}
	// v1 was in flight and the receiver acked it: v2 must stay queued.
	if err := s.Ack(ctx, "N", v1); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(payloads(t, s, "N")); got != "[update:v2]" {
		t.Fatalf("after stale ack: %s", got)
	}
	if err := s.Ack(ctx, "N", v2); err != nil {
		t.Fatal(err)
	}
	// The dedup index went with the entry: a new update is queued afresh.
	if out, _ := enqueue(t, s, entry("N", protoUpdate, "r", OpUpdate, "v3")); out != Queued {
		t.Fatalf("after ack: %v", out)
	}
}

func TestRetriesBackoffAndGivingUp(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	s := f.open(t, func(o *Options) { o.RetryBase = 10 * time.Second; o.RetryCeiling = 40 * time.Second })
	_, crit := enqueue(t, s, entry("N", protoCreate, "r", OpCreate, "c"))
	_, mod := enqueue(t, s, entry("P", protoPlanner, "", OpOther, "p"))
	if fmt.Sprint(s.Due()) != "[N P]" || fmt.Sprint(s.PendingCritical()) != "[N]" {
		t.Fatalf("due %v critical %v", s.Due(), s.PendingCritical())
	}
	var waits []time.Duration
	for range 5 {
		if err := s.Fail(ctx, "N", crit); err != nil {
			t.Fatal(err)
		}
		start := f.clock.Now()
		for len(s.Due()) == 0 || s.Due()[0] != "N" {
			f.clock.Add(time.Second)
		}
		waits = append(waits, f.clock.Now().Sub(start))
	}
	if fmt.Sprint(waits) != "[10s 20s 40s 40s 40s]" {
		t.Fatalf("backoff = %v", waits)
	}
	for range 3 {
		if err := s.Fail(ctx, "P", mod); err != nil {
			t.Fatal(err)
		}
	}
	if s.Len("P") != 0 || s.Len("N") != 1 || s.Metrics.GaveUp.Load() != 1 {
		t.Fatalf("moderate kept or critical dropped: P %d N %d", s.Len("P"), s.Len("N"))
	}
	// Nudge: due at once, and the delivery loop is woken.
	s.Fail(ctx, "N", crit)
	if len(s.Due()) != 0 {
		t.Fatal("due during backoff")
	}
	if err := s.Nudge(ctx, "N"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Wake():
	default:
		t.Fatal("Nudge did not signal Wake")
	}
	if fmt.Sprint(s.Due()) != "[N]" {
		t.Fatalf("after nudge due = %v", s.Due())
	}
	// A wall clock that jumps back does not strand a destination.
	s.Fail(ctx, "N", crit)
	f.clock.Add(-24 * time.Hour)
	if fmt.Sprint(s.Due()) != "[N]" {
		t.Fatal("clock jump back stranded the destination")
	}
}

func TestBinaryIdentifiers(t *testing.T) {
	f := newFixture(t)
	s := f.open(t)
	dest := "\x00\x24\x08\x01\x12\x20\xff\xfe" // peer IDs are binary multihashes
	enqueue(t, s, entry(dest, protoCreate, "\xc3\x28", OpCreate, "x"))
	s.Close()
	s = f.open(t)
	es, err := s.Peek(dest, 1)
	if err != nil || len(es) != 1 || es[0].Dest != dest || es[0].ResourceID != "\xc3\x28" || s.Metrics.Corrupt.Load() != 0 {
		t.Fatalf("binary identifiers did not survive: %+v %v", es, err)
	}
}

func TestStatePersistsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	s := f.open(t)
	enqueue(t, s, entry("N", protoCreate, "r1", OpCreate, "c1"))
	_, ref := enqueue(t, s, entry("N", protoCreate, "r2", OpCreate, "c2"))
	s.Fail(ctx, "N", ref)
	s.Close()
	s = f.open(t)
	if s.Len("N") != 2 || len(s.Due()) != 0 || fmt.Sprint(s.PendingCritical()) != "[N]" {
		t.Fatalf("after reopen: len %d due %v", s.Len("N"), s.Due())
	}
	// The dedup index survived too.
	if out, _ := enqueue(t, s, entry("N", protoUpdate, "r1", OpUpdate, "u")); out != Replaced {
		t.Fatalf("dedup after reopen: %v", out)
	}
	rep, err := s.List()
	if err != nil || len(rep.Entries) != 2 || rep.Entries[1].Attempts != 1 || rep.Queues[0].Failures != 1 {
		t.Fatalf("list: %+v %v", rep, err)
	}
}

func TestNothingInClearOnDisk(t *testing.T) {
	f := newFixture(t)
	s := f.open(t)
	secrets := []string{"12D3KooWSecretDestinationPeer", "resource-7f3a9c-secret", "payload-TOP-SECRET-bytes", protoCreate}
	for i := range 50 {
		e := entry(secrets[0], protoCreate, secrets[1], OpCreate, secrets[2])
		e.ResourceID = fmt.Sprint(secrets[1], i)
		enqueue(t, s, e)
	}
	if err := s.Update(context.Background(), func(tx *Tx) error {
		return tx.Put("catalogue", tx.Hash("res", []byte(secrets[1])), []byte(secrets[2]))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	raw, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range secrets {
		if bytes.Contains(raw, []byte(sec)) {
			t.Errorf("%q found in clear in the database file", sec)
		}
	}
}

// rawEdit opens the closed database with bbolt directly and edits it.
func rawEdit(t *testing.T, path string, fn func(q *bolt.Bucket)) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { fn(tx.Bucket([]byte(bucketQueue))); return nil }); err != nil {
		t.Fatal(err)
	}
	db.Close()
}

func TestTamperingIsDetected(t *testing.T) {
	f := newFixture(t)
	s := f.open(t)
	for i := range 3 {
		enqueue(t, s, entry("N", protoCreate, fmt.Sprint("r", i), OpCreate, fmt.Sprint("c", i)))
	}
	s.Close()
	// Flip a bit in the first value, and swap the other two.
	rawEdit(t, f.path, func(q *bolt.Bucket) {
		var keys, vals [][]byte
		q.ForEach(func(k, v []byte) error {
			keys, vals = append(keys, bytes.Clone(k)), append(vals, bytes.Clone(v))
			return nil
		})
		vals[0][len(vals[0])-1] ^= 1
		q.Put(keys[0], vals[0])
		q.Put(keys[1], vals[2])
		q.Put(keys[2], vals[1])
	})
	s = f.open(t)
	es, err := s.Peek("N", 10)
	if err != nil || len(es) != 0 {
		t.Fatalf("peek returned %d entries, err %v: tampered values accepted", len(es), err)
	}
	if s.Metrics.Corrupt.Load() < 3 {
		t.Fatalf("corrupt count = %d", s.Metrics.Corrupt.Load())
	}
	rep, _ := s.Stats()
	if rep.Corrupt != 3 {
		t.Fatalf("stats report %d corrupt values", rep.Corrupt)
	}
	var ce *CorruptError
	err = s.View(func(tx *Tx) error {
		_, err := tx.getSealed(bucketQueue, queueKey(s.destHash("N"), 1), &Entry{})
		return err
	})
	if !errors.As(err, &ce) {
		t.Fatalf("want *CorruptError, got %v", err)
	}
}

func TestQuotaRefusesWithoutLosingAnything(t *testing.T) {
	f := newFixture(t)
	s := f.open(t, func(o *Options) { o.QuotaBytes = 1000 })
	big := string(bytes.Repeat([]byte("x"), 100))
	n := 0
	var err error
	for ; n < 20; n++ {
		if _, _, err = s.Enqueue(context.Background(), entry("N", protoPlanner, "", OpOther, big)); err != nil {
			break
		}
	}
	var fe *FullError
	if !errors.Is(err, ErrStoreFull) || !errors.As(err, &fe) || fe.Level != Moderate || n != 9 {
		t.Fatalf("moderate: %d queued then %v", n, err)
	}
	// Critical entries still fit in the reserved tenth.
	if _, _, err := s.Enqueue(context.Background(), entry("N", protoCreate, "r", OpCreate, big)); err != nil {
		t.Fatalf("critical refused below the quota: %v", err)
	}
	_, _, err = s.Enqueue(context.Background(), entry("N", protoCreate, "r2", OpCreate, big))
	if !errors.As(err, &fe) || fe.Level != Critical {
		t.Fatalf("critical over quota: %v", err)
	}
	if s.Len("N") != 10 || s.Metrics.RefusedFull.Load() != 2 {
		t.Fatalf("len %d refused %d", s.Len("N"), s.Metrics.RefusedFull.Load())
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestMoveKeepsAFullStoreMoving: a store whose moderate entries fill their
// 90 % can still move them into (larger) envelopes for another hop, up to
// the quota and a tenth; past that a move changes nothing and what moved
// before it in the transaction commits.
func TestMoveKeepsAFullStoreMoving(t *testing.T) {
	ctx := context.Background()
	s := newFixture(t).open(t, func(o *Options) { o.QuotaBytes = 1000 })
	body := string(bytes.Repeat([]byte("x"), 100))
	for i := 0; i < 9; i++ {
		enqueue(t, s, entry("N", protoPlanner, "", OpOther, body))
	}
	if _, _, err := s.Enqueue(ctx, entry("N", protoPlanner, "", OpOther, body)); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("a tenth moderate entry: %v", err)
	}
	es, err := s.Peek("N", 9)
	if err != nil || len(es) != 9 {
		t.Fatalf("peek: %d entries, %v", len(es), err)
	}
	wrapped := string(bytes.Repeat([]byte("w"), 130)) // 30 bytes of envelope each
	moved, refused := 0, 0
	err = s.Update(ctx, func(tx *Tx) error {
		moved, refused = 0, 0
		for _, e := range es {
			ok, err := tx.Move("N", e.Ref, Entry{Dest: "S", Protocol: protoPlanner, Payload: []byte(wrapped), Level: e.Level})
			var fe *FullError
			if errors.As(err, &fe) {
				refused++
				continue // every further move is refused too, and changes nothing
			}
			if err != nil {
				return err
			}
			if ok {
				moved++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// 900 bytes, then 30 more per move, up to 1100: six moves.
	if moved != 6 || refused != 3 || s.Len("N") != 3 || s.Len("S") != 6 {
		t.Fatalf("moved %d, refused %d; %d left for N, %d for S", moved, refused, s.Len("N"), s.Len("S"))
	}
	left, err := s.Peek("N", 9)
	if err != nil || len(left) != 3 || string(left[0].Payload) != body {
		t.Fatalf("what was not moved: %d entries, %v", len(left), err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	// A ref no longer current moves nothing.
	err = s.Update(ctx, func(tx *Tx) error {
		ok, err := tx.Move("N", es[0].Ref, Entry{Dest: "S", Protocol: protoPlanner, Payload: []byte(wrapped), Level: es[0].Level})
		if ok || err != nil {
			t.Errorf("moving a moved entry again: %v, %v", ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCombinedTransactionIsAtomic(t *testing.T) {
	ctx := context.Background()
	s := newFixture(t).open(t)
	key := []byte("k")
	boom := errors.New("apply failed")
	err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.Put("catalogue", key, []byte("v")); err != nil {
			return err
		}
		if _, _, err := tx.Enqueue(entry("M", protoCreate, "r", OpCreate, "ack")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	s.View(func(tx *Tx) error {
		if v, _ := tx.Get("catalogue", key); v != nil || s.Len("M") != 0 {
			t.Fatal("a failed transaction left something behind")
		}
		return nil
	})
	if err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.Put("catalogue", key, []byte("v")); err != nil {
			return err
		}
		_, _, err := tx.Enqueue(entry("M", protoCreate, "r", OpCreate, "ack"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *Tx) error {
		if v, err := tx.Get("catalogue", key); string(v) != "v" || err != nil || s.Len("M") != 1 {
			t.Fatalf("committed transaction incomplete: %q %v", v, err)
		}
		return nil
	})
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Put("dtn.q", key, nil) }); !errors.Is(err, ErrReservedBucket) {
		t.Fatalf("reserved bucket writable: %v", err)
	}
}

func TestGroupCommitSharesSyncs(t *testing.T) {
	s := newFixture(t).open(t)
	var wg sync.WaitGroup
	for p := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if _, _, err := s.Enqueue(context.Background(), entry(fmt.Sprint("D", p%4), protoCreate, fmt.Sprint(p, "-", i), OpCreate, "x")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if s.Len("") != 640 {
		t.Fatalf("len %d", s.Len(""))
	}
	if c := s.Metrics.Commits.Load(); c >= 640 {
		t.Fatalf("%d commits for 640 concurrent enqueues: no grouping", c)
	}
	t.Logf("640 enqueues in %d commits", s.Metrics.Commits.Load())
}

func TestLockedAndWrongKey(t *testing.T) {
	f := newFixture(t)
	f.open(t)
	_, err := Open(f.path, f.ks, Options{Policy: testPolicy, LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	g := newFixture(t)
	g.path = filepath.Join(t.TempDir(), "other.db")
	s := g.open(t)
	s.Close()
	if _, err := Open(g.path, f.ks, Options{}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("foreign keystore: %v", err)
	}
}

func TestInvalidEntriesAreRefused(t *testing.T) {
	s := newFixture(t).open(t)
	for name, e := range map[string]Entry{
		"no destination": {Protocol: protoCreate, Level: Critical},
		"no protocol":    {Dest: "N", Level: Critical},
		"no level":       {Dest: "N", Protocol: protoCreate},
		"unknown op":     {Dest: "N", Protocol: protoCreate, Level: Critical, Op: 9},
	} {
		if _, _, err := s.Enqueue(context.Background(), e); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if s.Len("") != 0 {
		t.Fatal("an invalid entry was stored")
	}
}

func TestWriteWakesUnlessBackingOff(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	s := f.open(t, func(o *Options) { o.RetryBase = 10 * time.Second })
	drainWake := func() bool { // as the delivery loop does: woken, it takes what is due
		select {
		case <-s.Wake():
			s.TakeDue()
			return true
		default:
			return false
		}
	}
	drainWake()
	_, ref := enqueue(t, s, entry("N", protoCreate, "r1", OpCreate, "a"))
	if !drainWake() {
		t.Fatal("a durable Enqueue did not wake the delivery loop")
	}
	enqueue(t, s, entry("N", protoCreate, "r1", OpUpdate, "b")) // replaced in place
	if !drainWake() {
		t.Fatal("a replacing Enqueue did not wake the delivery loop")
	}
	if err := s.Fail(ctx, "N", ref); err != nil {
		t.Fatal(err)
	}
	drainWake()
	enqueue(t, s, entry("N", protoCreate, "r2", OpCreate, "c"))
	if drainWake() {
		t.Fatal("a write woke delivery to a destination that is backing off")
	}
	f.clock.Add(11 * time.Second)
	enqueue(t, s, entry("N", protoCreate, "r3", OpCreate, "d"))
	if !drainWake() {
		t.Fatal("a write after the backoff passed did not wake")
	}
}

func TestTakeDueReturnsWhatBecameDue(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	s := f.open(t, func(o *Options) { o.RetryBase = 10 * time.Second })
	if got := s.TakeDue(); got != nil {
		t.Fatalf("empty store: due %v", got)
	}
	_, refN := enqueue(t, s, entry("N", protoCreate, "r", OpCreate, "c"))
	enqueue(t, s, entry("P", protoPlanner, "", OpOther, "p"))
	if got := fmt.Sprint(s.TakeDue()); got != "[N P]" {
		t.Fatalf("due = %s, want critical first", got)
	}
	if got := s.TakeDue(); got != nil {
		t.Fatalf("taken twice: %v", got)
	}
	// A failure: N comes back only when its backoff expires.
	if err := s.Fail(ctx, "N", refN); err != nil {
		t.Fatal(err)
	}
	enqueue(t, s, entry("N", protoCreate, "r2", OpCreate, "c"))
	if got := s.TakeDue(); got != nil {
		t.Fatalf("due while backing off: %v", got)
	}
	f.clock.Add(9 * time.Second)
	if got := s.TakeDue(); got != nil {
		t.Fatalf("due before the backoff expired: %v", got)
	}
	f.clock.Add(2 * time.Second)
	if got := fmt.Sprint(s.TakeDue()); got != "[N]" {
		t.Fatalf("after the backoff: %s", got)
	}
	// A nudge makes it due at once; a write to a due destination too.
	s.Fail(ctx, "N", refN)
	if err := s.Nudge(ctx, "N"); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(s.TakeDue()); got != "[N]" {
		t.Fatalf("after a nudge: %s", got)
	}
	enqueue(t, s, entry("P", protoPlanner, "", OpOther, "p2"))
	if got := fmt.Sprint(s.TakeDue()); got != "[P]" {
		t.Fatalf("after a write: %s", got)
	}
	// A wall clock that jumps back does not strand a backed-off destination.
	s.Fail(ctx, "N", refN)
	f.clock.Add(-24 * time.Hour)
	if got := s.TakeDue(); !slices.Contains(got, "N") {
		t.Fatalf("clock jump back: due %v, N stranded", got)
	}
	// What a restart owes is due at open.
	s.Close()
	s = f.open(t)
	if got := fmt.Sprint(s.TakeDue()); got != "[N P]" {
		t.Fatalf("after reopen: %s", got)
	}
}

// TestSubmitIsCommittedByClose checks Submit's promise: once it returns, the
// write is the committer's, and a Close right after commits it (it is
// there after a reopen) and reports the outcome; a write that fails keeps
// nothing and reports its error; a closed store refuses.
func TestSubmitIsCommittedByClose(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	s := f.open(t)
	boom := errors.New("refused")
	kept, err := s.Submit(ctx, func(tx *Tx) error { return tx.Put("catalogue", []byte("boots"), []byte{7}) })
	if err != nil {
		t.Fatal(err)
	}
	failed, err := s.Submit(ctx, func(tx *Tx) error {
		if err := tx.Put("catalogue", []byte("other"), []byte{1}); err != nil {
			return err
		}
		return boom
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-kept; err != nil {
		t.Fatalf("submitted write: %v", err)
	}
	if err := <-failed; !errors.Is(err, boom) {
		t.Fatalf("failing write reported %v, want %v", err, boom)
	}
	if _, err := s.Submit(ctx, func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("submit to a closed store: %v", err)
	}
	s = f.open(t)
	s.View(func(tx *Tx) error {
		if v, err := tx.Get("catalogue", []byte("boots")); err != nil || !bytes.Equal(v, []byte{7}) {
			t.Fatalf("after reopen: %v %v, want the submitted write", v, err)
		}
		if v, _ := tx.Get("catalogue", []byte("other")); v != nil {
			t.Fatalf("the failed write left %v", v)
		}
		return nil
	})
}

// TestCloseWithWritersInFlight closes the store while many writers commit
// (each writer that finds no commit in progress commits for the others):
// every write returns, either durable or with ErrClosed, and after a
// reopen exactly the writes that returned nil are there.
func TestCloseWithWritersInFlight(t *testing.T) {
	f := newFixture(t)
	s, err := Open(f.path, f.ks, Options{Policy: testPolicy, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	const writers = 32
	var ok atomic.Int64
	var wg sync.WaitGroup
	started := make(chan struct{}, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				_, _, err := s.Enqueue(context.Background(), entry("dest", protoCreate, fmt.Sprint("w", w, "-", i), OpCreate, "x"))
				if i == 0 {
					started <- struct{}{}
				}
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				ok.Add(1)
			}
		}()
	}
	for range writers {
		<-started
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("writers still blocked a minute after Close")
	}
	if ok.Load() == 0 {
		t.Fatal("no write committed before Close")
	}
	s2 := f.open(t)
	if got := s2.Len("dest"); int64(got) != ok.Load() {
		t.Fatalf("%d entries after reopen, %d writes returned nil", got, ok.Load())
	}
	if err := s2.Check(); err != nil {
		t.Fatal(err)
	}
}

// A submitted write commits on its own, without a Close or another writer
// to carry it.
func TestSubmitCommitsWithoutAnotherWriter(t *testing.T) {
	f := newFixture(t)
	s := f.open(t)
	done, err := s.Submit(context.Background(), func(tx *Tx) error { return tx.Put("catalogue", []byte("boots"), []byte{9}) })
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute): // real I/O only; generous for qemu
		t.Fatal("a submitted write waited for another writer")
	}
	s.View(func(tx *Tx) error {
		if v, err := tx.Get("catalogue", []byte("boots")); err != nil || !bytes.Equal(v, []byte{9}) {
			t.Fatalf("after its commit: %v %v", v, err)
		}
		return nil
	})
}
