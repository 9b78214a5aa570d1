package config

import (
	"fmt"
	"os/user"
)

// Socket returns the local API's named pipe. Its name carries the user's SID and
// the home's id, so two users, or two homes of one user, get different pipes;
// the pipe's security descriptor (set by the daemon) admits only that user and
// SYSTEM.
func (p Paths) Socket() (string, error) {
	u, err := user.Current()
	if err != nil {
		return "", fmt.Errorf("find the current user's SID for the pipe name: %w", err)
	}
	return `\\.\pipe\hyperos-` + u.Uid + "-" + p.homeID(), nil
}
