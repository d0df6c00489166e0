package sat

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gardend/node"
	"gardend/plan"
	"gardend/test/sat/linkemu"
)

// The full-system guests: a Debian 12 image (test/sat/vm/mkimage.sh) booted
// by qemu-system under TCG, gardend started by systemd from the repository's
// unit. /dev/kvm on this kind of machine is a nested PVM device that hangs a
// stock kernel, so the accelerator is TCG, stated outright (never
// accel=kvm:tcg, whose silent fallback hides a lost KVM).

// vmArch is how one guest architecture boots.
type vmArch struct {
	qemu    string
	machine []string
	console string // the kernel's serial console device
}

var vmArches = map[string]vmArch{
	"amd64": {qemu: "qemu-system-x86_64", machine: []string{"-machine", "pc", "-cpu", "max"}, console: "ttyS0"},
	"arm64": {qemu: "qemu-system-aarch64", machine: []string{"-machine", "virt", "-cpu", "max,pauth-impdef=on"}, console: "ttyAMA0"},
}

// Timeouts sized for TCG on a busy 2-core machine: a boot takes ~30 s when
// idle; fail only when the console has been silent for vmNoProgress or the
// whole boot exceeds vmBootLimit.
const (
	vmNoProgress = 4 * time.Minute
	vmBootLimit  = 10 * time.Minute
	vmAgentLimit = 3 * time.Minute
)

// vmRequirements skips, saying what is missing, when a guest cannot run.
func vmRequirements(t testing.TB, arch string) {
	if os.Getenv("GARDEND_VM") == "" {
		t.Skip("full-system guests take minutes: run them with make vm-test (GARDEND_VM=1)")
	}
	if os.Geteuid() != 0 {
		t.Skip("the guests need root (image build, network namespaces, tap devices); CI runs as root")
	}
	for _, tool := range []string{"ip", vmArches[arch].qemu, "mmdebstrap", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the %s guest needs %s (scripts/setup.sh installs it)", arch, tool)
		}
	}
}

// vmImage is a built guest image (see mkimage.sh).
type vmImage struct {
	dir    string
	peerID string  // the nano identity gardend keygen made inside the image
	psk    string  // path of the PSK copy kept for the ground
	buildS float64 // seconds this call spent building (0 when cached)
}

func buildVMImage(t testing.TB, arch string) vmImage {
	t.Helper()
	bin := filepath.Join(buildBinaries(t), "gardend-"+arch)
	start := time.Now()
	cmd := exec.Command("bash", "vm/mkimage.sh", arch, bin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mkimage.sh %s: %v\n%s", arch, err, lastLines(stderr.String(), 40))
	}
	t.Logf("mkimage.sh %s (%.1f s):\n%s", arch, time.Since(start).Seconds(), strings.TrimSpace(stderr.String()))
	img := vmImage{dir: strings.TrimSpace(string(out))}
	id, err := os.ReadFile(filepath.Join(img.dir, "peer-id"))
	if err != nil {
		t.Fatal(err)
	}
	img.peerID = strings.TrimSpace(string(id))
	img.psk = filepath.Join(img.dir, "psk.key")
	if strings.Contains(stderr.String(), "building the gardend image") {
		img.buildS = time.Since(start).Seconds()
	}
	return img
}

// vm is one running guest: a qemu process in the satellite namespace, its
// serial console in a file, its monitor (QMP) and agent sockets.
type vm struct {
	t        testing.TB
	arch     string
	img      vmImage
	dir      string
	disk     string // this run's copy of the root disk: it survives a relaunch
	seed     string
	ns       *linkemu.Netns
	console  string
	cmd      *exec.Cmd
	exited   chan struct{} // closed once this boot's qemu has exited and been reaped
	exitErr  error         // what Wait said, once exited is closed
	started  time.Time
	agentMu  sync.Mutex
	agent    net.Conn
	agentBuf *bufio.Reader
	qmpPath  string
}

