// Package dtn is gardend's state database and its store-and-forward queue.
//
// One bbolt file holds everything a node must not lose: the DTN queue of
// messages owed to other peers, and the buckets of other packages
// (catalogue, bookings, peers), so that "apply a mutation and queue its
// acknowledgement" is one transaction (Store.Update). Every value is sealed
// with AES-256-GCM, the bucket and key as associated data; index keys are
// keyed hashes, never clear peer or resource IDs. The data key is random,
// stored only wrapped by the keystore's storage key (hsm).
//
// Writes are grouped: one writer at a time commits, taking every request
// waiting into one transaction and one fsync (group commit). A lone writer
// commits at once in its own goroutine (no hand-off to another one and
// back); concurrent writers share the sync. A call that writes returns only
// once its transaction is durable.
//
// See README.md in this directory for the on-disk layout and the delivery
// rules.
package dtn

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fxamacker/cbor/v2"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"gardend/hsm"
	"gardend/platform"
)

// Bucket names. Other packages' buckets must not start with "dtn.".
const (
	bucketMeta  = "meta"
	bucketQueue = "dtn.q" // destHash ‖ pos → sealed entry
	bucketDedup = "dtn.x" // hash(dest, family, resource) → sealed dedupRef
	bucketDests = "dtn.d" // destHash → sealed destRecord
	reservedPfx = "dtn."
	metaDataKey = "data-key" // wrapped data key (clear: it is ciphertext)
	metaVersion = "version"
	formatV1    = "1"
)

// FileName is the state database's name inside the data directory.
const FileName = "state.db"

// Options configure a store. Zero values take the defaults noted.
type Options struct {
	Policy              Policy           // protocol → level; required for LevelFor
	QuotaBytes          int64            // payload bytes the queue may hold; 0: 64 MiB
	MinFreeBytes        uint64           // refuse writes when the disk has less free; 0: 16 MiB
	MaxModerateAttempts int              // failed attempts before a moderate entry is dropped; 0: 3
	RetryBase           time.Duration    // first per-destination backoff; 0: 15 s
	RetryCeiling        time.Duration    // backoff ceiling; 0: 10 min
	MaxBatch            int              // requests grouped in one commit; 0: 256
	Now                 func() time.Time // clock; nil: time.Now
	ReadOnly            bool             // open for inspection (CLI); no writes
	LockTimeout         time.Duration    // wait for the file lock; 0: 500 ms
}

func (o *Options) fill() {
	if o.QuotaBytes == 0 {
		o.QuotaBytes = 64 << 20
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = 16 << 20
	}
	if o.MaxModerateAttempts == 0 {
		o.MaxModerateAttempts = 3
	}
	if o.RetryBase == 0 {
		o.RetryBase = 15 * time.Second
	}
	if o.RetryCeiling == 0 {
		o.RetryCeiling = 10 * time.Minute
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 256
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = 500 * time.Millisecond
	}
}

// Store is an open state database.
type Store struct {
	db   *bolt.DB
	path string
	opts Options
	seal *sealer
	enc  cbor.EncMode
	dec  cbor.DecMode

	reqs    chan *request // submitted, waiting for a commit
	quit    chan struct{}
	closing sync.Once
	closed  atomic.Bool
	// committer is held (a token in a channel of capacity 1) by the writer
	// committing now; it guards batch and dbClosed.
	committer chan struct{}
	batch     []*request
	dbClosed  bool

	mu       sync.Mutex // guards dests, total, ready, timers, lastTake
	dests    map[string]*destState
	total    int64               // payload bytes queued
	ready    map[string]struct{} // due now, not yet taken (TakeDue)
	timers   dueTimers           // destinations backing off, by next attempt
	lastTake int64               // clock at the last TakeDue

	wake chan struct{} // signalled when a destination becomes due at once

	Metrics Metrics

	quota atomic.Int64 // QuotaBytes, changed in flight by SetQuota
}

// SetQuota changes the payload bytes the queue may hold from the next
// write on (a pushed setting). Entries already queued stay; a quota below
// them only refuses growth until deliveries bring the queue under it.
func (s *Store) SetQuota(bytes int64) {
	if bytes > 0 {
		s.quota.Store(bytes)
	}
}

// Quota is the payload bytes the queue may hold.
func (s *Store) Quota() int64 { return s.quota.Load() }

// Metrics are counters for what the store did and refused.
type Metrics struct {
	Enqueued, Replaced, DroppedAfterDelete, DroppedCreateAfterUpdate atomic.Uint64
	Acked, StaleAcks, Failed, GaveUp                                 atomic.Uint64
	RefusedFull, Corrupt, Commits, CommittedRequests                 atomic.Uint64
}

