//go:build linux || darwin

package localapi

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

func ownerUID() int { return os.Getuid() }

// Listen creates the unix socket at path, mode 0600 in a directory of mode 0700
// owned by this user. A socket file left by a crashed service is replaced, but
// only after dialling it shows nobody answers: unlinking a live service's socket
// would orphan it.
func Listen(path string, log *slog.Logger) (net.Listener, error) {
	if log == nil {
		log = slog.Default()
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("socket dir: %w", err)
	}
	if err := checkPrivateDir(dir); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket: move it away", path)
		}
		c, derr := net.DialTimeout("unix", path, 2*time.Second)
		if derr == nil {
			c.Close()
			return nil, fmt.Errorf("%w (it answers on %s)", ErrInUse, path)
		}
		log.Info("replacing a stale socket left by a service that stopped without cleaning up", "path", path, "dial", derr)
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove the stale socket: %w", err)
		}
	}
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ul.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ul.Close()
		return nil, fmt.Errorf("chmod the socket: %w", err)
	}
	return &credListener{UnixListener: ul, log: log}, nil
}

// checkPrivateDir makes sure dir belongs to us and nobody else can enter it; a
// directory under a shared /tmp could otherwise be prepared by another user.
func checkPrivateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("socket dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("socket dir %s is not a directory (a symlink?)", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("socket dir %s: cannot read its owner", dir)
	}
	if int(st.Uid) != os.Getuid() {
		return fmt.Errorf("socket dir %s belongs to uid %d, not to you (uid %d): remove it", dir, st.Uid, os.Getuid())
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("make the socket dir private: %w", err)
		}
	}
	return nil
}

// credListener reads each connection's peer credentials as it is accepted.
type credListener struct {
	*net.UnixListener
	log *slog.Logger
}

func (l *credListener) Accept() (net.Conn, error) {
	for {
		c, err := l.UnixListener.AcceptUnix()
		if err != nil {
			return nil, err
		}
		p, err := peerCred(c)
		if err != nil {
			l.log.Warn("dropping a connection whose credentials cannot be read", "err", err)
			c.Close()
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			continue
		}
		return &peerConn{Conn: c, peer: p}, nil
	}
}
