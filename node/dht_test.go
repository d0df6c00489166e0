//go:build !nodht

package node

import (
	"testing"
	"time"

	"gardend/internal/testkeys"
	"gardend/record"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestDHTValidatorBindsKeysToOwners(t *testing.T) {
	tn, _, idx, _ := groundAndNanos(t)
	v := dhtValidator{n: idx[0].Node}
	alice, bob := testkeys.SoftKey(t), testkeys.SoftKey(t)
	aliceID, _ := peer.IDFromPrivateKey(alice)
	old := recordFor(t, tn, alice, 1, time.Now().Add(time.Hour))
	newer := recordFor(t, tn, alice, 2, time.Now().Add(time.Hour))
	if err := v.Validate(dhtKey(aliceID), newer); err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(dhtKey(aliceID), recordFor(t, tn, bob, 3, time.Now().Add(time.Hour))); err == nil {
		t.Fatal("bob's record accepted under alice's key")
	}
	tomb, _ := record.SignTombstone(tn.codec, alice, 2, time.Now())
	if i, err := v.Select(dhtKey(aliceID), [][]byte{old, newer, tomb}); err != nil || i != 2 {
		t.Fatalf("select = %d %v, want the tombstone (ties go to it)", i, err)
	}
	if i, _ := v.Select(dhtKey(aliceID), [][]byte{newer, old}); i != 0 {
		t.Fatal("select did not prefer the newest")
	}
}
