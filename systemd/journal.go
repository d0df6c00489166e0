package systemd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// UnderJournald reports whether stderr is connected to journald: systemd
// sets JOURNAL_STREAM to the device and inode of the stream it gave us.
func UnderJournald(getenv func(string) string, stderr *os.File) bool {
	v := getenv("JOURNAL_STREAM")
	dev, ino, ok := strings.Cut(v, ":")
	if !ok || stderr == nil {
		return false
	}
	var st statIDs
	if err := fstatIDs(stderr, &st); err != nil {
		return false
	}
	return strconv.FormatUint(st.dev, 10) == dev && strconv.FormatUint(st.ino, 10) == ino
}

// NewLogger returns a logger writing to w at level. For journald, each line
// carries a <N> syslog priority prefix and no timestamp (journald stamps
// it); otherwise lines are slog text. Repeated identical errors and
// warnings are rate-limited: the first of each message is logged, then at
// most one per minute with a count of those dropped.
func NewLogger(w io.Writer, level slog.Leveler, journald bool) *slog.Logger {
	var h slog.Handler
	if journald {
		h = &journalHandler{w: w, level: level, mu: new(sync.Mutex)}
	} else {
		h = slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	}
	return slog.New(&rateLimited{next: h, every: time.Minute, seen: map[string]*limit{}, mu: new(sync.Mutex), now: time.Now})
}

// journalHandler writes "<N>msg key=value ..." lines.
type journalHandler struct {
	w     io.Writer
	level slog.Leveler
	attrs []slog.Attr
	group string
	mu    *sync.Mutex
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3 // err
	case l >= slog.LevelWarn:
		return 4 // warning
	case l >= slog.LevelInfo:
		return 6 // info
	}
	return 7 // debug
}

func (h *journalHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "<%d>%s", priority(r.Level), r.Message)
	add := func(a slog.Attr) {
		if a.Equal(slog.Attr{}) {
			return
		}
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		v := a.Value.String()
		if strings.ContainsAny(v, " \t\"=") {
			v = strconv.Quote(v)
		}
		fmt.Fprintf(&b, " %s=%s", key, v)
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool { add(a); return true })
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, strings.ReplaceAll(strings.TrimSuffix(b.String(), "\n"), "\n", " ")+"\n")
	return err
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.group = name
	return &c
}

// rateLimited passes records through, but lets a repeated warning or error
// message out at most once per interval.
type rateLimited struct {
	next  slog.Handler
	every time.Duration
	mu    *sync.Mutex
	seen  map[string]*limit
	now   func() time.Time
}

type limit struct {
	last    time.Time
	dropped int
}

func (h *rateLimited) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *rateLimited) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	now := h.now()
	h.mu.Lock()
	l := h.seen[r.Message]
	if l == nil {
		if len(h.seen) > 1024 { // bounded: forget everything rather than grow
			h.seen = map[string]*limit{}
		}
		l = &limit{}
		h.seen[r.Message] = l
	} else if now.Sub(l.last) < h.every {
		l.dropped++
		h.mu.Unlock()
		return nil
	}
	dropped := l.dropped
	l.last, l.dropped = now, 0
	h.mu.Unlock()
	if dropped > 0 {
		r.AddAttrs(slog.Int("repeated", dropped))
	}
	return h.next.Handle(ctx, r)
}

func (h *rateLimited) WithAttrs(as []slog.Attr) slog.Handler {
	return &rateLimited{next: h.next.WithAttrs(as), every: h.every, mu: h.mu, seen: h.seen, now: h.now}
}

func (h *rateLimited) WithGroup(name string) slog.Handler {
	return &rateLimited{next: h.next.WithGroup(name), every: h.every, mu: h.mu, seen: h.seen, now: h.now}
}
