package dtn

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Level says how hard the store tries to deliver an entry.
type Level uint8

const (
	// None: not store-and-forward (searches, observations): never queued.
	None Level = 0
	// Moderate entries give up after MaxModerateAttempts failed attempts.
	Moderate Level = 1
	// Critical entries are retried until acknowledged, whatever it takes.
	Critical Level = 2
)

func (l Level) String() string {
	switch l {
	case Moderate:
		return "moderate"
	case Critical:
		return "critical"
	}
	return "none"
}

// Op is what an entry does to its resource.
type Op uint8

const (
	OpOther  Op = 0
	OpCreate Op = 1
	OpUpdate Op = 2
	OpDelete Op = 3
)

func (o Op) String() string {
	return [...]string{"other", "create", "update", "delete"}[min(int(o), 3)]
}

// Policy maps protocols to levels and dedup families, as the seed did:
// resource create/update/delete are critical, coordination messages
// (planner, verify, config hand-offs) moderate, anything else not queued.
type Policy struct {
	Levels   map[string]Level  // protocol ID → level
	Families map[string]string // protocol ID → family (protocols that mutate the same resources)
}

// LevelFor returns the level of an entry on protocol to a destination;
// anything addressed to a nano is critical. ok is false when the protocol is
// not store-and-forward.
func (p Policy) LevelFor(protocol string, toNano bool) (level Level, ok bool) {
	l := p.Levels[protocol]
	if l == None {
		return None, false
	}
	if toNano {
		l = Critical
	}
	return l, true
}

// With returns a copy of p in which protocols have the given levels (p's
// own map is left alone: policies are shared values).
func (p Policy) With(levels map[string]Level) Policy {
	merged := make(map[string]Level, len(p.Levels)+len(levels))
	for k, v := range p.Levels {
		merged[k] = v
	}
	for k, v := range levels {
		merged[k] = v
	}
	p.Levels = merged
	return p
}

// Family returns the dedup family of a protocol (itself when not grouped).
func (p Policy) Family(protocol string) string {
	if f, ok := p.Families[protocol]; ok {
		return f
	}
	return protocol
}

// Ref identifies one version of a queued entry: Pos is its place in the
// destination's FIFO (kept when a newer payload replaces it), ID is unique
// per version, so a receiver that remembers (sender, ID) never applies a
// mutation twice, and an Ack for a replaced version does not remove the new.
type Ref struct {
	Pos uint64
	ID  uint64
}

// Entry is one message owed to a peer.
type Entry struct {
	Ref        Ref    `cbor:"1,keyasint"`
	Dest       string `cbor:"2,keyasint"` // destination peer ID (binary form as a string)
	Protocol   string `cbor:"3,keyasint"`
	ResourceID string `cbor:"4,keyasint,omitempty"`
	Op         Op     `cbor:"5,keyasint,omitempty"`
	Payload    []byte `cbor:"6,keyasint,omitempty"`
	Level      Level  `cbor:"7,keyasint"`
	Created    int64  `cbor:"8,keyasint"` // Unix nanoseconds
	Attempts   uint32 `cbor:"9,keyasint,omitempty"`
}

// Outcome says what Enqueue did with an entry.
type Outcome uint8

const (
	Queued   Outcome = iota // new entry at the end of the queue
	Replaced                // a pending entry for the same resource took the new payload, keeping its place
	Dropped                 // refused by the lifecycle rules (after a DELETE, or CREATE after UPDATE)
)

func (o Outcome) String() string { return [...]string{"queued", "replaced", "dropped"}[o] }

// dedupRef is the value of the dedup index: where the pending entry is.
type dedupRef struct {
	Pos uint64 `cbor:"1,keyasint"`
}

// destRecord is the persisted per-destination delivery state.
type destRecord struct {
	Dest        string `cbor:"1,keyasint"`
	Failures    uint32 `cbor:"2,keyasint,omitempty"`
	NextAttempt int64  `cbor:"3,keyasint,omitempty"` // Unix ns; 0: now
}

