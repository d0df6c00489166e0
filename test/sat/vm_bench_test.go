package sat

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkVMAmd64 and BenchmarkVMArm64 measure the full-system guests:
//   - vm_image_build_s_ARCH: seconds the image took to build from nothing
//     (Debian base and gardend layer, when each was built, from the cache's
//     record); vm_image_layer_build_s_ARCH: the gardend layer alone, what a
//     source change costs;
//   - vm_boot_to_ready_s_ARCH: qemu start → gardend's READY (systemd's
//     ActiveEnterTimestampMonotonic, placed on the host's clock through the
//     agent);
//   - aos_to_first_delivery_rtt_vm_ARCH: link up → the first delivery's ack
//     back on board, for a 2 KB resource made on board in the gap, in 600 ms
//     round trips; the guest polls `gardend status` in a loop, whose period
//     (reported as vm_ack_poll_ms_ARCH) bounds the error;
//   - aos_to_first_apply_rtt_vm_ARCH: link up → that delivery applied at the
//     ground (host clock, 50 ms polling).
//
// BenchmarkQemuUserNanoFirstDelivery runs the same pass with the arm64 nano
// under qemu-user (the flight bench's nano) for comparison.
func BenchmarkVMAmd64(b *testing.B) { benchVM(b, "amd64") }
func BenchmarkVMArm64(b *testing.B) { benchVM(b, "arm64") }

func benchVM(b *testing.B, arch string) {
	for b.Loop() {
		vb := newVMBench(b, arch)
		v := vb.vm
		v.boot(vmTap)
		v.waitConsole("gardend-vm-report:", vmBootLimit)
		v.connectAgent()
		p := checkServiceUp(b, v)
		// Host seconds since qemu start, minus the guest's seconds since
		// READY, both read now.
		t0 := time.Now()
		up := guestUptimeUsec(b, v)
		t1 := time.Now()
		hostNow := t0.Add(t1.Sub(t0) / 2).Sub(v.started).Seconds()
		ready := hostNow - float64(up-usec(b, p, "ActiveEnterTimestampMonotonic"))/1e6

		pl := vb.setPlan(40*time.Second, 30*time.Second, 10*time.Second, 1)
		const size = 2000
		id := "first-board"
		v.run(fmt.Sprintf(`gardend resource put --id %s --body "%s:$(printf '%%*s' %d '' | tr ' ' s)"`, id, id, size-len(id)-1))
		ackedBefore := v.nanoStatus().Metrics["delivery_acked"]
		offset := guestClockOffset(b, v)
		// The guest watches for the ack on its own, writing the time it saw
		// it and how many polls it made.
		v.run(fmt.Sprintf(`setsid bash -c 'n=0; s=$(date +%%s.%%N); while :; do n=$((n+1)); a=$(gardend status --json | grep -o "\"delivery_acked\": *[0-9]*" | tr -dc 0-9); if [ "${a:-0}" -gt %d ]; then echo "$(date +%%s.%%N) $n $s"; break; fi; done' >/run/ack.txt 2>&1 </dev/null &`, ackedBefore))
		up0 := waitVMLinkUp(b, vb)
		var applied time.Time
		for deadline := pl.Windows()[0].End; time.Now().Before(deadline) && applied.IsZero(); time.Sleep(50 * time.Millisecond) {
			if metric(vb.ground.status(b), "deliveries_applied") > 0 {
				applied = time.Now()
			}
		}
		if applied.IsZero() {
			b.Fatal("nothing applied at the ground in the pass")
		}
		var ackAt time.Time
		var polls, pollStart float64
		waitFor(b, "the guest's ack record", 60*time.Second, func() bool {
			f := strings.Fields(v.run("cat /run/ack.txt"))
			if len(f) != 3 {
				return false
			}
			g, _ := strconv.ParseFloat(f[0], 64)
			polls, _ = strconv.ParseFloat(f[1], 64)
			pollStart, _ = strconv.ParseFloat(f[2], 64)
			ackAt = time.Unix(0, int64((g-offset)*1e9))
			return true
		})
		pollMs := (float64(ackAt.UnixNano())/1e9 + offset - pollStart) / polls * 1000
		rtt := (2 * radio.Delay).Seconds()
		b.ReportMetric(0, "ns/op")
		base, layer := imageBuildSeconds(b, vb.img)
		b.ReportMetric(base+layer, "vm_image_build_s_"+arch)
		b.ReportMetric(layer, "vm_image_layer_build_s_"+arch)
		b.ReportMetric(ready, "vm_boot_to_ready_s_"+arch)
		b.ReportMetric(ackAt.Sub(up0).Seconds()/rtt, "aos_to_first_delivery_rtt_vm_"+arch)
		b.ReportMetric(applied.Sub(up0).Seconds()/rtt, "aos_to_first_apply_rtt_vm_"+arch)
		b.ReportMetric(pollMs, "vm_ack_poll_ms_"+arch)
		b.Logf("%s guest: READY %.1f s after qemu start; link up → ack on board %.2f s (poll period %.0f ms), → applied at ground %.2f s; guest clock offset %.3f s",
			arch, ready, ackAt.Sub(up0).Seconds(), pollMs, applied.Sub(up0).Seconds(), offset)
	}
}

