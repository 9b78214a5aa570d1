package secretstream

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// noiseFixture is the shared reference transcript
// (/work/shared/reference/hypercore-probes/fixture-noise.json, copied):
// a Node NoiseSecretStream pair with static seeds 0x11/0x22 and ephemeral
// seeds 0xe0/0xe1, recorded as raw bytes in each direction.
type noiseFixture struct {
	I2R                []string `json:"i2r"`
	R2I                []string `json:"r2i"`
	InitiatorStatic    string   `json:"initiatorStatic"`
	ResponderStatic    string   `json:"responderStatic"`
	HandshakeHash      string   `json:"handshakeHash"`
	ResponderDecrypted []string `json:"responderDecrypted"`
	StreamIDInitiator  string   `json:"streamIdInitiator"`
	StreamIDResponder  string   `json:"streamIdResponder"`
}

func loadNoiseFixture(t testing.TB) noiseFixture {
	t.Helper()
	raw, err := os.ReadFile("testdata/fixture-noise.json")
	if err != nil {
		t.Fatal(err)
	}
	var f noiseFixture
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.I2R) != 6 || len(f.R2I) != 2 {
		t.Fatalf("unexpected fixture shape: %d/%d frames", len(f.I2R), len(f.R2I))
	}
	return f
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seedKP(t testing.TB, fill byte) KeyPair {
	t.Helper()
	kp, err := KeyPairFromSeed(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// TestFixtureHandshake replays the handshake messages on both sides and
// checks every byte Go produces, the handshake hash and the stream ids.
func TestFixtureHandshake(t *testing.T) {
	f := loadNoiseFixture(t)
	is, rs := seedKP(t, 0x11), seedKP(t, 0x22)
	ie, re := seedKP(t, 0xe0), seedKP(t, 0xe1)
	if hex.EncodeToString(is.Public) != f.InitiatorStatic || hex.EncodeToString(rs.Public) != f.ResponderStatic {
		t.Fatal("seeded static keys differ from libsodium's crypto_sign_seed_keypair")
	}
	frame := func(msg []byte) string {
		return hex.EncodeToString(append(appendFrameHeader(nil, len(msg)), msg...))
	}
	ini := newHandshake(true, is, ie)
	res := newHandshake(false, rs, re)

	m1, err := ini.writeMessage()
	if err != nil {
		t.Fatal(err)
	}
	if frame(m1) != f.I2R[0] {
		t.Fatalf("msg1 = %s\nnode   %s", frame(m1), f.I2R[0])
	}
	if err := res.readMessage(m1); err != nil {
		t.Fatal(err)
	}
	m2, err := res.writeMessage()
	if err != nil {
		t.Fatal(err)
	}
	if frame(m2) != f.R2I[0] {
		t.Fatalf("msg2 = %s\nnode   %s", frame(m2), f.R2I[0])
	}
	if err := ini.readMessage(m2); err != nil {
		t.Fatal(err)
	}
	m3, err := ini.writeMessage()
	if err != nil {
		t.Fatal(err)
	}
	if frame(m3) != f.I2R[1] {
		t.Fatalf("msg3 = %s\nnode   %s", frame(m3), f.I2R[1])
	}
	if err := res.readMessage(m3); err != nil {
		t.Fatal(err)
	}
	if !ini.complete || !res.complete {
		t.Fatal("handshake not complete")
	}
	for _, hs := range []*handshake{ini, res} {
		if hex.EncodeToString(hs.hash[:]) != f.HandshakeHash {
			t.Errorf("handshake hash %x, node %s", hs.hash, f.HandshakeHash)
		}
	}
	if ini.tx != res.rx || ini.rx != res.tx {
		t.Error("split keys do not pair up")
	}
	if !bytes.Equal(ini.rs, rs.Public) || !bytes.Equal(res.rs, is.Public) {
		t.Error("remote static keys not learned")
	}
	idI, idR := StreamID(ini.hash[:], true), StreamID(ini.hash[:], false)
	if hex.EncodeToString(idI[:]) != f.StreamIDInitiator || hex.EncodeToString(idR[:]) != f.StreamIDResponder {
		t.Errorf("stream ids %x %x", idI, idR)
	}
	// Header frames carry the stream id first.
	if f.I2R[2][:6] != "380000" || f.I2R[2][6:6+64] != f.StreamIDInitiator || f.R2I[1][6:6+64] != f.StreamIDResponder {
		t.Error("fixture header frames do not start with the stream ids")
	}

	// Decrypt the initiator's data frames with the recorded header.
	var pull ssState
	pull.init(res.rx[:], unhex(t, f.I2R[2])[3+32:])
	for i, want := range f.ResponderDecrypted {
		fr := unhex(t, f.I2R[3+i])
		n := int(fr[0]) | int(fr[1])<<8 | int(fr[2])<<16
		if n != len(fr)-3 {
			t.Fatalf("frame %d length prefix %d for %d bytes", i, n, len(fr)-3)
		}
		body := fr[3:]
		out := make([]byte, len(body))
		tag, err := pull.pull(out, body)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if tag != tagMessage {
			t.Errorf("frame %d tag %d", i, tag)
		}
		if got := hex.EncodeToString(out[:len(body)-ssABytes]); got != want {
			t.Errorf("frame %d = %s, node %s", i, got, want)
		}
	}

	// Encrypting the same plaintexts with the same header must give
	// Node's exact bytes.
	var push ssState
	push.init(ini.tx[:], unhex(t, f.I2R[2])[3+32:])
	for i, pt := range f.ResponderDecrypted {
		got := push.push(appendFrameHeader(nil, len(unhex(t, pt))+ssABytes), unhex(t, pt), tagMessage)
		if hex.EncodeToString(got) != f.I2R[3+i] {
			t.Errorf("push frame %d = %x\nnode %s", i, got, f.I2R[3+i])
		}
	}
}

// scriptedPeer plays back recorded bytes on one end of a pipe and records
// what the Go side sends.
func TestFixtureConnServer(t *testing.T) {
	f := loadNoiseFixture(t)
	goSide, nodeSide := net.Pipe()
	defer goSide.Close()
	defer nodeSide.Close()
	eph := seedKP(t, 0xe1)
	srv := Server(goSide, &Config{KeyPair: seedKP(t, 0x22)})
	srv.ephemeral = &eph

	got := make(chan []byte, 1)
	go func() {
		// Node's side: send msg1, read msg2, send msg3 + header, read our
		// header, then send the data frames.
		defer close(got)
		var out []byte
		_, _ = nodeSide.Write(unhex(t, f.I2R[0]))
		buf := make([]byte, len(f.R2I[0])/2)
		if _, err := io.ReadFull(nodeSide, buf); err != nil {
			return
		}
		out = append(out, buf...)
		_, _ = nodeSide.Write(unhex(t, f.I2R[1]))
		_, _ = nodeSide.Write(unhex(t, f.I2R[2]))
		hdr := make([]byte, 59)
		if _, err := io.ReadFull(nodeSide, hdr); err != nil {
			return
		}
		out = append(out, hdr...)
		for _, fr := range f.I2R[3:] {
			_, _ = nodeSide.Write(unhex(t, fr))
		}
		got <- out
	}()
	_ = goSide.SetDeadline(time.Now().Add(10 * time.Second))
	for i, want := range f.ResponderDecrypted {
		msg, err := srv.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if hex.EncodeToString(msg) != want {
			t.Errorf("message %d = %x, node %s", i, msg, want)
		}
	}
	out := <-got
	if hex.EncodeToString(out[:len(f.R2I[0])/2]) != f.R2I[0] {
		t.Errorf("msg2 from Conn = %x", out[:99])
	}
	hdr := out[len(f.R2I[0])/2:]
	if hex.EncodeToString(hdr[:3+32]) != f.R2I[1][:70] {
		t.Errorf("header frame = %x, want prefix %s", hdr, f.R2I[1][:70])
	}
	if hex.EncodeToString(srv.HandshakeHash()) != f.HandshakeHash {
		t.Errorf("HandshakeHash = %x", srv.HandshakeHash())
	}
	if hex.EncodeToString(srv.RemotePublicKey()) != f.InitiatorStatic {
		t.Errorf("RemotePublicKey = %x", srv.RemotePublicKey())
	}
}

// TestFixtureConnClient checks the initiating Conn's bytes against Node's.
func TestFixtureConnClient(t *testing.T) {
	f := loadNoiseFixture(t)
	goSide, nodeSide := net.Pipe()
	defer goSide.Close()
	defer nodeSide.Close()
	eph := seedKP(t, 0xe0)
	cli := Client(goSide, &Config{KeyPair: seedKP(t, 0x11), RemotePublicKey: unhex(t, f.ResponderStatic)})
	cli.ephemeral = &eph
	_ = nodeSide.SetDeadline(time.Now().Add(10 * time.Second))
	done := make(chan error, 1)
	go func() { done <- cli.Handshake(t.Context()) }()

	read := func(n int) string {
		b := make([]byte, n)
		if _, err := io.ReadFull(nodeSide, b); err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(b)
	}
	if got := read(35); got != f.I2R[0] {
		t.Fatalf("msg1 = %s", got)
	}
	_, _ = nodeSide.Write(unhex(t, f.R2I[0]))
	if got := read(67); got != f.I2R[1] {
		t.Fatalf("msg3 = %s", got)
	}
	if got := read(59); got[:70] != f.I2R[2][:70] {
		t.Fatalf("header = %s", got)
	}
	_, _ = nodeSide.Write(unhex(t, f.R2I[1]))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(cli.HandshakeHash()) != f.HandshakeHash {
		t.Errorf("HandshakeHash = %x", cli.HandshakeHash())
	}
}
