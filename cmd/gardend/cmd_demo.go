//go:build !nodht

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/config"
	"gardend/dtn"
	"gardend/host"
	"gardend/hsm"
)

// demoCommand is the demo, which the nano build leaves out (cmd_demo_nodht.go).
func demoCommand() []command {
	return []command{{"demo", "a ground station and two nanos through emulated passes, in one process", runDemo}}
}

func runDemo(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "demo", "",
		"Run a small network in one process, on loopback: a ground station\n"+
			"(master + indexer) and two nanos, through emulated passes. Between\n"+
			"passes the radio link is cut (both sides refuse each other and the\n"+
			"connections close); resources are created on the ground and on board\n"+
			"during the gaps and wait in the DTN stores until the next pass.\n"+
			"Every daemon is started exactly as `gardend run` starts one.\n\n"+
			"The last line is the summary:\n"+
			"  demo: queued=Q delivered=D lost=L duplicates=X bytes=B\n"+
			"(bytes: everything the three hosts sent, libp2p framing included).\n"+
			"Exit status 0 when nothing was lost or applied twice.")
	passes := fs.Int("passes", 3, "number of passes")
	passSec := fs.Float64("pass-seconds", 4, "how long the link stays up in each pass")
	gapSec := fs.Float64("gap-seconds", 3, "how long the link is down before each pass")
	perGap := fs.Int("per-gap", 2, "resources each side creates for each nano during each gap")
	dir := fs.String("dir", "", "keep the nodes' data here (default: a temporary directory, removed)")
	if code, ok := parseFlags(e, fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(e, fs, "unexpected argument %q", fs.Arg(0))
	}
	if *passes < 1 || *passSec <= 0 || *gapSec < 0 || *perGap < 1 {
		return usageError(e, fs, "--passes, --pass-seconds and --per-gap must be positive")
	}
	root := *dir
	if root == "" {
		tmp, err := os.MkdirTemp("", "gardend-demo-")
		if err != nil {
			fmt.Fprintln(e.stderr, err)
			return exitFailure
		}
		defer os.RemoveAll(tmp)
		root = tmp
	}
	dm := &demo{out: e.stdout, start: time.Now(), bw: metrics.NewBandwidthCounter()}
	code, err := dm.run(ctx, root, *passes, *perGap, seconds(*passSec), seconds(*gapSec))
	if err != nil {
		fmt.Fprintf(e.stderr, "gardend demo: %v\n", err)
		return exitFailure
	}
	return code
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

type demo struct {
	out   io.Writer
	start time.Time
	bw    *metrics.BandwidthCounter
	mu    sync.Mutex
	names map[peer.ID]string
}

