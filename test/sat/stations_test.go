package sat

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"gardend/host"
	"gardend/node"
	"gardend/plan"
	"gardend/test/sat/linkemu"
)

// groundLink is the ground network between the master and a station: no
// rate limit, no delay, no loss, always up unless a test cuts it.
var groundLink = linkemu.Shape{}

// stationSite is one ground station of the two-station bench: its process,
// its radio link to the nano (following its own windows only) and its
// ground link to the master.
type stationSite struct {
	name     string // its [[stations]] name
	location string
	d        *daemon
	ns       *linkemu.Netns
	radio    *linkemu.Link // station ↔ nano, open in this station's windows
	ground   *linkemu.Link // master ↔ station, always up
	radioIP  string        // the station's end of its radio link
	groundIP string        // the station's end of its ground link
	nanoIP   string        // the nano's end of this station's radio link
	masterIP string        // the master's end of this station's ground link
}

// radioPackets is what the station's radio link has carried both ways.
func (s *stationSite) radioPackets() uint64 {
	return s.radio.AtoB.Packets.Load() + s.radio.BtoA.Packets.Load()
}

// stationsBench is a master (not itself a station) in its namespace, two
// station processes each in its own, and the nano in a fourth. The master
// reaches each station over a plain ground link and has no route to the
// nano; each station reaches the nano only over its own emulated radio
// link, which follows that station's windows of the shared plan.
type stationsBench struct {
	t        testing.TB
	dir      string
	master   *daemon
	nano     *daemon
	sites    []*stationSite
	contacts *plan.Contacts
	windows  []plan.Window // every window, by start
}

// stationPass is one window of the bench's plan: over which station, how
// long, and the gap before it.
type stationPass struct {
	station int
	gap     time.Duration // before this window (the first: after start-up)
	length  time.Duration
}

