package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gardend/host"
)

// nanoBuild is a nano-only binary built as `make cross-nano` builds it.
type nanoBuild struct {
	arm64, native string // the binary for arm64 (run under qemu) and for this machine
}

// buildNano builds the nano binaries of the checkout at dir ("." is this one).
func buildNano(b *testing.B, dir, out string) nanoBuild {
	b.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		b.Fatal("the go tool is needed to build the nano: ", err)
	}
	build := func(arch, name string) string {
		bin := filepath.Join(out, name)
		cmd := exec.Command(goBin, "build", "-tags", "nodht", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/gardend")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("build the nano (%s, GOARCH=%s): %v\n%s", dir, arch, err, o)
		}
		return bin
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		b.Fatal(err)
	}
	return nanoBuild{arm64: build("arm64", "gardend-nano-arm64"), native: build(runtimeGOARCH(), "gardend-nano-native")}
}

func runtimeGOARCH() string {
	out, err := exec.Command("go", "env", "GOHOSTARCH").Output()
	if err != nil {
		return "amd64"
	}
	return strings.TrimSpace(string(out))
}

// buildHelloWorld builds a static Go program for arm64 that prints one
// line, with the toolchain and flags the nano is built with: qemu-user and
// Go's runtime start, nothing of gardend's.
func buildHelloWorld(b *testing.B, dir string) string {
	b.Helper()
	src := map[string]string{
		"go.mod":  "module hello\n\ngo 1.24\n",
		"main.go": "package main\n\nimport \"os\"\n\nfunc main() { os.Stdout.WriteString(\"hello\\n\") }\n",
	}
	for name, text := range src {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "hello-arm64")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64", "GOFLAGS=", "GOWORK=off")
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build the hello-world: %v\n%s", err, o)
	}
	return bin
}

// runToExit times argv from exec to its exit.
func runToExit(b *testing.B, argv ...string) time.Duration {
	b.Helper()
	start := time.Now()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		b.Fatalf("%v: %v\n%s", argv, err, out)
	}
	return time.Since(start)
}

// nanoStartFixture is what a nano needs to start: keys, a PSK and a
// configuration naming a master that is not there (a nano in a gap).
type nanoStartFixture struct {
	dir, cfg string
}

