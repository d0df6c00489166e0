package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	p2pmetrics "github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"gardend/codec"
	"gardend/config"
	"gardend/dtn"
	"gardend/fleet"
	"gardend/host"
	"gardend/hsm"
	"gardend/metrics"
	"gardend/node"
	"gardend/plan"
	"gardend/relay"
)

// daemon is one running gardend: keystore, state database, host and node,
// opened in that order and closed in reverse.
type daemon struct {
	planMu sync.Mutex // guards cfg.Profile and cfg.Nanos, which SIGHUP may replace
	cfg    *config.Config
	ks     hsm.Keystore
	store  *dtn.Store
	host   *host.Host
	node   *node.Node
	stop   context.CancelFunc

	// metrics holds the collectors behind [metrics] listen: the node's own
	// and, on a master, one series set per nano (fleet/).
	metrics     *metrics.Registry
	metricsSrv  *metrics.Server // nil unless metrics.listen is set
	stopControl func()          // closes the control socket and removes it

	nanoFleet   *fleet.Nano   // a nano's reports and the pushes it takes
	masterFleet *fleet.Master // a master's view of its nanos and its pushes
	relay       *relay.Relay  // custody and routing through [[stations]]; nil without
}

// tuning holds what the demo changes from the daemon's defaults.
type tuning struct {
	heartbeat time.Duration
	retryBase time.Duration
	bandwidth p2pmetrics.Reporter
	onApplied func(from peer.ID, kind, id string)
	level     *slog.LevelVar // a pushed log_level is set here; nil: refused
	watchdog  func() string  // the hardware watchdog's state for health reports
	// begin holds the node's loops, the fleet's and the relay's until it
	// closes (node.Options.Begin): run closes it once READY is sent.
	begin <-chan struct{}
}

