package lease

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hyperos/hyperos/guest/ready"
	"golang.org/x/crypto/ssh"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func hostKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))
}

func TestFromReady(t *testing.T) {
	mac := mustMAC(t, "52:54:00:00:00:01")
	at := time.Unix(1_700_000_000, 0)
	info := ready.Info{Hostname: "hyperos", IPs: []string{"fd00::5", "10.0.2.15", "10.0.3.1"}}
	l, ok := FromReady(info, mac, at)
	if !ok || l.IP.String() != "10.0.2.15" || l.Hostname != "hyperos" || l.Source != SourceReady ||
		l.MAC.String() != mac.String() || !l.Time.Equal(at) {
		t.Fatalf("got %+v %v", l, ok)
	}
	info.IPs = []string{"fd00::5"}
	if l, ok := FromReady(info, mac, at); !ok || l.IP.String() != "fd00::5" {
		t.Fatalf("v6 only: %+v %v", l, ok)
	}
	info.IPs = nil
	if _, ok := FromReady(info, mac, at); ok {
		t.Fatal("lease from a ready line without addresses")
	}
}

// TestWaitReady reads a console log whose first ready line has no address yet.
func TestWaitReady(t *testing.T) {
	key := hostKey(t)
	noIP, err := ready.Format(ready.Info{Hostname: "hyperos", HostKeys: []string{key}, Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	withIP, err := ready.Format(ready.Info{Hostname: "hyperos", IPs: []string{"10.77.0.93"}, HostKeys: []string{key}, Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "console.log")
	content := "[    0.1] booting\r\n" + noIP + "\r\n" + "HYPEROS-READY {broken\n" + withIP + "\r\nmore\n"
	if err := os.WriteFile(log, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mac := mustMAC(t, "52:54:00:00:00:01")
	l, info, off, err := WaitReady(ctx, log, 0, nil, mac)
	if err != nil {
		t.Fatal(err)
	}
	if l.IP.String() != "10.77.0.93" || l.Source != SourceReady || info.HostKeys[0] != key {
		t.Fatalf("got %+v %+v", l, info)
	}
	if want := int64(strings.Index(content, "more")); off != want {
		t.Fatalf("offset %d, want %d", off, want)
	}
	// Nothing after the offset: the wait ends with the VM.
	_, _, _, err = WaitReady(ctx, log, off, func() bool { return false }, mac)
	if err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("err %v", err)
	}
}
