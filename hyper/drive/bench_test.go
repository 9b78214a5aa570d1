package drive

import (
	"context"
	"io"
	"testing"

	"github.com/hyperos/hyperos/hyper/bee/memcore"
)

func benchDrive(b *testing.B, size int) *Drive {
	b.Helper()
	d := New(memcore.New(), memcore.New(), nil)
	if err := d.Put(context.Background(), "/big.bin", content(1, size), nil); err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkReadFile streams a 16 MiB file through Open.
func BenchmarkReadFile(b *testing.B) {
	const size = 16 << 20
	d := benchDrive(b, size)
	ctx := context.Background()
	b.SetBytes(size)
	buf := make([]byte, 32<<10)
	for b.Loop() {
		r, err := d.Open(ctx, "/big.bin")
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
		if err != nil || n != size {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkReadAt4K reads 4 KiB at scattered offsets of a 16 MiB file.
func BenchmarkReadAt4K(b *testing.B) {
	const size = 16 << 20
	d := benchDrive(b, size)
	ctx := context.Background()
	r, err := d.Open(ctx, "/big.bin")
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(buf)))
	for i := 0; b.Loop(); i++ {
		off := int64(i*1_000_003) % (size - 4096)
		if _, err := r.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEntry looks up one entry among 10000.
func BenchmarkEntry(b *testing.B) {
	ctx := context.Background()
	d := New(memcore.New(), memcore.New(), nil)
	bt, _ := d.Batch()
	for i := 0; i < 10000; i++ {
		if err := bt.PutEntry(ctx, "/d/"+itoa(i), Value{}); err != nil {
			b.Fatal(err)
		}
	}
	if err := bt.Flush(); err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		e, err := d.Entry(ctx, "/d/"+itoa(i*7919%10000))
		if err != nil || e == nil {
			b.Fatal(err)
		}
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	s := []byte{}
	for {
		s = append([]byte{digits[i%10]}, s...)
		i /= 10
		if i == 0 {
			return string(s)
		}
	}
}
