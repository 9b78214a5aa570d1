// Package identity gives the guest the name and keys the host asked for: the
// hostname and root's authorized key from the kernel command line, and SSH host keys
// made on first boot (never baked into the image), kept on the data disk when there
// is one so that the host's pinned key survives a reboot.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hyperos/hyperos/guest/cmdline"
	"golang.org/x/crypto/ssh"
)

// Apply writes the hostname and authorized key of p under root ("/" in the guest).
// An empty field removes what it would have set, so a refused key leaves root with
// no authorized key at all rather than an old one.
func Apply(root string, p cmdline.Params) error {
	if p.Host != "" {
		if err := writeFile(filepath.Join(root, "etc/hostname"), []byte(p.Host+"\n"), 0o644); err != nil {
			return err
		}
		hosts := "127.0.0.1\tlocalhost\n127.0.1.1\t" + p.Host + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"
		if err := writeFile(filepath.Join(root, "etc/hosts"), []byte(hosts), 0o644); err != nil {
			return err
		}
	}
	sshDir := filepath.Join(root, "root/.ssh")
	keys := filepath.Join(sshDir, "authorized_keys")
	if p.SSHKey == "" {
		if err := os.Remove(keys); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", keys, err)
		}
		return nil
	}
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", sshDir, err)
	}
	if err := os.Chmod(sshDir, 0o700); err != nil {
		return err
	}
	return writeFile(keys, []byte(p.SSHKey+"\n"), 0o600)
}

// EnsureHostKey makes sure an ed25519 host key exists in store, creating it if
// needed, and installs it into sshDir (/etc/ssh). It returns the public key line.
func EnsureHostKey(store, sshDir string) (string, error) {
	priv := filepath.Join(store, "ssh_host_ed25519_key")
	pemBytes, err := os.ReadFile(priv)
	if errors.Is(err, fs.ErrNotExist) {
		pemBytes, err = generate()
		if err != nil {
			return "", err
		}
		if err := os.MkdirAll(store, 0o700); err != nil {
			return "", fmt.Errorf("create %s: %w", store, err)
		}
		if err := writeFile(priv, pemBytes, 0o600); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", fmt.Errorf("read host key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		return "", fmt.Errorf("host key %s is damaged: %w (remove it to make a new one)", priv, err)
	}
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	if err := writeFile(filepath.Join(sshDir, "ssh_host_ed25519_key"), pemBytes, 0o600); err != nil {
		return "", err
	}
	if err := writeFile(filepath.Join(sshDir, "ssh_host_ed25519_key.pub"), []byte(pub+" root@hyperos\n"), 0o644); err != nil {
		return "", err
	}
	return pub, nil
}

func generate() ([]byte, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(key, "root@hyperos")
	if err != nil {
		return nil, fmt.Errorf("encode host key: %w", err)
	}
	return pem.EncodeToMemory(block), nil
}

// writeFile replaces path atomically, so a crash leaves the old or the new content.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
