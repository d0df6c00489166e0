package node

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/codec"
	"gardend/host"
	"gardend/record"
	"gardend/swim"
)

// heartbeatLoop keeps one long-lived heartbeat stream to an indexer and
// sends a heartbeat every interval: a fresh signed record, the peers this
// node holds critical entries for (PendingContact). The response names the
// peers waiting for this node (PendingCallers), which it wakes.
func (n *Node) heartbeatLoop(ai peer.AddrInfo) {
	var (
		s network.Stream
		r *codec.FrameReader
	)
	defer func() {
		if s != nil {
			s.Reset()
		}
	}()
	// Tick often enough to catch the last call before loss of signal; send
	// at the heartbeat interval, and once more in the last call.
	step := n.o.HeartbeatInterval
	if g := n.contact().Profile.Guard; g > 0 && g/2 < step {
		step = g / 2
	}
	tick := time.NewTicker(step)
	defer tick.Stop()
	var sched heartbeatSchedule
	var st recordSent
	var health indexerHealth
	var lastBeat time.Time // the last heartbeat that went on this stream
	for {
		now := n.o.Now()
		kept := n.h.Kept(ai.ID)
		// Nothing new starts on a kept session in its quiet time before LOS,
		// and nothing waits on a fresh dial while it sleeps before AOS
		// (host/session.go): the beat waits, the schedule untouched.
		_, waiting := n.awaitingResume(ai.ID, now)
		quiet := kept && n.keptQuiet(ai.ID, now)
		hold := waiting || quiet
		due := !hold && sched.due(n.contact(), n.HeartbeatInterval(), now)
		if !n.contact().Open(now) {
			// A failure in the last call before LOS and one while the link
			// is acquired at the next AOS are not two failures in a row.
			health = indexerHealth{}
			if s != nil {
				s.Reset() // out of contact: stay quiet, drop the stream
				s = nil
			}
		}
		if s != nil && quiet {
			// End the stream as the quiet time starts, while the link still
			// has round trips to carry its reset: the kept session goes into
			// the gap with nothing unacknowledged.
			s.Reset()
			s = nil
		}
		if !due {
			// Wake at the quiet time's start itself, not a tick later.
			var atQuiet *time.Timer
			if from, ok := n.keptQuietFrom(ai.ID, now); kept && ok && now.Before(from) && from.Sub(now) < step {
				atQuiet = time.NewTimer(from.Sub(now))
			}
			select {
			case <-n.ctx.Done():
				return
			case <-tick.C:
			case <-timerC(atQuiet):
			}
			if atQuiet != nil {
				atQuiet.Stop()
			}
			continue
		}
		if s == nil {
			var err error
			if !n.Connected(ai.ID) {
				n.h.ClearBackoff(ai.ID) // a new attempt: do not wait out an old dial's backoff
			}
			if s, err = n.newStream(n.ctx, ai.ID, ProtoHeartbeat); err != nil {
				s = nil
				n.Metrics.Inc("heartbeat_failures")
				n.log.Debug("heartbeat stream", "indexer", ai.ID, "err", err)
				n.heartbeatFailed(ai.ID, &health, now)
			} else {
				r = n.c.NewReader(s)
				st = recordSent{} // a new stream may reach a restarted indexer
				lastBeat = time.Time{}
			}
		}
		if s != nil {
			now = n.o.Now() // opening the stream may have taken a while
			hb, commit, err := n.heartbeatTo(ai.ID, &st, now)
			switch {
			case err == nil && n.beatCanWait(ai.ID, hb, lastBeat, now):
				n.Metrics.Inc("heartbeats_skipped_for_acks")
			case err == nil:
				err = n.heartbeat(s, r, hb, commit, &st, now)
				lastBeat = now
			}
			if err != nil {
				n.Metrics.Inc("heartbeat_failures")
				n.log.Debug("heartbeat", "indexer", ai.ID, "err", err)
				s.Reset()
				s = nil
				n.heartbeatFailed(ai.ID, &health, now)
			} else {
				health = indexerHealth{}
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// recordSent is what a heartbeat stream last told its indexer about this
// node's record. A signed record is ~300 of a heartbeat's ~370 bytes: it
// travels when the indexer lacks it, when its content changed, or when a
// fresh signature would extend its life by more than half of what the last
// one gave (for an orbital nano that is once per pass, its expiry already
// reaching past the next AOS) — not every interval.
type recordSent struct {
	sent            bool
	at, expires     time.Time
	content         string // the record's fields but Seq and Expires
	indexerNeedsOne bool
}

// due reports whether rec must be sent now.
func (st *recordSent) due(rec record.PeerRecord, content string, now time.Time) bool {
	if !st.sent || st.indexerNeedsOne || content != st.content {
		return true
	}
	want := time.Unix(int64(rec.Expires), 0)
	return want.Before(st.expires) || want.Sub(st.expires) > st.expires.Sub(st.at)/2
}

// nextHeartbeat builds the heartbeat due now; commit, called once the
// indexer has answered, records what it was told.
func (n *Node) nextHeartbeat(st *recordSent, now time.Time) (hb *Heartbeat, commit func(), err error) {
	hb = &Heartbeat{Time: uint64(now.Unix()), Name: n.o.Name}
	rec := n.peerRecord()
	plain := rec
	plain.Expires = 0
	content, err := n.c.Marshal(&plain)
	if err != nil {
		return nil, nil, err
	}
	sendRecord := st.due(rec, string(content), now)
	if sendRecord {
		if hb.Record, err = n.signRecord(rec); err != nil {
			return nil, nil, err
		}
	}
	if !st.sent {
		for _, ai := range n.o.Indexers {
			hb.Indexers = append(hb.Indexers, []byte(ai.ID))
		}
	}
	for _, d := range n.store.PendingCritical() {
		hb.PendingContact = append(hb.PendingContact, []byte(d))
	}
	hb.Events = n.members.Next(len(n.o.Indexers))
	return hb, func() {
		if sendRecord {
			*st = recordSent{sent: true, at: now, expires: time.Unix(int64(rec.Expires), 0), content: string(content)}
			n.Metrics.Inc("heartbeat_records_sent")
		}
	}, nil
}

// heartbeat sends hb on s and takes in the indexer's answer.
func (n *Node) heartbeat(s network.Stream, r *codec.FrameReader, hb *Heartbeat, commit func(), st *recordSent, now time.Time) error {
	indexer := s.Conn().RemotePeer()
	body, err := n.c.EncodeMessage(hb)
	if err != nil {
		return err
	}
	s.SetWriteDeadline(time.Now().Add(n.o.IOTimeout))
	if err := codec.WriteFrame(s, body, n.c.Limits().MaxFrame); err != nil {
		return err
	}
	n.Metrics.Inc("heartbeats_sent")
	n.Metrics.Add("heartbeat_bytes_sent", uint64(len(codec.AppendFrame(nil, body))))
	m, err := n.read(s, r, ProtoHeartbeat, 0)
	if err != nil {
		return err
	}
	resp, ok := m.(*HeartbeatResponse)
	if !ok {
		return codec.ErrWrongProtocol
	}
	commit()
	n.heardFrom(indexer, resp, st, now)
	return nil
}

// heartbeatTo builds the heartbeat due now for indexer: nextHeartbeat
// without the indexer among the peers it is asked to call, plus a request
// to refute when this node does not believe it alive. A nano's master is
// often both its indexer and the peer its entries wait for; naming it cost
// 42 of a drain-time heartbeat's 60 bytes (frame included), for a claim
// nobody reads: an indexer never heartbeats to itself.
func (n *Node) heartbeatTo(indexer peer.ID, st *recordSent, now time.Time) (*Heartbeat, func(), error) {
	hb, commit, err := n.nextHeartbeat(st, now)
	if err != nil {
		return nil, nil, err
	}
	hb.PendingContact = slices.DeleteFunc(hb.PendingContact, func(t []byte) bool { return peer.ID(t) == indexer })
	if ms, ok := n.members.State(indexer); ok && ms.Kind != swim.Alive {
		hb.SuspectedIncarnation = ms.Incarnation // asks it to refute
	}
	return hb, commit, nil
}

// heardFrom takes in an indexer's answer to a heartbeat (takeResponse)
// and wakes the peers waiting for this node.
func (n *Node) heardFrom(indexer peer.ID, resp *HeartbeatResponse, st *recordSent, now time.Time) {
	for _, c := range n.takeResponse(indexer, resp, st, now) {
		n.loop(func() { n.wake(c) })
	}
}

// takeResponse takes in an indexer's answer to a heartbeat: its liveness
// and gossip, what it says of this node's record, and who waits for this
// node, which it returns (callers that cannot be read are counted and
// left out).
func (n *Node) takeResponse(indexer peer.ID, resp *HeartbeatResponse, st *recordSent, now time.Time) []pendingCaller {
	if n.members.Seen(indexer, resp.Incarnation, now) {
		n.log.Info("indexer answers again", "indexer", indexer, "incarnation", resp.Incarnation)
	}
	n.observeEvents(resp.Events, now)
	st.indexerNeedsOne = resp.NeedRecord
	if resp.RecordError != "" {
		st.indexerNeedsOne = true
		n.Metrics.Inc("heartbeat_record_refused")
		n.log.Warn("indexer refused our record", "indexer", indexer, "reason", truncate(resp.RecordError, 200))
	}
	var callers []pendingCaller
	for _, pa := range resp.PendingCallers {
		c, bad, err := readCaller(pa)
		n.Metrics.Add("pending_caller_addrs_malformed", uint64(bad))
		if err != nil {
			n.Metrics.Inc("pending_callers_malformed")
			continue
		}
		if c.peer != n.id {
			callers = append(callers, c)
		}
	}
	return callers
}

// truncate cuts s to at most max bytes for a log line.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// indexerHealth follows one indexer's consecutive heartbeat failures
// within a contact window (the loop resets it out of contact).
type indexerHealth struct {
	fails       int
	suspectedAt time.Time
}

// failed counts a failure and says what it makes of the indexer: 0 nothing
// yet, swim.Suspect at the second failure in a row (the seed suspected at
// the first, but a beat at AOS can fail while the link is still being
// acquired), swim.Dead once the suspicion is three intervals old.
func (h *indexerHealth) failed(now time.Time, interval time.Duration) uint8 {
	h.fails++
	switch {
	case h.fails < 2:
		return 0
	case h.suspectedAt.IsZero():
		h.suspectedAt = now
		return swim.Suspect
	case now.Sub(h.suspectedAt) >= 3*interval:
		return swim.Dead
	}
	return swim.Suspect
}

// heartbeatFailed records a failed heartbeat to indexer p and gossips what
// it concludes. This node keeps heartbeating p: its indexers are
// configured, not discovered.
func (n *Node) heartbeatFailed(p peer.ID, h *indexerHealth, now time.Time) {
	kind := h.failed(now, n.HeartbeatInterval())
	if kind == 0 {
		return
	}
	known, _ := n.members.State(p)
	if !n.members.Local(p, kind, known.Incarnation, now) {
		return // already known
	}
	if kind == swim.Suspect {
		n.Metrics.Inc("indexers_suspected")
		n.log.Warn("indexer suspected: heartbeats fail in contact", "indexer", p, "failures", h.fails)
	} else {
		n.Metrics.Inc("indexers_dead")
		n.log.Warn("indexer declared dead: suspected for three heartbeat intervals", "indexer", p)
	}
}

// acquireRetry paces a nano's dials to its master inside a window while
// they fail.
const acquireRetry = time.Second

// contactLoop keeps a nano in touch with its master: it dials the master
// as soon as a window opens (it wakes for the exact start, not at the next
// tick) and whenever it is not connected inside a window. When a window
// closes it drops its connections: packets sent into a dead link would
// only push TCP's retransmission timer back, and a connection stalled that
// way costs more at the next pass than a fresh handshake.
func (n *Node) contactLoop() {
	wasOpen := false
	reached := map[peer.ID]bool{} // in a window of its own at the last look
	for {
		now := n.o.Now()
		c := n.contact()
		open := c.Open(now)
		failed := false
		for _, p := range n.callees() {
			inReach := n.peerOpen(p, now)
			if inReach && !n.Connected(p) && !(n.h.Kept(p) && pastLOS(c, now)) {
				ctx, cancel := context.WithTimeout(n.ctx, host.DefaultDialTimeout)
				n.h.ClearBackoff(p)
				if err := n.h.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
					if p == n.o.Master.ID {
						n.Metrics.Inc("master_dial_failures")
					} else {
						n.Metrics.Inc("station_dial_failures")
					}
					failed = true
				}
				cancel()
			}
			if reached[p] && !inReach && open {
				// Out of this station's view, still in another's.
				n.h.Network().ClosePeer(p)
			}
			reached[p] = inReach
		}
		if wasOpen && !open {
			n.Metrics.Inc("windows_closed")
			ended := map[peer.ID]bool{} // a master may be an indexer too
			for _, p := range n.callees() {
				ended[p] = true
			}
			for _, ai := range n.o.Indexers {
				ended[ai.ID] = true
			}
			for p := range ended {
				n.sleepOrClose(p)
			}
		}
		wasOpen = open
		wait := n.HeartbeatInterval()
		if failed {
			// Acquiring: the dial began up to a guard time before AOS and its
			// SYNs went into a dead link (TCP's connect gives up after 5 s).
			// Try again at once rather than a heartbeat interval later, so a
			// fresh SYN leaves within seconds of the link coming up.
			wait = min(wait, acquireRetry)
		}
		// Wake when the window closes (its sessions sleep or close then: a
		// heartbeat interval can be longer than the rest of the window, or
		// than the gap after it) and when the next one opens.
		until := func(at time.Time) { wait = min(wait, max(at.Sub(now), time.Millisecond)) }
		if end, ok := c.ClosesAt(now); ok {
			until(end)
		} else if !open && c.Plan != nil {
			if w, ok := c.Plan.NextStart(now); ok {
				until(w.Start.Add(-c.Profile.Guard))
			}
		}
		for _, pp := range n.peerPlans() { // a station leaving or coming into view
			if w, ok := pp.Current(now, c.Profile.Guard); ok && c.Profile.WindowsOnly {
				until(w.End.Add(c.Profile.Guard))
			}
			if w, ok := pp.NextStart(now); ok {
				until(w.Start.Add(-c.Profile.Guard))
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// callees are the peers a nano dials in its windows: its master, unless a
// plan of its own says it is never in reach (a master that is not a
// station), and the ground stations.
func (n *Node) callees() []peer.ID {
	var ps []peer.ID
	if pp, ok := n.peerPlans()[n.o.Master.ID]; !ok || pp.Len() > 0 {
		ps = append(ps, n.o.Master.ID)
	}
	for _, ai := range n.o.Stations {
		ps = append(ps, ai.ID)
	}
	return ps
}

// timerC is t's channel; nil (never ready) for no timer.
func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

// beatCanWait reports whether hb, due now, may stay unsent: it says
// nothing but "alive", it is not the last call's, and the indexer's acks
// of this node's deliveries say it for it (ackTimes).
func (n *Node) beatCanWait(indexer peer.ID, hb *Heartbeat, lastBeat, now time.Time) bool {
	return hb.livenessOnly() && !n.contact().LastCall(now) && n.acks.proveAlive(indexer, lastBeat, n.HeartbeatInterval(), now)
}

// livenessOnly reports whether hb says nothing but "alive": no record, no
// gossip, no request, no claim.
func (hb *Heartbeat) livenessOnly() bool {
	return len(hb.Record) == 0 && hb.Need == 0 && len(hb.Indexers) == 0 && len(hb.Challenges) == 0 &&
		len(hb.ChallengeKey) == 0 && !hb.Referent && hb.SuspectedIncarnation == 0 && len(hb.Events) == 0 &&
		len(hb.PendingContact) == 0
}

// ackTimes is when each destination last acknowledged a delivery.
//
// A heartbeat that says nothing but "alive" waits while the indexer it
// goes to acknowledges this node's deliveries: the acks prove the same
// both ways. On the flight bench (64 kbit/s, 2 s heartbeats) the beats
// and the acks of their answers were 0.5-0.7 % of what the board sent in
// a pass. The wait is bounded (ackTimes.proveAlive), so the indexer's
// session never idles out.
type ackTimes struct {
	mu sync.Mutex
	at map[peer.ID]time.Time
}

// heard records an acknowledgement from p at now.
func (a *ackTimes) heard(p peer.ID, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.at == nil {
		a.at = map[peer.ID]time.Time{}
	}
	if now.After(a.at[p]) {
		a.at[p] = now
	}
}

// proveAlive reports whether p's acknowledgements stand in for a heartbeat
// due now: one came within the last interval, and a heartbeat went on the
// stream (lastBeat; zero on a stream not yet answered) less than the
// slowest profile's interval ago, a third of how long an indexer keeps a
// quiet session (indexer.serveHeartbeat).
func (a *ackTimes) proveAlive(p peer.ID, lastBeat time.Time, interval time.Duration, now time.Time) bool {
	a.mu.Lock()
	at, ok := a.at[p]
	a.mu.Unlock()
	if !ok || now.Sub(at) > interval || now.Before(at) {
		return false
	}
	return !lastBeat.IsZero() && now.Sub(lastBeat) < max(slowestHeartbeat(), interval) && !now.Before(lastBeat)
}

// heartbeatSchedule decides when to heartbeat: every interval while in
// contact, plus once in the last call before loss of signal so the record
// that covers the gap is fresh.
type heartbeatSchedule struct {
	lastSent time.Time
	renewed  bool // the last call of the current window has been used
}

func (h *heartbeatSchedule) due(c Contact, interval time.Duration, now time.Time) bool {
	if !c.Open(now) {
		h.renewed = false
		return false
	}
	due := now.Sub(h.lastSent) >= interval
	if c.LastCall(now) {
		if !h.renewed {
			due, h.renewed = true, true
		}
	} else {
		h.renewed = false
	}
	if due {
		h.lastSent = now
	}
	return due
}

// observeEvents takes the events a heartbeat or its response carried,
// counting news and malformed ones. A peer's hop budget is capped at what
// any honest sender can give (swim.MaxHops): a larger one would make the
// event travel further than gossip allows.
func (n *Node) observeEvents(evs []swim.Event, now time.Time) {
	for _, ev := range evs {
		if _, err := swim.Check(ev); err != nil {
			n.Metrics.Inc("member_events_malformed")
			continue
		}
		ev.HopsLeft = min(ev.HopsLeft, swim.MaxHops)
		if n.members.Observe(ev, now) {
			n.Metrics.Inc("member_events_news")
		}
	}
}