func newStationsBench(t testing.TB, arch string, passes []stationPass) *stationsBench {
	requirements(t, arch)
	bins := buildBinaries(t)
	benchSeq.Lock()
	benchSeq.n++
	n := benchSeq.n
	benchSeq.Unlock()
	b := &stationsBench{t: t, dir: t.TempDir()}
	tag := fmt.Sprintf("%d-%d", os.Getpid()%100000, n)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	netns := func(kind string) *linkemu.Netns {
		ns, err := linkemu.NewNetns("gsat-" + kind + "-" + tag)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Delete() })
		return ns
	}
	// join makes a TUN device in each namespace and the link between them.
	join := func(a, b *linkemu.Netns, ifA, ifB, addrA, addrB string, shape linkemu.Shape, seed uint64) *linkemu.Link {
		ta, err := a.OpenTUN(ifA, addrA+"/24")
		if err != nil {
			t.Fatal(err)
		}
		tb, err := b.OpenTUN(ifB, addrB+"/24")
		if err != nil {
			ta.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { ta.Close(); tb.Close() })
		l := linkemu.NewLink(ta, tb, shape, shape, seed)
		go l.Run(ctx)
		return l
	}
	mns, nns := netns("m"), netns("s")
	boardSysctl(t, nns)
	subnet := 100 + n%100
	b.sites = []*stationSite{{name: "svalbard", location: "78.23,15.39,450"}, {name: "kiruna", location: "67.86,20.96,400"}}
	for i, s := range b.sites {
		s.ns = netns(fmt.Sprintf("g%d", i))
		s.masterIP, s.groundIP = fmt.Sprintf("10.%d.%d.1", 78+i, subnet), fmt.Sprintf("10.%d.%d.2", 78+i, subnet)
		s.radioIP, s.nanoIP = fmt.Sprintf("10.%d.%d.1", 76-i, subnet), fmt.Sprintf("10.%d.%d.2", 76-i, subnet)
		s.ground = join(mns, s.ns, fmt.Sprintf("ground%d", i), "ground0", s.masterIP, s.groundIP, groundLink, uint64(10*n+i))
		s.ground.SetUp(true)
		s.radio = join(s.ns, nns, "radio0", fmt.Sprintf("radio%d", i), s.radioIP, s.nanoIP, radio, uint64(10*n+5+i))
	}

	// The plan: windows over one station or the other, never both.
	at := time.Now().Truncate(time.Second)
	csv := "start,end,station\n"
	var ws []plan.Window
	for _, p := range passes {
		at = at.Add(p.gap)
		w := plan.Window{Start: at, End: at.Add(p.length), Station: b.sites[p.station].name}
		ws = append(ws, w)
		csv += w.Start.UTC().Format(time.RFC3339) + "," + w.End.UTC().Format(time.RFC3339) + "," + w.Station + "\n"
		at = w.End
	}
	b.windows = ws
	planFile := filepath.Join(b.dir, "plan.csv")
	if err := os.WriteFile(planFile, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	if b.contacts, err = plan.ParseContacts([]byte(csv), planFile, time.Time{}, []string{b.sites[0].name, b.sites[1].name}); err != nil {
		t.Fatal(err)
	}

	pskFile := filepath.Join(b.dir, "psk.key")
	if err := host.WriteNewPSK(pskFile); err != nil {
		t.Fatal(err)
	}
	native := filepath.Join(bins, "gardend-"+runtime.GOARCH)
	keygen := func(name string) (dir, key, id string) {
		dir = filepath.Join(b.dir, name)
		os.MkdirAll(dir, 0o700)
		key = filepath.Join(dir, "identity.key")
		out, err := exec.Command(native, "keygen", "--key", key).Output()
		if err != nil {
			t.Fatalf("keygen %s: %v", name, err)
		}
		return dir, key, strings.TrimSpace(string(out))
	}
	mdir, mkey, mid := keygen("master")
	ndir, nkey, nid := keygen("nano")
	sdirs, skeys, sids := make([]string, 2), make([]string, 2), make([]string, 2)
	for i, s := range b.sites {
		sdirs[i], skeys[i], sids[i] = keygen(s.name)
	}
	// [[stations]], the same on every process: a station's addresses are
	// its ground end (for the master) and its radio end (for the nano);
	// each side reaches only the one it has a route to.
	stations := ""
	for i, s := range b.sites {
		stations += fmt.Sprintf(`
[[stations]]
name = %q
peer_id = %q
addrs = ["/ip4/%s/tcp/4001", "/ip4/%s/tcp/4001"]
location = %q
`, s.name, sids[i], s.groundIP, s.radioIP, s.location)
	}
	timing := "heartbeat_interval = \"2s\"\nguard = \"1s\"\ngrace = \"5s\"\nretry_base = \"1s\"\nretry_ceiling = \"4s\"\n"
	nanoAddrs := fmt.Sprintf(`"/ip4/%s/tcp/4001", "/ip4/%s/tcp/4001"`, b.sites[0].nanoIP, b.sites[1].nanoIP)
	write := func(dir, text string) string {
		f := filepath.Join(dir, "gardend.toml")
		if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	mcfg := write(mdir, fmt.Sprintf(`name = "mcc"
roles = ["master"]
data_dir = %q
listen = ["/ip4/%s/tcp/4001", "/ip4/%s/tcp/4001"]
psk_file = %q
key = %q
log_level = "debug"
[[nanos]]
peer_id = %q
addrs = [%s]
profile = "orbital"
plan_file = %q
[profile]
kind = "continuous"
%s%s`, mdir, b.sites[0].masterIP, b.sites[1].masterIP, pskFile, mkey, nid, nanoAddrs, planFile, timing, stations))
	ncfg := write(ndir, fmt.Sprintf(`name = "nano"
roles = ["nano"]
data_dir = %q
listen = [%s]
psk_file = %q
key = %q
log_level = "debug"
[master]
peer_id = %q
addrs = ["/ip4/%s/tcp/4001"]
[profile]
kind = "orbital"
plan_file = %q
%s%s`, ndir, nanoAddrs, pskFile, nkey, mid, b.sites[0].masterIP, planFile, timing, stations))

	logFile := func(name string) *os.File {
		f, _ := os.Create(filepath.Join(b.dir, name+".log"))
		t.Cleanup(func() {
			f.Close()
			if t.Failed() {
				data, _ := os.ReadFile(f.Name())
				lines := strings.Split(string(data), "\n")
				if len(lines) > 60 {
					lines = lines[len(lines)-60:]
				}
				t.Logf("--- last lines of %s.log ---\n%s", name, strings.Join(lines, "\n"))
			}
		})
		return f
	}
	b.master = &daemon{name: "master", ns: mns, argv: []string{native, "run", "--config", mcfg}, dataDir: mdir, log: logFile("master"), id: mid}
	for i, s := range b.sites {
		scfg := write(sdirs[i], fmt.Sprintf(`name = %q
roles = ["station"]
station = %q
data_dir = %q
listen = ["/ip4/%s/tcp/4001", "/ip4/%s/tcp/4001"]
psk_file = %q
key = %q
log_level = "debug"
[master]
peer_id = %q
addrs = ["/ip4/%s/tcp/4001"]
[[nanos]]
peer_id = %q
addrs = ["/ip4/%s/tcp/4001"]
profile = "orbital"
plan_file = %q
[profile]
kind = "continuous"
%s%s`, s.name, s.name, sdirs[i], s.groundIP, s.radioIP, pskFile, skeys[i], mid, s.masterIP, nid, s.nanoIP, planFile, timing, stations))
		s.d = &daemon{name: "station-" + s.name, ns: s.ns, argv: []string{native, "run", "--config", scfg}, dataDir: sdirs[i], log: logFile(s.name), id: sids[i]}
	}
	nanoBin := filepath.Join(bins, "gardend-"+arch)
	argv := []string{nanoBin, "run", "--config", ncfg}
	if q := qemuFor[arch]; q != "" {
		argv = append([]string{q}, argv...)
	}
	b.nano = &daemon{name: "nano-" + arch, ns: nns, argv: argv, dataDir: ndir, log: logFile("nano"), id: nid}
	t.Cleanup(func() {
		b.nano.kill()
		for _, s := range b.sites {
			s.d.kill()
		}
		b.master.kill()
	})
	// A configuration gardend refuses fails here, with its message, rather
	// than as a control socket that never comes.
	for _, d := range append([]*daemon{b.master, b.sites[0].d, b.sites[1].d}, b.nano) {
		if out, err := exec.Command(native, "check-config", d.argv[len(d.argv)-1]).CombinedOutput(); err != nil {
			t.Fatalf("%s: gardend check-config: %v\n%s", d.name, err, out)
		}
	}
	b.master.start(t)
	for _, s := range b.sites {
		s.d.start(t)
	}
	b.nano.start(t)
	if time.Now().After(ws[0].Start) {
		t.Fatalf("start-up took until %s, after the first window opened (%s): give the first pass a longer lead", time.Now().Format(time.TimeOnly), ws[0].Start.Format(time.TimeOnly))
	}
	for _, s := range b.sites {
		go s.radio.FollowPlan(ctx, b.contacts.StationPlan(s.name))
	}
	return b
}

// named replaces the peer IDs of a per-peer count by the bench's names.
func (b *stationsBench) named(byPeer map[string]int) map[string]int {
	names := map[string]string{b.master.id: "master", b.nano.id: "nano"}
	for _, s := range b.sites {
		names[s.d.id] = s.name
	}
	out := map[string]int{}
	for id, n := range byPeer {
		if name, ok := names[id]; ok {
			id = name
		}
		out[id] = n
	}
	return out
}

// expectNoRelayRefusals fails if any process of the bench refused an
// envelope: every hop here is honest.
func expectNoRelayRefusals(t testing.TB, b *stationsBench) {
	t.Helper()
	ds := []*daemon{b.master, b.nano}
	for _, s := range b.sites {
		ds = append(ds, s.d)
	}
	for _, d := range ds {
		for k, v := range d.status(t).Metrics {
			if strings.HasPrefix(k, "relay_refused") && v != 0 {
				t.Errorf("%s: %s = %d", d.name, k, v)
			}
		}
	}
}

// heldFor is what a daemon's store holds for peer id.
func heldFor(t testing.TB, d *daemon, id string) int { return d.status(t).DTNByPeer[id] }

// missing lists the ids of want that d's catalogue lacks.
func missing(t testing.TB, d *daemon, want map[string]string) []string {
	got := d.catalogue(t)
	var out []string
	for id, body := range want {
		if got[id] != body {
			out = append(out, id)
		}
	}
	return out
}

// present counts the ids of want that d's catalogue has.
func present(t testing.TB, d *daemon, want map[string]string) int {
	return len(want) - len(missing(t, d, want))
}

// makeWork creates n resources on the master (for the nano) and/or on the
// nano (for the master), bodies of size bytes.
func makeWork(t testing.TB, master, nano *daemon, tag string, nGround, nBoard, size int) (toNano, toGround map[string]string) {
	toNano, toGround = map[string]string{}, map[string]string{}
	body := func(id, fill string) string { return id + ":" + strings.Repeat(fill, max(0, size-len(id)-1)) }
	for i := range nGround {
		id := fmt.Sprintf("%s-ground-%d", tag, i)
		toNano[id] = body(id, "g")
		master.put(t, id, nano.id, toNano[id])
	}
	for i := range nBoard {
		id := fmt.Sprintf("%s-board-%d", tag, i)
		toGround[id] = body(id, "s")
		nano.put(t, id, "", toGround[id])
	}
	return toNano, toGround
}

func merge(dst, src map[string]string) {
	for k, v := range src {
		dst[k] = v
	}
}

// TestTwoStationsArm64: the arm64 nano passes over Svalbard, then over
// Kiruna, then over Svalbard again; its master is not a station and has no
// route to it. (1) Work made on board and on the ground in the gap after
// the first pass arrives through Kiruna, each entry applied once. (2) With
// Svalbard cut off from the master, the nano drains a backlog into
// Svalbard's custody and is SIGKILLed mid-drain, then restarted; once the
// ground link returns everything reaches the master, applied once.
func TestTwoStationsArm64(t *testing.T) {
	const svalbard, kiruna = 0, 1
	b := newStationsBench(t, "arm64", []stationPass{
		{station: svalbard, gap: 20 * time.Second, length: 25 * time.Second},
		{station: kiruna, gap: 15 * time.Second, length: 25 * time.Second},
		{station: svalbard, gap: 15 * time.Second, length: 50 * time.Second},
	})
	sv, ki := b.sites[svalbard], b.sites[kiruna]
	w0, w1, w2 := b.windows[0], b.windows[1], b.windows[2]
	toNano, toGround := map[string]string{}, map[string]string{}

	// Before the first pass: work both ways, which Svalbard carries.
	gn, gb := makeWork(t, b.master, b.nano, "pre", 5, 5, 200)
	merge(toNano, gn)
	merge(toGround, gb)
	waitFor(t, "the master to hand Svalbard the work for the nano", w0.Start.Sub(time.Now()), func() bool {
		return heldFor(t, sv.d, b.nano.id) == len(gn) && heldFor(t, b.master, b.nano.id) == 0
	})
	sleepUntil(w0.End.Add(time.Second))
	if m := missing(t, b.nano, gn); len(m) > 0 {
		t.Fatalf("the pass over Svalbard did not bring the nano %v", m)
	}
	if m := missing(t, b.master, gb); len(m) > 0 {
		t.Fatalf("the pass over Svalbard did not bring the master %v", m)
	}
	if ki.radioPackets() != 0 {
		t.Fatalf("Kiruna's radio carried %d packets before its first window", ki.radioPackets())
	}

	// (1) In the gap after Svalbard: work made on both sides waits for Kiruna.
	gn, gb = makeWork(t, b.master, b.nano, "gap", 5, 5, 200)
	merge(toNano, gn)
	merge(toGround, gb)
	svAfterPass := sv.radioPackets()
	waitFor(t, "the master to hand Kiruna the gap work for the nano", w1.Start.Sub(time.Now()), func() bool {
		return heldFor(t, ki.d, b.nano.id) == len(gn) && heldFor(t, b.master, b.nano.id) == 0
	})
	if n := present(t, b.master, gb); n != 0 {
		t.Fatalf("%d board resources made in the gap reached the master before any window", n)
	}
	if n := present(t, b.nano, gn); n != 0 {
		t.Fatalf("%d ground resources made in the gap reached the nano before any window", n)
	}
	if sv.d.status(t).DTNEntries != 0 {
		t.Fatalf("Svalbard holds entries after its pass: %v", sv.d.status(t).DTNByPeer)
	}
	sleepUntil(w1.End.Add(time.Second))
	if m := missing(t, b.nano, gn); len(m) > 0 {
		t.Fatalf("the pass over Kiruna did not bring the nano the gap work %v", m)
	}
	if m := missing(t, b.master, gb); len(m) > 0 {
		t.Fatalf("the pass over Kiruna did not bring the master the gap work %v", m)
	}
	if d := sv.radioPackets() - svAfterPass; d != 0 {
		t.Fatalf("Svalbard's radio carried %d packets outside its window", d)
	}
	if ki.radioPackets() == 0 {
		t.Fatal("Kiruna's radio carried nothing in its window")
	}
	// Every hop has let go of what it handed over.
	waitFor(t, "the stations and the master to hold nothing", 30*time.Second, func() bool {
		return sv.d.status(t).DTNEntries == 0 && ki.d.status(t).DTNEntries == 0 && b.master.status(t).DTNEntries == 0
	})
	ms, ns := b.master.status(t), b.nano.status(t)
	expectNothingOwed(t, ns)
	for _, c := range []struct {
		d    *daemon
		st   node.Status
		want int
	}{{b.master, ms, len(toGround)}, {b.nano, ns, len(toNano)}} {
		if a := metric(c.st, "deliveries_applied"); a != uint64(c.want) {
			t.Fatalf("%s applied %d deliveries for %d resources", c.d.name, a, c.want)
		}
		if dup := metric(c.st, "deliveries_duplicate"); dup != 0 {
			t.Fatalf("%s received %d deliveries twice", c.d.name, dup)
		}
	}
	// Kiruna took custody of the gap work, both ways; nobody refused anything.
	ks := ki.d.status(t)
	if c := metric(ks, "relay_custody_downlink"); c != uint64(len(gn)) {
		t.Fatalf("Kiruna took custody of %d entries for the nano, want the %d made in the gap", c, len(gn))
	}
	if c := metric(ks, "relay_custody_uplink"); c < uint64(len(gb)) {
		t.Fatalf("Kiruna took custody of %d entries for the master, want at least the %d made in the gap", c, len(gb))
	}
	expectNoRelayRefusals(t, b)
	t.Logf("after two passes: Svalbard's radio %d packets, Kiruna's %d; Kiruna took custody of %d entries up, %d down",
		sv.radioPackets(), ki.radioPackets(), metric(ks, "relay_custody_uplink"), metric(ks, "relay_custody_downlink"))

	// (2) In the gap before Svalbard again: work for the nano goes to
	// Svalbard, then Svalbard's ground link is cut, and a backlog is made on
	// board.
	gn, _ = makeWork(t, b.master, b.nano, "kill", 10, 0, 500)
	merge(toNano, gn)
	waitFor(t, "the master to hand Svalbard the work for the nano", w2.Start.Sub(time.Now()), func() bool {
		return heldFor(t, sv.d, b.nano.id) == len(gn) && heldFor(t, b.master, b.nano.id) == 0
	})
	sv.ground.SetUp(false)
	_, backlog := makeWork(t, b.master, b.nano, "kill", 0, 60, 1000)
	merge(toGround, backlog)
	sleepUntil(w2.Start)
	// The kill comes once Svalbard has given the nano what it held for it
	// and holds part of the backlog for the master, which cannot take it.
	waitFor(t, "the work for the nano delivered and part of the backlog in Svalbard's custody", w2.Duration()-10*time.Second, func() bool {
		return len(missing(t, b.nano, gn)) == 0 && heldFor(t, sv.d, b.master.id) >= 5
	})
	nanoApplied := metric(b.nano.status(t), "deliveries_applied")
	before := b.nano.status(t)
	if before.DTNEntries <= 1 {
		t.Fatal("the whole backlog drained before the kill: the test proves nothing")
	}
	b.nano.kill()
	atStation := heldFor(t, sv.d, b.master.id)
	t.Logf("nano killed holding %d entries (by next hop %v), Svalbard holding %d for the master", before.DTNEntries, b.named(before.DTNByPeer), atStation)
	if n := present(t, b.master, backlog); n != 0 {
		t.Fatalf("%d backlog resources reached the master through a cut ground link", n)
	}
	if nanoApplied != uint64(len(toNano)) {
		t.Fatalf("the nano applied %d deliveries before the kill for %d resources", nanoApplied, len(toNano))
	}
	b.nano.start(t)
	sleepUntil(w2.End.Add(time.Second))
	if n := present(t, b.master, backlog); n != 0 {
		t.Fatalf("%d backlog resources reached the master through a cut ground link", n)
	}
	if h := heldFor(t, sv.d, b.master.id); h < len(backlog) {
		t.Fatalf("Svalbard holds %d entries for the master after the pass, want at least the %d of the backlog", h, len(backlog))
	}
	sv.ground.SetUp(true)
	waitFor(t, "the backlog to reach the master once the ground link is back", 90*time.Second, func() bool {
		return len(missing(t, b.master, backlog)) == 0
	})
	waitFor(t, "the stations and the master to hold nothing", 60*time.Second, func() bool {
		return sv.d.status(t).DTNEntries == 0 && ki.d.status(t).DTNEntries == 0 && b.master.status(t).DTNEntries == 0
	})
	expectAll(t, b.master, toGround)
	expectAll(t, b.nano, toNano)
	ms, ns = b.master.status(t), b.nano.status(t)
	if a := metric(ms, "deliveries_applied"); a != uint64(len(toGround)) {
		t.Fatalf("the master applied %d deliveries for %d resources: something was applied twice or not at all", a, len(toGround))
	}
	// The nano's counters restarted with it: anything Svalbard brought it
	// again after the kill must have been recognised, not applied.
	if a := metric(ns, "deliveries_applied"); a != 0 {
		t.Fatalf("the restarted nano applied %d deliveries, all of which it had before the kill", a)
	}
	expectNothingOwed(t, ns)
	expectNoRelayRefusals(t, b)
	svs := sv.d.status(t)
	t.Logf("duplicates recognised: master %d; nano since restart %d; Svalbard %d envelopes handed over again (carried_duplicate), custody taken %d up, %d down",
		metric(ms, "deliveries_duplicate"), metric(ns, "deliveries_duplicate"), metric(svs, "carried_duplicate"),
		metric(svs, "relay_custody_uplink"), metric(svs, "relay_custody_downlink"))
	b.nano.stop(t)
	for _, s := range b.sites {
		s.d.stop(t)
	}
	b.master.stop(t)
}
