package node

import (
	"bufio"
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"gardend/codec"
	"gardend/dtn"
)

// deliveryLoop starts a drain for every destination that becomes due
// (store.TakeDue: written to, nudged, backoff expired), at most
// MaxDrains at a time. A destination this node may not contact yet waits
// in a timer heap until it may (its next window), or for an event (a
// connection nudges the store). A destination already draining is told
// there is more, so its open stream carries the new entries; one whose
// drain ended with work possibly left comes back through recheck. Nothing
// here looks at every destination: the work follows what is due.
func (n *Node) deliveryLoop() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	deferred := deferrals{at: map[peer.ID]time.Time{}}
	lastPrune := n.o.Now()
	for {
		n.alive.Store(time.Now().UnixNano())
		select {
		case <-n.ctx.Done():
			return
		case <-n.store.Wake():
		case <-n.kick:
		case <-tick.C:
		}
		now := n.o.Now()
		due := n.store.TakeDue()
		n.deliveryMu.Lock()
		for _, dest := range n.recheck {
			due = append(due, string(dest))
		}
		n.recheck = nil
		n.deliveryMu.Unlock()
		due = append(due, deferred.due(now)...)
		for _, d := range due {
			dest := peer.ID(d)
			if ok, retry := n.mayContactAt(dest, now); !ok {
				if !retry.IsZero() {
					deferred.add(dest, retry)
				}
				continue
			}
			n.startDrain(dest)
		}
		if now.Sub(lastPrune) > pruneEvery {
			lastPrune = now
			if err := n.pruneApplied(n.ctx, appliedKeep); err != nil {
				n.log.Warn("prune applied set", "err", err)
			}
		}
	}
}

// deferrals are destinations to look at again at given times, each held
// once at its earliest time (a gap's writes would otherwise pile up one
// timer each, all due together at the next window).
type deferrals struct {
	h  deferralHeap
	at map[peer.ID]time.Time // the earliest time each destination is held for
}

func (d *deferrals) add(dest peer.ID, at time.Time) {
	if cur, ok := d.at[dest]; ok && !at.Before(cur) {
		return
	}
	d.at[dest] = at
	heap.Push(&d.h, deferral{at: at, dest: dest})
}

// due pops the destinations due at now.
func (d *deferrals) due(now time.Time) []string {
	var out []string
	for len(d.h) > 0 && !d.h[0].at.After(now) {
		x := heap.Pop(&d.h).(deferral)
		if at, ok := d.at[x.dest]; !ok || !at.Equal(x.at) {
			continue // superseded by an earlier time, which came first
		}
		delete(d.at, x.dest)
		out = append(out, string(x.dest))
	}
	return out
}

// deferral is a destination to look at again at a given time.
type deferral struct {
	at   time.Time
	dest peer.ID
}

type deferralHeap []deferral

