package sat

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestVMNanoUnderSystemdAmd64 boots the amd64 guest: gardend started by
// systemd from the repository's unit, then one pass through the radio link.
func TestVMNanoUnderSystemdAmd64(t *testing.T) { scenarioVM(t, "amd64") }

// TestVMNanoUnderSystemdArm64 is the same with the aarch64 guest (make
// vm-test-arm64: its image takes ~10 minutes to build the first time).
func TestVMNanoUnderSystemdArm64(t *testing.T) { scenarioVM(t, "arm64") }

// usec parses a systemd microsecond property.
func usec(t testing.TB, props map[string]string, name string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(props[name], 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, props[name], err)
	}
	return n
}

// guestUptimeUsec is the guest's CLOCK_MONOTONIC-ish uptime, in µs, the
// clock systemd's *TimestampMonotonic properties use.
func guestUptimeUsec(t testing.TB, v *vm) int64 {
	t.Helper()
	f := strings.Fields(v.run("cat /proc/uptime"))
	s, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return int64(s * 1e6)
}

// checkServiceUp asserts, through systemd in the guest, that gardend is the
// active main process of a Type=notify unit (so READY=1 came from it), that
// STATUS= is set, and returns its properties.
func checkServiceUp(t testing.TB, v *vm) map[string]string {
	t.Helper()
	p := v.unitProps("gardend", "Type", "NotifyAccess", "ActiveState", "SubState", "MainPID", "StatusText",
		"WatchdogUSec", "NRestarts", "ActiveEnterTimestampMonotonic", "ExecMainStartTimestampMonotonic", "WatchdogTimestampMonotonic")
	t.Logf("systemctl show gardend: %v", p)
	want := map[string]string{"Type": "notify", "NotifyAccess": "main", "ActiveState": "active", "SubState": "running", "WatchdogUSec": "30s"}
	for k, w := range want {
		if p[k] != w {
			t.Fatalf("gardend.service %s=%q, want %q", k, p[k], w)
		}
	}
	// Type=notify with NotifyAccess=main: systemd made the unit active only
	// on a READY=1 from the main PID. That PID must be gardend itself.
	if comm := v.run("cat /proc/" + p["MainPID"] + "/comm"); comm != "gardend" {
		t.Fatalf("the unit's main process is %q, not gardend", comm)
	}
	if !strings.Contains(p["StatusText"], "vm-nano") || !strings.Contains(p["StatusText"], "queued") {
		t.Fatalf("STATUS= not set by gardend: StatusText=%q", p["StatusText"])
	}
	return p
}