// startDaemon opens everything cfg names and starts the node and its
// control socket. Listeners open last: nothing can reach a half-built node.
func startDaemon(ctx context.Context, cfg *config.Config, log *slog.Logger, tune tuning) (_ *daemon, err error) {
	d := &daemon{cfg: cfg}
	defer func() {
		if err != nil {
			d.Close() // whatever was opened before the failure
		}
	}()
	ref, err := cfg.KeyRef()
	if err != nil {
		return nil, err
	}
	if d.ks, err = hsm.Open(ctx, ref); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	key, err := hsm.NewPrivKey(d.ks)
	if err != nil {
		return nil, err
	}
	self, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckOwnStation(self); err != nil {
		return nil, err
	}
	var roles node.Roles
	for _, r := range cfg.Roles {
		roles |= map[string]node.Roles{config.RoleNano: node.RoleNano, config.RoleMaster: node.RoleMaster, config.RoleIndexer: node.RoleIndexer,
			config.RoleStation: node.RoleStation}[r]
	}
	var master peer.AddrInfo
	if cfg.Master.PeerID != "" {
		if master, err = addrInfo(cfg.Master); err != nil {
			return nil, fmt.Errorf("master: %w", err)
		}
	}
	psk, err := host.LoadPSK(cfg.PSKFile)
	if err != nil {
		return nil, fmt.Errorf("psk_file: %w", err)
	}
	reg, err := node.NewRegistry()
	if err != nil {
		return nil, err
	}
	if err := fleet.Register(reg); err != nil {
		return nil, err
	}
	if err := relay.Register(reg); err != nil {
		return nil, err
	}
	lim := codec.DefaultLimits()
	lim.MaxFrame, lim.MaxString = cfg.Codec.MaxFrame, cfg.Codec.MaxFrame
	c, err := codec.New(reg, lim)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	pl, err := loadPlans(cfg, self, master.ID, roles, now)
	if err != nil {
		return nil, err
	}
	own := pl.own
	retry := own.Profile.RetryBase
	if tune.retryBase != 0 {
		retry = tune.retryBase
	}
	d.store, err = dtn.Open(filepath.Join(cfg.DataDir, dtn.FileName), d.ks, dtn.Options{Policy: relay.Policy(fleet.Policy(node.DTNPolicy())),
		RetryBase: retry, RetryCeiling: own.Profile.RetryCeiling})
	if err != nil {
		return nil, fmt.Errorf("state database: %w", err)
	}
	opts := node.Options{Name: cfg.Name, Roles: roles, Key: key, Store: d.store, Codec: c, Log: log, Contact: own, Master: master,
		NanoContacts: pl.nanos, Stations: pl.calls, PeerPlans: pl.peerPlans,
		HeartbeatInterval: tune.heartbeat, DHT: cfg.Indexer.DHT, MaxSessions: cfg.Indexer.MaxSessions, MaxDrains: cfg.Delivery.MaxDrains, OnApplied: tune.onApplied, Begin: tune.begin}
	if opts.DHT && roles.Has(node.RoleIndexer) && !node.DHTBuilt {
		// The nano build leaves the DHT out; an indexer it runs keeps
		// records in its book only, unless the DHT was asked for.
		if line, given := cfg.Given("indexer.dht"); given {
			return nil, fmt.Errorf("%s:%d: [indexer] dht = true, but this gardend build leaves the DHT out (-tags nodht, the nano build): set it false or run the full build", cfg.File(), line)
		}
		opts.DHT = false
		log.Info("this gardend build has no DHT (-tags nodht): the indexer keeps records in its book only")
	}
	for _, nn := range cfg.Nanos {
		ai, err := addrInfo(nn)
		if err != nil {
			return nil, fmt.Errorf("nanos: %w", err)
		}
		opts.Nanos = append(opts.Nanos, ai)
	}
	for _, s := range cfg.Indexers.Seeds {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, fmt.Errorf("indexers.seeds: %w", err)
		}
		opts.Indexers = append(opts.Indexers, *ai)
		opts.DHTBootstrap = append(opts.DHTBootstrap, *ai)
	}
	var station plan.Station
	if cfg.Profile.Station != "" {
		st, err := config.ParseStation(cfg.Profile.Station)
		if err != nil {
			return nil, fmt.Errorf("profile.station: %w", err)
		}
		station = plan.Station{Lat: st.Lat, Lon: st.Lon, AltM: st.AltM, MinElevation: cfg.Profile.MinElevation}
	}
	stations, err := cfg.PlanStations() // pushed elements are predicted over these when set
	if err != nil {
		return nil, err
	}
	if opts.Roles.Has(node.RoleNano) {
		backend := "software"
		if strings.HasPrefix(cfg.Key, "pkcs11:") {
			backend = "pkcs11"
		}
		no := fleet.NanoOptions{Store: d.store, Codec: c, Log: log, DataDir: cfg.DataDir, Station: station, Stations: stations, Name: cfg.Name,
			Version: version, Flavour: hsm.Flavour, KeyBackend: backend, Watchdog: tune.watchdog,
			HealthInterval: cfg.Fleet.HealthInterval.Duration, SetQuota: d.store.SetQuota}
		if tune.level != nil {
			no.SetLogLevel = func(s string) { tune.level.UnmarshalText([]byte(s)) }
		}
		d.nanoFleet = fleet.NewNano(no)
		opts.Carriers = append(opts.Carriers, d.nanoFleet.Carriers()...)
	}
	if opts.Roles.Has(node.RoleMaster) {
		d.masterFleet = fleet.NewMaster(fleet.MasterOptions{Store: d.store, Codec: c, Log: log, Station: station, Stations: stations})
		opts.Carriers = append(opts.Carriers, d.masterFleet.Carriers()...)
	}
	if len(cfg.Stations) > 0 {
		d.relay = relay.New(relay.Options{Store: d.store, Codec: c, Signer: d.ks, Log: log, Stations: pl.stations,
			Contacts: pl.relayContacts(self, roles), Guard: own.Profile.Guard})
		opts.Carriers = append(opts.Carriers, d.relay.Carriers()...)
	}
	var listen []ma.Multiaddr
	for _, s := range cfg.Listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		listen = append(listen, a)
	}
	limits := node.LimitsFor(opts.Roles, len(opts.Nanos)+cfg.Indexer.MaxSessions)
	if d.host, err = host.New(host.Config{Key: key, PSK: psk, Listen: listen, UserAgent: "gardend/" + version, Bandwidth: tune.bandwidth,
		Identify: opts.DHT && opts.Roles.Has(node.RoleIndexer), Limits: &limits, TCP: host.FlightTCP(), Log: log}); err != nil {
		return nil, err
	}
	opts.Host = d.host
	// The fleet and the relay start before the node serves their protocols:
	// a nano's report or a station's envelope that arrives at once must
	// find them set up (their Carriers read what Start sets).
	opts.BeforeServe = func(nctx context.Context, n *node.Node) error {
		if d.nanoFleet != nil {
			if err := d.nanoFleet.Start(nctx, n); err != nil {
				return fmt.Errorf("fleet: %w", err)
			}
		}
		if d.masterFleet != nil {
			if err := d.masterFleet.Start(nctx, n); err != nil {
				return fmt.Errorf("fleet: %w", err)
			}
		}
		if d.relay != nil {
			d.relay.Start(nctx, n)
		}
		return nil
	}
	if d.node, err = node.New(opts); err != nil {
		return nil, err
	}
	nctx, cancel := context.WithCancel(ctx)
	d.stop = cancel
	if err := d.node.Start(nctx); err != nil {
		return nil, err
	}
	countMalformed := func(error) { d.node.Metrics.Inc("control_requests_malformed") }
	if d.stopControl, err = node.ServeControl(nctx, cfg.ControlPath(), d.control, countMalformed); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	d.metrics = metrics.NewRegistry()
	if err := d.metrics.Register("node", newNodeCollector(d.node, d.store, now, time.Now).collect); err != nil {
		return nil, err
	}
	if d.masterFleet != nil {
		if err := d.metrics.Register("fleet", d.masterFleet.Collect); err != nil {
			return nil, err
		}
	}
	if d.relay != nil {
		if err := d.metrics.Register("relay", relayFamilies(d.relay)); err != nil {
			return nil, err
		}
	}
	if cfg.Metrics.Listen != "" {
		if d.metricsSrv, err = metrics.Listen(nctx, cfg.Metrics.Listen, d.metrics, log); err != nil {
			return nil, fmt.Errorf("metrics.listen: %w", err)
		}
		log.Info("serving Prometheus metrics", "url", "http://"+d.metricsSrv.Addr().String()+"/metrics")
	}
	go d.refreshPredictions(nctx, log)
	return d, nil
}

