package node

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"gardend/codec"
	"gardend/record"
	"gardend/swim"
)

// testPeer derives a real Ed25519 libp2p identity from a fixed seed byte, so
// sizes are those of real peer IDs and keys, and reproducible.
func testPeer(tb testing.TB, n byte) (peer.ID, crypto.PrivKey) {
	tb.Helper()
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = n
	priv, _, err := crypto.GenerateEd25519Key(fixedReader(seed))
	if err != nil {
		tb.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	return id, priv
}

type fixedReader []byte

func (f fixedReader) Read(p []byte) (int, error) { return copy(p, f), nil }

// seedPeerRecord and seedHeartbeat re-create the seed's JSON wire forms
// (SEED_SPEC §3.2–3.3 and §4.3.1) to compare sizes with the same content.
type seedPeerRecord struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	DID           string    `json:"did"`
	PubKey        []byte    `json:"public_key"`
	ExpiryDate    time.Time `json:"expiry_date"`
	IsNano        bool      `json:"is_nano"`
	MasterID      string    `json:"master_id,omitempty"`
	TTLSeconds    int       `json:"ttl_seconds,omitempty"`
	PeerID        string    `json:"peer_id"`
	APIUrl        string    `json:"api_url"`
	StreamAddress string    `json:"stream_address"`
	NATSAddress   string    `json:"nats_address"`
	WalletAddress string    `json:"wallet_address"`
	Signature     []byte    `json:"signature"`
	CreationDate  time.Time `json:"creation_date"`
	UpdateDate    time.Time `json:"update_date"`
}

type seedMemberEvent struct {
	Type        string `json:"type"`
	PeerID      string `json:"peer_id"`
	Incarnation uint64 `json:"incarnation"`
	HopsLeft    int    `json:"hops_left"`
}

type seedHeartbeat struct {
	Name                 string            `json:"name"`
	DID                  string            `json:"did"`
	PeerID               string            `json:"peer_id"`
	Timestamp            int64             `json:"timestamp"`
	IndexersBinded       []string          `json:"indexers_binded"`
	Score                float64           // no tag in the seed
	Record               json.RawMessage   `json:"record,omitempty"`
	Need                 int               `json:"need,omitempty"`
	Challenges           []string          `json:"challenges,omitempty"`
	ChallengeDID         string            `json:"challenge_did,omitempty"`
	Referent             bool              `json:"referent,omitempty"`
	SuspectedIncarnation *uint64           `json:"suspected_incarnation,omitempty"`
	MembershipEvents     []seedMemberEvent `json:"membership_events,omitempty"`
	PendingContact       []string          `json:"pending_contact,omitempty"`
}

