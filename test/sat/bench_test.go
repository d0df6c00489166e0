package sat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gardend/test/sat/linkemu"
)

// BenchmarkFlightBench drains backlogs over the emulated radio link
// (64 kbit/s, 300 ms one way, 1 % loss) with a native amd64 nano. Pass 1 is
// the first contact ever (one small resource, connection set up from
// nothing); during each later gap a backlog of 60 × 2 KB resources is made,
// on board only before pass 2 (the downlink drain the goals are about), on
// both sides before pass 3 (both drain at once and share the link), on
// board only before passes 4 (after a ground restart), 5 and 6. It
// reports:
//   - drain_goodput_ratio: resource bytes applied at the ground per second
//     while draining (first to last delivery) ÷ link rate, pass 2;
//   - drain_goodput_ratio_both_ways: the same for the board backlog in pass 3;
//   - drain_goodput_ratio_on_air (…_both_ways): the backlog's bytes over the
//     link time from the drain's first full segment to its last delivery
//     (onAir below), pass 2 (pass 3); …_3_passes: over the link time of
//     pass 2 and passes 5 and 6, which drain such a backlog too. The ratio
//     above starts at the first delivery applied, which a loss in the
//     drain's first round trip delays, and then gives more than the link
//     carried (0.96 was seen); this one starts when the drain's data does,
//     and one drain's figure still moves by 2-4 % with where the seeded
//     loss falls, hence the three;
//   - aos_to_first_delivery_rtt: link up → first delivery acknowledged
//     (the ack back on board), in 600 ms round trips, pass 2 (a 2 KB
//     resource, whose own serialisation is 0.43 RTT); …_first_contact for
//     pass 1; …_both_ways for pass 3, where the ack shares the link with
//     the ground's own drain; aos_to_first_apply_rtt: link up → that
//     delivery applied at the ground, pass 2;
//   - drain_done_s_after_aos(_both_ways): link up → the backlog's last
//     delivery applied at the ground, pass 2 (pass 3);
//   - bytes_per_pass: IP bytes both directions in pass 2; nano_rss_mib;
//   - aos_to_first_delivery_rtt_session_lost: as aos_to_first_delivery_rtt,
//     pass 4, after a gap in which the ground was killed and restarted (the
//     session kept across the gap is dead; a fresh connection must take
//     over); sessions_resumed and sessions_lost: the nano's count of kept
//     sessions that carried a pass and of those found dead at AOS;
//     sessions_dropped_unacked: of those closed at LOS instead of kept,
//     because bytes were unacknowledged or a stream open (a pass 4 that
//     loses none then had no kept session to lose).
//
// Each drained pass logs its timeline (seconds after link up: deliveries
// applied, kB carried ground→board/board→ground). Run with -benchtime 1x.
func BenchmarkFlightBench(b *testing.B) {
	const n, size = 60, 2000
	for b.Loop() {
		bn := newBench(b, benchOpts{arch: "amd64", pass: 30 * time.Second, gap: 10 * time.Second, passes: 6, lead: 12 * time.Second})
		firstUp, firstAcked := firstContact(b, bn)

		boardBacklog(b, bn, "down-board", n, size)
		oneWay := drainPass(b, bn, 1, n)
		makeGapWork(b, bn, "both", n, size)
		bothWays := drainPass(b, bn, 2, n)

		// The ground crashes and restarts in the gap: the nano's kept
		// session is dead, and the end of it never reached the nano (the
		// link was down).
		bn.ground.kill()
		boardBacklog(b, bn, "lost-board", n, size)
		bn.ground.start(b)
		lost := drainPass(b, bn, 3, n)
		// Two more passes like pass 2, so that one way is also measured
		// over three drains: one drain's figure moves by 2-4 % with where
		// the seeded loss falls (a loss in its last round trip costs that
		// round trip), more than the changes it is used to judge.
		pooled := []drained{oneWay}
		for w := 4; w < 6; w++ {
			boardBacklog(b, bn, fmt.Sprintf("more-board-%d", w), n, size)
			pooled = append(pooled, drainPass(b, bn, w, n))
		}
		st := bn.nano.status(b)

		rate := 64000.0 / 8
		rtt := 2 * radio.Delay
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64((n-1)*size)/oneWay.last.Sub(oneWay.first).Seconds()/rate, "drain_goodput_ratio")
		b.ReportMetric(float64((n-1)*size)/bothWays.last.Sub(bothWays.first).Seconds()/rate, "drain_goodput_ratio_both_ways")
		var pooledTime time.Duration
		for _, d := range pooled {
			pooledTime += d.last.Sub(d.onAir)
		}
		b.ReportMetric(float64(n*size)/oneWay.last.Sub(oneWay.onAir).Seconds()/rate, "drain_goodput_ratio_on_air")
		b.ReportMetric(float64(len(pooled)*n*size)/pooledTime.Seconds()/rate, "drain_goodput_ratio_on_air_3_passes")
		b.ReportMetric(float64(n*size)/bothWays.last.Sub(bothWays.onAir).Seconds()/rate, "drain_goodput_ratio_on_air_both_ways")
		// The ratios start at the first delivery applied, which a kept
		// session brings earlier; what a pass spends on its backlog is
		// from link up to the last one.
		b.ReportMetric(oneWay.last.Sub(oneWay.up).Seconds(), "drain_done_s_after_aos")
		b.ReportMetric(bothWays.last.Sub(bothWays.up).Seconds(), "drain_done_s_after_aos_both_ways")
		b.ReportMetric(oneWay.firstAck.Sub(oneWay.up).Seconds()/rtt.Seconds(), "aos_to_first_delivery_rtt")
		b.ReportMetric(oneWay.first.Sub(oneWay.up).Seconds()/rtt.Seconds(), "aos_to_first_apply_rtt")
		if !bothWays.firstAck.IsZero() {
			b.ReportMetric(bothWays.firstAck.Sub(bothWays.up).Seconds()/rtt.Seconds(), "aos_to_first_delivery_rtt_both_ways")
		}
		b.ReportMetric(firstAcked.Sub(firstUp).Seconds()/rtt.Seconds(), "aos_to_first_delivery_rtt_first_contact")
		b.ReportMetric(lost.firstAck.Sub(lost.up).Seconds()/rtt.Seconds(), "aos_to_first_delivery_rtt_session_lost")
		b.ReportMetric(float64(metric(st, "sessions_resumed")), "sessions_resumed")
		b.ReportMetric(float64(metric(st, "sessions_lost")), "sessions_lost")
		b.ReportMetric(float64(metric(st, "sessions_dropped_unacked")), "sessions_dropped_unacked")
		b.ReportMetric(float64(oneWay.bytes), "bytes_per_pass")
		b.ReportMetric(rssMiB(bn.nano), "nano_rss_mib")
		bn.nano.stop(b)
		bn.ground.stop(b)
	}
}

