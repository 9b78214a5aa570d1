package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hyperos/hyperos/app/config"
	"github.com/hyperos/hyperos/app/shares"
	"github.com/hyperos/hyperos/guest/container"
	"github.com/hyperos/hyperos/hyper/link"
)

// TestShareThenGet runs `hyperos share` and `hyperos get` as a user would
// (two homes, TCP on 127.0.0.1): the link comes first on stdout, the tree
// comes out identical, and sharing again keeps the link.
func TestShareThenGet(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("hello"), 0o644)
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000)
	os.WriteFile(filepath.Join(src, "sub", "big.bin"), big, 0o755)

	share := func(ctx context.Context) (string, string, <-chan int) {
		t.Setenv("HYPEROS_HOME", filepath.Join(tmp, "seeder"))
		outR, outW := io.Pipe()
		errR, errW := io.Pipe()
		code := make(chan int, 1)
		go func() {
			code <- run(ctx, []string{"share", src, "--listen", "127.0.0.1:0"}, nil, outW, errW)
			outW.Close()
			errW.Close()
		}()
		first, err := bufio.NewReader(outR).ReadString('\n')
		if err != nil {
			t.Fatalf("share printed no link: %v", err)
		}
		go io.Copy(io.Discard, outR)
		line, err := bufio.NewReader(errR).ReadString('\n')
		if err != nil {
			t.Fatalf("share said nothing on stderr: %v", err)
		}
		go io.Copy(io.Discard, errR)
		m := regexp.MustCompile(`seeding on (\S+)`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("share said %q", line)
		}
		return strings.TrimSpace(first), m[1], code
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	l1, addr, code := share(ctx)
	if _, err := link.Parse(l1); err != nil {
		t.Fatalf("first line %q: %v", l1, err)
	}
	t.Setenv("HYPEROS_HOME", filepath.Join(tmp, "getter"))
	dest := filepath.Join(tmp, "out")
	var stderr bytes.Buffer
	if c := run(ctx, []string{"get", l1, dest, "--peer", addr}, nil, io.Discard, &stderr); c != 0 {
		t.Fatalf("get exited %d: %s", c, stderr.String())
	}
	if b, err := os.ReadFile(filepath.Join(dest, "sub", "big.bin")); err != nil || !bytes.Equal(b, big) {
		t.Fatalf("big.bin: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "a.txt")); string(b) != "hello" {
		t.Fatalf("a.txt: %q", b)
	}
	// A get with the seeder's own home, while it seeds, finds the drive's
	// storage in use, and says what to do.
	t.Setenv("HYPEROS_HOME", filepath.Join(tmp, "seeder"))
	stderr.Reset()
	if c := run(ctx, []string{"get", l1, filepath.Join(tmp, "same"), "--peer", addr}, nil, io.Discard, &stderr); c != 1 ||
		!strings.Contains(stderr.String(), "stop that one first, or give this one its own HYPEROS_HOME") {
		t.Fatalf("get beside a running share of its home exited %d: %s", c, stderr.String())
	}
	t.Setenv("HYPEROS_HOME", filepath.Join(tmp, "getter"))
	// One file by its link, into the current name.
	one := filepath.Join(tmp, "one.txt")
	if c := run(ctx, []string{"get", l1 + "a.txt", one, "--peer", addr}, nil, io.Discard, &stderr); c != 0 {
		t.Fatalf("get file exited %d: %s", c, stderr.String())
	}
	// The running share is found by `container boot` for a link of its drive.
	sharesDir := filepath.Join(tmp, "seeder", "state", "shares")
	_, port, _ := net.SplitHostPort(addr)
	var warn bytes.Buffer
	peers, err := withLocalShares(env{paths: config.Paths{State: filepath.Join(tmp, "seeder", "state")}, stderr: &warn},
		container.Spec{Link: l1 + "a.img", Peers: []string{"192.0.2.1:9"}})
	if err != nil || len(peers) != 2 || peers[1] != "_gateway:"+port {
		t.Fatalf("peers for the shared drive: %q %v (%s)", peers, err, warn.String())
	}
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("share exited %d", c)
	}
	if live, err := shares.Live(sharesDir); err != nil || len(live) != 0 {
		t.Fatalf("a stopped share is still offered: %+v %v", live, err)
	}

	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("hello again"), 0o644)
	l2, _, code2 := share(ctx2)
	if l2 != l1 {
		t.Fatalf("sharing again gave %s, first %s", l2, l1)
	}
	cancel2()
	<-code2
	st, err := os.Stat(filepath.Join(tmp, "seeder", "state", "hyper", "primary-key"))
	if err == nil && st.Mode().Perm() != 0o600 {
		t.Errorf("primary key mode %v", st.Mode().Perm())
	}
}

func TestGetUsage(t *testing.T) {
	t.Setenv("HYPEROS_HOME", t.TempDir())
	var stderr bytes.Buffer
	if c := run(context.Background(), []string{"get", "hyper://" + strings.Repeat("y", 52) + "/x"}, nil, io.Discard, &stderr); c != 2 {
		t.Fatalf("get without --peer exited %d: %s", c, stderr.String())
	}
	if c := run(context.Background(), []string{"get", "hyper://nope/x", "--peer", "127.0.0.1:1"}, nil, io.Discard, &stderr); c != 1 {
		t.Fatalf("bad link exited %d", c)
	}
	if c := run(context.Background(), []string{"share"}, nil, io.Discard, &stderr); c != 2 {
		t.Fatalf("share without a path exited %d", c)
	}
}