// control answers the control socket: fleet requests on a master go to
// the fleet, everything else to the node.
func (d *daemon) control(ctx context.Context, req node.ControlRequest) node.ControlResponse {
	if strings.HasPrefix(req.Op, "fleet.") {
		if d.masterFleet == nil {
			return node.ControlResponse{Error: "fleet requests need a master"}
		}
		return d.masterFleet.Control(ctx, req)
	}
	resp := d.node.Control(ctx, req)
	if req.Op == "status" && resp.Status != nil && d.relay != nil {
		// What the relay holds, per next hop and direction, goes with the
		// node's status; its counters join the node's.
		rep, err := d.relay.Status()
		if err != nil {
			return node.ControlResponse{Error: "relay status: " + err.Error()}
		}
		resp.Data, _ = json.Marshal(rep)
		for k, v := range d.relay.Counts() {
			resp.Status.Metrics[k] = v
		}
	}
	return resp
}

func addrInfo(p config.Peer) (peer.AddrInfo, error) {
	id, err := peer.Decode(p.PeerID)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	ai := peer.AddrInfo{ID: id}
	for _, s := range p.Addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return ai, err
		}
		ai.Addrs = append(ai.Addrs, a)
	}
	return ai, nil
}

// Close stops the node, then the host, then syncs and closes the store and
// the keystore.
func (d *daemon) Close() error {
	var errs []error
	if d.stopControl != nil { // its requests read the node; the socket goes with it
		d.stopControl()
	}
	if d.metricsSrv != nil { // its collectors read the node and the store
		errs = append(errs, d.metricsSrv.Close())
	}
	if d.node != nil {
		errs = append(errs, d.node.Close())
	}
	if d.stop != nil {
		d.stop()
	}
	if d.host != nil {
		errs = append(errs, d.host.Close())
	}
	if d.store != nil {
		errs = append(errs, d.store.Close())
	}
	if d.ks != nil {
		errs = append(errs, d.ks.Close())
	}
	return errors.Join(errs...)
}

