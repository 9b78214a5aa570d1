package secretstream

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

func TestReadFrame(t *testing.T) {
	big := bytes.Repeat([]byte{7}, 300000)
	var stream []byte
	for _, p := range [][]byte{{}, []byte("abc"), big} {
		stream = append(appendFrameHeader(stream, len(p)), p...)
	}
	r := bytes.NewReader(stream)
	for i, want := range [][]byte{{}, []byte("abc"), big} {
		got, err := readFrame(r, MaxFrameSize)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("frame %d: %d bytes, %v", i, len(got), err)
		}
	}
	if _, err := readFrame(r, MaxFrameSize); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{1, 0}), 10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut length: %v", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{5, 0, 0, 1}), 10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut body: %v", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{11, 0, 0}), 10); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("over limit: %v", err)
	}
}

// TestReadFrameBoundedAllocation checks that announcing a 16 MiB frame
// and sending a few bytes costs about one read chunk, not 16 MiB.
func TestReadFrameBoundedAllocation(t *testing.T) {
	in := append([]byte{0xff, 0xff, 0xff}, make([]byte, 100)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 10; i++ {
		if _, err := readFrame(bytes.NewReader(in), MaxFrameSize); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / 10; per > 4*frameChunk {
		t.Fatalf("a stalled 16 MiB frame cost %d bytes", per)
	}
}