func (h deferralHeap) Len() int           { return len(h) }
func (h deferralHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h deferralHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deferralHeap) Push(x any)        { *h = append(*h, x.(deferral)) }
func (h *deferralHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// startDrain starts a drain of dest, or queues it when MaxDrains run
// (first come, first served), unless it is draining already, which is
// then told that more was queued.
func (n *Node) startDrain(dest peer.ID) {
	n.deliveryMu.Lock()
	defer n.deliveryMu.Unlock()
	if more, busy := n.draining[dest]; busy {
		signal(more)
		return
	}
	if n.waitingSet[dest] {
		return
	}
	if n.running >= n.o.MaxDrains {
		n.waitLocked(dest)
		n.Metrics.Inc("drains_queued")
		return
	}
	n.runDrainLocked(dest)
}

// waitLocked puts dest at the back of the queue for a drain worker and
// tells lingering drains to give theirs up; deliveryMu is held.
func (n *Node) waitLocked(dest peer.ID) {
	n.waiting = append(n.waiting, dest)
	n.waitingSet[dest] = true
	close(n.workerWanted)
	n.workerWanted = make(chan struct{})
}

// runDrainLocked starts a drain worker for dest; deliveryMu is held.
func (n *Node) runDrainLocked(dest peer.ID) {
	more := make(chan struct{}, 1)
	n.draining[dest] = more
	n.running++
	n.peakDrains = max(n.peakDrains, n.running)
	n.loop(func() {
		for {
			n.Metrics.Inc("drains_started")
			end := n.drain(dest, more)
			n.deliveryMu.Lock()
			delete(n.draining, dest)
			select {
			case <-more:
				// Written after the drain's last look: the store has
				// handed dest over already (to this drain's more), so
				// nothing else would bring it back.
				if end == drainDone {
					end = drainRecheck
				}
			default:
			}
			switch {
			case n.ctx.Err() != nil:
			case end == drainYielded:
				// Its turn is over while others wait: to the back.
				n.waitLocked(dest)
			case end == drainRecheck:
				// Through the contact check again: now, or at its next
				// window.
				n.recheck = append(n.recheck, dest)
				signal(n.kick)
			}
			if len(n.waiting) == 0 || n.ctx.Err() != nil {
				n.running--
				n.deliveryMu.Unlock()
				return
			}
			// This worker takes the longest waiting destination.
			dest = n.waiting[0]
			n.waiting = n.waiting[1:]
			delete(n.waitingSet, dest)
			more = make(chan struct{}, 1)
			n.draining[dest] = more
			n.deliveryMu.Unlock()
		}
	})
}

// othersWaiting reports whether destinations wait for a drain worker.
func (n *Node) othersWaiting() bool {
	n.deliveryMu.Lock()
	defer n.deliveryMu.Unlock()
	return len(n.waiting) > 0
}

// signal sends on a channel of capacity 1 without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// nanoCallWait is how long after a nano's window opens its master waits
// for the nano's own call before dialling it. The nano dials at AOS (minus
// its guard); if the master dialled too, two handshakes and two TCP flows
// would share the first seconds of a slow link, and the master's backlog
// would queue ahead of the nano's handshake replies. The wait covers a lost
// SYN and its retransmission (1 s, then 3 s) plus the handshake.
const nanoCallWait = 8 * time.Second

// mayContact says whether the node may try to reach p now.
func (n *Node) mayContact(p peer.ID) bool {
	ok, _ := n.mayContactAt(p, n.o.Now())
	return ok
}

// recheckUnreachable is how long a destination that cannot be reached
// (no address, no connection) waits before it is looked at again, should
// no connection nudge it first.
const recheckUnreachable = 30 * time.Second

// mayContactAt says whether the node may try to reach p at now: inside the
// contact plan, and connected or with known addresses; a master leaves the
// first call of a pass to the nano. If not, retry is when to look again.
func (n *Node) mayContactAt(p peer.ID, now time.Time) (ok bool, retry time.Time) {
	if !n.inContact(p) {
		return false, n.nextContact(p, now)
	}
	if aos, ok := n.awaitingResume(p, now); ok {
		return false, aos // the kept session wakes then, and nudges the queue
	}
	if n.Connected(p) {
		return true, time.Time{}
	}
	if len(n.h.Peerstore().Addrs(p)) == 0 {
		return false, now.Add(recheckUnreachable)
	}
	if _, ok := n.nanos[p]; ok {
		c := n.nanoContact(p)
		if c.Plan != nil {
			if w, ok := c.Plan.Current(now, c.Profile.Guard); ok && now.Sub(w.Start) < nanoCallWait {
				return false, w.Start.Add(nanoCallWait)
			}
		}
	}
	return true, time.Time{}
}

// nextContact is when p may next be in contact: the next window of this
// nano's own plan, or of the nano p's; a minute from now without a plan
// ahead (the plan may be replaced meanwhile).
func (n *Node) nextContact(p peer.ID, now time.Time) time.Time {
	c := n.contact()
	if !n.o.Roles.Has(RoleNano) {
		c = n.nanoContact(p)
	} else if pp, ok := n.peerPlans()[p]; ok {
		c.Plan = pp
	}
	if c.Plan != nil {
		if w, ok := c.Plan.NextStart(now); ok {
			return maxTime(w.Start.Add(-c.Profile.Guard), now.Add(time.Second))
		}
	}
	return now.Add(time.Minute)
}

// drainTurn is how many entries one drain sends before it yields its
// worker to destinations waiting for one.
const drainTurn = 4096

// drainEnd is why a drain stopped.
type drainEnd int

const (
	drainDone    drainEnd = iota // the queue is empty, or the link failed (the store's backoff brings dest back)
	drainYielded                 // its turn is over while others wait for a worker
	drainRecheck                 // dest may not be contacted now: deliveryLoop looks again
)

// drain delivers dest's queue over as many streams as protocols change,
// keeping up to DeliveryWindow entries in flight, until the queue is empty
// or the link fails. more is signalled when entries are queued meanwhile.
func (n *Node) drain(dest peer.ID, more chan struct{}) drainEnd {
	total := 0
	for n.ctx.Err() == nil {
		first, err := n.store.Peek(string(dest), 1)
		if err != nil || len(first) == 0 {
			if n.o.afterEmptyPeek != nil {
				n.o.afterEmptyPeek()
			}
			return drainDone
		}
		if total >= drainTurn && n.othersWaiting() {
			return drainYielded
		}
		if !n.mayContact(dest) {
			// The window closed while this drain lingered or ran, or while
			// dest waited for a worker: what is queued waits for the next
			// one (nothing is written outside a window).
			return drainRecheck
		}
		sent, err := n.drainProtocol(dest, first[0].Protocol, more)
		total += sent
		if err != nil {
			n.Metrics.Inc("delivery_failures")
			n.log.Debug("delivery interrupted", "peer", dest, "sent", sent, "err", err)
			if ferr := n.store.Fail(n.ctx, string(dest), first[0].Ref); ferr != nil && !errors.Is(ferr, context.Canceled) {
				n.log.Warn("record delivery failure", "peer", dest, "err", ferr)
			}
			return drainDone
		}
		if sent == 0 {
			return drainDone
		}
	}
	return drainDone
}

// deliveryChunk is how many entries a sender reads from the store at once.
const deliveryChunk = 64

// maxAckBatch bounds the acknowledgements deleted in one transaction (and
// so the work lost to a failed one).
const maxAckBatch = 1024

// inflight tracks entries sent on one stream: in the window until their
// ack arrives, then unsaved until the ack's deletion is durable.
type inflight struct {
	mu       sync.Mutex
	refs     map[uint64]dtn.Ref // sent, not acknowledged
	unsaved  map[uint64]bool    // acknowledged, deletion not yet committed
	rewind   uint64             // lowest queue position to look at again (0: none)
	done     bool
	readErr  error
	progress chan struct{} // signalled when refs or unsaved shrink, a rewind is due, or done
}

func newInflight() *inflight {
	return &inflight{refs: map[uint64]dtn.Ref{}, unsaved: map[uint64]bool{}, progress: make(chan struct{}, 1)}
}

func (fl *inflight) state() (inWindow, outstanding int, done bool) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return len(fl.refs), len(fl.refs) + len(fl.unsaved), fl.done
}

