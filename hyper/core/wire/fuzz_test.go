package wire

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// seedMessages adds every Node-produced fixture message to the corpus.
func seedMessages(f *testing.F) {
	b, err := os.ReadFile("testdata/messages.json")
	if err != nil {
		f.Fatal(err)
	}
	var fx struct {
		Messages []struct {
			Type string
			Hex  string
		}
		Manifests []struct{ Hex string }
		Multisig  []struct{ Hex string }
	}
	if err := json.Unmarshal(b, &fx); err != nil {
		f.Fatal(err)
	}
	for _, m := range fx.Messages {
		for t := MessageType(0); t < NumMessageTypes; t++ {
			if t.String() == m.Type {
				raw, _ := hex.DecodeString(m.Hex)
				f.Add(byte(t), raw)
			}
		}
	}
	for _, m := range append(fx.Manifests, fx.Multisig...) {
		raw, _ := hex.DecodeString(m.Hex)
		f.Add(byte(TypeData), append([]byte{16, 0, 0}, raw...))
	}
}

// FuzzUnmarshal checks that no input panics the decoders and that anything
// accepted re-encodes to a value that decodes identically.
func FuzzUnmarshal(f *testing.F) {
	seedMessages(f)
	f.Fuzz(func(t *testing.T, typ byte, data []byte) {
		mt := MessageType(typ % byte(NumMessageTypes+1))
		m, err := Unmarshal(mt, data)
		if err != nil {
			return
		}
		enc, err := Marshal(m)
		if err != nil {
			t.Fatalf("decoded %s does not re-encode: %v", mt, err)
		}
		m2, err := Unmarshal(mt, enc)
		if err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", mt, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("%s unstable:\n%+v\n%+v", mt, m, m2)
		}
	})
}

// FuzzManifest does the same for stored/hashed manifests and multisig blobs.
func FuzzManifest(f *testing.F) {
	seedMessages(f)
	f.Fuzz(func(t *testing.T, _ byte, data []byte) {
		if m, err := UnmarshalManifest(data); err == nil {
			enc, err := MarshalManifest(m)
			if err != nil {
				t.Fatal(err)
			}
			m2, err := UnmarshalManifest(enc)
			if err != nil || !reflect.DeepEqual(m, m2) {
				t.Fatalf("manifest unstable: %+v %+v %v", m, m2, err)
			}
		}
		if s, err := UnmarshalMultiSignature(data); err == nil {
			enc, err := MarshalMultiSignature(s)
			if err != nil {
				t.Fatal(err)
			}
			s2, err := UnmarshalMultiSignature(enc)
			if err != nil || !reflect.DeepEqual(s, s2) {
				t.Fatalf("multisig unstable: %+v %+v %v", s, s2, err)
			}
		}
		if s, err := UnmarshalMultiSignatureV0(data); err == nil {
			enc, err := MarshalMultiSignatureV0(s)
			if err != nil {
				t.Fatal(err)
			}
			s2, err := UnmarshalMultiSignatureV0(enc)
			if err != nil || !reflect.DeepEqual(s, s2) {
				t.Fatalf("multisig v0 unstable: %+v %+v %v", s, s2, err)
			}
		}
		if h, err := UnmarshalHandshake(data); err == nil {
			h2, err := UnmarshalHandshake(MarshalHandshake(h))
			if err != nil || *h != *h2 {
				t.Fatal("handshake unstable")
			}
		}
	})
}