func newNanoStartFixture(b *testing.B, native string) nanoStartFixture {
	b.Helper()
	dir := b.TempDir()
	psk := filepath.Join(dir, "psk.key")
	if err := host.WriteNewPSK(psk); err != nil {
		b.Fatal(err)
	}
	keygen := func(name string) string {
		out, err := exec.Command(native, "keygen", "--key", filepath.Join(dir, name+".key")).CombinedOutput()
		if err != nil {
			b.Fatalf("keygen: %v\n%s", err, out)
		}
		return string(out)
	}
	keygen("nano")
	masterID := ""
	for _, f := range strings.Fields(keygen("master")) {
		if strings.HasPrefix(f, "12D3KooW") {
			masterID = f
		}
	}
	if masterID == "" {
		b.Fatal("keygen printed no peer ID")
	}
	// Port 1 on loopback: nothing listens, so the nano's dials to its
	// master are refused at once, as in a gap.
	cfg := filepath.Join(dir, "nano.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`name = "n1"
roles = ["nano"]
data_dir = %q
listen = ["/ip4/127.0.0.1/tcp/0"]
psk_file = %q
key = %q
log_level = "warn"
[master]
peer_id = %q
addrs = ["/ip4/127.0.0.1/tcp/1"]
`, filepath.Join(dir, "data"), psk, filepath.Join(dir, "nano.key"), masterID)), 0o600)
	return nanoStartFixture{dir: dir, cfg: cfg}
}

// startNano runs argv (a nano with the fixture's configuration) until
// it sends READY=1 on NOTIFY_SOCKET, calls idle, then stops it with
// SIGTERM. It returns the time from exec to READY=1 and what the process
// wrote to stderr.
func startNano(b *testing.B, fx nanoStartFixture, env []string, argv []string, idle func(pid int)) (time.Duration, string) {
	b.Helper()
	sock := filepath.Join(fx.dir, "notify.sock")
	os.Remove(sock)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	cmd := exec.Command(argv[0], append(argv[1:], "run", "--config", fx.cfg)...)
	cmd.Env = append(append(os.Environ(), "NOTIFY_SOCKET="+sock), env...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Process.Kill()
	// Generous: this is real I/O under emulation on a shared machine.
	conn.SetReadDeadline(start.Add(2 * time.Minute))
	buf := make([]byte, 4096)
	var ready time.Duration
	for ready == 0 {
		n, _, err := conn.ReadFromUnix(buf)
		if err != nil {
			b.Fatalf("no READY=1 from %v: %v\n%s", argv, err, stderr.String())
		}
		for _, l := range strings.Split(string(buf[:n]), "\n") {
			if l == "READY=1" {
				ready = time.Since(start)
			}
		}
	}
	if idle != nil {
		idle(cmd.Process.Pid)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			b.Fatalf("%v exited: %v\n%s", argv, err, stderr.String())
		}
	case <-time.After(time.Minute):
		b.Fatalf("%v did not stop on SIGTERM\n%s", argv, stderr.String())
	}
	return ready, stderr.String()
}

// initMillis sums the clock time of every package's initialisation in a
// GODEBUG=inittrace=1 trace ("init pkg @t ms, N ms clock, ...").
func initMillis(trace string) (float64, int) {
	var total float64
	pkgs := 0
	sc := bufio.NewScanner(strings.NewReader(trace))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 7 && f[0] == "init" && f[6] == "clock," {
			if v, err := strconv.ParseFloat(f[4], 64); err == nil {
				total += v
				pkgs++
			}
		}
	}
	return total, pkgs
}

// vmRSS reads a process's resident set in MiB.
func vmRSS(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS in /proc status")
	return 0
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkNanoStart measures a nano-only binary, built as `make
// cross-nano` builds it:
//   - nano_binary_bytes_arm64: the file's size;
//   - nano_exec_to_ready_s_arm64 (and _min_): exec → READY=1 on
//     NOTIFY_SOCKET under qemu-aarch64-static, the median (and the
//     fastest) of 11 starts on an existing store;
//   - qemu_hello_world_s_arm64: this machine's floor, exec → exit of a
//     static Go hello-world under the same qemu, run before each round of
//     starts; nano_ready_over_hello_world_s_arm64 is the median of each
//     start less the floor measured beside it. qemu-user's speed moves
//     from day to day here (its hello-world took 0.06–0.19 s on different
//     days), so a start is judged against its own run's floor;
//   - nano_init_ms_arm64: package initialisation, summed from
//     GODEBUG=inittrace=1, the median of 3 more starts (the heaviest
//     packages are logged);
//   - nano_translated_kinsn_to_ready_arm64: thousands of guest
//     instructions qemu translated from exec to READY=1, from one more
//     start (translatedToReady);
//   - nano_idle_rss_mib: resident set of the same build for this machine,
//     native, 5 s after READY=1, its master out of reach.
//
// GARDEND_START_BASELINE=<checkout> measures that checkout's nano too, in
// the same run and interleaved start by start, reported with a _baseline
// suffix (for before/after figures; e.g. a `git archive` of the commit).
func BenchmarkNanoStart(b *testing.B) {
	qemu, err := exec.LookPath("qemu-aarch64-static")
	if err != nil {
		b.Fatal("qemu-aarch64-static is needed (scripts/setup.sh installs it): ", err)
	}
	type subject struct {
		suffix string
		bin    nanoBuild
	}
	wd, _ := os.Getwd()
	subjects := []subject{{"", buildNano(b, filepath.Join(wd, "..", ".."), filepath.Join(b.TempDir(), "this"))}}
	if base := os.Getenv("GARDEND_START_BASELINE"); base != "" {
		subjects = append(subjects, subject{"_baseline", buildNano(b, base, filepath.Join(b.TempDir(), "baseline"))})
	}
	fx := make([]nanoStartFixture, len(subjects))
	for i, s := range subjects {
		fx[i] = newNanoStartFixture(b, s.bin.native)
		// The first start creates the store; it is not measured.
		startNano(b, fx[i], nil, []string{qemu, s.bin.arm64}, nil)
	}
	hello := buildHelloWorld(b, b.TempDir())
	b.ResetTimer()
	for range b.N {
		// Interleaved, so that a neighbour's load falls on both alike.
		const starts, traced = 11, 3
		ready := make([][]float64, len(subjects))
		overFloor := make([][]float64, len(subjects))
		var floor []float64
		inits := make([][]float64, len(subjects))
		traces := make([]string, len(subjects))
		for range starts {
			f := runToExit(b, qemu, hello).Seconds()
			floor = append(floor, f)
			for i, s := range subjects {
				d, _ := startNano(b, fx[i], nil, []string{qemu, s.bin.arm64}, nil)
				ready[i] = append(ready[i], d.Seconds())
				overFloor[i] = append(overFloor[i], d.Seconds()-f)
			}
		}
		b.ReportMetric(median(floor), "qemu_hello_world_s_arm64")
		for range traced {
			for i, s := range subjects {
				_, trace := startNano(b, fx[i], []string{"GODEBUG=inittrace=1"}, []string{qemu, s.bin.arm64}, nil)
				ms, pkgs := initMillis(trace)
				if pkgs < 50 {
					b.Fatalf("inittrace listed %d packages: too few to be believed\n%s", pkgs, trace)
				}
				inits[i] = append(inits[i], ms)
				traces[i] = trace
			}
		}
		translated := make([]float64, len(subjects))
		for i, s := range subjects {
			log := filepath.Join(fx[i].dir, "qemu.log")
			startNano(b, fx[i], nil, []string{qemu, "-d", "in_asm", "-strace", "-D", log, s.bin.arm64}, nil)
			translated[i] = translatedToReady(b, log, filepath.Join(fx[i].dir, "notify.sock"))
			os.Remove(log)
		}
		for i, s := range subjects {
			var rss float64
			startNano(b, fx[i], nil, []string{s.bin.native}, func(pid int) {
				time.Sleep(5 * time.Second)
				rss = vmRSS(b, pid)
			})
			st, err := os.Stat(s.bin.arm64)
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("%s exec→READY under qemu (s): %v; init (ms): %v; heaviest inits in the last:\n%s",
				s.bin.arm64, ready[i], inits[i], heaviestInits(traces[i], 8))
			b.ReportMetric(float64(st.Size()), "nano_binary_bytes_arm64"+s.suffix)
			b.ReportMetric(median(ready[i]), "nano_exec_to_ready_s_arm64"+s.suffix)
			b.ReportMetric(slices.Min(ready[i]), "nano_exec_to_ready_min_s_arm64"+s.suffix)
			b.ReportMetric(median(overFloor[i]), "nano_ready_over_hello_world_s_arm64"+s.suffix)
			b.ReportMetric(median(inits[i]), "nano_init_ms_arm64"+s.suffix)
			b.ReportMetric(translated[i]/1000, "nano_translated_kinsn_to_ready_arm64"+s.suffix)
			b.ReportMetric(rss, "nano_idle_rss_mib"+s.suffix)
		}
	}
}

// translatedToReady counts the guest instructions qemu translated before
// the process connected to sock (its READY=1), from a log written with
// `-d in_asm -strace`. Under qemu-user a start is mostly translation: each
// instruction run for the first time costs about 2 µs here, against 17
// million instructions executed to READY in about 20 ms, so this count is
// the start's cost without the machine's noise. It varies by a few
// thousand from start to start: goroutines started before READY get more
// or less far.
func translatedToReady(b *testing.B, log, sock string) float64 {
	b.Helper()
	f, err := os.Open(log)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	// connect(fd, addr, len): the unix address's length is the path's
	// plus its family and a NUL.
	connect := fmt.Sprintf(",%d)", 2+len(sock)+1)
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "0x"):
			n++
		case strings.Contains(l, " connect(") && strings.Contains(l, connect):
			return float64(n)
		}
	}
	b.Fatalf("%s: no connect to %s (READY) in qemu's log (%d instructions translated)", log, sock, n)
	return 0
}

// heaviestInits lists the n packages whose initialisation took longest.
func heaviestInits(trace string, n int) string {
	type pkg struct {
		name string
		ms   float64
	}
	var all []pkg
	for _, l := range strings.Split(trace, "\n") {
		f := strings.Fields(l)
		if len(f) >= 7 && f[0] == "init" && f[6] == "clock," {
			v, _ := strconv.ParseFloat(f[4], 64)
			all = append(all, pkg{f[1], v})
		}
	}
	slices.SortFunc(all, func(a, b pkg) int {
		switch {
		case a.ms > b.ms:
			return -1
		case a.ms < b.ms:
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	var sb strings.Builder
	for i := 0; i < n && i < len(all); i++ {
		fmt.Fprintf(&sb, "  %6.1f ms %s\n", all[i].ms, all[i].name)
	}
	return sb.String()
}
