package secretstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hyperos/hyperos/internal/nodetest"
)

// requireNode returns the node binary with the pinned packages installed; see
// hyper/internal/nodetest.
func requireNode(t *testing.T) string {
	t.Helper()
	return nodetest.Require(t)
}

// TestInteropPresetKeys runs FromKeys against Node's NoiseSecretStream
// started with { handshake } (the hyperdht path), with Go in either role.
func TestInteropPresetKeys(t *testing.T) {
	node := requireNode(t)
	is, rs := seedKP(t, 0x31), seedKP(t, 0x32)
	ini := newHandshake(true, is, seedKP(t, 0x41))
	res := newHandshake(false, rs, seedKP(t, 0x42))
	for !ini.complete || !res.complete {
		w, r := ini, res
		if ini.step%2 == 1 {
			w, r = res, ini
		}
		msg, err := w.writeMessage()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.readMessage(msg); err != nil {
			t.Fatal(err)
		}
	}
	for _, goInitiator := range []bool{true, false} {
		t.Run("go-initiator="+strconv.FormatBool(goInitiator), func(t *testing.T) {
			goHS, nodeHS := ini, res
			goKP, nodeKP := is, rs
			if !goInitiator {
				goHS, nodeHS, goKP, nodeKP = res, ini, rs, is
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			_, port, _ := net.SplitHostPort(ln.Addr().String())
			cmd := nodetest.Command(t, node, "transport-preset.js", port, strconv.FormatBool(!goInitiator),
				hex.EncodeToString(nodeHS.tx[:]), hex.EncodeToString(nodeHS.rx[:]), hex.EncodeToString(nodeHS.hash[:]),
				hex.EncodeToString(nodeKP.Public), hex.EncodeToString(goKP.Public))
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if cmd.ProcessState == nil {
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
				}
			}()
			_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(15 * time.Second))
			raw, err := ln.Accept()
			if err != nil {
				t.Fatalf("accept: %v\n%s", err, stderr.String())
			}
			defer raw.Close()
			_ = raw.SetDeadline(time.Now().Add(15 * time.Second))
			c := FromKeys(raw, goInitiator, Keys{Tx: goHS.tx, Rx: goHS.rx, Hash: goHS.hash[:], PublicKey: goKP.Public, RemotePublicKey: nodeKP.Public}, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if err := c.Handshake(ctx); err != nil {
				t.Fatalf("header exchange: %v\n%s", err, stderr.String())
			}
			big := bytes.Repeat([]byte("0123456789abcdef"), 40000)
			for _, msg := range [][]byte{[]byte("hello"), big, []byte("bye")} {
				if err := c.WriteMessage(msg); err != nil {
					t.Fatal(err)
				}
				got, err := c.ReadMessage()
				if err != nil {
					t.Fatalf("read: %v\n%s", err, stderr.String())
				}
				if !bytes.Equal(got, append([]byte("echo:"), msg...)) {
					t.Fatalf("got %d bytes %.20q", len(got), got)
				}
			}
			// Node ended its side after 'bye'; we see the end of the stream.
			if _, err := c.ReadMessage(); err == nil {
				t.Fatal("expected the end of the stream")
			}
			_ = c.Close()
			if err := cmd.Wait(); err != nil {
				t.Fatalf("node: %v\n%s", err, stderr.String())
			}
			sc := bufio.NewScanner(&stdout)
			var events []string
			for sc.Scan() {
				var ev map[string]any
				if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
					t.Fatalf("node printed %q", sc.Text())
				}
				if ev["event"] == "error" {
					t.Fatalf("node error: %v", ev)
				}
				events = append(events, fmt.Sprint(ev["event"]))
			}
			if len(events) != 4 || events[3] != "closed" {
				t.Fatalf("node events %v", events)
			}
		})
	}
}
