package linkemu

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Netns is a network namespace made with `ip netns add`.
type Netns struct{ Name string }

// NewNetns creates a namespace with its loopback up.
func NewNetns(name string) (*Netns, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &Netns{Name: name}
	if err := ns.IP("link", "set", "lo", "up"); err != nil {
		ns.Delete()
		return nil, err
	}
	return ns, nil
}

// IP runs `ip -n NAME args...`.
func (ns *Netns) IP(args ...string) error {
	out, err := exec.Command("ip", append([]string{"-n", ns.Name}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip -n %s %s: %v: %s", ns.Name, strings.Join(args, " "), err, out)
	}
	return nil
}

// Command returns a command that runs inside the namespace.
func (ns *Netns) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Delete removes the namespace (its TUN devices go with it).
func (ns *Netns) Delete() error {
	out, err := exec.Command("ip", "netns", "delete", ns.Name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip netns delete %s: %v: %s", ns.Name, err, out)
	}
	return nil
}

// OpenTUN creates a TUN device named ifname inside the namespace, gives it
// addr (CIDR) and brings it up. The device lives as long as the returned
// file is open.
func (ns *Netns) OpenTUN(ifname, addr string) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// setns changes the calling thread: lock it and never unlock, so the
		// thread dies with this goroutine instead of serving others.
		runtime.LockOSThread()
		f, err := openTUNIn(ns.Name, ifname)
		ch <- result{f, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, r.err
	}
	if err := ns.IP("addr", "add", addr, "dev", ifname); err != nil {
		r.f.Close()
		return nil, err
	}
	if err := ns.IP("link", "set", ifname, "up"); err != nil {
		r.f.Close()
		return nil, err
	}
	return r.f, nil
}

func openTUNIn(nsName, ifname string) (*os.File, error) {
	nsf, err := os.Open("/run/netns/" + nsName)
	if err != nil {
		return nil, err
	}
	defer nsf.Close()
	if err := unix.Setns(int(nsf.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("setns %s: %w", nsName, err)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	var ifr [unix.IFNAMSIZ + 64]byte
	copy(ifr[:unix.IFNAMSIZ-1], ifname)
	*(*uint16)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = unix.IFF_TUN | unix.IFF_NO_PI
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(unix.TUNSETIFF), uintptr(unsafe.Pointer(&ifr[0]))); errno != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", ifname, errno)
	}
	// Non-blocking, so the runtime poller owns it and Close ends a pending
	// Read.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+ifname), nil
}
