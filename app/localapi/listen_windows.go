package localapi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/user"
	"time"

	"github.com/Microsoft/go-winio"
)

// ownerUID is -1: the pipe's security descriptor is the access check.
func ownerUID() int { return -1 }

// Listen creates the named pipe with a security descriptor that admits only the
// current user and SYSTEM (without one go-winio falls back to the default pipe
// ACL, which lets other users read). Pipes vanish with their process, so there
// is no stale file to clean up; a live one is detected by dialling it first.
func Listen(name string, log *slog.Logger) (net.Listener, error) {
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("find the current user's SID: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if c, err := winio.DialPipeContext(ctx, name); err == nil {
		c.Close()
		return nil, fmt.Errorf("%w (it answers on %s)", ErrInUse, name)
	}
	sddl := "D:P(A;;GA;;;" + u.Uid + ")(A;;GA;;;SY)"
	l, err := winio.ListenPipe(name, &winio.PipeConfig{SecurityDescriptor: sddl})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", name, err)
	}
	return l, nil
}