// newVM copies the image's root disk for this run and writes the seed disk
// (a tar archive the guest unpacks over /etc and /run/gardend-vm).
func newVM(t testing.TB, arch string, img vmImage, ns *linkemu.Netns, seed map[string]string) *vm {
	dir, err := os.MkdirTemp("", "gvm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	v := &vm{t: t, arch: arch, img: img, dir: dir, ns: ns, console: filepath.Join(dir, "console.log"),
		disk: filepath.Join(dir, "root.img"), seed: filepath.Join(dir, "seed.tar"), qmpPath: filepath.Join(dir, "qmp.sock")}
	if out, err := exec.Command("cp", "--sparse=always", filepath.Join(img.dir, "rootfs.img"), v.disk).CombinedOutput(); err != nil {
		t.Fatalf("copy root disk: %v: %s", err, out)
	}
	if err := writeSeed(v.seed, seed); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		v.kill()
		if t.Failed() {
			data, _ := os.ReadFile(v.console)
			t.Logf("--- last lines of the %s guest's console ---\n%s", arch, lastLines(string(data), 80))
			// qemu's own complaints (a TAP it could not open, a disk): a
			// guest that never printed a line leaves only these.
			data, _ = os.ReadFile(filepath.Join(dir, "qemu.log"))
			t.Logf("--- last lines of qemu's output (%s) ---\n%s", arch, lastLines(string(data), 40))
		}
	})
	return v
}