// representativeHeartbeat is a nano's heartbeat to one of its three
// indexers: fresh record, a challenge batch, two SWIM events and two peers
// it holds critical messages for. Both encodings carry the same facts.
func representativeHeartbeat(tb testing.TB, c *codec.Codec) (cborMsg *Heartbeat, jsonMsg *seedHeartbeat) {
	self, selfKey := testPeer(tb, 1)
	master, _ := testPeer(tb, 2)
	var idx []peer.ID
	for i := range 3 {
		id, _ := testPeer(tb, byte(10+i))
		idx = append(idx, id)
	}
	waiting1, _ := testPeer(tb, 20)
	waiting2, _ := testPeer(tb, 21)
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	addr := ma.StringCast("/ip4/203.0.113.7/tcp/4001")
	pub, _ := crypto.MarshalPublicKey(selfKey.GetPublic())
	sig := make([]byte, ed25519.SignatureSize)

	rec := record.PeerRecord{Peer: []byte(self), PubKey: pub, Name: "sat-leo-07", Addrs: [][]byte{addr.Bytes()},
		Seq: 18345, Expires: uint64(now.Add(2 * time.Hour).Unix()), IsNano: true, Master: []byte(master),
		Profile: 3}
	recBytes, err := c.Marshal(record.Signed{Record: &rec, Signature: sig})
	if err != nil {
		tb.Fatal(err)
	}
	cborMsg = &Heartbeat{
		Time: uint64(now.Unix()), Name: "sat-leo-07", Record: recBytes, Need: 0,
		Indexers:     [][]byte{[]byte(idx[0]), []byte(idx[1]), []byte(idx[2])},
		Challenges:   [][]byte{[]byte(self), []byte(idx[1]), []byte(idx[2])},
		ChallengeKey: []byte(self), Referent: true, SuspectedIncarnation: 4,
		Events: []swim.Event{
			{Kind: swim.Suspect, Peer: []byte(idx[2]), Incarnation: 4, HopsLeft: 2},
			{Kind: swim.Alive, Peer: []byte(idx[1]), Incarnation: 7, HopsLeft: 3},
		},
		PendingContact: [][]byte{[]byte(waiting1), []byte(waiting2)},
	}

	did := "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"
	srec := seedPeerRecord{ID: did, Name: "sat-leo-07", DID: did, PubKey: pub, ExpiryDate: now.Add(2 * time.Hour),
		IsNano: true, MasterID: master.String(), TTLSeconds: 7200, PeerID: self.String(),
		StreamAddress: addr.String() + "/p2p/" + self.String(), WalletAddress: "my-wallet",
		Signature: sig, CreationDate: now, UpdateDate: now}
	srecBytes, _ := json.Marshal(srec)
	inc := uint64(4)
	jsonMsg = &seedHeartbeat{
		Name: "sat-leo-07", DID: did, PeerID: self.String(), Timestamp: now.Unix(),
		IndexersBinded: []string{idx[0].String(), idx[1].String(), idx[2].String()},
		Record:         srecBytes, Challenges: []string{self.String(), idx[1].String(), idx[2].String()},
		ChallengeDID: did, Referent: true, SuspectedIncarnation: &inc,
		MembershipEvents: []seedMemberEvent{
			{Type: "suspect", PeerID: idx[2].String(), Incarnation: 4, HopsLeft: 2},
			{Type: "alive", PeerID: idx[1].String(), Incarnation: 7, HopsLeft: 3},
		},
		PendingContact: []string{waiting1.String(), waiting2.String()},
	}
	return cborMsg, jsonMsg
}

func newCodec(tb testing.TB) *codec.Codec {
	tb.Helper()
	reg, err := NewRegistry()
	if err != nil {
		tb.Fatal(err)
	}
	c, err := codec.New(reg, codec.DefaultLimits())
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestHeartbeatRoundTrip(t *testing.T) {
	c := newCodec(t)
	hb, _ := representativeHeartbeat(t, c)
	body, err := c.EncodeMessage(hb)
	if err != nil {
		t.Fatal(err)
	}
	got, spec, err := c.DecodeMessage(ProtoHeartbeat, body)
	if err != nil || spec.Type != TypeHeartbeat || !c.Equal(got, hb) {
		t.Fatalf("round trip: %v %+v", err, got)
	}
}

// BenchmarkHeartbeatSize reports the bytes of one representative heartbeat
// on the wire (frame included for CBOR; the seed's JSON had no framing).
func BenchmarkHeartbeatSize(b *testing.B) {
	c := newCodec(b)
	hb, shb := representativeHeartbeat(b, c)
	body, err := c.EncodeMessage(hb)
	if err != nil {
		b.Fatal(err)
	}
	js, err := json.Marshal(shb)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(len(codec.AppendFrame(nil, body))), "heartbeat_bytes_cbor")
	b.ReportMetric(float64(len(js)+1), "heartbeat_bytes_json") // json.Encoder adds '\n'
	b.ReportMetric(float64(len(codec.AppendFrame(nil, body)))/float64(len(js)+1), "heartbeat_cbor_json_ratio")
}

func BenchmarkCodecEncodeHeartbeat(b *testing.B) {
	c := newCodec(b)
	hb, _ := representativeHeartbeat(b, c)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.EncodeMessage(hb); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecDecodeHeartbeat(b *testing.B) {
	c := newCodec(b)
	hb, _ := representativeHeartbeat(b, c)
	body, _ := c.EncodeMessage(hb)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.DecodeMessage(ProtoHeartbeat, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeedJSONEncodeHeartbeat(b *testing.B) {
	c := newCodec(b)
	_, shb := representativeHeartbeat(b, c)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(shb); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeedJSONDecodeHeartbeat(b *testing.B) {
	c := newCodec(b)
	_, shb := representativeHeartbeat(b, c)
	js, _ := json.Marshal(shb)
	b.ReportAllocs()
	for b.Loop() {
		var v seedHeartbeat
		if err := json.Unmarshal(js, &v); err != nil {
			b.Fatal(err)
		}
	}
}
