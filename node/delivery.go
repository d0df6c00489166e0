package node

import (
	"bufio"
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

// deliveryLoop drains every destination that is due, one drain per
// destination at a time. It wakes on the store's Wake (a nudge, a cleared
// backoff) and once a second for backoffs that expire.
func (n *Node) deliveryLoop() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastPrune := n.o.Now()
	for {
		n.alive.Store(time.Now().UnixNano())
		select {
		case <-n.ctx.Done():
			return
		case <-n.store.Wake():
		case <-tick.C:
		}
		for _, d := range n.store.Due() {
			dest := peer.ID(d)
			if !n.mayContact(dest) {
				continue
			}
			n.deliveryMu.Lock()
			busy := n.draining[dest]
			n.draining[dest] = true
			n.deliveryMu.Unlock()
			if !busy {
				n.loop(func() {
					defer func() {
						n.deliveryMu.Lock()
						delete(n.draining, dest)
						n.deliveryMu.Unlock()
					}()
					n.drain(dest)
				})
			}
		}
		if n.o.Now().Sub(lastPrune) > time.Hour {
			lastPrune = n.o.Now()
			if err := n.pruneApplied(n.ctx, 30*24*time.Hour); err != nil {
				n.log.Warn("prune applied set", "err", err)
			}
		}
	}
}

// nanoCallWait is how long after a nano's window opens its master waits
// for the nano's own call before dialling it. The nano dials at AOS (minus
// its guard); if the master dialled too, two handshakes and two TCP flows
// would share the first seconds of a slow link, and the master's backlog
// would queue ahead of the nano's handshake replies. The wait covers a lost
// SYN and its retransmission (1 s, then 3 s) plus the handshake.
const nanoCallWait = 8 * time.Second

// mayContact says whether the node may try to reach p now: inside the
// contact plan, and connected or with known addresses; a master leaves the
// first call of a pass to the nano.
func (n *Node) mayContact(p peer.ID) bool {
	if !n.inContact(p) {
		return false
	}
	if n.Connected(p) {
		return true
	}
	if len(n.h.Peerstore().Addrs(p)) == 0 {
		return false
	}
	if _, ok := n.nanos[p]; ok {
		c := n.nanoContact(p)
		if c.Plan != nil {
			now := n.o.Now()
			if w, ok := c.Plan.Current(now, c.Profile.Guard); ok && now.Sub(w.Start) < nanoCallWait {
				return false
			}
		}
	}
	return true
}

// drain delivers dest's queue over as many streams as protocols change,
// keeping up to DeliveryWindow entries in flight, until the queue is empty
// or the link fails.
func (n *Node) drain(dest peer.ID) {
	for n.ctx.Err() == nil {
		first, err := n.store.Peek(string(dest), 1)
		if err != nil || len(first) == 0 {
			return
		}
		sent, err := n.drainProtocol(dest, first[0].Protocol)
		if err != nil {
			n.Metrics.Inc("delivery_failures")
			n.log.Debug("delivery interrupted", "peer", dest, "sent", sent, "err", err)
			if ferr := n.store.Fail(n.ctx, string(dest), first[0].Ref); ferr != nil && !errors.Is(ferr, context.Canceled) {
				n.log.Warn("record delivery failure", "peer", dest, "err", ferr)
			}
			return
		}
		if sent == 0 {
			return
		}
	}
}

// inflight tracks entries sent and not yet acknowledged on one stream.
type inflight struct {
	mu      sync.Mutex
	cond    *sync.Cond
	refs    map[uint64]dtn.Ref
	done    bool
	readErr error
}

// drainProtocol sends the consecutive entries of protocol proto at the head
// of dest's queue on one stream; a reader goroutine applies the acks.
func (n *Node) drainProtocol(dest peer.ID, proto string) (sent int, err error) {
	s, err := n.newStream(n.ctx, dest, proto)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", proto, err)
	}
	defer s.Close()
	fl := &inflight{refs: map[uint64]dtn.Ref{}}
	fl.cond = sync.NewCond(&fl.mu)
	r := n.c.NewReader(s)
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		fl.readErr = n.readAcks(s, r, dest, proto, fl)
		fl.mu.Lock()
		fl.done = true
		fl.cond.Broadcast()
		fl.mu.Unlock()
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
		s.SetWriteDeadline(time.Now().Add(n.o.IOTimeout))
		return bw.Flush()
	}
	var after uint64
	for {
		fl.mu.Lock()
		full := len(fl.refs) >= n.o.DeliveryWindow
		fl.mu.Unlock()
		if full {
			if err := flush(); err != nil {
				return sent, err
			}
		}
		fl.mu.Lock()
		for len(fl.refs) >= n.o.DeliveryWindow && !fl.done {
			fl.cond.Wait()
		}
		done := fl.done
		fl.mu.Unlock()
		if done {
			return sent, cmpErr(fl.readErr, io.ErrUnexpectedEOF)
		}
		es, err := n.store.PeekAfter(string(dest), after, 1)
		if err != nil {
			return sent, err
		}
		if len(es) == 0 || es[0].Protocol != proto {
			// Nothing more for this stream: send what is buffered, then wait
			// for the acks in flight.
			if err := flush(); err != nil {
				return sent, err
			}
			fl.mu.Lock()
			for len(fl.refs) > 0 && !fl.done {
				fl.cond.Wait()
			}
			pending, rerr := len(fl.refs), fl.readErr
			fl.mu.Unlock()
			if pending > 0 {
				return sent, cmpErr(rerr, io.ErrUnexpectedEOF)
			}
			// More may have been queued meanwhile; the caller peeks again.
			return sent, nil
		}
		e := es[0]
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
	return nil, fmt.Errorf("no wire form for protocol %s", e.Protocol)
}