// writeSeed writes files (path → content) as a tar archive: files under
// etc/gardend/ belong to root:gardend with mode 0640, as the unit needs.
func writeSeed(path string, files map[string]string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for name := range files {
		for d := filepath.Dir(name); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		h := &tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, Uname: "root", Gname: "root", ModTime: time.Now()}
		if d == "etc/gardend" {
			h.Mode, h.Gname = 0o750, "gardend"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	for name, body := range files {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), Uname: "root", Gname: "root", ModTime: time.Now()}
		if strings.HasPrefix(name, "etc/gardend/") {
			h.Mode, h.Gname = 0o640, "gardend"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.WriteString(tw, body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// boot starts qemu inside the satellite namespace, its NIC on tapName.
func (v *vm) boot(tapName string) {
	t := v.t
	t.Helper()
	a := vmArches[v.arch]
	args := append([]string{a.qemu, "-accel", "tcg"}, a.machine...)
	args = append(args,
		"-smp", "2", "-m", "512", "-nodefaults", "-no-user-config", "-display", "none",
		"-kernel", filepath.Join(v.img.dir, "vmlinuz"), "-initrd", filepath.Join(v.img.dir, "initrd.img"),
		"-append", "root=/dev/vda rw console="+a.console+" net.ifnames=0 systemd.show_status=1 loglevel=4 panic=-1",
		"-drive", "file="+v.disk+",format=raw,if=none,id=root", "-device", "virtio-blk-pci,drive=root",
		"-drive", "file="+v.seed+",format=raw,if=none,id=seed,readonly=on", "-device", "virtio-blk-pci,drive=seed",
		"-netdev", "tap,id=net0,ifname="+tapName+",script=no,downscript=no", "-device", "virtio-net-pci,netdev=net0,romfile=",
		"-device", "virtio-rng-pci",
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=agent,path="+filepath.Join(v.dir, "agent.sock")+",server=on,wait=off",
		"-device", "virtserialport,chardev=agent,name=org.gardend.agent",
		"-serial", "file:"+v.console,
		"-qmp", "unix:"+v.qmpPath+",server=on,wait=off",
		// A guest reboot ends qemu: the test decides when a guest boots.
		"-no-reboot",
	)
	// A relaunch keeps the previous boot's console beside the new one.
	os.Rename(v.console, v.console+".previous")
	log, err := os.OpenFile(filepath.Join(v.dir, "qemu.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := v.ns.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	v.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", a.qemu, err)
	}
	v.cmd = cmd
	exited := make(chan struct{})
	v.exited = exited
	go func() {
		v.exitErr = cmd.Wait()
		close(exited)
	}()
	t.Logf("%s guest: qemu pid %d in namespace %s", v.arch, cmd.Process.Pid, v.ns.Name)
}

// kill stops qemu by its PID (and `ip netns exec`'s child with it: exec
// replaces it, so the PID is qemu's own) and reaps it.
func (v *vm) kill() {
	v.agentMu.Lock()
	if v.agent != nil {
		v.agent.Close()
		v.agent = nil
	}
	v.agentMu.Unlock()
	if v.cmd != nil {
		v.cmd.Process.Signal(syscall.SIGKILL)
		<-v.exited
		v.cmd = nil
	}
}

// waitConsole waits until the console shows a line containing marker and
// returns that line; it fails when the console stays silent for
// vmNoProgress, when qemu exits, or after limit.
func (v *vm) waitConsole(marker string, limit time.Duration) string {
	t := v.t
	t.Helper()
	deadline := time.Now().Add(limit)
	lastSize, lastGrowth := int64(-1), time.Now()
	for {
		data, _ := os.ReadFile(v.console)
		if i := bytes.Index(data, []byte(marker)); i >= 0 {
			line := data[i:]
			if j := bytes.IndexByte(line, '\n'); j >= 0 {
				return string(line[:j])
			}
		}
		if n := int64(len(data)); n != lastSize {
			lastSize, lastGrowth = n, time.Now()
		}
		if time.Since(lastGrowth) > vmNoProgress {
			t.Fatalf("%s guest: console silent for %s waiting for %q", v.arch, vmNoProgress, marker)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s guest: no %q on the console after %s", v.arch, marker, limit)
		}
		select {
		case <-v.exited: // nil, never ready, before the first boot
			t.Fatalf("%s guest: qemu exited (%v) waiting for %q", v.arch, v.exitErr, marker)
		default:
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// connectAgent opens the host end of the guest agent's virtio port and
// waits until the guest answers.
func (v *vm) connectAgent() {
	t := v.t
	t.Helper()
	var err error
	deadline := time.Now().Add(vmAgentLimit)
	for {
		var c net.Conn
		c, err = net.Dial("unix", filepath.Join(v.dir, "agent.sock"))
		if err == nil {
			v.agentMu.Lock()
			v.agent, v.agentBuf = c, bufio.NewReader(c)
			v.agentMu.Unlock()
			if _, _, err = v.tryRun("echo agent-ok", 30*time.Second); err == nil {
				return
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s guest: agent not answering after %s: %v", v.arch, vmAgentLimit, err)
		}
		time.Sleep(time.Second)
	}
}

const agentMarker = "@@gardend-vm-agent rc="

// tryRun runs one shell command in the guest (as root) and returns its
// output (stdout and stderr) and exit status.
func (v *vm) tryRun(command string, limit time.Duration) (string, int, error) {
	v.agentMu.Lock()
	defer v.agentMu.Unlock()
	if v.agent == nil {
		return "", -1, fmt.Errorf("no agent connection")
	}
	if strings.Contains(command, "\n") {
		return "", -1, fmt.Errorf("agent commands are one line")
	}
	v.agent.SetDeadline(time.Now().Add(limit))
	defer v.agent.SetDeadline(time.Time{})
	if _, err := io.WriteString(v.agent, command+"\n"); err != nil {
		return "", -1, err
	}
	var out strings.Builder
	for {
		line, err := v.agentBuf.ReadString('\n')
		if err != nil {
			return out.String(), -1, fmt.Errorf("agent: %w (after %q)", err, out.String())
		}
		if rest, ok := strings.CutPrefix(line, agentMarker); ok {
			rc, _ := strconv.Atoi(strings.TrimSpace(rest))
			return strings.TrimSuffix(out.String(), "\n"), rc, nil
		}
		out.WriteString(line)
	}
}

// run runs a command in the guest and fails the test unless it exits 0.
func (v *vm) run(command string) string {
	v.t.Helper()
	out, rc, err := v.tryRun(command, 2*time.Minute)
	if err != nil {
		v.t.Fatalf("%s guest: %s: %v", v.arch, command, err)
	}
	if rc != 0 {
		v.t.Fatalf("%s guest: %s: exit %d\n%s", v.arch, command, rc, out)
	}
	return out
}

// writeFile writes a file in the guest (base64 through the one-line agent).
func (v *vm) writeFile(path, content, owner, mode string) {
	v.run(fmt.Sprintf("echo %s | base64 -d > %s.new && chown %s %s.new && chmod %s %s.new && mv %s.new %s",
		base64.StdEncoding.EncodeToString([]byte(content)), path, owner, path, mode, path, path, path))
}

// unitProps reads properties of a unit through systemctl show.
func (v *vm) unitProps(unit string, props ...string) map[string]string {
	v.t.Helper()
	out := v.run("systemctl show " + unit + " -p " + strings.Join(props, " -p "))
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, val, ok := strings.Cut(l, "="); ok {
			m[k] = val
		}
	}
	return m
}

// nanoStatus is `gardend status --json` run inside the guest.
func (v *vm) nanoStatus() node.Status {
	v.t.Helper()
	var st node.Status
	out := v.run("gardend status --json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		v.t.Fatalf("%s guest: gardend status --json: %v\n%s", v.arch, err, out)
	}
	return st
}

// nanoCatalogue is `gardend resource ls` inside the guest: ID → bytes.
func (v *vm) nanoCatalogue() map[string]int {
	v.t.Helper()
	out := v.run("gardend resource ls")
	m := map[string]int{}
	for i, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if i == 0 || len(f) < 3 {
			continue
		}
		n, _ := strconv.Atoi(f[len(f)-1])
		m[f[0]] = n
	}
	return m
}

// qmp sends one command to qemu's monitor (QMP) and returns its answer.
func (v *vm) qmp(command string) string {
	v.t.Helper()
	c, err := net.DialTimeout("unix", v.qmpPath, 10*time.Second)
	if err != nil {
		v.t.Fatalf("qmp: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	r.ReadString('\n') // greeting
	fmt.Fprintf(c, `{"execute":"qmp_capabilities"}`+"\n")
	r.ReadString('\n')
	fmt.Fprintf(c, `{"execute":%q}`+"\n", command)
	line, _ := r.ReadString('\n')
	return strings.TrimSpace(line)
}

// vmBench is a ground station (native, its own namespace) and a guest nano
// whose tap device sits in the satellite namespace, routed through the
// radio-link emulator: guest → tap → routing → TUN → linkemu → TUN → ground.
type vmBench struct {
	t        testing.TB
	dir      string
	arch     string
	img      vmImage
	ground   *daemon
	vm       *vm
	link     *linkemu.Link
	linkUps  chan time.Time
	gns, sns *linkemu.Netns
	gaddr    string
	guestIP  string
	planFile string
	ctx      context.Context
	pskFile  string
}

const vmTap = "vmtap0"

// vmTiming matches the flight bench's compressed timing.
const vmTiming = "heartbeat_interval = \"2s\"\nguard = \"1s\"\ngrace = \"5s\"\nretry_base = \"1s\"\nretry_ceiling = \"4s\"\n"

func newVMBench(t testing.TB, arch string) *vmBench {
	vmRequirements(t, arch)
	img := buildVMImage(t, arch)
	benchSeq.Lock()
	benchSeq.n++
	n := benchSeq.n
	benchSeq.Unlock()
	b := &vmBench{t: t, dir: t.TempDir(), arch: arch, img: img, linkUps: make(chan time.Time, 64)}
	tag := fmt.Sprintf("%d-%d", os.Getpid()%100000, n)
	var err error
	if b.gns, err = linkemu.NewNetns("gvm-g-" + tag); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.gns.Delete() })
	if b.sns, err = linkemu.NewNetns("gvm-s-" + tag); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.sns.Delete() })
	subnet := 100 + n%100
	b.gaddr = fmt.Sprintf("10.77.%d.1", subnet)
	saddr := fmt.Sprintf("10.77.%d.2", subnet)
	b.guestIP = fmt.Sprintf("10.78.%d.2", subnet)
	gw := fmt.Sprintf("10.78.%d.1", subnet)
	gt, err := b.gns.OpenTUN("radio0", b.gaddr+"/24")
	if err != nil {
		t.Fatal(err)
	}
	st, err := b.sns.OpenTUN("radio0", saddr+"/24")
	if err != nil {
		gt.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.ctx = ctx
	t.Cleanup(func() { cancel(); gt.Close(); st.Close() })
	// The tap lives in the satellite namespace (deleted with it); the
	// satellite routes between it and the radio.
	for _, args := range [][]string{
		{"tuntap", "add", "dev", vmTap, "mode", "tap"},
		{"addr", "add", gw + "/24", "dev", vmTap},
		{"link", "set", vmTap, "up"},
	} {
		if err := b.sns.IP(args...); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := b.sns.Command("sysctl", "-qw", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
		t.Fatalf("forwarding in %s: %v: %s", b.sns.Name, err, out)
	}
	if err := b.gns.IP("route", "add", fmt.Sprintf("10.78.%d.0/24", subnet), "dev", "radio0"); err != nil {
		t.Fatal(err)
	}
	b.link = linkemu.NewLink(gt, st, radio, radio, uint64(n))
	b.link.OnChange = func(up bool, at time.Time) {
		if up {
			select {
			case b.linkUps <- at:
			default:
			}
		}
	}
	go b.link.Run(ctx)

	// The ground: native, in its namespace, with the image's PSK.
	b.pskFile = filepath.Join(b.dir, "psk.key")
	psk, err := os.ReadFile(img.psk)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(b.pskFile, psk, 0o600)
	b.planFile = filepath.Join(b.dir, "plan.csv")
	// Until the test sets the passes, one window long past: the link stays
	// down.
	past := "start,end,rate\n2001-01-01T00:00:00Z,2001-01-01T00:10:00Z,64000\n"
	os.WriteFile(b.planFile, []byte(past), 0o644)
	native := filepath.Join(buildBinaries(t), "gardend-amd64")
	gdir := filepath.Join(b.dir, "ground")
	os.MkdirAll(gdir, 0o700)
	gkey := filepath.Join(gdir, "identity.key")
	out, err := exec.Command(native, "keygen", "--key", gkey).Output()
	if err != nil {
		t.Fatalf("keygen ground: %v", err)
	}
	gid := strings.TrimSpace(string(out))
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
%s`, gdir, b.gaddr, b.pskFile, gkey, img.peerID, b.guestIP, b.planFile, vmTiming)), 0o600)
	logf, _ := os.Create(filepath.Join(b.dir, "ground.log"))
	t.Cleanup(func() {
		logf.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logf.Name())
			t.Logf("--- last lines of ground.log ---\n%s", lastLines(string(data), 60))
		}
	})
	b.ground = &daemon{name: "ground", ns: b.gns, argv: []string{native, "run", "--config", gcfg}, dataDir: gdir, log: logf, id: gid}
	t.Cleanup(func() { b.ground.kill() })
	b.ground.start(t)

	// The guest's seed: its configuration naming this ground, the same
	// long-past plan, and its address.
	ncfg := fmt.Sprintf(`name = "vm-nano"
roles = ["nano"]
data_dir = "/var/lib/gardend"
listen = ["/ip4/0.0.0.0/tcp/4001"]
psk_file = "/etc/gardend/psk.key"
key = "/var/lib/gardend/identity.key"
log_level = "debug"
[master]
peer_id = %q
addrs = ["/ip4/%s/tcp/4001"]
[indexers]
seeds = ["/ip4/%s/tcp/4001/p2p/%s"]
[profile]
kind = "orbital"
plan_file = "/etc/gardend/plan.csv"
%s`, gid, b.gaddr, b.gaddr, gid, vmTiming)
	b.vm = newVM(t, arch, img, b.sns, map[string]string{
		"etc/gardend/gardend.toml": ncfg,
		"etc/gardend/plan.csv":     past,
		"net.env":                  fmt.Sprintf("ADDR=%s/24\nGATEWAY=%s\n", b.guestIP, gw),
	})
	return b
}

// setPlan gives both sides (and the link) passes starting lead from now,
// then reloads the guest's gardend with SIGHUP through systemd and the
// ground's with SIGHUP.
func (b *vmBench) setPlan(lead, pass, gap time.Duration, passes int) *plan.Plan {
	t := b.t
	t.Helper()
	start := time.Now().Add(lead).Truncate(time.Second)
	var ws []plan.Window
	csv := "start,end,rate\n"
	for i := range passes {
		w := plan.Window{Start: start.Add(time.Duration(i) * (pass + gap)), RateBps: 64000}
		w.End = w.Start.Add(pass)
		ws = append(ws, w)
		csv += w.Start.UTC().Format(time.RFC3339) + "," + w.End.UTC().Format(time.RFC3339) + ",64000\n"
	}
	p, err := plan.New(ws)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(b.planFile, []byte(csv), 0o644)
	b.ground.cmd.Process.Signal(syscall.SIGHUP)
	b.vm.writeFile("/etc/gardend/plan.csv", csv, "root:gardend", "0640")
	if out, rc, err := b.vm.tryRun("systemctl reload gardend", 2*time.Minute); err != nil || rc != 0 {
		t.Fatalf("systemctl reload gardend: exit %d, %v: %s\n%s", rc, err, out,
			b.vm.run("systemctl status --no-pager gardend; journalctl -b -u gardend.service -o cat --no-pager | tail -30"))
	}
	go b.link.FollowPlan(b.ctx, p)
	return p
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
