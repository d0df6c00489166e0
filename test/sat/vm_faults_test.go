package sat

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"gardend/test/sat/linkemu"
)

// Faults only a real boot shows: power cut, full disk, bad configuration,
// each with gardend started by systemd in the amd64 guest.

// TestVMPowerCutMidDrainAmd64: the guest is powered off hard (qemu quits
// from its monitor: no shutdown, no sync) while a backlog drains both ways,
// then booted again from the same disk. The store opens, nothing owed is
// lost, nothing is applied twice.
func TestVMPowerCutMidDrainAmd64(t *testing.T) {
	const n, size = 40, 1000
	b := newVMBench(t, "amd64")
	v := b.vm
	v.boot(vmTap)
	v.waitConsole("gardend-vm-report:", vmBootLimit)
	v.connectAgent()
	checkServiceUp(t, v)
	// The first window leaves time for the gap work (agent commands are
	// slow under TCG); the second, long one for a boot and the rest.
	pl := b.setPlan(60*time.Second, 60*time.Second, 20*time.Second, 2)
	body := func(id string, c byte) string { return id + ":" + strings.Repeat(string(c), size-len(id)-1) }
	toNano, toGround := map[string]string{}, map[string]string{}
	for i := range n {
		g, s := fmt.Sprintf("pc-ground-%d", i), fmt.Sprintf("pc-board-%d", i)
		b.ground.put(t, g, v.img.peerID, body(g, 'g'))
		toNano[g], toGround[s] = body(g, 'g'), body(s, 's')
	}
	// One agent command makes the whole board backlog.
	v.run(fmt.Sprintf(`for i in $(seq 0 %d); do id=pc-board-$i; gardend resource put --id $id --body "$id:$(printf '%%*s' $((%d - ${#id} - 1)) '' | tr ' ' s)" || exit 1; done`, n-1, size))
	if b.link.Up() || time.Now().After(pl.Windows()[0].Start) {
		t.Fatal("the gap work was not done in the gap: the pass had begun")
	}
	boardAtGround := func() int {
		c := 0
		for id := range b.ground.catalogue(t) {
			if _, ok := toGround[id]; ok {
				c++
			}
		}
		return c
	}
	sleepUntil(pl.Windows()[0].Start)
	waitFor(t, "part of the backlog at the ground", 50*time.Second, func() bool { return boardAtGround() >= 5 })
	got := boardAtGround()
	if got == n {
		t.Fatal("the whole backlog drained before the power cut: the test proves nothing")
	}
	t.Logf("qmp quit: %s", v.qmp("quit"))
	<-v.exited
	v.cmd = nil
	t.Logf("power cut with %d of %d board resources at the ground", got, n)
	v.boot(vmTap)
	v.waitConsole("gardend-vm-report:", vmBootLimit)
	t.Logf("booted again %.1f s after the power cut", time.Since(v.started).Seconds())
	v.connectAgent()
	p := checkServiceUp(t, v)
	if p["NRestarts"] != "0" {
		t.Fatalf("gardend needed %s restarts after the power cut", p["NRestarts"])
	}
	sleepUntil(pl.Windows()[1].End.Add(2 * time.Second))
	expectAll(t, b.ground, toGround)
	cat := v.nanoCatalogue()
	for id, body := range toNano {
		if cat[id] != len(body) {
			t.Errorf("the guest nano has %s with %d bytes, want %d", id, cat[id], len(body))
		}
	}
	if a := metric(b.ground.status(t), "deliveries_applied"); a != n {
		t.Errorf("ground applied %d deliveries for %d resources: something was applied twice", a, n)
	}
	expectNothingOwed(t, v.nanoStatus())
}

