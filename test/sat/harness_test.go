package sat

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gardend/host"
	"gardend/node"
	"gardend/plan"
	"gardend/test/sat/linkemu"
)

// The radio link of the design point: 64 kbit/s, 300 ms one way, 1 % loss.
var radio = linkemu.Shape{RateBps: 64000, Delay: 300 * time.Millisecond, Loss: 0.01, QueueBytes: 32 << 10}

// qemuFor maps a nano's GOARCH to its emulator ("" for native).
var qemuFor = map[string]string{"amd64": "", "arm64": "qemu-aarch64-static", "riscv64": "qemu-riscv64-static", "arm": "qemu-arm-static"}

// binaries are built once per test run.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func buildBinaries(t testing.TB) string {
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "gardend-sat-bin-")
		if buildErr != nil {
			return
		}
		for _, arch := range []string{runtime.GOARCH, "arm64", "riscv64"} {
			cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(binDir, "gardend-"+arch), "gardend/cmd/gardend")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %v\n%s", arch, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// boardSysctlFile is the board's sysctl.d file, which a nano's image
// installs (systemd/60-gardend-radio.conf).
const boardSysctlFile = "../../systemd/60-gardend-radio.conf"

// boardSysctl applies the board's sysctl.d file in ns, the nano's network
// namespace, as the board's image does at boot; GARDEND_SAT_BOARD_SYSCTL=0
// leaves the system's settings (to compare).
func boardSysctl(t testing.TB, ns *linkemu.Netns) {
	if os.Getenv("GARDEND_SAT_BOARD_SYSCTL") == "0" {
		t.Log("the nano keeps the system's sysctl settings (GARDEND_SAT_BOARD_SYSCTL=0)")
		return
	}
	// Each key must be the namespace's own (net.ipv4.tcp_timestamps is on
	// the kernels at hand): on a kernel where one is not, this would set
	// the whole machine's. So the machine's values are read before and
	// after.
	want := boardSysctlValues(t)
	hostValues := map[string]string{}
	for key := range want {
		path := sysctlPath(key)
		v, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s names %s: %v", boardSysctlFile, key, err)
		}
		hostValues[path] = string(v)
	}
	if out, err := ns.Command("sysctl", "-q", "-p", boardSysctlFile).CombinedOutput(); err != nil {
		t.Fatalf("sysctl -p %s in %s: %v\n%s", boardSysctlFile, ns.Name, err, out)
	}
	for path, was := range hostValues {
		if now, err := os.ReadFile(path); err != nil || string(now) != was {
			os.WriteFile(path, []byte(was), 0o644)
			t.Fatalf("%s is not per network namespace on this kernel: setting it for the nano changed the machine's (%q → %q; put back)", path, strings.TrimSpace(was), strings.TrimSpace(string(now)))
		}
	}
	for key, v := range want {
		if got, err := ns.Command("cat", sysctlPath(key)).Output(); err != nil || strings.TrimSpace(string(got)) != v {
			t.Fatalf("%s = %q in %s after sysctl -p, want %s (%v)", key, strings.TrimSpace(string(got)), ns.Name, v, err)
		}
	}
}

// boardSysctlValues are the settings of the board's sysctl.d file, by key.
func boardSysctlValues(t testing.TB) map[string]string {
	conf, err := os.ReadFile(boardSysctlFile)
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{}
	for _, line := range strings.Split(string(conf), "\n") {
		key, value, ok := strings.Cut(line, "=")
		if key = strings.TrimSpace(key); ok && !strings.HasPrefix(key, "#") {
			values[key] = strings.TrimSpace(value)
		}
	}
	if len(values) == 0 {
		t.Fatalf("%s sets nothing", boardSysctlFile)
	}
	return values
}

// sysctlPath is where /proc/sys shows a sysctl key.
func sysctlPath(key string) string { return "/proc/sys/" + strings.ReplaceAll(key, ".", "/") }