// predictionSpan is how far ahead passes are predicted from orbit elements at start.
const predictionSpan = 7 * 24 * time.Hour

// loadContact builds a profile and its plan: from a plan file, or passes
// predicted from an elements file (TLE or OMM) over the configured
// station, or over every [[stations]] entry (see config.Contacts); the node
// gets the union of the stations' windows.
func loadContact(cfg *config.Config, kind, planFile, elementsFile string, now time.Time) (node.Contact, *plan.Contacts, error) {
	if kind == "" {
		kind = config.ProfileContinuous
	}
	k, err := node.ParseProfileKind(kind)
	if err != nil {
		return node.Contact{}, nil, err
	}
	c := node.Contact{Profile: node.ProfileFor(k)}
	for _, o := range []struct {
		v   time.Duration
		dst *time.Duration
	}{{cfg.Profile.HeartbeatInterval.Duration, &c.Profile.HeartbeatInterval}, {cfg.Profile.Guard.Duration, &c.Profile.Guard},
		{cfg.Profile.Grace.Duration, &c.Profile.Grace}, {cfg.Profile.RetryBase.Duration, &c.Profile.RetryBase},
		{cfg.Profile.RetryCeiling.Duration, &c.Profile.RetryCeiling}} {
		if o.v > 0 {
			*o.dst = o.v
		}
	}
	cs, err := cfg.Contacts(planFile, elementsFile, now, predictionSpan)
	if err != nil {
		return c, nil, err
	}
	if cs != nil {
		c.Plan = cs.Union()
	}
	return c, cs, nil
}

// nanoContacts loads what a master knows of each nano's passes: its
// profile and plan, and its windows per station.
func nanoContacts(cfg *config.Config, now time.Time) (map[peer.ID]node.Contact, map[peer.ID]*plan.Contacts, error) {
	out, all := map[peer.ID]node.Contact{}, map[peer.ID]*plan.Contacts{}
	for _, nn := range cfg.Nanos {
		id, err := peer.Decode(nn.PeerID)
		if err != nil {
			return nil, nil, fmt.Errorf("nanos: %w", err)
		}
		kind := nn.Profile
		if kind == "" && (nn.PlanFile != "" || nn.Elements() != "") {
			kind = config.ProfileOrbital
		}
		if kind == "" {
			continue
		}
		c, cs, err := loadContact(cfg, kind, nn.PlanFile, nn.Elements(), now)
		if err != nil {
			return nil, nil, fmt.Errorf("nano %s: %w", nn.PeerID, err)
		}
		out[id] = c
		if cs != nil {
			all[id] = cs
		}
	}
	return out, all, nil
}

// refreshPredictions predicts passes anew every half day for plans that
// come from orbit elements, configured or pushed, so the plan never runs
// out while the daemon runs.
func (d *daemon) refreshPredictions(ctx context.Context, log *slog.Logger) {
	tick := time.NewTicker(12 * time.Hour)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		d.repredict(time.Now(), log)
	}
}

// repredict is one turn of refreshPredictions: the configured elements
// first, then the pushed ones in force, which stay on top of them.
func (d *daemon) repredict(now time.Time, log *slog.Logger) {
	d.planMu.Lock()
	cfg := *d.cfg
	d.planMu.Unlock()
	uses := cfg.Profile.Elements() != ""
	for _, nn := range cfg.Nanos {
		uses = uses || nn.Elements() != ""
	}
	if uses {
		if pl, err := loadPlans(&cfg, d.node.ID(), d.node.Master(), d.node.Roles(), now); err != nil {
			log.Error("re-predicting passes failed; keeping the old plans", "err", err)
		} else {
			pl.apply(d.node, d.relay, d.nanoFleet, d.masterFleet)
		}
	}
	if d.nanoFleet != nil {
		if err := d.nanoFleet.Repredict(); err != nil {
			log.Error("re-predicting passes of the pushed elements failed; keeping the old plan", "err", err)
		}
	}
	if d.masterFleet != nil {
		if err := d.masterFleet.Repredict(); err != nil {
			log.Error("re-predicting passes of elements pushed to nanos failed; keeping the old plans", "err", err)
		}
	}
}
