package node

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A line that is not a request gets the typed error back and is counted;
// the socket goes on answering requests.
func TestControlSocketAnswersAndCountsAMalformedLine(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := filepath.Join(t.TempDir(), "control.sock")
	var malformed atomic.Int64
	var lastErr atomic.Value
	handle := func(_ context.Context, req ControlRequest) ControlResponse {
		return ControlResponse{Error: "handled " + req.Op}
	}
	count := func(err error) {
		lastErr.Store(err)
		malformed.Add(1)
	}
	stop, err := ServeControl(ctx, path, handle, count)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := c.Write([]byte("{not json\n")); err != nil {
		t.Fatal(err)
	}
	var resp ControlResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.Error, "not JSON") {
		t.Fatalf("answer %q, want the parse error", resp.Error)
	}
	if got := malformed.Load(); got != 1 {
		t.Fatalf("malformed counted %d times, want 1", got)
	}
	if err, _ := lastErr.Load().(error); !errors.Is(err, ErrControlRequest) {
		t.Fatalf("counted error %v, want ErrControlRequest", err)
	}
	if _, err := AskControl(path, ControlRequest{Op: "status"}); err == nil || err.Error() != "handled status" {
		t.Fatalf("a request after the bad line: %v, want the handler's answer", err)
	}
	if got := malformed.Load(); got != 1 {
		t.Fatalf("a good request was counted as malformed (%d)", got)
	}
	// Once stop returns the socket is gone (a daemon exits right after).
	stop()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("control socket left after stop: %v", err)
	}
}
