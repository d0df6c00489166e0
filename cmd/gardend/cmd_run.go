package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"gardend/config"
	"gardend/hsm"
	"gardend/platform"
	"gardend/systemd"
)

func runRun(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "run", "",
		"Run the roles the configuration names (nano, master, indexer) until\n"+
			"SIGINT or SIGTERM. Flags override the file. The identity must exist\n"+
			"(gardend keygen) and the PSK file must be readable.\n\n"+
			"Under systemd (Type=notify) it reports READY=1 once listening, a STATUS=\n"+
			"line, and pets the watchdog (WatchdogSec=) only while its store is\n"+
			"writable, its key signs and its loops turn. SIGHUP reloads the log level\n"+
			"and the contact plans (plan and elements files).\n\n"+
			"Exit status: 0 after a clean stop, 1 when start-up fails, 78 when the\n"+
			"configuration is invalid.")
	cfgPath := fs.String("config", "/etc/gardend/gardend.toml", "configuration file")
	over := config.BindFlags(fs)
	if code, ok := parseFlags(e, fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(e, fs, "unexpected argument %q", fs.Arg(0))
	}
	load := func() (*config.Config, error) {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return nil, err
		}
		over.Apply(cfg)
		return cfg, cfg.Validate()
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitConfig
	}
	level := new(slog.LevelVar)
	level.UnmarshalText([]byte(cfg.LogLevel))
	stderrFile, _ := e.stderr.(*os.File)
	log := systemd.NewLogger(e.stderr, level, systemd.UnderJournald(e.getenv, stderrFile))
	if platform.CheckClock(time.Now(), buildTime()) == platform.ClockUnknown {
		log.Warn("the wall clock is before this binary was built: treating it as unknown until it is set; plans and record expiries may be wrong", "now", time.Now().UTC())
	}
	var hw *platform.Watchdog
	if cfg.WatchdogDevice != "" {
		if hw, err = platform.OpenWatchdog(cfg.WatchdogDevice, 0); err != nil {
			log.Error("start-up failed", "err", err)
			return exitFailure
		}
		defer hw.Close()
	}
	var sd systemd.Notifier
	tune := tuning{level: level}
	if hw != nil {
		tune.watchdog = func() string { return "armed" }
	}
	// The node's loops (a first dial, the boot count's commit, a first
	// report) begin once READY is sent: under emulation their first run
	// would otherwise be translated on the start's path.
	begin := make(chan struct{})
	tune.begin = begin
	d, err := startDaemon(ctx, cfg, log, tune)
	if err != nil {
		log.Error("start-up failed", "err", err)
		return exitFailure
	}
	log.Info("running", "peer", d.node.ID(), "roles", d.node.Roles().String(), "control", cfg.ControlPath())
	sd.Ready()
	close(begin)
	sd.Status(d.statusLine())
	// The identity's first signature fills Ed25519's tables and checks a key
	// file's public block (hsm): made now, off the start's path, rather
	// than in the first handshake of the first pass; a key that cannot sign
	// is reported at once.
	go func() {
		if _, err := d.ks.Sign([]byte("gardend start check")); err != nil && !errors.Is(err, hsm.ErrClosed) {
			log.Error("the identity cannot sign: every handshake will fail", "err", err)
		}
	}()

	wctx, stopLoops := context.WithCancel(ctx)
	defer stopLoops()
	if wd := systemd.WatchdogInterval(); wd > 0 {
		go systemd.RunWatchdog(wctx, wd, d.health, func(err error) {
			d.node.Metrics.Inc("health_failures")
			log.Error("health check failed: not petting the watchdog", "err", err)
			sd.Status("UNHEALTHY: " + err.Error())
		}, nil)
	}
	if hw != nil {
		go systemd.RunWatchdog(wctx, 10*time.Second, d.health, nil, hw.Keepalive)
	}
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
				sd.Status(d.statusLine())
			}
		}
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-hup:
			sd.Reloading()
			if err := d.reload(load, level); err != nil {
				log.Error("reload refused; keeping the running configuration", "err", err)
			} else {
				log.Info("reloaded: log level and contact plans")
			}
			sd.Ready()
			sd.Status(d.statusLine())
		}
	}
	log.Info("stopping")
	sd.Stopping()
	stopLoops()
	if err := d.Close(); err != nil {
		log.Error("stop", "err", err)
		return exitFailure
	}
	return exitOK
}

func newLogger(e *env, level string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	return systemd.NewLogger(e.stderr, l, false)
}

// buildTime is the date stamped at link time (-X main.buildDate=RFC 3339),
// zero when unknown.
func buildTime() time.Time {
	t, _ := time.Parse(time.RFC3339, buildDate)
	return t
}

// statusLine is systemd's STATUS=: roles, contact, what is queued.
func (d *daemon) statusLine() string {
	st := d.node.Status()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s; %d peers; %s", st.Roles, st.Name, len(st.Connected), st.Contact)
	fmt.Fprintf(&b, "; %d queued", st.DTNEntries)
	if len(st.Suspected) > 0 {
		fmt.Fprintf(&b, "; %d nanos suspected", len(st.Suspected))
	}
	return b.String()
}

// health is the watchdog's check: the store takes a durable write and has
// room, the key signs, and the node's loop turned recently.
func (d *daemon) health() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.store.CheckWritable(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if _, err := d.ks.Sign([]byte("gardend health check")); err != nil {
		return fmt.Errorf("key: %w", err)
	}
	if since := time.Since(d.node.LastTurn()); since > 10*time.Second {
		return fmt.Errorf("delivery loop stuck for %s", since.Truncate(time.Second))
	}
	return nil
}

// reload applies what can change safely in a running daemon: the log level
// and the contact plans. Anything else needs a restart.
func (d *daemon) reload(load func() (*config.Config, error), level *slog.LevelVar) error {
	cfg, err := load()
	if err != nil {
		return err
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return err
	}
	now := time.Now()
	cfg.Profile.Kind = d.cfg.Profile.Kind // the profile's kind is the one the node started with
	pl, err := loadPlans(cfg, d.node.ID(), d.node.Master(), d.node.Roles(), now)
	if err != nil {
		return err
	}
	level.Set(l) // a pushed log level in force is put back on top by apply
	pl.apply(d.node, d.relay, d.nanoFleet, d.masterFleet)
	d.planMu.Lock()
	d.cfg.Profile, d.cfg.Nanos = cfg.Profile, cfg.Nanos
	d.planMu.Unlock()
	return nil
}
