package dtn

import (
	"bytes"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// QueueStats describes the entries for one destination at one level.
type QueueStats struct {
	Dest        string
	Level       Level
	Count       int
	Bytes       int64
	Oldest      time.Time // creation time of the oldest entry
	NextAttempt time.Time // zero: due now
	Failures    uint32
}

// EntryInfo is an entry without its payload, for listings.
type EntryInfo struct {
	Ref        Ref
	Dest       string
	Protocol   string
	ResourceID string
	Op         Op
	Level      Level
	Size       int
	Created    time.Time
	Attempts   uint32
}

// Report is a full scan of the queue.
type Report struct {
	Queues  []QueueStats
	Entries []EntryInfo // filled by List only
	Corrupt int         // values that failed authentication
}

// Stats scans the queue and summarises it per destination and level.
func (s *Store) Stats() (Report, error) { return s.scan(false) }

// List scans the queue and returns every entry without payloads, in
// per-destination FIFO order, plus the summary.
func (s *Store) List() (Report, error) { return s.scan(true) }

func (s *Store) scan(entries bool) (Report, error) {
	var rep Report
	type key struct {
		dest  string
		level Level
	}
	agg := map[key]*QueueStats{}
	recs := map[string]destRecord{}
	err := s.db.View(func(btx *bolt.Tx) error {
		tx := &Tx{s: s, btx: btx}
		if btx.Bucket([]byte(bucketQueue)) == nil {
			return nil
		}
		btx.Bucket([]byte(bucketDests)).ForEach(func(k, _ []byte) error {
			var rec destRecord
			if ok, err := tx.getSealed(bucketDests, bytes.Clone(k), &rec); ok && err == nil {
				recs[rec.Dest] = rec
			} else if err != nil {
				rep.Corrupt++
			}
			return nil
		})
		return btx.Bucket([]byte(bucketQueue)).ForEach(func(k, _ []byte) error {
			var e Entry
			if ok, err := tx.getSealed(bucketQueue, bytes.Clone(k), &e); err != nil || !ok {
				rep.Corrupt++
				return nil
			}
			created := time.Unix(0, e.Created)
			q := agg[key{e.Dest, e.Level}]
			if q == nil {
				q = &QueueStats{Dest: e.Dest, Level: e.Level, Oldest: created}
				agg[key{e.Dest, e.Level}] = q
			}
			q.Count++
			q.Bytes += int64(len(e.Payload))
			if created.Before(q.Oldest) {
				q.Oldest = created
			}
			if entries {
				rep.Entries = append(rep.Entries, EntryInfo{Ref: e.Ref, Dest: e.Dest, Protocol: e.Protocol,
					ResourceID: e.ResourceID, Op: e.Op, Level: e.Level, Size: len(e.Payload), Created: created, Attempts: e.Attempts})
			}
			return nil
		})
	})
	for _, q := range agg {
		if rec, ok := recs[q.Dest]; ok {
			q.Failures = rec.Failures
			if rec.NextAttempt != 0 {
				q.NextAttempt = time.Unix(0, rec.NextAttempt)
			}
		}
		rep.Queues = append(rep.Queues, *q)
	}
	sort.Slice(rep.Queues, func(i, j int) bool {
		a, b := rep.Queues[i], rep.Queues[j]
		if a.Dest != b.Dest {
			return a.Dest < b.Dest
		}
		return a.Level > b.Level
	})
	return rep, err
}
