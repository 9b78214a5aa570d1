package mux

import (
	"encoding/hex"
	"testing"
)

// FuzzHandleFrame feeds a sequence of arbitrary frames to a mux that has
// channels open and pair handlers registered: it must never panic, keep
// its tables bounded, and leave a consistent state (every remote slot's
// channel points back at it).
func FuzzHandleFrame(f *testing.F) {
	for _, h := range []string{
		"0000001c010105616c706861100102030405060708090a0b0c0d0e0f10026862020202",
		"0000001c010105616c706861100102030405060708090a0b0c0d0e0f100268610e010204626574610005686265746100010500036f6e650601fe70110100",
		"01000374776f",
		"0001020567616d6d610000",
		"000202",
		"0000010700057468726565020103",
		"000301",
		"00010105616c706861100102030405060708090a0b0c0d0e0f1005616761696e",
	} {
		b, _ := hex.DecodeString(h)
		f.Add(b, []byte{}, []byte{})
	}
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		conn := newFakeConn()
		go func() {
			for {
				select {
				case <-conn.out:
				case <-conn.closed:
					return
				}
			}
		}()
		m := New(conn)
		defer m.Close()
		m.Pair("alpha", nil, func(m *Mux, protocol string, id []byte) {
			_, _ = m.Open(ChannelConfig{Protocol: protocol, ID: id, OnMessage: func(*Channel, uint64, []byte) {}})
		})
		if _, err := m.Open(ChannelConfig{Protocol: "beta"}); err != nil {
			t.Fatal(err)
		}
		for _, frame := range [][]byte{a, b, c} {
			if err := m.handleFrame(frame); err != nil {
				break
			}
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if len(m.remote) > maxChannels {
			t.Fatalf("%d remote channels", len(m.remote))
		}
		for i, slot := range m.remote {
			if slot != nil && slot.ch != nil && slot.ch.remoteID != uint64(i+1) {
				t.Fatalf("remote slot %d points at channel with remote id %d", i+1, slot.ch.remoteID)
			}
		}
		seen := map[uint64]bool{}
		for _, id := range m.free {
			if seen[id] || (int(id) < len(m.local) && m.local[id] != nil) {
				t.Fatalf("free list %v holds id %d twice or in use", m.free, id+1)
			}
			seen[id] = true
		}
		for i, ch := range m.local {
			if ch != nil && ch.localID != uint64(i+1) {
				t.Fatalf("local slot %d holds channel %d", i+1, ch.localID)
			}
		}
	})
}
