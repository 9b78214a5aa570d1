package mux

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkMuxSend measures channel message throughput (MB/s) through
// Protomux over a secretstream over loopback TCP, unbatched and corked in
// groups of 16.
func BenchmarkMuxSend(b *testing.B) {
	for _, size := range []int{64, 1024, 16 << 10} {
		for _, corked := range []bool{false, true} {
			name := strconv.Itoa(size) + "B"
			if corked {
				name += "/corked"
			}
			b.Run(name, func(b *testing.B) {
				ma, mb := securePair(b)
				got := make(chan struct{}, 1024)
				cfg := ChannelConfig{Protocol: "bench", OnMessage: func(*Channel, uint64, []byte) { got <- struct{}{} }}
				ca, err := ma.Open(cfg)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := mb.Open(cfg); err != nil {
					b.Fatal(err)
				}
				ma.Start()
				mb.Start()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, err := ca.WaitOpen(ctx); err != nil {
					b.Fatal(err)
				}
				payload := make([]byte, size)
				done := make(chan struct{})
				go func() {
					for i := 0; i < b.N; i++ {
						<-got
					}
					close(done)
				}()
				b.SetBytes(int64(size))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if corked && i%16 == 0 {
						ma.Cork()
					}
					if err := ca.SendContext(ctx, 0, payload); err != nil {
						b.Fatal(err)
					}
					if corked && (i%16 == 15 || i == b.N-1) {
						if err := ma.Uncork(); err != nil {
							b.Fatal(err)
						}
					}
				}
				<-done
			})
		}
	}
}