// sentOn says whether the entry id is in flight on this stream, or
// acknowledged and being deleted: not to be sent again.
func (fl *inflight) sentOn(id uint64) bool {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	_, sent := fl.refs[id]
	return sent || fl.unsaved[id]
}

// rewindTo asks the drain to look at the queue again from pos: an entry
// there was replaced in place (an update of a resource in flight) after it
// was sent, behind the drain's cursor.
func (fl *inflight) rewindTo(pos uint64) {
	fl.mu.Lock()
	if fl.rewind == 0 || pos < fl.rewind {
		fl.rewind = pos
	}
	fl.mu.Unlock()
	signal(fl.progress)
}

// takeRewind returns and clears the position to look again from (0: none).
func (fl *inflight) takeRewind() uint64 {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	r := fl.rewind
	fl.rewind = 0
	return r
}

// drainProtocol sends the consecutive entries of protocol proto at the head
// of dest's queue on one stream; a reader goroutine applies the acks. The
// stream stays open while entries keep coming (more) or acks are due; it
// ends when the queue holds nothing further for proto and every entry sent
// is acknowledged and deleted.
func (n *Node) drainProtocol(dest peer.ID, proto string, more chan struct{}) (sent int, err error) {
	s, err := n.newStream(n.ctx, dest, proto)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", proto, err)
	}
	defer s.Close()
	n.Metrics.Inc("delivery_streams_opened")
	// At the planned rate, so the link's queue stays short (host/tcptune.go).
	var gate *roomGate
	if n.pace(dest) {
		gate = n.newRoomGate(s)
	}
	fl := newInflight()
	r := n.c.NewReader(s)
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		err := n.readAcks(s, r, dest, proto, fl)
		fl.mu.Lock()
		fl.readErr, fl.done = err, true
		fl.mu.Unlock()
		signal(fl.progress)
	}()
	defer func() {
		if err != nil {
			s.Reset() // unblock the reader at once
		} else {
			s.CloseWrite()
		}
		readers.Wait()
	}()
	// Entries are written through a buffer and flushed when the window is
	// full or nothing more is queued: on a slow link, full TCP segments and
	// fewer yamux and Noise frames are bytes given back to payload.
	bw := bufio.NewWriterSize(s, 16<<10)
	flush := func() error {
		if bw.Buffered() == 0 {
			return nil
		}
		if gate != nil {
			gate.flushed += uint64(bw.Buffered())
			gate.flushedNow.Store(gate.flushed)
		}
		s.SetWriteDeadline(time.Now().Add(n.o.IOTimeout))
		return bw.Flush()
	}
	readerDone := func() (int, error) {
		fl.mu.Lock()
		defer fl.mu.Unlock()
		return sent, cmpErr(fl.readErr, io.ErrUnexpectedEOF)
	}
	// waitOr waits for progress (an ack, the reader's end), or for also
	// (nil: never).
	waitOr := func(also <-chan struct{}) error {
		select {
		case <-fl.progress:
		case <-also:
		case <-n.ctx.Done():
			return n.ctx.Err()
		}
		return nil
	}
	wait := func(alsoMore bool) error {
		if alsoMore {
			return waitOr(more)
		}
		return waitOr(nil)
	}
	var after uint64
	var buf []dtn.Entry
	var probeBytes int // written while the session was on probation
	for {
		inWindow, outstanding, done := fl.state()
		if done {
			return readerDone()
		}
		if r := fl.takeRewind(); r != 0 && r <= after {
			after, buf = r-1, nil
		}
		probation, heard := n.h.OnProbation(dest)
		// A kept session woken at AOS carries one round trip of the link
		// until its other end answers (host/session.go): the link is busy from
		// AOS, and a dead session swallows no more than that.
		held := probation && inWindow > 0 && probeBytes >= n.probationBytes(dest)
		if inWindow >= n.o.DeliveryWindow || held {
			if err := flush(); err != nil {
				return sent, err
			}
			if err := waitOr(heard); err != nil {
				return sent, err
			}
			continue
		}
		if len(buf) == 0 {
			if buf, err = n.store.PeekAfter(string(dest), after, deliveryChunk); err != nil {
				return sent, err
			}
		}
		// A long drain yields its worker to destinations waiting for one.
		yield := sent >= drainTurn && n.othersWaiting()
		if yield || len(buf) == 0 || buf[0].Protocol != proto {
			// Nothing more for this stream now: send what is buffered, then
			// wait for the acks in flight, or for more entries, which go on
			// this same stream.
			if err := flush(); err != nil {
				return sent, err
			}
			if outstanding == 0 {
				if len(buf) > 0 || yield {
					// Queued for another protocol, or others' turn: the
					// caller peeks again.
					return sent, nil
				}
				// Idle: keep the stream a moment for the next write, so a
				// trickle of entries does not pay a stream's opening and
				// closing (four frames, two of them round trips) each.
				if !n.linger(dest, fl, more) {
					return sent, nil
				}
				buf = nil
				continue
			}
			if gate != nil && inWindow > 0 {
				gate.probeTail()
			}
			if err := wait(len(buf) == 0 && !yield); err != nil {
				return sent, err
			}
			buf = nil // look again: entries may have been queued meanwhile
			continue
		}
		if gate != nil && bw.Buffered() >= gate.chunk() {
			// Hand TCP no more than it sends soon (pacing.go).
			if err := flush(); err != nil {
				return sent, err
			}
			if err := gate.wait(); err != nil {
				return sent, err
			}
		}
		e := buf[0]
		buf = buf[1:]
		if fl.sentOn(e.Ref.ID) {
			after = e.Ref.Pos // met again after a rewind
			continue
		}
		msg, err := n.deliveryMessage(e)
		if err != nil {
			// A payload we cannot decode will never deliver: drop it loudly.
			n.Metrics.Inc("delivery_undecodable")
			n.log.Error("dropping undecodable DTN entry", "peer", dest, "pos", e.Ref.Pos, "err", err)
			n.store.Ack(n.ctx, string(dest), e.Ref)
			after = e.Ref.Pos
			continue
		}
		fl.mu.Lock()
		fl.refs[e.Ref.ID] = e.Ref
		fl.mu.Unlock()
		s.SetWriteDeadline(time.Now().Add(n.o.IOTimeout)) // a full buffer writes through
		if err := n.c.WriteMessage(bw, msg); err != nil {
			return sent, err
		}
		after = e.Ref.Pos
		sent++
		if probation {
			probeBytes += len(e.Payload)
		}
		if sent == 1 {
			// The first entry of a stream goes out alone: it is applied while
			// the next ones are still in the buffer, instead of after a whole
			// buffer (16 KB, 2 s at 64 kbit/s) has crossed.
			if err := flush(); err != nil {
				return sent, err
			}
		}
		n.Metrics.Inc("delivery_sent")
		n.Metrics.Add("delivery_payload_bytes", uint64(len(e.Payload)))
	}
}