// firstContact delivers one resource in the first window and returns when
// the link came up and when its ack was back on board, at the window's end.
func firstContact(b *testing.B, bn *bench) (up, acked time.Time) {
	bn.nano.put(b, "first-contact", "", "hello")
	up = waitLinkUp(b, bn)
	for time.Now().Before(bn.window(0).End) && acked.IsZero() {
		if metric(bn.nano.status(b), "delivery_acked") > 0 {
			acked = time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	if acked.IsZero() {
		b.Fatal("nothing delivered in the first pass")
	}
	checkBoardTCP(b, bn.sns)
	sleepUntil(bn.window(0).End.Add(time.Second))
	return up, acked
}

// BenchmarkFlightBenchTailLoss: a link that loses nothing but one packet,
// the last data segment of the nano's drain in the second pass (one with no
// other behind it on the air, once ten full ones have crossed).
// Nothing follows that segment but what the drain sends to probe its
// tail; without that, TCP repairs it from its tail loss probe (two
// smoothed round trips after the last ack). tail_loss_repair_s: from the
// segment's loss to the last delivery applied at the ground.
func BenchmarkFlightBenchTailLoss(b *testing.B) {
	const n, size = 30, 2000
	for b.Loop() {
		// Heartbeats every 30 s, not the benches' 2 s: one crossing just
		// after the drain's end would repair the loss as a probe does.
		bn := newBench(b, benchOpts{arch: "amd64", pass: 30 * time.Second, gap: 10 * time.Second, passes: 2, lead: 12 * time.Second,
			lossless: true, interval: 30 * time.Second})
		firstContact(b, bn)
		var lostAt atomic.Int64
		crossed := 0 // full segments; SetLose's calls are one goroutine's
		bn.link.SetLose(func(pkt []byte, behind [][]byte) bool {
			// The drain's data: more than headers (52 bytes), a yamux
			// frame alone (a ping, a window update: 82) or a heartbeat
			// (about 140).
			const data = 400
			if len(pkt) < data || lostAt.Load() != 0 {
				return false
			}
			if len(pkt) >= fullSegment {
				crossed++
			}
			if crossed <= 10 {
				return false
			}
			for _, p := range behind {
				if len(p) >= data {
					return false
				}
			}
			lostAt.Store(time.Now().UnixNano())
			return true
		})
		boardBacklog(b, bn, "tail-board", n, size)
		d := drainPass(b, bn, 1, n)
		if lostAt.Load() == 0 {
			b.Fatal("no segment lost: the drain's data never paused after ten full segments")
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(d.last.Sub(time.Unix(0, lostAt.Load())).Seconds(), "tail_loss_repair_s")
		b.ReportMetric(d.last.Sub(d.up).Seconds(), "tail_loss_drain_done_s_after_aos")
		b.ReportMetric(float64(metric(bn.nano.status(b), "delivery_tail_probes")), "tail_probes")
		bn.nano.stop(b)
		bn.ground.stop(b)
	}
}

// BenchmarkFlightBenchNearTailLoss: a link that loses nothing but one
// packet, the full data segment before the last of the nano's drain in
// the third pass. The last one still crosses, so the ground's SACK of it
// comes back and TCP repairs the hole from that (RACK), not from a probe:
// what it waits before it resends is the board's reordering allowance.
// The second pass drains a backlog of the same size without loss, to count
// the drain's full segments. near_tail_loss_repair_s: from the segment's
// loss to the last delivery applied at the ground.
func BenchmarkFlightBenchNearTailLoss(b *testing.B) {
	const n, size = 30, 2000
	for b.Loop() {
		bn := newBench(b, benchOpts{arch: "amd64", pass: 30 * time.Second, gap: 10 * time.Second, passes: 3, lead: 12 * time.Second,
			lossless: true, interval: 30 * time.Second})
		firstContact(b, bn)
		full := 0 // SetLose's calls are one goroutine's
		bn.link.SetLose(func(pkt []byte, _ [][]byte) bool {
			if len(pkt) >= fullSegment {
				full++
			}
			return false
		})
		// The same names' lengths in both passes: the same bytes to send.
		boardBacklog(b, bn, "pass2", n, size)
		lossless := drainPass(b, bn, 1, n)
		bn.link.SetLose(nil) // after drainPass: the window has ended
		if full < 10 {
			b.Fatalf("the lossless drain sent %d full segments: too few to lose the one before the last", full)
		}
		var lostAt atomic.Int64
		crossed := 0
		bn.link.SetLose(func(pkt []byte, _ [][]byte) bool {
			if len(pkt) < fullSegment || lostAt.Load() != 0 {
				return false
			}
			if crossed++; crossed < full-1 {
				return false
			}
			lostAt.Store(time.Now().UnixNano())
			return true
		})
		boardBacklog(b, bn, "pass3", n, size)
		d := drainPass(b, bn, 2, n)
		if lostAt.Load() == 0 {
			b.Fatalf("no segment lost: the third pass sent fewer full segments than the second's %d", full)
		}
		b.ReportMetric(0, "ns/op")
		st := bn.nano.status(b)
		b.Logf("nano after pass 3: sessions_resumed=%d sessions_lost=%d sessions_slept=%d sessions_dropped_unacked=%d wakes_sent=%d",
			metric(st, "sessions_resumed"), metric(st, "sessions_lost"), metric(st, "sessions_slept"), metric(st, "sessions_dropped_unacked"), metric(st, "wakes_sent"))
		b.ReportMetric(float64(full), "near_tail_full_segments")
		b.ReportMetric(d.last.Sub(time.Unix(0, lostAt.Load())).Seconds(), "near_tail_loss_repair_s")
		b.ReportMetric(d.last.Sub(d.up).Seconds(), "near_tail_loss_drain_done_s_after_aos")
		b.ReportMetric(lossless.last.Sub(lossless.up).Seconds(), "near_tail_lossless_drain_done_s_after_aos")
		bn.nano.stop(b)
		bn.ground.stop(b)
	}
}

// boardBacklog puts n resources of size bytes on the nano, named
// prefix-0 … prefix-(n-1): a backlog it owes the ground.
func boardBacklog(b *testing.B, bn *bench, prefix string, n, size int) {
	for i := range n {
		s := fmt.Sprintf("%s-%d", prefix, i)
		bn.nano.put(b, s, "", s+":"+strings.Repeat("s", max(0, size-len(s)-1)))
	}
}

// drained is what one pass's drain measured.
type drained struct {
	up, first, last time.Time // link up, first and last delivery applied at the ground
	firstAck        time.Time // first acknowledgement back on board
	bytes           uint64    // IP bytes over the pass, both directions
	// onAir is when the drain's first full segment board→ground began to
	// cross the link, taken at the ground's end as the last delivery is
	// (its arrival less its own time on the air), so that last - onAir is
	// the link time the drain took, the link's delay left out.
	onAir time.Time
}

// fullSegment is the least size of a packet taken for a drain's data: more
// than headers (40-52 bytes), a yamux frame alone (a ping, a window
// update: 82) or a heartbeat (about 140), and a record-carrying one (~450).
const fullSegment = 1000

// airTime is how long size bytes take to cross the radio link.
func airTime(size int) time.Duration {
	return time.Duration(float64(size*8) / float64(radio.RateBps) * float64(time.Second))
}

// drainPass waits for window w, follows the ground's applied deliveries
// until n more have arrived, logs the timeline and the link counters, and
// returns at the window's end. The first delivery carries one resource;
// goodput is measured over the remaining n-1.
func drainPass(b *testing.B, bn *bench, w, n int) drained {
	base := metric(bn.ground.status(b), "deliveries_applied")
	ackBase := metric(bn.nano.status(b), "delivery_acked")
	type arrival struct {
		size int
		at   time.Time
	}
	var firstFull atomic.Pointer[arrival]
	bn.link.SetWatch(func(size int, at time.Time) {
		if size >= fullSegment && firstFull.Load() == nil {
			firstFull.Store(&arrival{size, at})
		}
	})
	defer bn.link.SetWatch(nil)
	d := drained{up: waitLinkUp(b, bn)}
	startBytes := bn.link.AtoB.Bytes.Load() + bn.link.BtoA.Bytes.Load()
	var trace []string
	var seen uint64
	for deadline := bn.window(w).End; time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		applied := metric(bn.ground.status(b), "deliveries_applied") - base
		if applied != seen {
			trace = append(trace, fmt.Sprintf("%.1f:%d(%d/%d)", time.Since(d.up).Seconds(), applied, bn.link.AtoB.Bytes.Load()/1000, bn.link.BtoA.Bytes.Load()/1000))
			seen = applied
		}
		if applied > 0 && d.first.IsZero() {
			d.first = time.Now()
		}
		if d.firstAck.IsZero() && metric(bn.nano.status(b), "delivery_acked") > ackBase {
			d.firstAck = time.Now()
		}
		if applied >= uint64(n) {
			d.last = time.Now()
			break
		}
	}
	if d.last.IsZero() {
		b.Fatalf("pass %d: backlog not drained within the pass", w+1)
	}
	a := firstFull.Load()
	if a == nil {
		b.Fatalf("pass %d: the backlog was drained, but no full segment crossed board→ground", w+1)
	}
	d.onAir = a.at.Add(-airTime(a.size))
	// When both sides drain, the board's first ack may come after the
	// last delivery applied at the ground (it waited behind the ground's
	// bulk): follow it to the window's end.
	for deadline := bn.window(w).End; d.firstAck.IsZero() && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if metric(bn.nano.status(b), "delivery_acked") > ackBase {
			d.firstAck = time.Now()
		}
	}
	b.Logf("pass %d drain: %s", w+1, strings.Join(trace, " "))
	sleepUntil(bn.window(w).End.Add(time.Second))
	d.bytes = bn.link.AtoB.Bytes.Load() + bn.link.BtoA.Bytes.Load() - startBytes
	for name, s := range map[string]*linkemu.Stats{"ground→board": &bn.link.AtoB, "board→ground": &bn.link.BtoA} {
		b.Logf("pass %d %s (cumulative): packets=%d bytes=%d lost=%d queue_drops=%d down_drops=%d", w+1, name,
			s.Packets.Load(), s.Bytes.Load(), s.Lost.Load(), s.QueueDrops.Load(), s.DownDrops.Load())
	}
	return d
}

// rssMiB reads a daemon's resident set from /proc.
func rssMiB(d *daemon) float64 {
	if d.cmd == nil {
		return 0
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(d.cmd.Process.Pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func waitLinkUp(b testing.TB, bn *bench) time.Time {
	select {
	case at := <-bn.linkUps:
		return at
	case <-time.After(time.Minute):
		b.Fatal("the link never came up")
	}
	return time.Time{}
}