// checkBoardTCP fails unless the nano's TCP connections (in ns) carry no
// timestamps, as the board's sysctl file says, and logs the first one's
// options; with GARDEND_SAT_BOARD_SYSCTL=0 it only logs them.
func checkBoardTCP(t testing.TB, ns *linkemu.Netns) {
	out, err := ns.Command("ss", "-tinH", "state", "established").CombinedOutput()
	if err != nil {
		t.Fatalf("ss in %s: %v\n%s", ns.Name, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 {
		t.Fatalf("no established TCP connection in %s:\n%s", ns.Name, out)
	}
	t.Logf("nano's TCP: %s", strings.TrimSpace(lines[1]))
	if os.Getenv("GARDEND_SAT_BOARD_SYSCTL") == "0" {
		return
	}
	for _, l := range lines {
		if slices.Contains(strings.Fields(l), "ts") {
			t.Fatalf("a nano connection has TCP timestamps despite %s:\n%s", boardSysctlFile, out)
		}
	}
}

// requirements skips the test, saying what is missing, when the bench
// cannot run here.
func requirements(t testing.TB, arch string) {
	if os.Getenv("GARDEND_SAT") == "" {
		t.Skip("flight bench scenarios take minutes: run them with make sat-test (GARDEND_SAT=1)")
	}
	if os.Geteuid() != 0 {
		t.Skip("the flight bench needs root (network namespaces, TUN devices); CI runs as root")
	}
	for _, tool := range []string{"ip", "ss", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the flight bench needs %s (iproute2, procps)", tool)
		}
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("the flight bench runs on the amd64 ground; it is not itself cross-tested")
	}
	if q := qemuFor[arch]; q != "" {
		if _, err := exec.LookPath(q); err != nil {
			t.Skipf("the %s nano needs %s (apt-get install qemu-user-static)", arch, q)
		}
	}
}

// daemon is one gardend process in a namespace.
type daemon struct {
	name    string
	ns      *linkemu.Netns
	argv    []string
	dataDir string
	cmd     *exec.Cmd
	log     *os.File
	id      string
}

func (d *daemon) socket() string { return filepath.Join(d.dataDir, "control.sock") }

func (d *daemon) start(t testing.TB) {
	t.Helper()
	cmd := d.ns.Command(d.argv[0], d.argv[1:]...)
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", d.name, err)
	}
	d.cmd = cmd
	waitFor(t, d.name+" control socket", 30*time.Second, func() bool {
		_, err := node.QueryControl(d.socket())
		return err == nil
	})
}

// kill sends SIGKILL (a crash) and reaps the process.
func (d *daemon) kill() {
	if d.cmd != nil && d.cmd.Process != nil {
		d.cmd.Process.Signal(syscall.SIGKILL)
		d.cmd.Wait()
		d.cmd = nil
	}
}

// stop sends SIGTERM and waits.
func (d *daemon) stop(t testing.TB) {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s exited: %v", d.name, err)
		}
	case <-time.After(30 * time.Second):
		d.kill()
		t.Errorf("%s did not stop on SIGTERM", d.name)
	}
	d.cmd = nil
}

func (d *daemon) status(t testing.TB) node.Status {
	t.Helper()
	st, err := node.QueryControl(d.socket())
	if err != nil {
		t.Fatalf("%s status: %v", d.name, err)
	}
	return st
}

func (d *daemon) put(t testing.TB, id, owner, body string) {
	t.Helper()
	if _, err := node.AskControl(d.socket(), node.ControlRequest{Op: "put", Kind: "create", ID: id, Owner: owner, Body: body}); err != nil {
		t.Fatalf("%s put %s: %v", d.name, id, err)
	}
}

func (d *daemon) catalogue(t testing.TB) map[string]string {
	t.Helper()
	resp, err := node.AskControl(d.socket(), node.ControlRequest{Op: "catalogue"})
	if err != nil {
		t.Fatalf("%s catalogue: %v", d.name, err)
	}
	out := map[string]string{}
	for _, r := range resp.Catalogue {
		out[r.ID] = string(r.Body)
	}
	return out
}

// bench is one ground station and one satellite joined by the emulated
// radio link, following a compressed contact plan.
type bench struct {
	t        testing.TB
	dir      string
	ground   *daemon
	nano     *daemon
	rogue    *daemon
	link     *linkemu.Link
	plan     *plan.Plan
	linkUps  chan time.Time
	cancel   context.CancelFunc
	gns, sns *linkemu.Netns
}

type benchOpts struct {
	arch     string        // the nano's GOARCH
	pass     time.Duration // window length
	gap      time.Duration // time between windows
	passes   int
	lead     time.Duration // before the first window
	rogue    bool          // also start a rogue master with the PSK in the ground namespace
	noLinkUp bool
	lossless bool          // no random loss (a test loses chosen packets: Link.SetLose)
	interval time.Duration // heartbeat_interval on both sides; 0: GARDEND_SAT_HEARTBEAT, else 2 s
}

var benchSeq struct {
	sync.Mutex
	n int
}