// destState is the in-memory index of one destination.
type destState struct {
	rec     destRecord
	hash    []byte
	count   [3]int
	bytes   int64
	timerAt int64 // NextAttempt last put in the timer heap (0: none)
}

// delta is what a transaction changes in the in-memory index; it is applied
// only after the transaction commits.
type delta struct {
	changes  []destChange
	maxLevel Level
}

type destChange struct {
	dest  string
	hash  []byte
	level Level
	count int
	bytes int64
	rec   *destRecord // new persisted state, if changed
	nudge bool        // due at once whatever the backoff (Nudge, a cleared backoff)
	wrote bool        // an entry was queued or replaced: due now unless backing off
}

func (s *Store) apply(d *delta) {
	for _, c := range d.changes {
		st := s.dests[c.dest]
		if st == nil {
			st = &destState{rec: destRecord{Dest: c.dest}, hash: c.hash}
			s.dests[c.dest] = st
		}
		st.count[c.level] += c.count
		st.bytes += c.bytes
		s.total += c.bytes
		if c.rec != nil {
			st.rec = *c.rec
		}
		if c.nudge || c.wrote || c.rec != nil {
			s.scheduleLocked(c.dest, st, s.opts.Now().UnixNano())
		}
		if c.nudge {
			s.signal()
		}
	}
}

// scheduleLocked files a destination whose queue or backoff changed: in
// the ready set (and Wake signalled) when it is due now, else in the timer
// heap at its next attempt. Nothing ever scans every destination.
func (s *Store) scheduleLocked(dest string, st *destState, now int64) {
	if st.count[Moderate]+st.count[Critical] == 0 {
		return
	}
	if s.dueLocked(st, now) {
		if _, ok := s.ready[dest]; !ok {
			s.ready[dest] = struct{}{}
			s.signal()
		}
		return
	}
	if st.timerAt != st.rec.NextAttempt {
		st.timerAt = st.rec.NextAttempt
		heap.Push(&s.timers, dueTimer{at: st.rec.NextAttempt, dest: dest})
	}
}

// TakeDue returns the destinations that became due since the last call
// (queued to while not backing off, nudged, or whose backoff expired),
// critical first, then by peer, and forgets them: the caller drains each
// or keeps it until it may. A destination comes back when it is written
// to, nudged, or its next backoff expires. The work is proportional to
// what became due, not to the number of destinations.
func (s *Store) TakeDue() []string {
	now := s.opts.Now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now < s.lastTake-int64(time.Second) {
		// The wall clock jumped back: timers far in the future may be due
		// now (see dueLocked). Rare: look at every destination once.
		for d, st := range s.dests {
			if s.dueLocked(st, now) {
				s.ready[d] = struct{}{}
			}
		}
	}
	s.lastTake = now
	for len(s.timers) > 0 && s.timers[0].at <= now {
		t := heap.Pop(&s.timers).(dueTimer)
		st := s.dests[t.dest]
		if st == nil || st.timerAt != t.at {
			continue // superseded by a later change
		}
		st.timerAt = 0
		if s.dueLocked(st, now) {
			s.ready[t.dest] = struct{}{}
		}
	}
	if len(s.ready) == 0 {
		return nil
	}
	out := make([]string, 0, len(s.ready))
	for d := range s.ready {
		out = append(out, d)
	}
	clear(s.ready)
	sort.Slice(out, func(i, j int) bool {
		ci, cj := s.dests[out[i]].count[Critical] > 0, s.dests[out[j]].count[Critical] > 0
		if ci != cj {
			return ci
		}
		return out[i] < out[j]
	})
	return out
}

// dueTimer is a destination backing off until at (Unix ns).
type dueTimer struct {
	at   int64
	dest string
}

// dueTimers is a min-heap of timers by time.
type dueTimers []dueTimer