// drainLinger is how long an idle drain keeps its stream for more entries;
// well under a receiver's idle timeout.
const drainLinger = 2 * time.Second

// linger waits, on an idle drain stream with nothing in flight, for more
// entries to dest. It reports whether to go on with the same stream: not
// when the time is up, others wait (or come to wait) for a drain worker,
// the stream ended (nothing was lost: nothing was in flight), or dest may
// not be contacted now (nothing is written outside a window).
func (n *Node) linger(dest peer.ID, fl *inflight, more chan struct{}) bool {
	n.deliveryMu.Lock()
	others, wanted := len(n.waiting) > 0, n.workerWanted
	n.deliveryMu.Unlock()
	if others {
		return false
	}
	wait := cmp.Or(n.o.drainLinger, drainLinger)
	if quiet, ok := n.keptQuietFrom(dest, n.o.Now()); ok {
		// A kept session goes quiet before LOS: the stream's end must be
		// acknowledged before the link goes (host/session.go).
		wait = min(wait, max(quiet.Sub(n.o.Now()), 0))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-more:
			if _, _, done := fl.state(); done {
				return false
			}
			return n.mayContact(dest)
		case <-fl.progress:
			// The last ack's deletion may have signalled after the drain
			// looked: only the reader's end ends the wait.
			if _, _, done := fl.state(); done {
				return false // the peer closed or the link dropped
			}
		case <-wanted:
			return false // a destination waits for this worker
		case <-t.C:
			return false
		case <-n.ctx.Done():
			return false
		}
	}
}