// TestVMFullDiskAmd64: the guest's root disk fills; gardend's health check
// fails, it stops petting the watchdog, systemd kills and restarts it; when
// space returns it stays up.
func TestVMFullDiskAmd64(t *testing.T) {
	b := newVMBench(t, "amd64")
	v := b.vm
	v.boot(vmTap)
	v.waitConsole("gardend-vm-report:", vmBootLimit)
	v.connectAgent()
	p := checkServiceUp(t, v)
	pid := p["MainPID"]
	// Fill what an unprivileged user may write (root keeps ext4's reserve)
	// down to 8 MiB, under the store's 16 MiB floor.
	v.run(`avail=$(df --output=avail -B1 /var/lib/gardend | tail -1); fallocate -l $((avail - 8388608)) /var/fill`)
	t.Logf("root disk full: %s", v.run("df -h / | tail -1"))
	// WatchdogSec=30s, RestartSec=5s: a restart within a few minutes even
	// under TCG.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st := v.unitProps("gardend", "NRestarts", "MainPID")
		if st["NRestarts"] != "0" && st["MainPID"] != pid {
			t.Logf("systemd restarted gardend: %v", st)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gardend not restarted 5 minutes after the disk filled: %v\n%s", st, v.run("journalctl -b -u gardend.service -o cat --no-pager | tail -30"))
		}
		time.Sleep(5 * time.Second)
	}
	j := v.run("journalctl -b -u gardend.service -o cat --no-pager")
	if !strings.Contains(j, "Watchdog timeout") {
		t.Fatalf("the restart was not systemd's watchdog:\n%s", lastLines(j, 40))
	}
	if !strings.Contains(j, "not petting the watchdog") {
		t.Fatalf("gardend did not say why it stopped petting:\n%s", lastLines(j, 40))
	}
	v.run("rm -f /var/fill")
	t.Log("space returned")
	// Healthy again: active, and one process keeps petting past two
	// watchdog periods.
	var since string
	deadline = time.Now().Add(5 * time.Minute)
	for {
		st := v.unitProps("gardend", "ActiveState", "MainPID", "StatusText")
		if st["ActiveState"] == "active" && !strings.HasPrefix(st["StatusText"], "UNHEALTHY") {
			if st["MainPID"] == since {
				break
			}
			since = st["MainPID"]
			// Two periods with the same PID.
			time.Sleep(65 * time.Second)
			continue
		}
		since = ""
		if time.Now().After(deadline) {
			t.Fatalf("gardend did not recover after space returned: %v", st)
		}
		time.Sleep(5 * time.Second)
	}
	p = checkServiceUp(t, v)
	last, active := usec(t, p, "WatchdogTimestampMonotonic"), usec(t, p, "ActiveEnterTimestampMonotonic")
	if now := guestUptimeUsec(t, v); now-last > 30e6 {
		t.Fatalf("no watchdog ping for %.0f s after recovery", float64(now-last)/1e6)
	}
	t.Logf("recovered: PID %s up %.0f s since its READY, NRestarts=%s", p["MainPID"], float64(guestUptimeUsec(t, v)-active)/1e6, p["NRestarts"])
}

// TestVMBadConfigAmd64: a configuration with an error. gardend exits 78
// (EX_CONFIG) and systemd does not restart it in a loop.
func TestVMBadConfigAmd64(t *testing.T) {
	vmRequirements(t, "amd64")
	img := buildVMImage(t, "amd64")
	benchSeq.Lock()
	benchSeq.n++
	tag := fmt.Sprintf("%d-%d", os.Getpid()%100000, benchSeq.n)
	benchSeq.Unlock()
	ns, err := linkemu.NewNetns("gvm-s-" + tag)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Delete() })
	if err := ns.IP("tuntap", "add", "dev", vmTap, "mode", "tap"); err != nil {
		t.Fatal(err)
	}
	bad := `name = "vm-nano"
roles = ["nano", "astronaut"]
data_dir = "/var/lib/gardend"
psk_file = "/etc/gardend/psk.key"
key = "/var/lib/gardend/identity.key"
[profile]
kind = "continuous"
`
	v := newVM(t, "amd64", img, ns, map[string]string{
		"etc/gardend/gardend.toml": bad,
		"net.env":                  "ADDR=10.78.0.2/24\nGATEWAY=10.78.0.1\n",
	})
	v.boot(vmTap)
	v.waitConsole("gardend-vm-report:", vmBootLimit)
	v.connectAgent()
	// RestartSec=5s: give a loop time to show (several restart periods).
	time.Sleep(40 * time.Second)
	p := v.unitProps("gardend", "ActiveState", "Result", "NRestarts", "ExecMainStatus", "ExecMainCode")
	j := v.run("journalctl -b -u gardend.service -o cat --no-pager")
	t.Logf("gardend.service: %v\n%s", p, lastLines(j, 20))
	if p["ActiveState"] != "failed" {
		t.Fatalf("ActiveState=%s, want failed", p["ActiveState"])
	}
	if p["NRestarts"] != "0" {
		t.Fatalf("systemd restarted gardend %s times on a bad configuration", p["NRestarts"])
	}
	if !strings.Contains(j, "status=78/CONFIG") {
		t.Fatalf("no exit 78 in the journal:\n%s", lastLines(j, 30))
	}
	if !strings.Contains(j, "astronaut") {
		t.Fatalf("the journal does not say what is wrong:\n%s", lastLines(j, 30))
	}
	if n := strings.Count(j, "Starting gardend"); n != 1 {
		t.Fatalf("gardend was started %d times", n)
	}
}