func (h dueTimers) Len() int           { return len(h) }
func (h dueTimers) Less(i, j int) bool { return h[i].at < h[j].at }
func (h dueTimers) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueTimers) Push(x any)        { *h = append(*h, x.(dueTimer)) }
func (h *dueTimers) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// dueLocked says whether st has entries and its backoff has passed. A next
// attempt further away than the ceiling means the wall clock jumped back:
// due now.
func (s *Store) dueLocked(st *destState, now int64) bool {
	if st.count[Moderate]+st.count[Critical] == 0 {
		return false
	}
	return st.rec.NextAttempt <= now || st.rec.NextAttempt-now > s.opts.RetryCeiling.Nanoseconds()
}

func (s *Store) destHash(dest string) []byte { return s.seal.hash("dest", []byte(dest)) }

func queueKey(destHash []byte, pos uint64) []byte {
	k := make([]byte, len(destHash)+8)
	copy(k, destHash)
	binary.BigEndian.PutUint64(k[len(destHash):], pos)
	return k
}

func (tx *Tx) bucket(name string) *bolt.Bucket { return tx.btx.Bucket([]byte(name)) }

func (tx *Tx) putSealed(bucket string, key []byte, v any) error {
	plain, err := tx.s.enc.Marshal(v)
	if err != nil {
		return err
	}
	return tx.bucket(bucket).Put(key, tx.s.seal.seal(bucket, key, plain))
}

func (tx *Tx) getSealed(bucket string, key []byte, v any) (bool, error) {
	raw := tx.bucket(bucket).Get(key)
	if raw == nil {
		return false, nil
	}
	plain, err := tx.s.seal.open(bucket, key, raw)
	if err != nil {
		tx.s.Metrics.Corrupt.Add(1)
		return false, err
	}
	if err := tx.s.dec.Unmarshal(plain, v); err != nil {
		tx.s.Metrics.Corrupt.Add(1)
		return false, &CorruptError{Bucket: bucket, Key: key}
	}
	return true, nil
}

// pendingBytes is the queue size as this transaction will leave it: the
// committed total plus what earlier requests of the same batch added.
func (tx *Tx) pendingBytes() int64 {
	tx.s.mu.Lock()
	n := tx.s.total
	tx.s.mu.Unlock()
	for _, r := range tx.batch {
		if &r.delta == tx.d {
			break
		}
		for _, c := range r.delta.changes {
			n += c.bytes
		}
	}
	for _, c := range tx.d.changes {
		n += c.bytes
	}
	return n
}

