package client

import (
	"context"
	"errors"
	"net"

	"github.com/Microsoft/go-winio"
	"golang.org/x/sys/windows"
)

func dialSocket(ctx context.Context, name string) (net.Conn, error) {
	return winio.DialPipeContext(ctx, name)
}

// isAccessDeniedDial: the pipe's security descriptor does not admit us.
func isAccessDeniedDial(err error) bool {
	return errors.Is(err, windows.ERROR_ACCESS_DENIED)
}
