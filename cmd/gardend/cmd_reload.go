package main

import (
	"context"
	"fmt"
	"syscall"
)

// runReload sends SIGHUP to a running daemon. The unit's ExecReload runs it
// with systemd's $MAINPID, so a board needs no kill binary: a Debian minbase
// root has none (procps is not installed), nor does a Buildroot image
// without busybox.
func runReload(_ context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "reload", "--pid PID",
		"Ask a running gardend to reload its log level and contact plans\n"+
			"(SIGHUP to the given process). gardend.service's ExecReload uses it.")
	pid := fs.Int("pid", 0, "the daemon's process ID (systemd: $MAINPID)")
	if code, ok := parseFlags(e, fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(e, fs, "unexpected argument %q", fs.Arg(0))
	}
	if *pid <= 1 {
		return usageError(e, fs, "--pid must name the daemon's process")
	}
	if err := syscall.Kill(*pid, syscall.SIGHUP); err != nil {
		fmt.Fprintf(e.stderr, "gardend reload: process %d: %v\n", *pid, err)
		return exitFailure
	}
	return exitOK
}
