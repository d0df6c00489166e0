//go:build !nodht

package host

import "github.com/libp2p/go-libp2p/p2p/protocol/identify"

// startIdentify starts identify on h (Host.StartIdentify). The DHT is its
// only user, so a nodht build leaves it out (identify_off.go).
func startIdentify(h *Host, userAgent string) (identifyService, error) {
	ids, err := identify.NewIDService(h, identify.UserAgent(userAgent), identify.DisableSignedPeerRecord())
	if err != nil {
		return nil, err
	}
	ids.Start()
	return ids, nil
}