// Open opens or creates the database at path. The data key is unwrapped
// with ks, or created and wrapped on first use. A database held by another
// process gives ErrLocked after opts.LockTimeout instead of hanging.
func Open(path string, ks hsm.Keystore, opts Options) (*Store, error) {
	opts.fill()
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:  opts.LockTimeout,
		ReadOnly: opts.ReadOnly,
		// The file is bounded by the quota plus headroom for bbolt's own
		// pages and free list; past it a write fails instead of filling flash.
		MaxSize: int(min(opts.QuotaBytes*4+(64<<20), 1<<31-1)),
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// Strings are stored as CBOR byte strings: peer IDs are binary, and a
	// text string must be valid UTF-8.
	encOpts := cbor.CoreDetEncOptions()
	encOpts.String = cbor.StringToByteString
	enc, err := encOpts.EncMode()
	if err != nil {
		db.Close()
		return nil, err
	}
	dec, err := cbor.DecOptions{ByteStringToString: cbor.ByteStringToStringAllowed}.DecMode()
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{db: db, path: path, opts: opts, enc: enc, dec: dec,
		reqs: make(chan *request, opts.MaxBatch), quit: make(chan struct{}), committer: make(chan struct{}, 1),
		dests: map[string]*destState{}, ready: map[string]struct{}{}, wake: make(chan struct{}, 1)}
	s.quota.Store(opts.QuotaBytes)
	if err := s.setup(ks); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	now := opts.Now().UnixNano()
	s.lastTake = now
	for d, st := range s.dests { // once, at open: what a restart owes is due
		s.scheduleLocked(d, st, now)
	}
	return s, nil
}

// setup reads (or on first open creates) the wrapped data key.
func (s *Store) setup(ks hsm.Keystore) error {
	var wrapped []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(bucketMeta)); b != nil {
			if v := b.Get([]byte(metaVersion)); v != nil && string(v) != formatV1 {
				return fmt.Errorf("database format %q is not supported by this gardend (want %s)", v, formatV1)
			}
			wrapped = append([]byte(nil), b.Get([]byte(metaDataKey))...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if wrapped == nil {
		if s.opts.ReadOnly {
			return fmt.Errorf("%s: not a gardend database, or never opened by a daemon", s.path)
		}
		dk := make([]byte, 32)
		rand.Read(dk)
		if wrapped, err = ks.WrapDataKey(dk); err != nil {
			return fmt.Errorf("wrap data key: %w", err)
		}
		err = s.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
			if err != nil {
				return err
			}
			for _, name := range []string{bucketQueue, bucketDedup, bucketDests} {
				if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
					return err
				}
			}
			if err := b.Put([]byte(metaVersion), []byte(formatV1)); err != nil {
				return err
			}
			return b.Put([]byte(metaDataKey), wrapped)
		})
		if err != nil {
			return mapWriteErr(err, Critical)
		}
	}
	dk, err := ks.UnwrapDataKey(wrapped)
	if errors.Is(err, hsm.ErrUnwrap) {
		return fmt.Errorf("%s: %w", s.path, ErrWrongKey)
	}
	if err != nil {
		return fmt.Errorf("unwrap data key: %w", err)
	}
	s.seal, err = newSealer(dk)
	clear(dk)
	return err
}

// Close commits the writes already submitted, then closes the file; later
// writes get ErrClosed. Calling it twice is safe.
func (s *Store) Close() error {
	var err error
	s.closing.Do(func() {
		s.closed.Store(true)
		close(s.quit)
		s.committer <- struct{}{} // wait for the writer committing now
		// Commit what was submitted before Close: callers are waiting.
		for s.commitWaiting() {
		}
		s.dbClosed = true
		err = s.db.Close()
		<-s.committer
	})
	return err
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Wake is signalled (capacity 1, never blocks the store) when a destination
// became due at once: a Nudge, an Ack that cleared a backoff, or an entry
// queued for a destination that is not backing off (a write is delivered
// at once, not at the next poll).
func (s *Store) Wake() <-chan struct{} { return s.wake }

func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// request is one write waiting for the committer.
type request struct {
	fn    func(*Tx) error
	err   error
	delta delta
	done  chan struct{}
}

// Update runs fn in a read-write transaction shared with other concurrent
// writers and returns once it is durable. If fn returns an error, nothing
// it did is kept. Use it to make a change in your own buckets and queue a
// DTN entry atomically.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	r, err := s.submit(ctx, fn)
	if err != nil {
		return err
	}
	return s.await(r)
}

