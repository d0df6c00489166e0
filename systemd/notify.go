// Package systemd holds gardend's glue to systemd: readiness, status and
// watchdog notifications (go-systemd's sd_notify), a log handler that speaks
// journald's priority prefixes, and the unit files.
//
// Everything degrades to nothing outside systemd: without NOTIFY_SOCKET the
// notifier is silent, without WATCHDOG_USEC there is no watchdog, without
// JOURNAL_STREAM logs are plain text with timestamps.
package systemd

import (
	"context"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends sd_notify messages. The zero value is usable.
type Notifier struct{}

// Ready tells systemd start-up is complete: call it once the listeners are
// up and the store and key are open.
func (Notifier) Ready() error { return notify(daemon.SdNotifyReady) }

// Status sets the one-line status `systemctl status` shows.
func (Notifier) Status(s string) error { return notify("STATUS=" + s) }

// Stopping tells systemd a graceful stop has begun.
func (Notifier) Stopping() error { return notify(daemon.SdNotifyStopping) }

// Reloading tells systemd a reload (SIGHUP) has begun; Ready ends it.
func (Notifier) Reloading() error {
	return notify(daemon.SdNotifyReloading + "\nMONOTONIC_USEC=" + daemon.SdNotifyMonotonicUsec())
}

func notify(state string) error {
	_, err := daemon.SdNotify(false, state)
	return err
}

// WatchdogInterval returns systemd's watchdog period for this process, or 0
// when none is asked for.
func WatchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0
	}
	return d
}

// RunWatchdog pets a watchdog every interval/2, but only after health()
// passes: a daemon whose store, key or loops are stuck stops petting and is
// restarted. pet is systemd's WATCHDOG=1 when nil, or e.g. a hardware
// watchdog's keepalive. It returns when ctx ends. onFail is told of each
// failed check.
func RunWatchdog(ctx context.Context, interval time.Duration, health func() error, onFail func(error), pet func() error) {
	if pet == nil {
		pet = func() error { return notify(daemon.SdNotifyWatchdog) }
	}
	if interval <= 0 {
		return
	}
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	for {
		if err := health(); err != nil {
			if onFail != nil {
				onFail(err)
			}
		} else {
			pet()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