func cmpErr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}

// deliveryMessage rebuilds the wire message of an entry, stamped with the
// entry's ID so the receiver applies it once.
func (n *Node) deliveryMessage(e dtn.Entry) (any, error) {
	switch e.Protocol {
	case ProtoResource:
		var m Mutation
		if err := n.c.Unmarshal(e.Payload, &m); err != nil {
			return nil, err
		}
		m.ID = e.Ref.ID
		// Both ends accept only resources of the nano end of the link, so
		// the owner goes without saying: 40 bytes less per mutation.
		m.Owner = nil
		return &m, nil
	case ProtoBooking:
		var b Booking
		if err := n.c.Unmarshal(e.Payload, &b); err != nil {
			return nil, err
		}
		b.ID = e.Ref.ID
		return &b, nil
	}
	if n.c.Registry().Carries(TypeCarried, e.Protocol) {
		return &Carried{ID: e.Ref.ID, Sent: n.o.Now().UnixMilli(), Body: e.Payload}, nil
	}
	return nil, fmt.Errorf("no wire form for protocol %s", e.Protocol)
}

// readAcks takes acknowledgements as they arrive; it returns when the
// stream ends. Each ack frees its window slot at once; a second goroutine
// deletes the acked entries from the store, every ack that arrived
// meanwhile in one transaction, so reading never waits for a commit.
func (n *Node) readAcks(s network.Stream, r *codec.FrameReader, dest peer.ID, proto string, fl *inflight) error {
	var (
		mu      sync.Mutex
		acked   []dtn.Ref
		saveErr error
	)
	var onAcked func(tx *dtn.Tx, refs []dtn.Ref) error
	if c := n.carrier(proto); c != nil && c.Acked != nil {
		onAcked = func(tx *dtn.Tx, refs []dtn.Ref) error { return c.Acked(tx, dest, refs) }
	}
	kick := make(chan struct{}, 1)
	stop := make(chan struct{})
	saved := make(chan struct{})
	go func() {
		defer close(saved)
		for last := false; !last; {
			select {
			case <-kick:
			case <-stop:
				last = true // save what is left, then end
			}
			mu.Lock()
			refs := acked
			acked = nil
			mu.Unlock()
			if n.o.beforeAckSave != nil && len(refs) > 0 {
				n.o.beforeAckSave(len(refs))
			}
			for len(refs) > 0 {
				k := min(len(refs), maxAckBatch)
				deleted := map[uint64]bool{}
				err := n.store.AckAllWith(n.ctx, string(dest), refs[:k], func(tx *dtn.Tx, gone []dtn.Ref) error {
					for _, r := range gone {
						deleted[r.ID] = true
					}
					if onAcked == nil {
						return nil
					}
					return onAcked(tx, gone)
				})
				if err == nil {
					// An ack that deleted nothing is for a version since
					// replaced in place (or a duplicate): the newer one
					// waits at that position, behind the drain's cursor.
					for _, r := range refs[:k] {
						if !deleted[r.ID] {
							fl.rewindTo(r.Pos)
						}
					}
					n.Metrics.Add("delivery_acked", uint64(k))
					n.Metrics.Inc("delivery_ack_commits")
					if n.o.afterAckSave != nil {
						n.o.afterAckSave(k)
					}
				} else {
					mu.Lock()
					saveErr = cmpErr(saveErr, err)
					mu.Unlock()
				}
				fl.mu.Lock()
				for _, r := range refs[:k] {
					delete(fl.unsaved, r.ID)
				}
				fl.mu.Unlock()
				signal(fl.progress)
				refs = refs[k:]
			}
		}
	}()
	finish := func(err error) error {
		close(stop)
		<-saved
		mu.Lock()
		defer mu.Unlock()
		return cmpErr(saveErr, err)
	}
	for {
		m, err := n.read(s, r, proto, 0)
		if err != nil {
			return finish(err)
		}
		ack, ok := m.(*Ack)
		if !ok {
			return finish(fmt.Errorf("%w: expected an ack", codec.ErrWrongProtocol))
		}
		fl.mu.Lock()
		ref, ok := fl.refs[ack.ID]
		if ok {
			delete(fl.refs, ack.ID)
			fl.unsaved[ack.ID] = true
		}
		fl.mu.Unlock()
		if !ok {
			n.Metrics.Inc("delivery_unexpected_acks")
			continue
		}
		n.acks.heard(dest, n.o.Now())
		if ack.Status != AckApplied {
			n.Metrics.Inc("delivery_refused")
			n.log.Warn("peer refused a delivery for good; dropping it", "peer", dest, "protocol", proto, "reason", ack.Reason)
		}
		mu.Lock()
		acked = append(acked, ref)
		failed := saveErr
		mu.Unlock()
		if failed != nil {
			return finish(nil)
		}
		signal(fl.progress)
		if !r.FrameBuffered() {
			signal(kick)
		}
	}
}

