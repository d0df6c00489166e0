//go:build nodht

package host

import "errors"

// startIdentify fails: identify serves only the DHT, which this build
// leaves out, and with it the identify package.
func startIdentify(*Host, string) (identifyService, error) {
	return nil, errors.New("this gardend build has no identify, which only the DHT needs (built with -tags nodht)")
}