// BenchmarkQemuUserNanoFirstDelivery is benchVM's pass with the arm64 nano
// under qemu-user in its namespace (the flight bench's nano).
func BenchmarkQemuUserNanoFirstDelivery(b *testing.B) {
	for b.Loop() {
		bn := newBench(b, benchOpts{arch: "arm64", pass: 30 * time.Second, gap: 10 * time.Second, passes: 1, lead: 15 * time.Second})
		const size = 2000
		id := "first-board"
		bn.nano.put(b, id, "", id+":"+strings.Repeat("s", size-len(id)-1))
		up := waitLinkUp(b, bn)
		var acked, applied time.Time
		for deadline := bn.window(0).End; time.Now().Before(deadline) && acked.IsZero(); time.Sleep(50 * time.Millisecond) {
			if applied.IsZero() && metric(bn.ground.status(b), "deliveries_applied") > 0 {
				applied = time.Now()
			}
			if metric(bn.nano.status(b), "delivery_acked") > 0 {
				acked = time.Now()
			}
		}
		if acked.IsZero() || applied.IsZero() {
			b.Fatal("the first delivery was not acknowledged in the pass")
		}
		rtt := (2 * radio.Delay).Seconds()
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(acked.Sub(up).Seconds()/rtt, "aos_to_first_delivery_rtt_qemu_user_arm64")
		b.ReportMetric(applied.Sub(up).Seconds()/rtt, "aos_to_first_apply_rtt_qemu_user_arm64")
		bn.nano.stop(b)
		bn.ground.stop(b)
	}
}

// guestClockOffset is the guest's wall clock minus the host's, in seconds,
// from one agent round trip (error at most half of it).
func guestClockOffset(t testing.TB, v *vm) float64 {
	t0 := time.Now()
	out := v.run("date +%s.%N")
	t1 := time.Now()
	g, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
	if err != nil {
		t.Fatal(err)
	}
	mid := float64(t0.Add(t1.Sub(t0)/2).UnixNano()) / 1e9
	return g - mid
}

// imageBuildSeconds reads the image's build record: the seconds its
// Debian base took when it was built and those of the gardend layer.
func imageBuildSeconds(t testing.TB, img vmImage) (base, layer float64) {
	data, err := os.ReadFile(filepath.Join(img.dir, "build-seconds"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		t.Fatalf("build-seconds: %q", data)
	}
	base, _ = strconv.ParseFloat(f[0], 64)
	layer, _ = strconv.ParseFloat(f[1], 64)
	return base, layer
}

func waitVMLinkUp(t testing.TB, vb *vmBench) time.Time {
	select {
	case at := <-vb.linkUps:
		return at
	case <-time.After(3 * time.Minute):
		t.Fatal("the link never came up")
	}
	return time.Time{}
}
