package lease

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeByRename replaces path the way bootpd does: a new file renamed over it.
func writeByRename(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func bootpdBlock(name, ip, mac string, lease int64) string {
	return fmt.Sprintf("{\n\tname=%s\n\tip_address=%s\n\thw_address=1,%s\n\tidentifier=1,%s\n\tlease=0x%x\n}\n", name, ip, mac, mac, lease)
}

// receive waits for the next lease; the deadline only bounds a broken test.
func receive(t *testing.T, ch <-chan Lease) Lease {
	t.Helper()
	select {
	case l, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return l
	case <-time.After(time.Minute):
		t.Fatal("no lease delivered")
	}
	return Lease{}
}

// TestWatcherRename replaces the file by rename three times with the poll set to
// an hour, so every delivery comes from fsnotify: the second and third prove the
// watch is re-added on the new file after the first was renamed over.
func TestWatcherRename(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dhcpd_leases")
	writeByRename(t, path, bootpdBlock("someone-else", "192.168.64.2", "2:0:0:0:0:1", 100))
	w := Bootpd(path)
	w.Poll = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mac := mustMAC(t, "52:54:08:0a:00:01")
	ch := w.Watch(ctx, mac, "hyperos")

	// Unrelated changes deliver nothing; the matching lease arrives.
	writeByRename(t, path, bootpdBlock("someone-else", "192.168.64.2", "2:0:0:0:0:1", 101))
	writeByRename(t, path, bootpdBlock("someone-else", "192.168.64.2", "2:0:0:0:0:1", 102)+
		bootpdBlock("whatever", "192.168.64.3", "52:54:8:a:0:1", 200))
	l := receive(t, ch)
	if l.IP.String() != "192.168.64.3" || l.Source != SourceBootpd {
		t.Fatalf("first lease %+v", l)
	}
	// A newer lease for the same MAC.
	writeByRename(t, path, bootpdBlock("hyperos", "192.168.64.4", "52:54:8:a:0:1", 300)+
		bootpdBlock("whatever", "192.168.64.3", "52:54:8:a:0:1", 200))
	if l := receive(t, ch); l.IP.String() != "192.168.64.4" {
		t.Fatalf("second lease %+v", l)
	}
	writeByRename(t, path, bootpdBlock("hyperos", "192.168.64.5", "52:54:8:a:0:1", 400))
	if l := receive(t, ch); l.IP.String() != "192.168.64.5" {
		t.Fatalf("third lease %+v", l)
	}
	cancel()
	for range ch { // the channel is closed once ctx ends
	}
}

// TestWatcherInPlace covers dnsmasq, which rewrites its file in place.
func TestWatcherInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dnsmasq.leases")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w := Dnsmasq(path)
	w.Poll = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan struct{})
	var got Lease
	var err error
	go func() {
		defer close(done)
		got, err = w.Wait(ctx, mustMAC(t, "52:54:00:00:00:01"), "")
	}()
	f, ferr := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if ferr != nil {
		t.Fatal(ferr)
	}
	fmt.Fprintf(f, "1764500000 52:54:00:00:00:01 10.0.0.9 hyperos *\n")
	f.Close()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if got.IP.String() != "10.0.0.9" || got.Hostname != "hyperos" || got.Source != SourceDnsmasq {
		t.Fatalf("got %+v", got)
	}
}

// TestWatcherFileAppearsLater: only the file can be watched, so a file that does
// not exist yet is found by the poll (shortened here) and then watched.
func TestWatcherFileAppearsLater(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dhcpd_leases")
	w := Bootpd(path)
	w.Poll = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := w.Watch(ctx, nil, "hyperos")
	writeByRename(t, path, bootpdBlock("hyperos", "192.168.64.8", "2:0:0:0:0:1", 1))
	if l := receive(t, ch); l.IP.String() != "192.168.64.8" {
		t.Fatalf("got %+v", l)
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dhcpd_leases")
	writeByRename(t, path, bootpdBlock("someone-else", "192.168.64.2", "2:0:0:0:0:1", 100))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Bootpd(path).Wait(ctx, mustMAC(t, "52:54:00:00:00:01"), "hyperos")
	if err == nil || !errorsIs(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}
