//go:build !linux && !darwin && !windows

package localapi

import (
	"fmt"
	"log/slog"
	"net"
	"runtime"
)

func ownerUID() int { return 0 }

// Listen is not implemented where the peer's credentials cannot be read: an
// API that anyone on the host could drive would be worse than none.
func Listen(path string, log *slog.Logger) (net.Listener, error) {
	return nil, fmt.Errorf("the HyperOS local API needs peer credentials on unix sockets, which are not implemented on %s", runtime.GOOS)
}
