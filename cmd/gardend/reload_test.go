package main

import (
	"bytes"
	"context"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestReloadSendsSIGHUP(t *testing.T) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	if code := run(context.Background(), e, []string{"reload", "--pid", strconv.Itoa(os.Getpid())}); code != exitOK {
		t.Fatalf("reload exit %d: %s", code, errb.String())
	}
	select {
	case <-hup:
	case <-time.After(10 * time.Second):
		t.Fatal("no SIGHUP arrived")
	}
}

func TestReloadRefusesBadPID(t *testing.T) {
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	for _, args := range [][]string{{"reload"}, {"reload", "--pid", "1"}, {"reload", "--pid", "12", "extra"}} {
		if code := run(context.Background(), e, args); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	// A process that does not exist: a failure, not a usage error.
	if code := run(context.Background(), e, []string{"reload", "--pid", "999999999"}); code != exitFailure {
		t.Errorf("reload of a missing process: exit %d, want %d", code, exitFailure)
	}
}
