package dtn

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gardend/hsm"
)

// TestCrashChild is the child side of TestCrashRecovery: with
// GARDEND_DTN_CRASH_DB set it enqueues and acks in a loop, printing each
// operation's outcome once the call has returned, until it is killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv("GARDEND_DTN_CRASH_DB")
	if path == "" {
		return // not a child: nothing to do
	}
	ks, err := hsm.Open(context.Background(), hsm.KeyRef{File: os.Getenv("GARDEND_DTN_CRASH_KEY")})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(3)
	}
	s, err := Open(path, ks, Options{Policy: testPolicy, LockTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(3)
	}
	n, _ := strconv.Atoi(os.Getenv("GARDEND_DTN_CRASH_START"))
	out := bufio.NewWriter(os.Stdout)
	var mine []Ref
	var names []int
	for ; ; n++ {
		e := entry("ground", protoCreate, fmt.Sprint("r", n), OpCreate, strings.Repeat("p", 200))
		_, ref, err := s.Enqueue(context.Background(), e)
		if err != nil {
			fmt.Fprintln(out, "ERR", err)
			out.Flush()
			os.Exit(3)
		}
		fmt.Fprintln(out, "E", n)
		out.Flush()
		mine, names = append(mine, ref), append(names, n)
		if n%3 == 0 {
			fmt.Fprintln(out, "a", names[0]) // about to ack: outcome unknown if killed now
			out.Flush()
			if err := s.Ack(context.Background(), "ground", mine[0]); err != nil {
				fmt.Fprintln(out, "ERR", err)
				out.Flush()
				os.Exit(3)
			}
			fmt.Fprintln(out, "A", names[0])
			out.Flush()
			mine, names = mine[1:], names[1:]
		}
	}
}

// TestCrashRecovery SIGKILLs a writer at random points, many times, and
// checks after each restart that every entry whose Enqueue returned is
// present unless its Ack returned, that no acked entry reappears, and that
// bbolt's consistency check passes.
func TestCrashRecovery(t *testing.T) {
	if os.Getenv("GARDEND_DTN_CRASH_DB") != "" {
		t.Skip("child process")
	}
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "id.key")
	ks, _, err := hsm.Create(context.Background(), hsm.KeyRef{File: keyPath})
	if err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dir, "state.db")
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	enqueued := map[int]bool{} // Enqueue returned
	acked := map[int]bool{}    // Ack returned
	ackTried := map[int]bool{} // Ack called, outcome unknown
	total := 0
	for round := range rounds {
		args := []string{os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1"}
		// Under qemu-user without binfmt_misc the test binary cannot be
		// exec'd directly: make test-cross names the emulator here.
		if w := os.Getenv("GARDEND_EXEC_WRAPPER"); w != "" {
			args = append([]string{w}, args...)
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "GARDEND_DTN_CRASH_DB="+dbPath, "GARDEND_DTN_CRASH_KEY="+keyPath,
			"GARDEND_DTN_CRASH_START="+strconv.Itoa(round*1_000_000))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1<<16)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Let it start and write for a random while, then pull the plug.
		delay := time.Duration(50+rng.IntN(250)) * time.Millisecond
		if os.Getenv("GARDEND_EXEC_WRAPPER") != "" {
			delay += 600 * time.Millisecond // emulator start-up
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		for l := range lines {
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			if f[0] == "ERR" {
				t.Fatalf("child failed: %s", l)
			}
			n, _ := strconv.Atoi(f[1])
			switch f[0] {
			case "E":
				enqueued[n] = true
				total++
			case "a":
				ackTried[n] = true
			case "A":
				acked[n] = true
			}
		}
		cmd.Wait()

		s, err := Open(dbPath, ks, Options{Policy: testPolicy})
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		if err := s.Check(); err != nil {
			t.Fatalf("round %d: bbolt check: %v", round, err)
		}
		rep, err := s.List()
		if err != nil || rep.Corrupt != 0 {
			t.Fatalf("round %d: list: %v, %d corrupt", round, err, rep.Corrupt)
		}
		present := map[int]bool{}
		for _, e := range rep.Entries {
			n, _ := strconv.Atoi(strings.TrimPrefix(e.ResourceID, "r"))
			present[n] = true
			if acked[n] {
				t.Fatalf("round %d: entry %d reappeared after its Ack returned", round, n)
			}
		}
		for n := range enqueued {
			if !present[n] && !acked[n] && !ackTried[n] {
				t.Fatalf("round %d: entry %d lost: Enqueue returned, never acked", round, n)
			}
		}
		s.Close()
	}
	if total == 0 {
		t.Fatal("the child never enqueued anything: the test proved nothing")
	}
	t.Logf("%d rounds, %d durable enqueues, %d acks checked", rounds, total, len(acked))
}