func (d *demo) say(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, "[%6.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

// item is one resource change the demo expects to arrive somewhere.
type item struct {
	id     string
	body   string
	holder *daemon // where it must end up
}

func (d *demo) run(ctx context.Context, root string, passes, perGap int, pass, gap time.Duration) (int, error) {
	pskFile := filepath.Join(root, "psk.key")
	if err := host.WriteNewPSK(pskFile); err != nil {
		return 0, err
	}
	softhsm := demoSoftHSM(root)
	if softhsm != nil {
		d.say("keys: SoftHSM tokens in %s (module %s)", softhsm.dir, softhsm.module)
	} else {
		d.say("keys: software key files (SoftHSM not used: %s)", demoWhyNoSoftHSM())
	}
	mkcfg := func(name string, roles ...string) (*config.Config, peer.ID, error) {
		c := config.Defaults()
		c.Name, c.Roles, c.DataDir, c.PSKFile = name, roles, filepath.Join(root, name), pskFile
		c.Key = filepath.Join(c.DataDir, "identity.key")
		if softhsm != nil {
			uri, err := softhsm.token(name)
			if err != nil {
				return nil, "", err
			}
			c.Key = uri
		}
		ref, err := c.KeyRef()
		if err != nil {
			return nil, "", err
		}
		c.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
		c.LogLevel = "error"
		ks, _, err := hsm.Create(ctx, ref)
		if err != nil {
			return nil, "", err
		}
		defer ks.Close()
		k, _ := hsm.NewPrivKey(ks)
		id, err := k.PeerID()
		return &c, id, err
	}
	log := newLogger(&env{stderr: os.Stderr}, "error")
	d.names = map[peer.ID]string{}
	tune := tuning{heartbeat: time.Second, retryBase: time.Second, bandwidth: d.bw,
		onApplied: func(from peer.ID, kind, id string) {}}
	var applied sync.Map // "to:id" → count

	groundCfg, groundID, err := mkcfg("ground", config.RoleMaster, config.RoleIndexer)
	if err != nil {
		return 0, err
	}
	var nanoCfgs []*config.Config
	for i := 1; i <= 2; i++ {
		c, id, err := mkcfg(fmt.Sprintf("nano-%d", i), config.RoleNano)
		if err != nil {
			return 0, err
		}
		groundCfg.Nanos = append(groundCfg.Nanos, config.Peer{PeerID: id.String()})
		d.names[id] = c.Name
		nanoCfgs = append(nanoCfgs, c)
	}
	d.names[groundID] = "ground"
	withApplied := func(to string) tuning {
		t := tune
		t.onApplied = func(from peer.ID, kind, id string) {
			n, _ := applied.LoadOrStore(to+":"+id, new(int))
			d.mu.Lock()
			*n.(*int)++
			d.mu.Unlock()
			d.say("delivered %-7s → %-7s %s %s", d.names[from], to, kind, id)
		}
		return t
	}
	ground, err := startDaemon(ctx, groundCfg, log, withApplied("ground"))
	if err != nil {
		return 0, fmt.Errorf("ground: %w", err)
	}
	defer ground.Close()
	gaddr := ground.host.Addrs()[0].String() + "/p2p/" + groundID.String()
	var nanos []*daemon
	for _, c := range nanoCfgs {
		c.Master = config.Peer{PeerID: groundID.String(), Addrs: []string{ground.host.Addrs()[0].String()}}
		c.Indexers.Seeds = []string{gaddr}
		n, err := startDaemon(ctx, c, log, withApplied(c.Name))
		if err != nil {
			return 0, fmt.Errorf("%s: %w", c.Name, err)
		}
		defer n.Close()
		nanos = append(nanos, n)
	}
	d.say("ground %s (master + indexer), nano-1 %s, nano-2 %s", short(groundID), short(nanos[0].node.ID()), short(nanos[1].node.ID()))
	link := func(up bool) {
		for _, n := range nanos {
			a, b := ground.host, n.host
			if up {
				a.Gater.Unblock(b.ID())
				b.Gater.Unblock(a.ID())
				a.ClearBackoff(b.ID())
				b.ClearBackoff(a.ID())
			} else {
				a.Gater.Block(b.ID(), "gap")
				b.Gater.Block(a.ID(), "gap")
				a.Network().ClosePeer(b.ID())
				b.Network().ClosePeer(a.ID())
			}
		}
	}
	var items []item
	queue := func(from *daemon, to *daemon, owner peer.ID, id, body string) error {
		if err := from.node.PutResource(ctx, dtn.OpCreate, id, owner, []byte(body)); err != nil {
			return err
		}
		items = append(items, item{id: id, body: body, holder: to})
		d.say("queued    %-7s → %-7s resource %s", from.cfg.Name, to.cfg.Name, id)
		return nil
	}
	for p := 1; p <= passes; p++ {
		link(false)
		d.say("gap %d: link down for %s", p, gap)
		for _, n := range nanos {
			for k := 1; k <= perGap; k++ {
				if err := queue(ground, n, n.node.ID(), fmt.Sprintf("g%d-%s-%d", p, n.cfg.Name, k), "from the ground"); err != nil {
					return 0, err
				}
				if err := queue(n, ground, n.node.ID(), fmt.Sprintf("b%d-%s-%d", p, n.cfg.Name, k), "from on board"); err != nil {
					return 0, err
				}
			}
		}
		if err := sleep(ctx, gap); err != nil {
			return 0, err
		}
		link(true)
		d.say("pass %d: link up for %s", p, pass)
		if err := sleep(ctx, pass); err != nil {
			return 0, err
		}
		waiting := ground.store.Len("")
		for _, n := range nanos {
			waiting += n.store.Len("")
		}
		d.say("pass %d: over; %d entries still waiting", p, waiting)
	}
	link(false)
	delivered, dups := 0, 0
	for _, it := range items {
		r, err := it.holder.node.GetResource(it.id)
		if err == nil && r != nil && string(r.Body) == it.body {
			delivered++
		}
		if n, ok := applied.Load(it.holder.cfg.Name + ":" + it.id); ok && *n.(*int) > 1 {
			dups += *n.(*int) - 1
		}
	}
	lost := len(items) - delivered
	total := d.bw.GetBandwidthTotals()
	fmt.Fprintf(d.out, "demo: queued=%d delivered=%d lost=%d duplicates=%d bytes=%d\n", len(items), delivered, lost, dups, total.TotalOut)
	if lost > 0 || dups > 0 {
		return exitFailure, nil
	}
	return exitOK, nil
}

func short(p peer.ID) string {
	s := p.String()
	return s[len(s)-8:]
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// demoHSM is a throw-away SoftHSM configuration for the demo's tokens.
type demoHSM struct{ dir, module string }

// softhsmModules are where Debian installs SoftHSM; GARDEND_SOFTHSM_MODULE
// names another (e.g. an arm64 module under qemu).
func softhsmModules() []string {
	if m := os.Getenv("GARDEND_SOFTHSM_MODULE"); m != "" {
		return []string{m}
	}
	return []string{"/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"}
}

// demoSoftHSM prepares SoftHSM for the demo when this is the pkcs11 build
// and SoftHSM is installed; otherwise the demo uses software keys.
func demoSoftHSM(root string) *demoHSM {
	if demoWhyNoSoftHSM() != "" {
		return nil
	}
	h := &demoHSM{dir: filepath.Join(root, "softhsm")}
	for _, m := range softhsmModules() {
		if _, err := os.Stat(m); err == nil {
			h.module = m
			break
		}
	}
	if err := os.MkdirAll(filepath.Join(h.dir, "tokens"), 0o700); err != nil {
		return nil
	}
	conf := filepath.Join(h.dir, "softhsm2.conf")
	if os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(h.dir, "tokens")+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600) != nil {
		return nil
	}
	// SoftHSM reads its configuration when the module initialises, which
	// happens after this in this process.
	os.Setenv("SOFTHSM2_CONF", conf)
	return h
}

func demoWhyNoSoftHSM() string {
	if hsm.Flavour != "pkcs11" {
		return "this is the static build; bin/gardend-pkcs11 uses SoftHSM when it is installed"
	}
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		return "softhsm2-util not found"
	}
	for _, m := range softhsmModules() {
		if _, err := os.Stat(m); err == nil {
			return ""
		}
	}
	return "libsofthsm2.so not found"
}

// token creates a token labelled name and returns the URI of its identity.
func (h *demoHSM) token(name string) (string, error) {
	out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", name, "--pin", "1234", "--so-pin", "5678").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("softhsm2-util: %v: %s", err, out)
	}
	return "pkcs11:token=" + name + ";object=identity?module-path=" + h.module + "&pin-value=1234", nil
}
