package mux

import (
	"context"
	"errors"
	"fmt"
)

// MaxQueued is how many bytes may wait to be written before the mux gives
// up on the connection. Writes are queued, as in Node, so that a callback
// that sends never blocks the reader: two peers that both block writing
// while neither reads would deadlock once their socket buffers filled.
// Request-driven protocols such as Hypercore stay far below this; a bulk
// producer must pace itself with Channel.SendContext (or Flush).
const MaxQueued = 64 << 20

// HighWater is the queue size above which Channel.SendContext waits.
const HighWater = 4 << 20

// errQueueFull ends the mux when the remote stops reading.
var errQueueFull = errors.New("mux: write queue over MaxQueued; the remote is not reading")

// enqueue hands a frame to the writer goroutine. wmu is held, which keeps
// frames in the order their changes happened.
func (m *Mux) enqueue(frame []byte) error {
	m.qmu.Lock()
	if m.qstopped {
		m.qmu.Unlock()
		return ErrClosed
	}
	if m.queued+len(frame) > m.maxQueued {
		m.qmu.Unlock()
		go m.shutdown(errQueueFull)
		return errQueueFull
	}
	m.outq = append(m.outq, frame)
	m.queued += len(frame)
	m.enqueued++
	m.qmu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return nil
}

// writeLoop writes queued frames in order until the mux stops.
func (m *Mux) writeLoop() {
	for {
		m.qmu.Lock()
		frames := m.outq
		m.outq = nil
		m.qmu.Unlock()
		if len(frames) == 0 {
			select {
			case <-m.wake:
				continue
			case <-m.stopped:
				return
			}
		}
		n := 0
		for _, f := range frames {
			n += len(f)
		}
		if err := m.write(frames); err != nil {
			m.shutdown(fmt.Errorf("mux write: %w", err))
			return
		}
		m.qmu.Lock()
		m.queued -= n
		m.written += uint64(len(frames))
		close(m.progress)
		m.progress = make(chan struct{})
		m.qmu.Unlock()
	}
}

// BatchWriter is implemented by a Conn that can write several messages at
// once (secretstream.Conn gathers them into one write of its connection).
type BatchWriter interface {
	WriteMessages(msgs [][]byte) error
}

// write writes frames, all at once if the connection can.
func (m *Mux) write(frames [][]byte) error {
	if bw, ok := m.conn.(BatchWriter); ok && len(frames) > 1 {
		return bw.WriteMessages(frames)
	}
	for _, f := range frames {
		if err := m.conn.WriteMessage(f); err != nil {
			return err
		}
	}
	return nil
}

// Flush waits until everything sent before the call has been written to
// the connection. Use it for backpressure, or before Close to let the
// last messages out.
func (m *Mux) Flush(ctx context.Context) error {
	m.qmu.Lock()
	target := m.enqueued
	for m.written < target {
		progress := m.progress
		m.qmu.Unlock()
		select {
		case <-progress:
		case <-m.stopped:
			if err := m.Err(); err != nil {
				return fmt.Errorf("mux flush: %w", err)
			}
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("mux flush: %w", ctx.Err())
		}
		m.qmu.Lock()
	}
	m.qmu.Unlock()
	return nil
}

// waitQueue waits until at most HighWater bytes are queued.
func (m *Mux) waitQueue(ctx context.Context) error {
	m.qmu.Lock()
	for m.queued > HighWater && !m.qstopped {
		progress := m.progress
		m.qmu.Unlock()
		select {
		case <-progress:
		case <-m.stopped:
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("mux: wait for the write queue: %w", ctx.Err())
		}
		m.qmu.Lock()
	}
	m.qmu.Unlock()
	return nil
}
