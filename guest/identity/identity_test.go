package identity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hyperos/hyperos/guest/cmdline"
)

func TestApplyWritesKeyAndHost(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me"
	if err := Apply(root, cmdline.Params{Host: "simon", SSHKey: key}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "root/.ssh/authorized_keys"))
	if err != nil || string(got) != key+"\n" {
		t.Fatalf("authorized_keys = %q, %v", got, err)
	}
	fi, _ := os.Stat(filepath.Join(root, "root/.ssh/authorized_keys"))
	di, _ := os.Stat(filepath.Join(root, "root/.ssh"))
	if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Fatalf("modes %v %v", fi.Mode(), di.Mode())
	}
	host, _ := os.ReadFile(filepath.Join(root, "etc/hostname"))
	if string(host) != "simon\n" {
		t.Fatalf("hostname %q", host)
	}
	// A refused key on the next boot leaves no key behind.
	if err := Apply(root, cmdline.Params{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "root/.ssh/authorized_keys")); !os.IsNotExist(err) {
		t.Fatalf("old key still installed: %v", err)
	}
}

func TestHostKeyPersists(t *testing.T) {
	store, etc := t.TempDir(), t.TempDir()
	a, err := EnsureHostKey(store, etc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a, "ssh-ed25519 ") {
		t.Fatalf("public key %q", a)
	}
	etc2 := t.TempDir()
	b, err := EnsureHostKey(store, etc2)
	if err != nil || a != b {
		t.Fatalf("host key changed across boots: %q vs %q (%v)", a, b, err)
	}
	fi, err := os.Stat(filepath.Join(etc2, "ssh_host_ed25519_key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode: %v %v", fi, err)
	}
	c, err := EnsureHostKey(t.TempDir(), t.TempDir())
	if err != nil || c == a {
		t.Fatalf("a fresh store must give a fresh key: %v", err)
	}
	os.WriteFile(filepath.Join(store, "ssh_host_ed25519_key"), []byte("junk"), 0o600)
	if _, err := EnsureHostKey(store, etc); err == nil {
		t.Fatal("a damaged key was accepted")
	}
}