// gateSender judges who may deliver to this node on the application
// protocols, from the authenticated connection, never from the message.
func (n *Node) gateSender(from peer.ID) error {
	switch {
	case n.o.Roles.Has(RoleNano):
		if from != n.o.Master.ID {
			n.Metrics.Inc("refused_not_master")
			return &Refusal{Reason: "not this nano's master"}
		}
	case n.o.Roles.Has(RoleMaster):
		if _, ok := n.nanos[from]; !ok {
			n.Metrics.Inc("refused_not_nano")
			return &Refusal{Reason: "not a nano of this master"}
		}
	default:
		return &Refusal{Reason: "role does not take deliveries"}
	}
	return nil
}

// deliveryReadBuffer is the read buffer of a delivery stream's receiver.
const deliveryReadBuffer = 32 << 10

// maxApplyBatch bounds the deliveries a receiver applies in one
// transaction.
const maxApplyBatch = 256

// serveDeliveries reads messages of one application protocol and applies
// them durably, then acknowledges them. A reader goroutine judges each
// delivery as it arrives (refusals are decided there, outside any
// transaction); the applier takes every delivery read meanwhile and applies
// them in one transaction, so a commit in progress never stops the reading
// and the next commit carries all that arrived during this one.
func (n *Node) serveDeliveries(s network.Stream, r *codec.FrameReader, proto string, prepare func(from peer.ID, m any) (*received, error)) error {
	from := s.Conn().RemotePeer()
	if err := n.admitSender(proto, from); err != nil {
		n.log.Warn("refused delivery", "peer", from, "protocol", proto, "err", err)
		return err
	}
	n.liveness.Seen(from, n.o.Now())
	defer n.inbound.add(from)()
	// Acks are written through a buffer and flushed when no further
	// delivery is in hand: a drain's acks then share segments and frames
	// instead of costing ~100 bytes of headers each on the way back.
	bw := bufio.NewWriterSize(s, 2048)
	defer func() { // whatever ends the stream, still tell the peer what was applied
		if bw.Buffered() > 0 {
			s.SetWriteDeadline(time.Now().Add(n.o.IOTimeout))
			bw.Flush()
		}
	}()
	var (
		mu      sync.Mutex
		inHand  []*received
		readErr error
		ended   bool
	)
	ready := make(chan struct{}, 1) // the reader added something or ended
	room := make(chan struct{}, 1)  // the applier took what was in hand
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			m, err := n.read(s, r, proto, 2*time.Minute)
			var rc *received
			if err == nil {
				rc, err = prepare(from, m)
			}
			mu.Lock()
			if err != nil {
				readErr, ended = err, true
			} else {
				inHand = append(inHand, rc)
			}
			full := len(inHand) >= maxApplyBatch
			mu.Unlock()
			// "In hand" means whole frames: the sender's 16 KB writes split
			// mutations, and the rest of one arrives up to 2 s later. Tell
			// the applier only when nothing more can be read at once.
			if err != nil || full || !r.FrameBuffered() {
				signal(ready)
			}
			if err != nil {
				return
			}
			for full {
				select {
				case <-room:
				case <-stop:
					return
				}
				mu.Lock()
				full = len(inHand) >= maxApplyBatch
				mu.Unlock()
			}
		}
	}()
	for {
		select {
		case <-ready:
		case <-n.ctx.Done():
			return n.ctx.Err()
		}
		mu.Lock()
		batch := inHand
		inHand = nil
		rerr, end := readErr, ended
		mu.Unlock()
		signal(room)
		n.applyReceived(n.ctx, from, batch)
		if n.o.afterApply != nil && len(batch) > 0 {
			var names []string
			for _, rc := range batch {
				if rc.refusal == nil && rc.err == nil && !rc.dup {
					names = append(names, rc.name)
				}
			}
			n.o.afterApply(names)
		}
		// Entries a Carrier brings (fleet reports, pushes) are counted apart:
		// deliveries_applied and OnApplied are about the catalogue.
		appliedName, duplicateName := "deliveries_applied", "deliveries_duplicate"
		carried := n.carrier(proto) != nil
		if carried {
			appliedName, duplicateName = "carried_applied", "carried_duplicate"
		}
		var applyErr error
		for _, rc := range batch {
			ack := &Ack{ID: rc.id}
			switch {
			case rc.refusal != nil:
				ack.Status, ack.Reason = AckRefused, rc.refusal.Reason
				n.Metrics.Inc("deliveries_refused")
			case rc.err != nil:
				// Not applied: no ack, the sender will retry.
				applyErr = cmpErr(applyErr, rc.err)
				continue
			case rc.dup:
				n.Metrics.Inc(duplicateName)
			default:
				n.Metrics.Inc(appliedName)
				if rc.applied != nil {
					rc.applied()
				}
				if n.o.OnApplied != nil && !carried {
					n.o.OnApplied(from, strings.TrimPrefix(proto, ProtocolPrefix+"/"), rc.name)
				}
			}
			s.SetWriteDeadline(time.Now().Add(n.o.IOTimeout))
			if err := n.c.WriteMessage(bw, ack); err != nil {
				return err
			}
		}
		if applyErr != nil {
			return applyErr
		}
		if end {
			return rerr
		}
		// The batch's acks leave together, at once: whatever arrived
		// during its commit is the next batch, and its acks the next
		// flush.
		if bw.Buffered() > 0 {
			s.SetWriteDeadline(time.Now().Add(n.o.IOTimeout))
			if err := bw.Flush(); err != nil {
				return err
			}
		}
	}
}