func scenarioVM(t *testing.T, arch string) {
	b := newVMBench(t, arch)
	v := b.vm
	v.boot(vmTap)
	line := v.waitConsole("gardend-vm-report:", vmBootLimit)
	t.Logf("%s guest, %.1f s after qemu start: %s", arch, time.Since(v.started).Seconds(), line)
	v.connectAgent()
	p := checkServiceUp(t, v)
	pid := p["MainPID"]
	active := usec(t, p, "ActiveEnterTimestampMonotonic")
	t.Logf("gardend exec → READY: %.2f s", float64(active-usec(t, p, "ExecMainStartTimestampMonotonic"))/1e6)
	// systemd-sysctl applied the board's radio file at boot.
	for key, want := range boardSysctlValues(t) {
		if got := strings.TrimSpace(v.run("cat " + sysctlPath(key))); got != want {
			t.Fatalf("%s = %s in the guest, want %s from /usr/lib/sysctl.d/60-gardend-radio.conf", key, got, want)
		}
	}

	// SIGHUP through systemd (ExecReload) with the passes in a new plan:
	// systemd's debug log shows RELOADING=1, then READY=1, from gardend.
	v.run("systemd-analyze log-level debug")
	pl := b.setPlan(50*time.Second, 45*time.Second, 20*time.Second, 1)
	time.Sleep(3 * time.Second)
	v.run("systemd-analyze log-level info")
	checkReloaded(t, v, pid)

	// Gap work on both sides, then the pass.
	toNano, toGround := map[string]string{}, map[string]string{}
	for i := range 5 {
		g, s := fmt.Sprintf("vm-ground-%d", i), fmt.Sprintf("vm-board-%d", i)
		gb, sb := g+":"+strings.Repeat("g", 200), s+":"+strings.Repeat("s", 200)
		b.ground.put(t, g, v.img.peerID, gb)
		v.run(fmt.Sprintf("gardend resource put --id %s --body %s", s, sb))
		toNano[g], toGround[s] = gb, sb
	}
	if b.link.Up() || time.Now().After(pl.Windows()[0].Start) {
		t.Fatal("the gap work was not done in the gap: the pass had begun")
	}
	w := pl.Windows()[0]
	sleepUntil(w.End.Add(2 * time.Second))
	expectAll(t, b.ground, toGround)
	cat := v.nanoCatalogue()
	for id, body := range toNano {
		if cat[id] != len(body) {
			t.Errorf("the guest nano has %s with %d bytes, want %d", id, cat[id], len(body))
		}
	}
	gs, ns := b.ground.status(t), v.nanoStatus()
	if a := metric(gs, "deliveries_applied"); a != uint64(len(toGround)) {
		t.Errorf("ground applied %d deliveries for %d resources", a, len(toGround))
	}
	if a := metric(ns, "deliveries_applied"); a != uint64(len(toNano)) {
		t.Errorf("guest nano applied %d deliveries for %d resources", a, len(toNano))
	}
	if gs.DTNEntries != 0 {
		t.Errorf("entries left at the ground: %d", gs.DTNEntries)
	}
	expectNothingOwed(t, ns)
	t.Logf("link a→b %d bytes, b→a %d bytes", b.link.AtoB.Bytes.Load(), b.link.BtoA.Bytes.Load())

	// The watchdog: still the same process, never restarted, more than two
	// WatchdogSec periods after READY, and pinging since.
	if wait := active + 65e6 - guestUptimeUsec(t, v); wait > 0 {
		time.Sleep(time.Duration(wait) * time.Microsecond)
	}
	p2 := checkServiceUp(t, v)
	if p2["MainPID"] != pid || p2["NRestarts"] != "0" {
		t.Fatalf("gardend restarted: MainPID %s → %s, NRestarts=%s", pid, p2["MainPID"], p2["NRestarts"])
	}
	if last := usec(t, p2, "WatchdogTimestampMonotonic"); last < active+30e6 {
		t.Fatalf("last watchdog ping at %d µs, READY at %d µs: no ping after the first period", last, active)
	}
	t.Logf("up %.0f s after READY, last watchdog ping %.0f s after READY", float64(guestUptimeUsec(t, v)-active)/1e6,
		float64(usec(t, p2, "WatchdogTimestampMonotonic")-active)/1e6)
	v.run("systemctl stop gardend")
	if st := v.unitProps("gardend", "ActiveState", "Result"); st["Result"] != "success" {
		t.Fatalf("gardend did not stop cleanly: %v", st)
	}
}

// checkReloaded reads systemd's debug journal for the unit: a RELOADING=1
// from gardend's PID, the unit going to reload, then READY=1 bringing it
// back to running, the process unchanged.
func checkReloaded(t testing.TB, v *vm, pid string) {
	t.Helper()
	j := v.run("journalctl -b -u gardend.service -o cat --no-pager")
	from := "Got notification message from PID " + pid
	rel := strings.Index(j, from+" (RELOADING=1")
	toReload := strings.Index(j, "Changed running -> reload")
	if rel < 0 || toReload < 0 {
		t.Fatalf("no RELOADING=1 from gardend (PID %s) in systemd's journal:\n%s", pid, lastLines(j, 40))
	}
	ready := strings.Index(j[rel:], from+" (READY=1")
	back := strings.Index(j[toReload:], "Changed reload -> running")
	if ready < 0 || back < 0 {
		t.Fatalf("no READY=1 ending the reload in systemd's journal:\n%s", lastLines(j, 40))
	}
	if !strings.Contains(j, "reloaded: log level and contact plans") {
		t.Fatalf("gardend did not log its reload:\n%s", lastLines(j, 40))
	}
}
