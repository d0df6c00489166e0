package sat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"gardend/test/sat/linkemu"
)

// BenchmarkFlightBench drains a backlog over the emulated radio link
// (64 kbit/s, 300 ms one way, 1 % loss) with a native amd64 nano, and
// reports: drain_goodput_ratio (resource bytes delivered per second while
// draining ÷ link rate), aos_to_first_delivery_rtt (link up → first
// delivery applied at the ground, in 600 ms round trips) for the first
// contact ever (connection set up from nothing) and for the next pass,
// bytes_per_pass (both directions, IP level, the draining pass) and
// nano_rss_mib. Run with -benchtime 1x.
func BenchmarkFlightBench(b *testing.B) {
	const n, size = 60, 2000
	for b.Loop() {
		bn := newBench(b, benchOpts{arch: "amd64", pass: 30 * time.Second, gap: 10 * time.Second, passes: 2, lead: 12 * time.Second})
		bn.nano.put(b, "first-contact", "", "hello")
		firstUp := waitLinkUp(b, bn)
		var firstContact time.Time
		for time.Now().Before(bn.window(0).End) && firstContact.IsZero() {
			if metric(bn.ground.status(b), "deliveries_applied") > 0 {
				firstContact = time.Now()
			}
			time.Sleep(50 * time.Millisecond)
		}
		if firstContact.IsZero() {
			b.Fatal("nothing delivered in the first pass")
		}
		sleepUntil(bn.window(0).End.Add(time.Second))
		_, toGround := makeGapWork(b, bn, "bench", n, size)
		base := metric(bn.ground.status(b), "deliveries_applied")
		up := waitLinkUp(b, bn)
		startBytes := bn.link.AtoB.Bytes.Load() + bn.link.BtoA.Bytes.Load()
		var first, last time.Time
		var trace []string
		var lastApplied uint64
		for deadline := bn.window(1).End; time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			applied := metric(bn.ground.status(b), "deliveries_applied") - base
			if applied != lastApplied {
				trace = append(trace, fmt.Sprintf("%.1f:%d(%d/%d)", time.Since(up).Seconds(), applied, bn.link.AtoB.Bytes.Load()/1000, bn.link.BtoA.Bytes.Load()/1000))
				lastApplied = applied
			}
			if applied > 0 && first.IsZero() {
				first = time.Now()
			}
			if applied >= uint64(len(toGround)) {
				last = time.Now()
				break
			}
		}
		if last.IsZero() {
			b.Fatalf("backlog not drained within the pass")
		}
		b.Log("drain:", strings.Join(trace, " "))
		for _, d := range []*linkemu.Stats{&bn.link.AtoB, &bn.link.BtoA} {
			b.Logf("dir: pkts=%d bytes=%d lost=%d qdrops=%d downdrops=%d", d.Packets.Load(), d.Bytes.Load(), d.Lost.Load(), d.QueueDrops.Load(), d.DownDrops.Load())
		}
		sleepUntil(bn.window(1).End.Add(time.Second))
		passBytes := bn.link.AtoB.Bytes.Load() + bn.link.BtoA.Bytes.Load() - startBytes
		// The first delivery carries one resource; the drain rate is measured
		// over the remaining n-1.
		goodput := float64((n-1)*size) / last.Sub(first).Seconds() / (64000 / 8)
		rtt := 2 * radio.Delay
		rss := rssMiB(bn.nano)
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(goodput, "drain_goodput_ratio")
		b.ReportMetric(first.Sub(up).Seconds()/rtt.Seconds(), "aos_to_first_delivery_rtt")
		b.ReportMetric(firstContact.Sub(firstUp).Seconds()/rtt.Seconds(), "aos_to_first_delivery_rtt_first_contact")
		b.ReportMetric(float64(passBytes), "bytes_per_pass")
		b.ReportMetric(rss, "nano_rss_mib")
		bn.nano.stop(b)
		bn.ground.stop(b)
	}
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