func (n *Node) serveResource(s network.Stream, r *codec.FrameReader) error {
	return n.serveDeliveries(s, r, ProtoResource, func(from peer.ID, m any) (*received, error) {
		mu, ok := m.(*Mutation)
		if !ok {
			return nil, fmt.Errorf("%w: expected a mutation", codec.ErrWrongProtocol)
		}
		return n.prepareMutation(from, mu), nil
	})
}

func (n *Node) serveBooking(s network.Stream, r *codec.FrameReader) error {
	return n.serveDeliveries(s, r, ProtoBooking, func(from peer.ID, m any) (*received, error) {
		b, ok := m.(*Booking)
		if !ok {
			return nil, fmt.Errorf("%w: expected a booking", codec.ErrWrongProtocol)
		}
		if n.o.Roles.Has(RoleNano) {
			return n.prepareBooking(from, b), nil
		}
		return n.prepareBookingAtMaster(from, b), nil
	})
}

// serveWake: a peer says it is reachable; deliver what we hold for it now.
// A nano owes only its master, so it hears a wake from nobody else, and
// judges that before reading a byte.
func (n *Node) serveWake(s network.Stream, r *codec.FrameReader) error {
	from := s.Conn().RemotePeer()
	if n.o.Roles.Has(RoleNano) && from != n.o.Master.ID {
		n.Metrics.Inc("refused_wake_not_master")
		return &Refusal{Reason: "a nano is woken by its master only"}
	}
	if _, err := n.read(s, r, ProtoWake, 0); err != nil {
		return err
	}
	n.Metrics.Inc("wakes_received")
	n.liveness.Seen(from, n.o.Now())
	n.h.ClearBackoff(from)
	if n.store.Len(string(from)) > 0 {
		return n.store.Nudge(n.ctx, string(from))
	}
	return nil
}

