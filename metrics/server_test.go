package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
)

// flakyListener is a real loopback listener whose first fails Accepts fail
// with EMFILE, as when the process runs out of descriptors for a moment.
// Only the server's accept loop calls Accept.
type flakyListener struct {
	net.Listener
	fails   int
	calls   int
	retried chan struct{} // closed at the first Accept after the failures
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.calls++
	if l.calls <= l.fails {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	if l.calls == l.fails+1 {
		close(l.retried)
	}
	return l.Listener.Accept()
}

func flaky(t *testing.T, fails int) *flakyListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &flakyListener{Listener: ln, fails: fails, retried: make(chan struct{})}
}

func scrape(t *testing.T, addr net.Addr) string {
	t.Helper()
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %v\n%s", resp.StatusCode, err, body)
	}
	return string(body)
}

// TestListenerServesAfterTransientAcceptError: an Accept that fails for a
// moment (EMFILE) is retried, not the end of the listener, and is counted.
func TestListenerServesAfterTransientAcceptError(t *testing.T) {
	ln := flaky(t, 1)
	s, err := serveOn(context.Background(), ln, NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	select {
	case <-s.stopped:
		t.Fatal("the accept loop ended after one transient error")
	case <-ln.retried:
	}
	if body := scrape(t, s.Addr()); !strings.Contains(body, "\ngardend_metrics_accept_errors_total 1\n") {
		t.Fatalf("the accept error is not counted:\n%s", body)
	}
}

// TestListenerStopsWhileRetryingAcceptErrors: a listener whose Accept keeps
// failing still stops when its context ends (the pause between retries
// does not hold it), and its series leave the registry.
func TestListenerStopsWhileRetryingAcceptErrors(t *testing.T) {
	ln := flaky(t, 1<<30)
	r := NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := serveOn(ctx, ln, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	<-s.stopped // a hang here is the failure (go test's -timeout)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fams, _ := r.Gather()
	for _, f := range fams {
		if f.Name == "gardend_metrics_accept_errors_total" {
			t.Fatal("a closed listener's series are still registered")
		}
	}
	if _, err := serveOn(context.Background(), flaky(t, 0), r, nil); err != nil {
		t.Fatalf("the registry does not take a new listener after Close: %v", err)
	}
}
