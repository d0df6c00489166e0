package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gardend/host"
)

// TestMain lets the test binary stand in for gardend itself: with
// GARDEND_TEST_BINARY=1 it runs the command line it was given, exactly as
// main does, so tests can start the real daemon as a child process.
func TestMain(m *testing.M) {
	if os.Getenv("GARDEND_TEST_BINARY") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:])
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// daemonCmd starts the real daemon (this binary as gardend) with args.
func daemonCmd(args ...string) *exec.Cmd {
	argv := append([]string{os.Args[0]}, args...)
	if w := os.Getenv("GARDEND_EXEC_WRAPPER"); w != "" { // qemu-user without binfmt_misc
		argv = append([]string{w}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "GARDEND_TEST_BINARY=1")
	return cmd
}

// notifications collects what the daemon sends on NOTIFY_SOCKET.
type notifications struct {
	mu  sync.Mutex
	all []string
}

func (n *notifications) has(prefix string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.all {
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, prefix) {
				return true
			}
		}
	}
	return false
}

func (n *notifications) count(prefix string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.all {
		if strings.HasPrefix(m, prefix) {
			c++
		}
	}
	return c
}

func waitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestSystemdNotifyProtocol runs the real binary under a fake systemd: a
// unixgram NOTIFY_SOCKET and WATCHDOG_USEC. It checks READY=1, STATUS=,
// WATCHDOG=1 while healthy, no WATCHDOG=1 once the disk under the store is
// full (root: a small tmpfs), RELOADING=1 then READY=1 on SIGHUP, and
// STOPPING=1 and a clean exit on SIGTERM.
func TestSystemdNotifyProtocol(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	os.Mkdir(dataDir, 0o700)
	canFill := os.Geteuid() == 0
	if canFill {
		if err := syscall.Mount("tmpfs", dataDir, "tmpfs", 0, "size=48m"); err != nil {
			t.Fatalf("mount tmpfs: %v", err)
		}
		defer syscall.Unmount(dataDir, syscall.MNT_DETACH)
	}
	if err := host.WriteNewPSK(filepath.Join(dir, "psk.key")); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id.key")
	if code, _, e := runCLI(t, "keygen", "--key", key); code != exitOK {
		t.Fatal(e)
	}
	cfg := filepath.Join(dir, "gardend.toml")
	os.WriteFile(cfg, []byte(`name = "ground"
roles = ["master", "indexer"]
data_dir = "`+dataDir+`"
listen = ["/ip4/127.0.0.1/tcp/0"]
psk_file = "`+filepath.Join(dir, "psk.key")+`"
key = "`+key+`"
log_level = "info"
[indexer]
dht = false
`), 0o600)

	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var got notifications
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			got.mu.Lock()
			got.all = append(got.all, string(buf[:n]))
			got.mu.Unlock()
		}
	}()

	cmd := daemonCmd("run", "--config", cfg)
	cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=1000000")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill()

	waitFor(t, "READY=1", 20*time.Second, func() bool { return got.has("READY=1") })
	waitFor(t, "STATUS=", 5*time.Second, func() bool { return got.has("STATUS=master+indexer ground") })
	waitFor(t, "WATCHDOG=1", 5*time.Second, func() bool { return got.count("WATCHDOG=1") >= 2 })

	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "RELOADING=1", 5*time.Second, func() bool { return got.has("RELOADING=1") })
	waitFor(t, "READY=1 after reload", 5*time.Second, func() bool { return got.count("READY=1") >= 2 })

	if canFill {
		// Fill the disk under the store: the health check fails, the
		// watchdog is no longer petted (systemd would restart us).
		filler, _ := os.Create(filepath.Join(dataDir, "filler"))
		filler.Write(make([]byte, 40<<20))
		filler.Close()
		waitFor(t, "an UNHEALTHY status", 5*time.Second, func() bool { return got.has("STATUS=UNHEALTHY: store") })
		before := got.count("WATCHDOG=1")
		time.Sleep(2 * time.Second)
		if after := got.count("WATCHDOG=1"); after != before {
			t.Fatalf("watchdog petted %d times while unhealthy", after-before)
		}
		os.Remove(filepath.Join(dataDir, "filler"))
		waitFor(t, "WATCHDOG=1 once healthy again", 5*time.Second, func() bool { return got.count("WATCHDOG=1") > before })
	} else {
		t.Log("not root: the unhealthy-disk half of the test needs a tmpfs and was not run")
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("daemon exit: %v\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("daemon did not stop\n%s", logs.String())
	}
	if !got.has("STOPPING=1") {
		t.Fatalf("no STOPPING=1; got %q", got.all)
	}
}
