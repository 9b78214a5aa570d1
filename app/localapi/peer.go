package localapi

import (
	"errors"
	"net"
)

// Peer is who is on the other end of a connection, as the kernel reports it.
type Peer struct {
	UID int
	PID int // 0 when the platform does not say
}

type peerKey struct{}

// peerConn is an accepted connection with its peer's credentials, read once at
// accept time.
type peerConn struct {
	net.Conn
	peer Peer
}

// ErrInUse is returned by Listen when a live service already answers on the
// socket.
var ErrInUse = errors.New("a HyperOS service is already running for this HYPEROS_HOME")