// await waits for r's outcome: once submitted a request will commit or
// fail, so a nil error always means durable. While no one commits, the
// waiter does, taking every request waiting with its own.
func (s *Store) await(r *request) error {
	for {
		select {
		case <-r.done:
			return r.err
		default:
		}
		select {
		case <-r.done:
			return r.err
		case s.committer <- struct{}{}:
			s.commitWaiting()
			<-s.committer
		}
	}
}

// Submit queues fn as Update does but returns once it is queued, without
// waiting for the commit, which a goroutine of its own then drives as
// Update would; the channel gets the outcome. Close commits whatever was
// submitted before it. It is for a write that nothing
// waits on, such as the boot count a nano keeps for its reports, whose
// first commit (bbolt's write path run for the first time, about 25 ms
// under qemu-aarch64) would otherwise hold up the start.
func (s *Store) Submit(ctx context.Context, fn func(*Tx) error) (<-chan error, error) {
	r, err := s.submit(ctx, fn)
	if err != nil {
		return nil, err
	}
	out := make(chan error, 1)
	go func() { out <- s.await(r) }()
	return out, nil
}

func (s *Store) submit(ctx context.Context, fn func(*Tx) error) (*request, error) {
	if s.opts.ReadOnly {
		return nil, errors.New("DTN store opened read-only")
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	r := &request{fn: fn, done: make(chan struct{})}
	select {
	case s.reqs <- r:
		return r, nil
	case <-s.quit:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(*Tx) error) error {
	return s.db.View(func(btx *bolt.Tx) error { return fn(&Tx{s: s, btx: btx}) })
}

// commitWaiting commits every request waiting (up to MaxBatch) in one
// transaction; the caller holds the committer token. It reports whether
// there was any.
func (s *Store) commitWaiting() bool {
	batch := s.batch[:0]
fill:
	for len(batch) < s.opts.MaxBatch {
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		default:
			break fill
		}
	}
	if len(batch) == 0 {
		return false
	}
	if s.dbClosed {
		// Submitted while Close ran, after its last look.
		for _, r := range batch {
			r.err = ErrClosed
			close(r.done)
		}
	} else {
		s.commit(batch)
	}
	clear(batch) // keep no caller's request alive
	s.batch = batch
	return true
}

// commit runs the batch in one transaction. If one request fails, the
// transaction is rolled back and each request runs alone, so one bad
// request cannot take the others down with it.
func (s *Store) commit(batch []*request) {
	err := s.runTx(batch)
	if err != nil && len(batch) > 1 {
		for _, r := range batch {
			r.err = nil
			s.finish([]*request{r}, s.runTx([]*request{r}))
		}
		return
	}
	s.finish(batch, err)
}

func (s *Store) runTx(batch []*request) error {
	var failed *request
	disk := &diskRoom{}
	err := s.db.Update(func(btx *bolt.Tx) error {
		for _, r := range batch {
			r.delta = delta{}
			if err := r.fn(&Tx{s: s, btx: btx, d: &r.delta, batch: batch, disk: disk}); err != nil {
				r.err = err
				failed = r
				return err
			}
		}
		return nil
	})
	if err != nil && failed == nil {
		return mapWriteErr(err, batchLevel(batch))
	}
	return err
}

func (s *Store) finish(batch []*request, err error) {
	s.Metrics.Commits.Add(1)
	if err == nil {
		s.mu.Lock()
		for _, r := range batch {
			s.apply(&r.delta)
		}
		s.mu.Unlock()
		s.Metrics.CommittedRequests.Add(uint64(len(batch)))
	}
	for _, r := range batch {
		if err != nil && r.err == nil {
			r.err = err
		}
		if errors.Is(r.err, ErrStoreFull) {
			s.Metrics.RefusedFull.Add(1)
		}
		close(r.done)
	}
}

// mapWriteErr turns "out of space" from the disk or bbolt's size bound into
// ErrStoreFull; nothing was written.
func mapWriteErr(err error, level Level) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, berrors.ErrMaxSizeReached) {
		return fmt.Errorf("%w: %v", &FullError{Level: level, Reason: "disk"}, err)
	}
	return err
}

func batchLevel(batch []*request) Level {
	l := Moderate
	for _, r := range batch {
		if r.delta.maxLevel > l {
			l = r.delta.maxLevel
		}
	}
	return l
}

// Tx is a transaction on the store: DTN operations plus sealed buckets for
// other packages.
type Tx struct {
	s     *Store
	btx   *bolt.Tx
	d     *delta
	batch []*request
	disk  *diskRoom // shared by the requests of one commit
	// moving: the entry being queued carries one this transaction took
	// (Move), so the quota is checked with a relay's headroom.
	moving bool
}

