package metrics

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The listener answers scrapes with an HTTP/1.1 responder written here
// rather than net/http's server: that server drags its HTTP/2 bundle into
// the binary (+1.3 MB on the nano's arm64 build, README, Metrics), while a
// scrape is one request line and one response. Each connection carries
// one request and is closed ("Connection: close"), which Prometheus and
// curl handle as any server's.
const (
	maxRequestHead = 8 << 10          // request line and headers
	connDeadline   = 10 * time.Second // to read the request and write the answer
	maxConcurrent  = 4                // scrapes served at once; more are closed at once
)

// An Accept error other than the listener's closing (descriptors exhausted
// for a moment during a connection flood, a connection reset before it was
// taken) is retried after a pause that doubles from minAcceptBackoff up to
// maxAcceptBackoff, as net/http's server does: giving up would leave the
// socket open, so scrapes would hang in the kernel's backlog until the
// daemon restarts, and retrying at once would spin while the cause lasts.
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// Request is the head of an HTTP/1.x request, as far as a scrape needs it.
type Request struct {
	Method string // GET, HEAD, ...
	Path   string // target without its query
	Proto  string // HTTP/1.0 or HTTP/1.1
}

// ErrBadRequest is what ReadRequest returns for anything that is not a
// well-formed HTTP/1.x request head within maxRequestHead bytes.
var ErrBadRequest = errors.New("metrics: bad HTTP request")

// ReadRequest reads a request line and its header lines (skipped) up to
// the blank line that ends them. It is the listener's only decoder of
// network input (fuzzed).
func ReadRequest(r io.Reader) (Request, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxRequestHead), 512)
	bad := func(format string, args ...any) (Request, error) {
		return Request{}, fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
	}
	line := func() (string, error) {
		var b []byte
		for {
			chunk, err := br.ReadSlice('\n')
			b = append(b, chunk...)
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				return "", err
			}
			return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
		}
	}
	first, err := line()
	if err != nil {
		return bad("no request line within %d bytes", maxRequestHead)
	}
	parts := strings.Split(first, " ")
	if len(parts) != 3 {
		return bad("request line %q is not METHOD TARGET VERSION", truncate(first, 60))
	}
	req := Request{Method: parts[0], Path: parts[1], Proto: parts[2]}
	if req.Method == "" || strings.IndexFunc(req.Method, func(c rune) bool { return c < 'A' || c > 'Z' }) >= 0 {
		return bad("method %q", truncate(req.Method, 20))
	}
	if req.Proto != "HTTP/1.0" && req.Proto != "HTTP/1.1" {
		return bad("version %q", truncate(req.Proto, 20))
	}
	if !strings.HasPrefix(req.Path, "/") {
		return bad("target %q is not a path", truncate(req.Path, 60))
	}
	req.Path, _, _ = strings.Cut(req.Path, "?")
	for {
		h, err := line()
		if err != nil {
			return bad("headers do not end within %d bytes", maxRequestHead)
		}
		if h == "" {
			return req, nil
		}
		if k, _, ok := strings.Cut(h, ":"); !ok || k == "" || strings.ContainsAny(k, " \t") {
			return bad("header line %q", truncate(h, 60))
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Server is a running metrics listener.
type Server struct {
	ln           net.Listener
	reg          *Registry
	log          *slog.Logger
	slots        chan struct{}
	conns        sync.WaitGroup
	done         chan struct{} // closed by Close
	stopped      chan struct{} // closed when the accept loop has returned
	once         sync.Once
	acceptErrors atomic.Uint64
}

// listenerCollector is the name under which a Server registers its own
// series.
const listenerCollector = "metrics_listener"

// Listen opens addr (HOST:PORT) and serves r at GET (or HEAD) /metrics
// until ctx ends or Close. A scrape that could not include everything
// still answers 200 with what is valid (gardend_metrics_dropped_total says
// so) and logs why. It registers the listener's own series on r
// (gardend_metrics_accept_errors_total), so r serves one listener at a
// time.
func Listen(ctx context.Context, addr string, r *Registry, log *slog.Logger) (*Server, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	s, err := serveOn(ctx, ln, r, log)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return s, nil
}

// serveOn serves r on ln, which it owns from then on (Close closes it).
func serveOn(ctx context.Context, ln net.Listener, r *Registry, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{ln: ln, reg: r, log: log, slots: make(chan struct{}, maxConcurrent),
		done: make(chan struct{}), stopped: make(chan struct{})}
	if err := r.Register(listenerCollector, s.collect); err != nil {
		return nil, err
	}
	go s.accept()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.done:
		}
	}()
	return s, nil
}

func (s *Server) collect() []Family {
	return []Family{{Name: "gardend_metrics_accept_errors_total", Type: Counter,
		Help:    "Errors accepting a connection on the metrics listener (each retried after a pause).",
		Samples: []Sample{{Value: float64(s.acceptErrors.Load())}}}}
}

func (s *Server) accept() {
	defer close(s.stopped)
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				s.log.Error("metrics listener closed", "err", err)
				return
			}
			s.acceptErrors.Add(1)
			backoff = min(max(2*backoff, minAcceptBackoff), maxAcceptBackoff)
			s.log.Warn("metrics listener: accept failed; retrying", "err", err, "in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-s.done:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		backoff = 0
		select {
		case s.slots <- struct{}{}:
		default:
			c.Close() // busy: the scraper retries at its next interval
			continue
		}
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			defer func() { <-s.slots }()
			s.serve(c)
		}()
	}
}

func (s *Server) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(connDeadline))
	req, err := ReadRequest(c)
	if err != nil {
		s.log.Debug("metrics: bad request", "from", c.RemoteAddr().String(), "err", err)
		c.Write(response(400, "text/plain; charset=utf-8", nil, []byte("bad request\n"), true))
		return
	}
	head := req.Method == "HEAD"
	switch {
	case req.Path != "/metrics":
		c.Write(response(404, "text/plain; charset=utf-8", nil, []byte("not found: try /metrics\n"), !head))
	case req.Method != "GET" && !head:
		c.Write(response(405, "text/plain; charset=utf-8", []string{"Allow: GET, HEAD"}, []byte("method not allowed\n"), true))
	default:
		fams, err := s.reg.Gather()
		if err != nil {
			s.log.Warn("metrics: left out of the scrape", "err", err)
		}
		var body bytes.Buffer
		WriteText(&body, fams)
		c.Write(response(200, ContentType, nil, body.Bytes(), !head))
	}
}

var statusText = map[int]string{200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}

func response(code int, ctype string, extra []string, body []byte, withBody bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %s\r\nConnection: close\r\n",
		code, statusText[code], ctype, strconv.Itoa(len(body)))
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	if withBody {
		b.Write(body)
	}
	return b.Bytes()
}

// Addr is the address the listener is bound to (with the port chosen when
// addr asked for port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting and waits for scrapes in progress (each bounded by
// its connection deadline).
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		err = s.ln.Close()
		// The accept loop must have returned before waiting on conns: it
		// may still be adding one.
		<-s.stopped
		s.conns.Wait()
		s.reg.Unregister(listenerCollector)
	})
	return err
}
