package secretstream

import (
	"io"
	"net"
	"strconv"
	"testing"
)

// BenchmarkSecretStream measures one-way encrypted throughput (MB/s) for
// several message sizes over net.Pipe and loopback TCP.
func BenchmarkSecretStream(b *testing.B) {
	for _, transport := range []string{"pipe", "tcp"} {
		for _, size := range []int{1 << 10, 16 << 10, 64 << 10} {
			b.Run(transport+"/"+sizeName(size), func(b *testing.B) {
				var x, y net.Conn
				if transport == "pipe" {
					x, y = net.Pipe()
					b.Cleanup(func() { x.Close(); y.Close() })
				} else {
					x, y = tcpPair(b)
				}
				cli, srv := handshakePair(b, x, y, nil, nil)
				msg := make([]byte, size)
				done := make(chan error, 1)
				go func() {
					for i := 0; i < b.N; i++ {
						if _, err := srv.ReadMessage(); err != nil {
							done <- err
							return
						}
					}
					done <- nil
				}()
				b.SetBytes(int64(size))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := cli.WriteMessage(msg); err != nil {
						b.Fatal(err)
					}
				}
				if err := <-done; err != nil && err != io.EOF {
					b.Fatal(err)
				}
			})
		}
	}
}

// BenchmarkHandshake measures a full handshake plus header exchange.
func BenchmarkHandshake(b *testing.B) {
	for i := 0; i < b.N; i++ {
		x, y := net.Pipe()
		handshakePair(b, x, y, nil, nil)
		x.Close()
		y.Close()
	}
}

func sizeName(n int) string {
	if n%1024 == 0 {
		return strconv.Itoa(n/1024) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

// BenchmarkSeal measures sealing and opening a 64 KiB message in place,
// without I/O, with and without the ChaCha20 assembly.
func BenchmarkSeal(b *testing.B) {
	asm := []bool{false}
	if haveChachaAsm {
		asm = append(asm, true)
	}
	defer func(v bool) { haveChachaAsm = v }(haveChachaAsm)
	for _, on := range asm {
		b.Run("assembly="+strconv.FormatBool(on), func(b *testing.B) {
			haveChachaAsm = on
			key, header := make([]byte, 32), make([]byte, 24)
			var push, pull ssState
			push.init(key, header)
			pull.init(key, header)
			buf := make([]byte, sealHeadroom+1+64<<10+16)
			b.SetBytes(64 << 10)
			for i := 0; i < b.N; i++ {
				push.seal(buf, tagMessage)
				if _, err := pull.open(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