// linkSeed is the seed of bench n's loss generator: n, so that a run is
// reproducible, plus GARDEND_SAT_SEED if set. A fixed seed loses the same
// packets by their order in each direction every run, and a pass carries
// about as many packets every run: with seed 1 the 54th packet from the
// ground is lost, in the first round trip of the flight bench's second
// pass. Other seeds show what the same 1 % loss costs elsewhere.
func linkSeed(t testing.TB, n int) uint64 {
	seed := uint64(n)
	if v := os.Getenv("GARDEND_SAT_SEED"); v != "" {
		extra, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("GARDEND_SAT_SEED=%q: %v", v, err)
		}
		seed += extra
		t.Logf("radio loss seed %d (GARDEND_SAT_SEED=%d)", seed, extra)
	}
	return seed
}

func newBench(t testing.TB, o benchOpts) *bench {
	requirements(t, o.arch)
	bins := buildBinaries(t)
	benchSeq.Lock()
	benchSeq.n++
	n := benchSeq.n
	benchSeq.Unlock()
	b := &bench{t: t, dir: benchDir(t), linkUps: make(chan time.Time, 64)}
	tag := fmt.Sprintf("%d-%d", os.Getpid()%100000, n)
	var err error
	if b.gns, err = linkemu.NewNetns("gsat-g-" + tag); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.gns.Delete() })
	if b.sns, err = linkemu.NewNetns("gsat-s-" + tag); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.sns.Delete() })
	boardSysctl(t, b.sns)
	subnet := 100 + n%100
	gaddr, saddr := fmt.Sprintf("10.77.%d.1", subnet), fmt.Sprintf("10.77.%d.2", subnet)
	gt, err := b.gns.OpenTUN("radio0", gaddr+"/24")
	if err != nil {
		t.Fatal(err)
	}
	st, err := b.sns.OpenTUN("radio0", saddr+"/24")
	if err != nil {
		gt.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	t.Cleanup(func() { cancel(); gt.Close(); st.Close() })
	if os.Getenv("GARDEND_SAT_KEEP") != "" {
		if _, err := exec.LookPath("tcpdump"); err == nil {
			// A capture at the nano's radio, kept with the logs.
			cap := b.sns.Command("tcpdump", "-i", "radio0", "-s", "128", "-w", filepath.Join(b.dir, "nano.pcap"))
			if cap.Start() == nil {
				t.Cleanup(func() { cap.Process.Signal(syscall.SIGINT); cap.Wait() })
			}
		}
	}
	seed := linkSeed(t, n)
	shape := radio
	if o.lossless || os.Getenv("GARDEND_SAT_LOSSLESS") != "" {
		shape.Loss = 0 // the framing's ceiling: what the link gives without loss
		if !o.lossless {
			t.Log("radio without random loss (GARDEND_SAT_LOSSLESS)")
		}
	}
	b.link = linkemu.NewLink(gt, st, shape, shape, seed)
	b.link.OnChange = func(up bool, at time.Time) {
		if up {
			select {
			case b.linkUps <- at:
			default:
			}
		}
	}
	go b.link.Run(ctx)

	// The contact plan, shared by the link, the nano and the master.
	if o.lead == 0 {
		o.lead = 10 * time.Second
	}
	start := time.Now().Add(o.lead).Truncate(time.Second)
	var ws []plan.Window
	csv := "start,end,rate\n"
	for i := range o.passes {
		w := plan.Window{Start: start.Add(time.Duration(i) * (o.pass + o.gap)), RateBps: 64000}
		w.End = w.Start.Add(o.pass)
		ws = append(ws, w)
		csv += w.Start.UTC().Format(time.RFC3339) + "," + w.End.UTC().Format(time.RFC3339) + ",64000\n"
	}
	b.plan, _ = plan.New(ws)
	planFile := filepath.Join(b.dir, "plan.csv")
	os.WriteFile(planFile, []byte(csv), 0o644)

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
	// Benchmarks only: a value left in the environment must not change the
	// timing of the scenarios CI runs.
	_, isBench := t.(*testing.B)
	if v := os.Getenv("GARDEND_SAT_HEARTBEAT"); isBench && v != "" && o.interval == 0 {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("GARDEND_SAT_HEARTBEAT=%q: want a duration such as 30s", v)
		}
		o.interval = d
		t.Logf("heartbeats every %s (GARDEND_SAT_HEARTBEAT)", d)
	}
	if o.interval == 0 {
		o.interval = 2 * time.Second
	}
	timing := fmt.Sprintf("heartbeat_interval = %q\n", o.interval.String()) + "guard = \"1s\"\ngrace = \"5s\"\nretry_base = \"1s\"\nretry_ceiling = \"4s\"\n"
	gdir, gkey, gid := keygen("ground")
	sdir, skey, sid := keygen("nano")
	gcfg := filepath.Join(gdir, "gardend.toml")
	os.WriteFile(gcfg, []byte(fmt.Sprintf(`name = "ground"
roles = ["master", "indexer"]
data_dir = %q
listen = ["/ip4/%s/tcp/4001"]
psk_file = %q
key = %q
log_level = "debug"
[[nanos]]
peer_id = %q
addrs = ["/ip4/%s/tcp/4001"]
profile = "orbital"
plan_file = %q
[indexer]
dht = false
[profile]
kind = "continuous"
%s`, gdir, gaddr, pskFile, gkey, sid, saddr, planFile, timing)), 0o600)
	scfg := filepath.Join(sdir, "gardend.toml")
	os.WriteFile(scfg, []byte(fmt.Sprintf(`name = "nano"
roles = ["nano"]
data_dir = %q
listen = ["/ip4/%s/tcp/4001"]
psk_file = %q
key = %q
log_level = "debug"
[master]
peer_id = %q
addrs = ["/ip4/%s/tcp/4001"]
[indexers]
seeds = ["/ip4/%s/tcp/4001/p2p/%s"]
[profile]
kind = "orbital"
plan_file = %q
%s`, sdir, saddr, pskFile, skey, gid, gaddr, gaddr, gid, planFile, timing)), 0o600)

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
	b.ground = &daemon{name: "ground", ns: b.gns, argv: []string{native, "run", "--config", gcfg}, dataDir: gdir, log: logFile("ground"), id: gid}
	nanoBin := filepath.Join(bins, "gardend-"+o.arch)
	argv := []string{nanoBin, "run", "--config", scfg}
	if q := qemuFor[o.arch]; q != "" {
		argv = append([]string{q}, argv...)
	}
	b.nano = &daemon{name: "nano-" + o.arch, ns: b.sns, argv: argv, dataDir: sdir, log: logFile("nano"), id: sid}
	t.Cleanup(func() {
		b.nano.kill()
		b.ground.kill()
		if b.rogue != nil {
			b.rogue.kill()
		}
	})
	b.ground.start(t)
	b.nano.start(t)
	if o.rogue {
		rdir, rkey, rid := keygen("rogue")
		rcfg := filepath.Join(rdir, "gardend.toml")
		os.WriteFile(rcfg, []byte(fmt.Sprintf(`name = "rogue"
roles = ["master"]
data_dir = %q
listen = []
psk_file = %q
key = %q
log_level = "debug"
[[nanos]]
peer_id = %q
addrs = ["/ip4/%s/tcp/4001"]
[profile]
kind = "continuous"
retry_base = "1s"
retry_ceiling = "2s"
`, rdir, pskFile, rkey, sid, saddr)), 0o600)
		b.rogue = &daemon{name: "rogue", ns: b.gns, argv: []string{native, "run", "--config", rcfg}, dataDir: rdir, log: logFile("rogue"), id: rid}
		b.rogue.start(t)
	}
	if !o.noLinkUp {
		go b.link.FollowPlan(ctx, b.plan)
	}
	return b
}