// Enqueue queues e (Dest, Protocol, Level, Op, ResourceID, Payload) inside
// this transaction and applies the lifecycle rules per (destination,
// protocol family, resource): a DELETE is terminal (later CREATE or UPDATE
// dropped); a CREATE after an UPDATE is dropped; otherwise the newer payload
// replaces the pending one in place (CREATE+UPDATE stays a CREATE,
// anything+DELETE becomes the DELETE). Entries without a resource ID are
// never merged.
func (tx *Tx) Enqueue(e Entry) (Outcome, Ref, error) {
	s := tx.s
	if e.Dest == "" || e.Protocol == "" || e.Level == None || e.Level > Critical || e.Op > OpDelete {
		return 0, Ref{}, fmt.Errorf("%w: needs a destination, a protocol and a level (got %q %q %v %v)", ErrInvalidEntry, e.Dest, e.Protocol, e.Level, e.Op)
	}
	if e.Level > tx.d.maxLevel {
		tx.d.maxLevel = e.Level
	}
	if e.Created == 0 {
		e.Created = s.opts.Now().UnixNano()
	}
	e.Attempts = 0
	dh := s.destHash(e.Dest)
	q := tx.bucket(bucketQueue)

	var dkey []byte
	if e.ResourceID != "" {
		dkey = s.dedupKey(e.Dest, e.Protocol, e.ResourceID)
		var ref dedupRef
		found, err := tx.getSealed(bucketDedup, dkey, &ref)
		if err != nil {
			return 0, Ref{}, err
		}
		if found {
			var old Entry
			qk := queueKey(dh, ref.Pos)
			if ok, err := tx.getSealed(bucketQueue, qk, &old); err != nil {
				return 0, Ref{}, err
			} else if ok {
				switch {
				case old.Op == OpDelete:
					s.Metrics.DroppedAfterDelete.Add(1)
					return Dropped, old.Ref, nil
				case old.Op == OpUpdate && e.Op == OpCreate:
					s.Metrics.DroppedCreateAfterUpdate.Add(1)
					return Dropped, old.Ref, nil
				}
				merged := e
				if old.Op == OpCreate && e.Op == OpUpdate {
					merged.Op = OpCreate // the receiver has not seen the CREATE yet
				}
				if merged.Level < old.Level {
					merged.Level = old.Level
				}
				merged.Created = old.Created
				grow := int64(len(merged.Payload) - len(old.Payload))
				if grow > 0 {
					if err := tx.roomFor(merged.Level, grow); err != nil {
						return 0, Ref{}, err
					}
				}
				id, err := q.NextSequence()
				if err != nil {
					return 0, Ref{}, err
				}
				merged.Ref = Ref{Pos: old.Ref.Pos, ID: id}
				if err := tx.putSealed(bucketQueue, qk, &merged); err != nil {
					return 0, Ref{}, err
				}
				ch := destChange{dest: e.Dest, hash: dh, bytes: grow, level: old.Level, wrote: true}
				if merged.Level != old.Level {
					tx.d.changes = append(tx.d.changes, destChange{dest: e.Dest, hash: dh, level: old.Level, count: -1},
						destChange{dest: e.Dest, hash: dh, level: merged.Level, count: 1})
				}
				tx.d.changes = append(tx.d.changes, ch)
				s.Metrics.Replaced.Add(1)
				return Replaced, merged.Ref, nil
			}
			// The index pointed at an entry that is gone: fall through and
			// queue anew (the index is rewritten below).
		}
	}
	if err := tx.roomFor(e.Level, int64(len(e.Payload))); err != nil {
		return 0, Ref{}, err
	}
	pos, err := q.NextSequence()
	if err != nil {
		return 0, Ref{}, err
	}
	e.Ref = Ref{Pos: pos, ID: pos}
	if err := tx.putSealed(bucketQueue, queueKey(dh, pos), &e); err != nil {
		return 0, Ref{}, err
	}
	if dkey != nil {
		if err := tx.putSealed(bucketDedup, dkey, &dedupRef{Pos: pos}); err != nil {
			return 0, Ref{}, err
		}
	}
	tx.d.changes = append(tx.d.changes, destChange{dest: e.Dest, hash: dh, level: e.Level, count: 1, bytes: int64(len(e.Payload)), wrote: true})
	s.Metrics.Enqueued.Add(1)
	return Queued, e.Ref, nil
}

// roomFor refuses growth past the quota (moderate entries at 90% of it, so
// critical ones keep the last tenth) or when the disk is nearly full. An
// entry a relay moves (Move) may use the whole quota whatever its level,
// and a tenth more: what it carries was admitted already, only its
// envelope is new, and a store full of moderate entries must still be
// able to hand them on (that is how it empties).
func (tx *Tx) roomFor(level Level, grow int64) error {
	limit := tx.s.quota.Load()
	switch {
	case tx.moving:
		limit += limit / 10
	case level < Critical:
		limit = limit / 10 * 9
	}
	if tx.pendingBytes()+grow > limit {
		return &FullError{Level: level, Reason: "quota"}
	}
	if !tx.diskOK() {
		return &FullError{Level: level, Reason: "disk"}
	}
	return nil
}

// Enqueue queues one entry in its own (group-committed) transaction and
// returns once it is durable.
func (s *Store) Enqueue(ctx context.Context, e Entry) (Outcome, Ref, error) {
	var out Outcome
	var ref Ref
	err := s.Update(ctx, func(tx *Tx) error {
		var err error
		out, ref, err = tx.Enqueue(e)
		return err
	})
	return out, ref, err
}

// Peek returns up to n of the oldest entries for dest, in FIFO order,
// without removing them: send them, then Ack each one the receiver has
// applied. Values that fail authentication are skipped and counted.
func (s *Store) Peek(dest string, n int) ([]Entry, error) { return s.PeekAfter(dest, 0, n) }

