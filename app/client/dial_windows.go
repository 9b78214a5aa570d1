package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/user"

	"github.com/Microsoft/go-winio"
	"golang.org/x/sys/windows"
)

// dialSocket connects to the service's pipe and checks who created it. Pipe
// names are global: another user could create ours first (squatting) and
// receive the CLI's requests, so the pipe's owner must be this user or SYSTEM.
func dialSocket(ctx context.Context, name string) (net.Conn, error) {
	c, err := winio.DialPipeContext(ctx, name)
	if err != nil {
		return nil, err
	}
	f, ok := c.(interface{ Fd() uintptr })
	if !ok {
		c.Close()
		return nil, errors.New("cannot check the pipe's owner")
	}
	if err := checkPipeOwner(windows.Handle(f.Fd())); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func checkPipeOwner(h windows.Handle) error {
	sd, err := windows.GetSecurityInfo(h, windows.SE_KERNEL_OBJECT, windows.OWNER_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("read the pipe's owner: %w", err)
	}
	owner, _, err := sd.Owner()
	if err != nil {
		return fmt.Errorf("read the pipe's owner: %w", err)
	}
	u, err := user.Current()
	if err != nil {
		return err
	}
	me, err := windows.StringToSid(u.Uid)
	if err != nil {
		return err
	}
	system, err := windows.CreateWellKnownSid(windows.WinLocalSystemSid)
	if err != nil {
		return err
	}
	if owner.Equals(me) || owner.Equals(system) {
		return nil
	}
	return &AccessDeniedError{Message: fmt.Sprintf("the pipe is owned by %s, not by you: another user may be impersonating the HyperOS service", owner)}
}

// isAccessDeniedDial: the pipe's security descriptor does not admit us, or the
// pipe is not ours.
func isAccessDeniedDial(err error) bool {
	var ad *AccessDeniedError
	return errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.As(err, &ad)
}