// window returns the i-th window of the plan.
func (b *bench) window(i int) plan.Window { return b.plan.Windows()[i] }

func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

func waitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
	}
}

func metric(st node.Status, name string) uint64 { return st.Metrics[name] }

func itoa(i int) string { return strconv.Itoa(i) }

// expectNothingOwed fails unless a nano owes nothing critical after a
// pass. One moderate entry may stay: the health report made in the
// window's last call, which is latest-wins and waits for the next pass
// when LOS comes first (a guest's clock, read from a 1 s RTC under TCG,
// makes that likelier).
func expectNothingOwed(t testing.TB, ns node.Status) {
	t.Helper()
	if len(ns.PendingCritical) != 0 || ns.DTNEntries > 1 {
		t.Errorf("the nano still owes: %d entries, critical for %v", ns.DTNEntries, ns.PendingCritical)
	} else if ns.DTNEntries == 1 {
		t.Logf("the nano holds one moderate entry: the last call's health report, for the next pass")
	}
}

// benchDir is the bench's working directory; GARDEND_SAT_KEEP=1 keeps it
// (daemon logs included) for a post-mortem.
func benchDir(t testing.TB) string {
	if os.Getenv("GARDEND_SAT_KEEP") == "" {
		return t.TempDir()
	}
	d, err := os.MkdirTemp("", "gardend-sat-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bench directory kept: %s", d)
	return d
}