// pendingCaller is a peer an indexer says waits for this node, and where
// to reach it.
type pendingCaller struct {
	peer  peer.ID
	addrs []ma.Multiaddr
}

// readCaller reads one PendingCallers entry: an error if its peer ID does
// not parse; bad counts the addresses left out because they do not.
func readCaller(pa PeerAddrs) (c pendingCaller, bad int, err error) {
	for _, a := range pa.Addrs {
		if m, err := ma.NewMultiaddrBytes(a); err == nil {
			c.addrs = append(c.addrs, m)
		} else {
			bad++
		}
	}
	if c.peer, err = peer.IDFromBytes(pa.Peer); err != nil {
		return pendingCaller{}, bad, fmt.Errorf("pending caller: %w", err)
	}
	return c, bad, nil
}

// wake tells caller that this node is reachable (PendingCallers → caller):
// the side that holds the messages is the one woken, not the other way round.
func (n *Node) wake(c pendingCaller) {
	for _, m := range c.addrs {
		n.h.Peerstore().AddAddr(c.peer, m, 10*time.Minute)
	}
	n.wakePeer(c.peer)
}

// wakePeer tells p that this node is reachable now.
func (n *Node) wakePeer(p peer.ID) {
	n.h.ClearBackoff(p)
	s, err := n.newStream(n.ctx, p, ProtoWake)
	if err != nil {
		n.Metrics.Inc("wakes_failed")
		n.log.Debug("wake", "peer", p, "err", err)
		return
	}
	defer s.Close()
	if err := n.write(s, &Wake{Time: uint64(n.o.Now().Unix())}); err != nil {
		n.Metrics.Inc("wakes_failed")
		return
	}
	n.Metrics.Inc("wakes_sent")
}