// diskRoom is the free-disk check of one commit: the disk is asked once
// per transaction, not once per entry queued in it.
type diskRoom struct {
	asked, ok bool
}

// diskOK reports whether the disk has room for this transaction's writes.
func (tx *Tx) diskOK() bool {
	if tx.disk == nil {
		return tx.s.freeSpaceOK()
	}
	if !tx.disk.asked {
		tx.disk.asked, tx.disk.ok = true, tx.s.freeSpaceOK()
	}
	return tx.disk.ok
}

func checkBucket(name string) error {
	if name == "" || name == bucketMeta || strings.HasPrefix(name, reservedPfx) {
		return fmt.Errorf("%w: %q", ErrReservedBucket, name)
	}
	return nil
}

// Put seals value under key in bucket, creating the bucket if needed. Use
// Hash to turn identifiers into keys.
func (tx *Tx) Put(bucket string, key, value []byte) error {
	if err := checkBucket(bucket); err != nil {
		return err
	}
	b, err := tx.btx.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		return err
	}
	return b.Put(key, tx.s.seal.seal(bucket, key, value))
}

// Get returns the opened value of key in bucket, nil if absent. A value that
// fails authentication is a *CorruptError (and counted).
func (tx *Tx) Get(bucket string, key []byte) ([]byte, error) {
	if err := checkBucket(bucket); err != nil {
		return nil, err
	}
	b := tx.btx.Bucket([]byte(bucket))
	if b == nil {
		return nil, nil
	}
	v := b.Get(key)
	if v == nil {
		return nil, nil
	}
	plain, err := tx.s.seal.open(bucket, key, v)
	if err != nil {
		tx.s.Metrics.Corrupt.Add(1)
	}
	return plain, err
}

// Delete removes key from bucket.
func (tx *Tx) Delete(bucket string, key []byte) error {
	if err := checkBucket(bucket); err != nil {
		return err
	}
	if b := tx.btx.Bucket([]byte(bucket)); b != nil {
		return b.Delete(key)
	}
	return nil
}

// ForEach calls fn with every key and opened value of bucket, in key order.
// Values that fail authentication are skipped and counted.
func (tx *Tx) ForEach(bucket string, fn func(key, value []byte) error) error {
	if err := checkBucket(bucket); err != nil {
		return err
	}
	b := tx.btx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		plain, err := tx.s.seal.open(bucket, k, v)
		if err != nil {
			tx.s.Metrics.Corrupt.Add(1)
			return nil
		}
		return fn(k, plain)
	})
}

// Range calls fn with the keys and opened values of bucket from start on,
// in key order, until fn returns false or an error: bounded work over a
// bucket whose keys are ordered (by time, say). Values that fail
// authentication are skipped and counted. fn must not change the bucket;
// collect keys and delete them after.
func (tx *Tx) Range(bucket string, start []byte, fn func(key, value []byte) (more bool, err error)) error {
	if err := checkBucket(bucket); err != nil {
		return err
	}
	b := tx.btx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	c := b.Cursor()
	for k, v := c.Seek(start); k != nil; k, v = c.Next() {
		plain, err := tx.s.seal.open(bucket, k, v)
		if err != nil {
			tx.s.Metrics.Corrupt.Add(1)
			continue
		}
		more, err := fn(k, plain)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// Hash returns the keyed hash of identifier parts under a domain, for use as
// a key: the database never holds the identifiers in clear.
func (tx *Tx) Hash(domain string, parts ...[]byte) []byte { return tx.s.seal.hash(domain, parts...) }

// Now is the store's clock.
func (tx *Tx) Now() time.Time { return tx.s.opts.Now() }

// HasRoom reports whether the disk holding the store has more free space
// than the reserve: whether a critical entry could be written now.
func (s *Store) HasRoom() bool { return s.freeSpaceOK() }

// freeSpaceOK reports whether the disk has room for a write.
func (s *Store) freeSpaceOK() bool {
	free, err := platform.FreeBytes(filepath.Dir(s.path))
	return err != nil || free >= s.opts.MinFreeBytes
}

// bucketHealth is the bucket the health check writes to.
const bucketHealth = "health"

// CheckWritable makes one small durable write: the watchdog's proof that
// the store still works, beyond there being room.
func (s *Store) CheckWritable(ctx context.Context) error {
	if !s.freeSpaceOK() {
		return &FullError{Level: Critical, Reason: "disk"}
	}
	return s.Update(ctx, func(tx *Tx) error {
		return tx.Put(bucketHealth, []byte("last"), []byte(tx.Now().UTC().Format(time.RFC3339Nano)))
	})
}

// Check runs bbolt's consistency check over the whole file.
func (s *Store) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}
