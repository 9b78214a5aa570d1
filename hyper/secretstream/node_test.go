package secretstream

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

// nodeSecretstream mirrors testdata/node-secretstream.json, printed by
// hyper/testdata/node/transport-secretstream.js.
type nodeSecretstream struct {
	DH []struct {
		Name   string `json:"name"`
		Seed   string `json:"seed"`
		Remote string `json:"remote"`
		OK     bool   `json:"ok"`
		Out    string `json:"out"`
	} `json:"dh"`
	Streams []struct {
		Key          string  `json:"key"`
		Header       string  `json:"header"`
		StartCounter *uint32 `json:"startCounter"`
		Messages     []struct {
			Len    int    `json:"len"`
			Tag    byte   `json:"tag"`
			Cipher string `json:"cipher"`
		} `json:"messages"`
	} `json:"streams"`
	IDs struct {
		Hash      string `json:"hash"`
		Initiator string `json:"initiator"`
		Responder string `json:"responder"`
	} `json:"ids"`
}

func loadNodeSecretstream(t *testing.T) nodeSecretstream {
	t.Helper()
	raw, err := os.ReadFile("testdata/node-secretstream.json")
	if err != nil {
		t.Fatal(err)
	}
	var f nodeSecretstream
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.DH) == 0 || len(f.Streams) < 3 {
		t.Fatal("empty fixture")
	}
	return f
}

// TestNodeDH checks the Ed25519 DH against noise-curve-ed, including which
// remote points libsodium refuses.
func TestNodeDH(t *testing.T) {
	f := loadNodeSecretstream(t)
	rejected := 0
	for _, c := range f.DH {
		kp, err := KeyPairFromSeed(unhex(t, c.Seed))
		if err != nil {
			t.Fatal(err)
		}
		out, err := dh(kp.Private, unhex(t, c.Remote))
		if (err == nil) != c.OK {
			t.Errorf("dh %s (%s): err %v, libsodium ok=%v", c.Name, c.Remote, err, c.OK)
			continue
		}
		if !c.OK {
			rejected++
			continue
		}
		if hex.EncodeToString(out) != c.Out {
			t.Errorf("dh %s = %x, node %s", c.Name, out, c.Out)
		}
	}
	if rejected < 5 {
		t.Errorf("fixture only exercises %d rejections", rejected)
	}
}

// TestNodeSecretstream replays libsodium transcripts: Go's push must give
// the same bytes and Go's pull must recover every message and tag,
// including across TAG_REKEY.
func TestNodeSecretstream(t *testing.T) {
	f := loadNodeSecretstream(t)
	for si, s := range f.Streams {
		var push, pull ssState
		push.init(unhex(t, s.Key), unhex(t, s.Header))
		pull.init(unhex(t, s.Key), unhex(t, s.Header))
		if s.StartCounter != nil {
			// Start just below the 32-bit counter wrap, where libsodium rekeys.
			binary.LittleEndian.PutUint32(push.nonce[:4], *s.StartCounter)
			binary.LittleEndian.PutUint32(pull.nonce[:4], *s.StartCounter)
		}
		for i, m := range s.Messages {
			plain := make([]byte, m.Len)
			for j := range plain {
				plain[j] = byte(j*31 + m.Len)
			}
			got := push.push(nil, plain, m.Tag)
			if hex.EncodeToString(got) != m.Cipher {
				t.Fatalf("stream %d message %d (len %d, tag %d): push differs", si, i, m.Len, m.Tag)
			}
			ct := unhex(t, m.Cipher)
			out := make([]byte, len(ct))
			tag, err := pull.pull(out, ct)
			if err != nil {
				t.Fatalf("stream %d message %d: pull: %v", si, i, err)
			}
			if tag != m.Tag || !bytes.Equal(out[:m.Len], plain) {
				t.Fatalf("stream %d message %d: tag %d, plaintext mismatch", si, i, tag)
			}
		}
	}
}

// TestPullRejectsTampering flips each byte of a ciphertext in turn and
// checks that pull refuses it without advancing its state.
func TestPullRejectsTampering(t *testing.T) {
	f := loadNodeSecretstream(t)
	s := f.Streams[1]
	ct := unhex(t, s.Messages[0].Cipher)
	for i := range ct {
		var pull ssState
		pull.init(unhex(t, s.Key), unhex(t, s.Header))
		bad := bytes.Clone(ct)
		bad[i] ^= 1
		if _, err := pull.pull(make([]byte, len(bad)), bad); err == nil {
			t.Fatalf("flipping byte %d went unnoticed", i)
		}
		// The state did not move: the genuine message still decrypts.
		if _, err := pull.pull(make([]byte, len(ct)), ct); err != nil {
			t.Fatalf("state advanced after a rejected message: %v", err)
		}
	}
	// Replaying a message fails because the nonce has moved on.
	var pull ssState
	pull.init(unhex(t, s.Key), unhex(t, s.Header))
	if _, err := pull.pull(make([]byte, len(ct)), ct); err != nil {
		t.Fatal(err)
	}
	if _, err := pull.pull(make([]byte, len(ct)), ct); err == nil {
		t.Fatal("replayed message accepted")
	}
}

func TestNodeStreamIDs(t *testing.T) {
	f := loadNodeSecretstream(t)
	h := unhex(t, f.IDs.Hash)
	i, r := StreamID(h, true), StreamID(h, false)
	if hex.EncodeToString(i[:]) != f.IDs.Initiator || hex.EncodeToString(r[:]) != f.IDs.Responder {
		t.Errorf("stream ids %x %x, node %s %s", i, r, f.IDs.Initiator, f.IDs.Responder)
	}
}