// readAcks applies acknowledgements as they arrive; it returns when the
// stream ends.
func (n *Node) readAcks(s network.Stream, r *codec.FrameReader, dest peer.ID, proto string, fl *inflight) error {
	for {
		m, err := n.read(s, r, proto, 0)
		if err != nil {
			return err
		}
		ack, ok := m.(*Ack)
		if !ok {
			return fmt.Errorf("%w: expected an ack", codec.ErrWrongProtocol)
		}
		fl.mu.Lock()
		ref, ok := fl.refs[ack.ID]
		fl.mu.Unlock()
		if !ok {
			n.Metrics.Inc("delivery_unexpected_acks")
			continue
		}
		if ack.Status != AckApplied {
			n.Metrics.Inc("delivery_refused")
			n.log.Warn("peer refused a delivery for good; dropping it", "peer", dest, "protocol", proto, "reason", ack.Reason)
		}
		if err := n.store.Ack(n.ctx, string(dest), ref); err != nil {
			return err
		}
		n.Metrics.Inc("delivery_acked")
		fl.mu.Lock()
		delete(fl.refs, ack.ID)
		fl.cond.Broadcast()
		fl.mu.Unlock()
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

// serveDeliveries reads messages of one application protocol, applies each
// durably and acknowledges it.
func (n *Node) serveDeliveries(s network.Stream, r *codec.FrameReader, proto string, apply func(from peer.ID, m any) (id uint64, name string, dup bool, err error)) error {
	from := s.Conn().RemotePeer()
	if err := n.gateSender(from); err != nil {
		n.log.Warn("refused delivery", "peer", from, "protocol", proto, "err", err)
		return err
	}
	n.liveness.Seen(from, n.o.Now())
	// Acks are written through a buffer and flushed when no further
	// mutation is already in hand: a drain's acks then share segments and
	// frames instead of costing ~100 bytes of headers each on the way back.
	// "In hand" means a whole frame: the sender's 16 KB writes split
	// mutations, and the rest of one arrives up to 2 s later.
	bw := bufio.NewWriterSize(s, 2048)
	defer func() { // whatever ends the stream, still tell the peer what was applied
		if bw.Buffered() > 0 {
			s.SetWriteDeadline(time.Now().Add(n.o.IOTimeout))
			bw.Flush()
		}
	}()
	for {
		if !r.FrameBuffered() && bw.Buffered() > 0 {
			s.SetWriteDeadline(time.Now().Add(n.o.IOTimeout))
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		m, err := n.read(s, r, proto, 2*time.Minute)
		if err != nil {
			return err
		}
		id, name, dup, err := apply(from, m)
		ack := &Ack{ID: id}
		var ref *Refusal
		switch {
		case errors.As(err, &ref):
			ack.Status, ack.Reason = AckRefused, ref.Reason
			n.Metrics.Inc("deliveries_refused")
		case err != nil:
			return err // not applied: no ack, the sender will retry
		case dup:
			n.Metrics.Inc("deliveries_duplicate")
		default:
			n.Metrics.Inc("deliveries_applied")
			if n.o.OnApplied != nil {
				n.o.OnApplied(from, strings.TrimPrefix(proto, ProtocolPrefix+"/"), name)
			}
		}
		s.SetWriteDeadline(time.Now().Add(n.o.IOTimeout))
		if err := n.c.WriteMessage(bw, ack); err != nil {
			return err
		}
	}
}

func (n *Node) serveResource(s network.Stream, r *codec.FrameReader) error {
	return n.serveDeliveries(s, r, ProtoResource, func(from peer.ID, m any) (uint64, string, bool, error) {
		mu, ok := m.(*Mutation)
		if !ok {
			return 0, "", false, fmt.Errorf("%w: expected a mutation", codec.ErrWrongProtocol)
		}
		dup, err := n.receiveMutation(n.ctx, from, mu)
		return mu.ID, mu.Resource, dup, err
	})
}

func (n *Node) serveBooking(s network.Stream, r *codec.FrameReader) error {
	return n.serveDeliveries(s, r, ProtoBooking, func(from peer.ID, m any) (uint64, string, bool, error) {
		b, ok := m.(*Booking)
		if !ok {
			return 0, "", false, fmt.Errorf("%w: expected a booking", codec.ErrWrongProtocol)
		}
		var dup bool
		var err error
		if n.o.Roles.Has(RoleNano) {
			dup, err = n.receiveBooking(n.ctx, from, b)
		} else {
			dup, err = n.receiveBookingAtMaster(n.ctx, from, b)
		}
		return b.ID, b.Booking, dup, err
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
	n.h.ClearBackoff(from)
	if n.store.Len(string(from)) > 0 {
		return n.store.Nudge(n.ctx, string(from))
	}
	return nil
}

// wake tells caller that this node is reachable (PendingCallers → caller):
// the side that holds the messages is the one woken, not the other way round.
func (n *Node) wake(caller PeerAddrs) {
	p, err := peer.IDFromBytes(caller.Peer)
	if err != nil || p == n.id {
		return
	}
	for _, a := range caller.Addrs {
		if m, err := ma.NewMultiaddrBytes(a); err == nil {
			n.h.Peerstore().AddAddr(p, m, 10*time.Minute)
		}
	}
	n.h.ClearBackoff(p)
	s, err := n.newStream(n.ctx, p, ProtoWake)
	if err != nil {
		n.Metrics.Inc("wakes_failed")
		n.log.Debug("wake caller", "peer", p, "err", err)
		return
	}
	defer s.Close()
	if err := n.write(s, &Wake{Time: uint64(n.o.Now().Unix())}); err != nil {
		n.Metrics.Inc("wakes_failed")
		return
	}
	n.Metrics.Inc("wakes_sent")
}
