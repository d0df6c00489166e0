package platform

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Memory is what the kernel says about RAM, in bytes.
type Memory struct {
	Total, Free, Available uint64
}

// ReadMemory reads MemTotal, MemFree and MemAvailable (which counts
// reclaimable cache) from /proc/meminfo, falling back to sysinfo(2) where
// /proc is hidden (ProcSubset=pid); there Available is Free.
func ReadMemory() (Memory, error) {
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if m := parseMeminfo(string(data)); m.Total > 0 {
			return m, nil
		}
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return Memory{}, err
	}
	unit := uint64(si.Unit)
	if unit == 0 {
		unit = 1
	}
	m := Memory{Total: uint64(si.Totalram) * unit, Free: uint64(si.Freeram) * unit}
	m.Available = m.Free
	return m, nil
}

// parseMeminfo reads the three fields from /proc/meminfo's "Name:   123 kB"
// lines, skipping any it cannot read (a zero Total says none was found).
// Kernels before 3.14 have no MemAvailable: Free stands in for it.
func parseMeminfo(data string) Memory {
	var m Memory
	for line := range strings.Lines(data) {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var field *uint64
		switch name {
		case "MemTotal":
			field = &m.Total
		case "MemFree":
			field = &m.Free
		case "MemAvailable":
			field = &m.Available
		default:
			continue
		}
		value, unit, _ := strings.Cut(strings.TrimSpace(rest), " ")
		kb, err := strconv.ParseUint(value, 10, 64)
		if err != nil || unit != "kB" || kb > math.MaxUint64/1024 {
			continue
		}
		*field = kb * 1024
	}
	if m.Available == 0 {
		m.Available = m.Free
	}
	return m
}

// ClockState says whether the wall clock can be believed.
type ClockState int

const (
	ClockUnknown ClockState = iota // before the binary was built: no RTC, no time sync yet
	ClockPlausible
)

func (c ClockState) String() string {
	if c == ClockPlausible {
		return "plausible"
	}
	return "unknown"
}

// CheckClock judges the wall clock: a board without a battery-backed RTC
// boots in 1970 (or at its image's date). A time before the build date is
// certainly wrong, so it is treated as unknown: plans, records and expiries
// must not be trusted until it is set. Without a build date nothing can be
// said, and the clock is taken as it is.
func CheckClock(now, built time.Time) ClockState {
	if !built.IsZero() && now.Before(built) {
		return ClockUnknown
	}
	return ClockPlausible // or at least nothing says otherwise (no build date)
}

// Watchdog is a hardware watchdog device (/dev/watchdog): once opened it
// must be kept alive, or the board resets.
type Watchdog struct {
	f *os.File
}

// ErrNoWatchdog is returned when the device does not exist.
var ErrNoWatchdog = errors.New("no hardware watchdog device")

// OpenWatchdog opens the device and sets its timeout (0: keep the driver's).
func OpenWatchdog(path string, timeout time.Duration) (*Watchdog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoWatchdog)
	}
	if err != nil {
		return nil, err
	}
	if timeout > 0 {
		if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.WDIOC_SETTIMEOUT, int(timeout.Seconds())); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: set timeout: %w", path, err)
		}
	}
	return &Watchdog{f: f}, nil
}

// Keepalive pets the watchdog.
func (w *Watchdog) Keepalive() error {
	_, err := unix.IoctlGetInt(int(w.f.Fd()), unix.WDIOC_KEEPALIVE)
	return err
}

// Close disarms the watchdog where the driver allows it (the magic 'V'
// close), then closes the device.
func (w *Watchdog) Close() error {
	w.f.Write([]byte("V"))
	return w.f.Close()
}
