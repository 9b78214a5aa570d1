//go:build !windows

package client

import (
	"context"
	"errors"
	"net"
	"syscall"
)

func dialSocket(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", path)
}

// isAccessDeniedDial: the socket or its directory belongs to someone else.
func isAccessDeniedDial(err error) bool {
	return errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)
}
