package vm

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// ErrHostKeyMismatch means the guest offered a host key other than the pinned one:
// either the VM was rebuilt without its data disk, or something else answers.
var ErrHostKeyMismatch = errors.New("ssh host key does not match the pinned key")

// PinnedHostKey returns a callback accepting only the given keys. There is no
// bypass: a mismatch is an error for the caller to report.
func PinnedHostKey(keys []ssh.PublicKey) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		for _, k := range keys {
			if bytes.Equal(k.Marshal(), key.Marshal()) {
				return nil
			}
		}
		return fmt.Errorf("%w: %s offered %s %s", ErrHostKeyMismatch, hostname, key.Type(), ssh.FingerprintSHA256(key))
	}
}

// Dial connects to addr as root with signer, accepting only the pinned host keys.
func Dial(ctx context.Context, addr string, signer ssh.Signer, hostKeys []ssh.PublicKey) (*ssh.Client, error) {
	if len(hostKeys) == 0 {
		return nil, errors.New("no pinned host key: boot the VM first so that it can announce one")
	}
	algos := make([]string, 0, len(hostKeys))
	for _, k := range hostKeys {
		algos = append(algos, k.Type())
	}
	cfg := &ssh.ClientConfig{
		User:              "root",
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   PinnedHostKey(hostKeys),
		HostKeyAlgorithms: algos,
		Timeout:           15 * time.Second,
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ssh %s: %w", addr, err)
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// Run runs cmd over client and returns its combined output.
func Run(client *ssh.Client, cmd string) (string, error) {
	s, err := client.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

// GenerateKey writes a new ed25519 key pair: the private key at path (0600) and the
// public key at path+".pub". It refuses to overwrite an existing key.
func GenerateKey(path, comment string) (ssh.Signer, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("%s exists: refusing to overwrite a key", path)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("write key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " " + comment + "\n"
	if err := os.WriteFile(path+".pub", []byte(pub), 0o644); err != nil {
		return nil, fmt.Errorf("write public key: %w", err)
	}
	return signer, nil
}

// LoadKey reads a private key written by GenerateKey, refusing one that others
// can read.
func LoadKey(path string) (ssh.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %v): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return s, nil
}

// AuthorizedKey returns the authorized_keys line for signer.
func AuthorizedKey(signer ssh.Signer) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
}
