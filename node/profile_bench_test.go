package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/codec"
	"gardend/plan"
)

// BenchmarkMaintenancePerOrbit reports, per profile, the heartbeat and
// record bytes a nano exchanges with one indexer over one 95-minute orbit
// holding one 8-minute pass: real encoded messages (heartbeat with one
// pending contact, carrying the signed record when the sender's rule says
// so, and the indexer's response), sent when each profile's schedule says so.
func BenchmarkMaintenancePerOrbit(b *testing.B) {
	tn := newTestNet(b)
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	pass, _ := plan.New([]plan.Window{{Start: t0.Add(40 * time.Minute), End: t0.Add(48 * time.Minute)},
		{Start: t0.Add(135 * time.Minute), End: t0.Add(143 * time.Minute)}})
	master := tn.peerOf("master", RoleMaster)
	for _, k := range []ProfileKind{ProfileContinuous, ProfileIntermittent, ProfileOrbital} {
		b.Run(k.String(), func(b *testing.B) {
			now := t0
			c := Contact{Profile: ProfileFor(k)}
			if k == ProfileOrbital {
				c.Plan = pass
			}
			nano := tn.peerOf("nano-"+k.String(), RoleNano)
			nano.opts.Master = peer.AddrInfo{ID: master.host.ID()}
			nano.opts.Contact = c
			nano.opts.Now = func() time.Time { return now }
			n, err := New(nano.opts)
			if err != nil {
				b.Fatal(err)
			}
			var total, beats int
			for b.Loop() {
				total, beats = 0, 0
				var sched heartbeatSchedule
				var st recordSent // one heartbeat stream through the orbit
				for now = t0; now.Before(t0.Add(95 * time.Minute)); now = now.Add(time.Second) {
					if !sched.due(c, c.Profile.HeartbeatInterval, now) {
						continue
					}
					msg, commit, err := n.nextHeartbeat(&st, now)
					if err != nil {
						b.Fatal(err)
					}
					commit()
					msg.PendingContact = [][]byte{[]byte(master.host.ID())}
					hb, _ := tn.codec.EncodeMessage(msg)
					resp, _ := tn.codec.EncodeMessage(&HeartbeatResponse{FillRate: 0.01, PeerCount: 3, MaxNodes: 500, BornAt: uint64(t0.Unix())})
					total += len(codec.AppendFrame(nil, hb)) + len(codec.AppendFrame(nil, resp))
					beats++
				}
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(total), fmt.Sprintf("maintenance_bytes_per_orbit_%s", k))
			b.ReportMetric(float64(beats), fmt.Sprintf("maintenance_heartbeats_per_orbit_%s", k))
		})
	}
}