// PeekAfter is Peek starting after queue position after: a sender with
// entries in flight asks for the ones behind them.
func (s *Store) PeekAfter(dest string, after uint64, n int) ([]Entry, error) {
	var out []Entry
	dh := s.destHash(dest)
	err := s.db.View(func(btx *bolt.Tx) error {
		tx := &Tx{s: s, btx: btx}
		c := btx.Bucket([]byte(bucketQueue)).Cursor()
		for k, _ := c.Seek(queueKey(dh, after+1)); k != nil && bytes.HasPrefix(k, dh) && len(out) < n; k, _ = c.Next() {
			var e Entry
			if ok, err := tx.getSealed(bucketQueue, bytes.Clone(k), &e); err != nil || !ok {
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Ack removes an entry the receiver has durably applied. Acknowledging an
// entry that is gone (a duplicate ack) or was replaced by a newer version
// changes nothing. A successful Ack clears the destination's backoff.
func (s *Store) Ack(ctx context.Context, dest string, ref Ref) error {
	return s.Update(ctx, func(tx *Tx) error { return tx.Ack(dest, ref) })
}

// AckAll removes every entry of refs in one durable transaction: a sender
// deletes the acknowledgements it has in hand with one commit, not one each.
// Stale and duplicate refs change nothing, as with Ack. If the transaction
// fails (a value that fails authentication, say), each ref is acknowledged
// alone so one bad entry cannot keep the others queued; the first error is
// returned.
func (s *Store) AckAll(ctx context.Context, dest string, refs []Ref) error {
	return s.AckAllWith(ctx, dest, refs, nil)
}

// AckAllWith is AckAll that also runs with, in the same transaction, on the
// refs that were still queued: a caller records what left the queue
// atomically with its leaving.
func (s *Store) AckAllWith(ctx context.Context, dest string, refs []Ref, with func(tx *Tx, acked []Ref) error) error {
	if len(refs) == 0 {
		return nil
	}
	ack := func(tx *Tx, refs []Ref) error {
		acked := refs[:0:0]
		for _, ref := range refs {
			ok, err := tx.ack(dest, ref)
			if err != nil {
				return err
			}
			if ok {
				acked = append(acked, ref)
			}
		}
		if with == nil || len(acked) == 0 {
			return nil
		}
		return with(tx, acked)
	}
	err := s.Update(ctx, func(tx *Tx) error { return ack(tx, refs) })
	if err == nil || len(refs) == 1 || ctx.Err() != nil || errors.Is(err, ErrClosed) {
		return err
	}
	var first error
	for _, ref := range refs {
		if err := s.Update(ctx, func(tx *Tx) error { return ack(tx, []Ref{ref}) }); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// lookup finds the queued entry ref names; current is false when it is gone
// or was replaced by a newer version.
func (tx *Tx) lookup(dest string, ref Ref) (e Entry, dh, qk []byte, current bool, err error) {
	dh = tx.s.destHash(dest)
	qk = queueKey(dh, ref.Pos)
	ok, err := tx.getSealed(bucketQueue, qk, &e)
	return e, dh, qk, ok && err == nil && e.Ref.ID == ref.ID && e.Dest == dest, err
}

func (s *Store) dedupKey(dest, protocol, resource string) []byte {
	return s.seal.hash("dedup", []byte(dest), []byte(s.opts.Policy.Family(protocol)), []byte(resource))
}

// Ack is Store.Ack inside a transaction.
func (tx *Tx) Ack(dest string, ref Ref) error {
	_, err := tx.ack(dest, ref)
	return err
}

// ack is Ack that says whether ref was still queued, counted either way.
func (tx *Tx) ack(dest string, ref Ref) (acked bool, err error) {
	taken, err := tx.Take(dest, ref)
	switch {
	case err != nil:
		return false, err
	case taken:
		tx.s.Metrics.Acked.Add(1)
	default:
		tx.s.Metrics.StaleAcks.Add(1)
	}
	return taken, nil
}

// Take removes a queued entry as Ack does, and reports whether it was
// still queued (an entry acknowledged or replaced meanwhile is not). To
// move an entry to another queue, use Move, which checks the room first.
func (tx *Tx) Take(dest string, ref Ref) (taken bool, err error) {
	e, dh, qk, current, err := tx.lookup(dest, ref)
	if err != nil || !current {
		return false, err
	}
	return true, tx.take(dest, dh, qk, &e)
}

// take removes e, looked up at qk, and lets dest be tried again at once.
func (tx *Tx) take(dest string, dh, qk []byte, e *Entry) error {
	if err := tx.remove(dh, qk, e); err != nil {
		return err
	}
	return tx.resetBackoff(dest, dh)
}

// Move replaces the entry ref queued for dest with e, queued for e.Dest
// (a relay wrapping an entry into an envelope for its next hop), in this
// transaction. It reports false if ref is no longer current. With too
// little room for e (see roomFor) it returns a *FullError and changes
// nothing, so a caller can keep what it moved before in the same
// transaction.
func (tx *Tx) Move(dest string, ref Ref, e Entry) (moved bool, err error) {
	old, dh, qk, current, err := tx.lookup(dest, ref)
	if err != nil || !current {
		return false, err
	}
	tx.moving = true
	defer func() { tx.moving = false }()
	if err := tx.roomFor(e.Level, int64(len(e.Payload)-len(old.Payload))); err != nil {
		return false, err
	}
	if err := tx.take(dest, dh, qk, &old); err != nil {
		return false, err
	}
	if _, _, err := tx.Enqueue(e); err != nil {
		// Not a *FullError any more (%v): the old entry is gone from this
		// transaction, which must not commit.
		return false, fmt.Errorf("move to %s: %v", e.Dest, err)
	}
	return true, nil
}

// remove deletes a queued entry and its dedup index entry.
func (tx *Tx) remove(dh, qk []byte, e *Entry) error {
	if err := tx.bucket(bucketQueue).Delete(qk); err != nil {
		return err
	}
	if e.ResourceID != "" {
		dkey := tx.s.dedupKey(e.Dest, e.Protocol, e.ResourceID)
		var ref dedupRef
		if ok, _ := tx.getSealed(bucketDedup, dkey, &ref); ok && ref.Pos == e.Ref.Pos {
			if err := tx.bucket(bucketDedup).Delete(dkey); err != nil {
				return err
			}
		}
	}
	tx.d.changes = append(tx.d.changes, destChange{dest: e.Dest, hash: dh, level: e.Level, count: -1, bytes: -int64(len(e.Payload))})
	return nil
}

func (tx *Tx) destRecord(dest string) destRecord {
	tx.s.mu.Lock()
	defer tx.s.mu.Unlock()
	if st := tx.s.dests[dest]; st != nil {
		return st.rec
	}
	return destRecord{Dest: dest}
}

func (tx *Tx) resetBackoff(dest string, dh []byte) error {
	rec := tx.destRecord(dest)
	if rec.Failures == 0 && rec.NextAttempt == 0 {
		return nil
	}
	rec.Failures, rec.NextAttempt = 0, 0
	if err := tx.putSealed(bucketDests, dh, &rec); err != nil {
		return err
	}
	tx.d.changes = append(tx.d.changes, destChange{dest: dest, hash: dh, rec: &rec, nudge: true})
	return nil
}

// Fail records a failed delivery attempt of an entry: the entry's attempts
// grow (a moderate entry is dropped after MaxModerateAttempts) and the
// destination backs off, doubling from RetryBase up to RetryCeiling.
func (s *Store) Fail(ctx context.Context, dest string, ref Ref) error {
	return s.Update(ctx, func(tx *Tx) error {
		e, dh, qk, current, err := tx.lookup(dest, ref)
		if err != nil {
			return err
		}
		if current {
			e.Attempts++
			s.Metrics.Failed.Add(1)
			if e.Level == Moderate && int(e.Attempts) >= s.opts.MaxModerateAttempts {
				s.Metrics.GaveUp.Add(1)
				if err := tx.remove(dh, qk, &e); err != nil {
					return err
				}
			} else if err := tx.putSealed(bucketQueue, qk, &e); err != nil {
				return err
			}
		}
		rec := tx.destRecord(dest)
		rec.Failures++
		rec.NextAttempt = s.opts.Now().Add(s.backoff(rec.Failures)).UnixNano()
		if err := tx.putSealed(bucketDests, dh, &rec); err != nil {
			return err
		}
		tx.d.changes = append(tx.d.changes, destChange{dest: dest, hash: dh, rec: &rec})
		return nil
	})
}

func (s *Store) backoff(failures uint32) time.Duration {
	d := s.opts.RetryBase
	for i := uint32(1); i < failures && d < s.opts.RetryCeiling; i++ {
		d *= 2
	}
	return min(d, s.opts.RetryCeiling)
}

// Nudge makes dest due at once (a contact opened, a peer said it is back):
// its backoff is cleared and Wake is signalled.
func (s *Store) Nudge(ctx context.Context, dest string) error {
	return s.Update(ctx, func(tx *Tx) error {
		dh := s.destHash(dest)
		rec := tx.destRecord(dest)
		rec.NextAttempt = 0
		if err := tx.putSealed(bucketDests, dh, &rec); err != nil {
			return err
		}
		tx.d.changes = append(tx.d.changes, destChange{dest: dest, hash: dh, rec: &rec, nudge: true})
		return nil
	})
}

// Due returns the destinations with queued entries whose backoff has
// passed, most urgent (critical first) then by peer. It looks at every
// destination (inspection, tests); the delivery loop uses TakeDue. A next attempt
// further away than the ceiling means the wall clock jumped back: due now.
func (s *Store) Due() []string {
	now := s.opts.Now().UnixNano()
	ceiling := s.opts.RetryCeiling.Nanoseconds()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for d, st := range s.dests {
		if st.count[Moderate]+st.count[Critical] == 0 {
			continue
		}
		if st.rec.NextAttempt <= now || st.rec.NextAttempt-now > ceiling {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		ci, cj := s.dests[out[i]].count[Critical] > 0, s.dests[out[j]].count[Critical] > 0
		if ci != cj {
			return ci
		}
		return out[i] < out[j]
	})
	return out
}

// PendingCritical returns the destinations holding critical entries: what a
// node advertises as PendingContact in its heartbeats.
func (s *Store) PendingCritical() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for d, st := range s.dests {
		if st.count[Critical] > 0 {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}

// Destinations returns every destination with queued entries.
func (s *Store) Destinations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for d, st := range s.dests {
		if st.count[Moderate]+st.count[Critical] > 0 {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}

// Len returns the number of queued entries for dest (all destinations when
// dest is "").
func (s *Store) Len(dest string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for d, st := range s.dests {
		if dest == "" || d == dest {
			n += st.count[Moderate] + st.count[Critical]
		}
	}
	return n
}

// load rebuilds the in-memory index from the file.
func (s *Store) load() error {
	return s.db.View(func(btx *bolt.Tx) error {
		tx := &Tx{s: s, btx: btx}
		if btx.Bucket([]byte(bucketQueue)) == nil {
			return nil
		}
		err := btx.Bucket([]byte(bucketDests)).ForEach(func(k, _ []byte) error {
			var rec destRecord
			if ok, err := tx.getSealed(bucketDests, bytes.Clone(k), &rec); ok && err == nil {
				s.dests[rec.Dest] = &destState{rec: rec, hash: bytes.Clone(k)}
			}
			return nil
		})
		if err != nil {
			return err
		}
		return btx.Bucket([]byte(bucketQueue)).ForEach(func(k, _ []byte) error {
			var e Entry
			if ok, err := tx.getSealed(bucketQueue, bytes.Clone(k), &e); !ok || err != nil {
				return nil // counted in Metrics.Corrupt; the value stays for inspection
			}
			st := s.dests[e.Dest]
			if st == nil {
				st = &destState{rec: destRecord{Dest: e.Dest}, hash: s.destHash(e.Dest)}
				s.dests[e.Dest] = st
			}
			st.count[e.Level]++
			st.bytes += int64(len(e.Payload))
			s.total += int64(len(e.Payload))
			return nil
		})
	})
}
