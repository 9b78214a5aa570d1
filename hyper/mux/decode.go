package mux

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/hyperos/hyperos/hyper/compact"
)

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

// handleFrame processes one incoming frame. Any error means the remote
// broke the protocol (Node destroys the stream on these) and ends the mux.
func (m *Mux) handleFrame(frame []byte) error {
	if len(frame) == 0 {
		return nil // keepalive; Node ignores empty frames too
	}
	d := compact.NewDecoder(frame)
	id, err := d.Uint()
	if err != nil {
		return protoErr("channel id: %v", err)
	}
	return m.handleMessage(id, d, 0)
}

// handleMessage handles uint type ‖ payload for the remote's channel id.
func (m *Mux) handleMessage(remoteID uint64, d *compact.Decoder, depth int) error {
	typ, err := d.Uint()
	if err != nil {
		return protoErr("message type: %v", err)
	}
	if remoteID == 0 {
		return m.handleControl(typ, d, depth)
	}
	m.mu.Lock()
	var ch *Channel
	if remoteID <= uint64(len(m.remote)) {
		if slot := m.remote[remoteID-1]; slot != nil {
			ch = slot.ch
		}
	}
	m.mu.Unlock()
	// Messages for closed or unknown channels are ignored, as in Node:
	// they may have been in flight when we closed.
	if ch == nil || ch.cfg.OnMessage == nil {
		return nil
	}
	payload, _ := d.Raw()
	ch.cfg.OnMessage(ch, typ, payload)
	return nil
}

func (m *Mux) handleControl(typ uint64, d *compact.Decoder, depth int) error {
	switch typ {
	case typeBatch:
		return m.handleBatch(d, depth)
	case typeOpen:
		rid, err := d.Uint()
		if err != nil {
			return protoErr("open: %v", err)
		}
		protocol, err := d.String()
		if err != nil {
			return protoErr("open: %v", err)
		}
		id, err := d.OptionalBuffer()
		if err != nil {
			return protoErr("open: %v", err)
		}
		handshake, _ := d.Raw()
		// Copy both: they alias the frame, which may be megabytes of
		// batch that a long-lived channel should not pin.
		return m.handleOpen(rid, protocol, bytes.Clone(id), bytes.Clone(handshake))
	case typeReject:
		lid, err := d.Uint()
		if err != nil {
			return protoErr("reject: %v", err)
		}
		return m.handleReject(lid)
	case typeClose:
		rid, err := d.Uint()
		if err != nil {
			return protoErr("close: %v", err)
		}
		m.handleClose(rid)
		return nil
	default:
		return nil // unknown control messages are ignored
	}
}

// handleBatch walks uint channel ‖ repeat(uint len ‖ entry). Like Node, an
// entry whose length runs past the end is cut at the end.
func (m *Mux) handleBatch(d *compact.Decoder, depth int) error {
	if depth >= maxBatchDepth {
		return protoErr("batches nested deeper than %d", maxBatchDepth)
	}
	rid, err := d.Uint()
	if err != nil {
		return protoErr("batch: %v", err)
	}
	for d.Remaining() > 0 {
		n, err := d.Uint()
		if err != nil {
			return protoErr("batch entry length: %v", err)
		}
		if n == 0 {
			if rid, err = d.Uint(); err != nil {
				return protoErr("batch channel switch: %v", err)
			}
			continue
		}
		entry, err := d.Fixed(int(min(n, uint64(d.Remaining()))))
		if err != nil {
			return protoErr("batch entry: %v", err)
		}
		if err := m.handleMessage(rid, compact.NewDecoder(entry), depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (m *Mux) handleOpen(remoteID uint64, protocol string, id, handshake []byte) error {
	if remoteID == 0 {
		// Node refuses opens of the control channel the same way.
		return m.sendReject(0)
	}
	k := key(protocol, id)
	m.mu.Lock()
	rid := remoteID - 1
	if rid == uint64(len(m.remote)) {
		if len(m.remote) >= maxChannels {
			m.mu.Unlock()
			return protoErr("remote opened more than %d channels", maxChannels)
		}
		m.remote = append(m.remote, nil)
	}
	if rid >= uint64(len(m.remote)) || m.remote[rid] != nil {
		m.mu.Unlock()
		return protoErr("open of channel %d, which is in use or skips ids", remoteID)
	}
	in := m.getInfo(k)
	if len(in.outgoing) > 0 {
		lid := in.outgoing[0]
		in.outgoing = in.outgoing[1:]
		ch := m.local[lid-1]
		if ch == nil {
			// We closed it before the remote answered; now the id is free.
			m.free = append(m.free, lid-1)
			m.gc(k)
			m.mu.Unlock()
			return nil
		}
		m.remote[rid] = &remoteSlot{ch: ch, handshake: handshake}
		ch.remoteID = remoteID
		ch.remoteHandshake = handshake
		m.mu.Unlock()
		m.fireOpen(ch)
		return nil
	}

	// Nothing local: ask the pair handler.
	m.remote[rid] = &remoteSlot{handshake: handshake}
	in.incoming = append(in.incoming, remoteID)
	fn := m.pairs[key(protocol, id)]
	if fn == nil {
		fn = m.pairs[pairKey(protocol, nil)]
	}
	m.mu.Unlock()
	if fn != nil {
		fn(m, protocol, id)
	}
	m.mu.Lock()
	reject := false
	if in := m.infos[k]; in != nil {
		if i := slices.Index(in.incoming, remoteID); i >= 0 {
			in.incoming = slices.Delete(in.incoming, i, i+1)
			m.remote[rid] = nil
			reject = true
		}
	}
	m.gc(k)
	pending := m.pending
	m.pending = nil
	m.mu.Unlock()
	for _, ch := range pending {
		m.fireOpen(ch)
	}
	if reject {
		return m.sendReject(remoteID)
	}
	return nil
}

func (m *Mux) sendReject(remoteID uint64) error {
	var e compact.Encoder
	e.Uint(typeReject)
	e.Uint(remoteID)
	m.wmu.Lock()
	defer m.wmu.Unlock()
	return m.writeLocked(0, e.Bytes())
}

func (m *Mux) fireOpen(ch *Channel) {
	m.mu.Lock()
	if ch.closed || ch.opened {
		m.mu.Unlock()
		return
	}
	ch.opened = true
	hs := ch.remoteHandshake
	m.mu.Unlock()
	// OnOpen runs before WaitOpen returns, so a caller that waited sees
	// whatever the callback set up.
	if ch.cfg.OnOpen != nil {
		ch.cfg.OnOpen(ch, hs)
	}
	close(ch.openedC)
}

func (m *Mux) handleReject(localID uint64) error {
	m.mu.Lock()
	for k, in := range m.infos {
		i := slices.Index(in.outgoing, localID)
		if i < 0 {
			continue
		}
		in.outgoing = slices.Delete(in.outgoing, i, i+1)
		m.free = append(m.free, localID-1)
		ch := m.local[localID-1]
		if ch != nil && ch.closed {
			ch = nil // the mux is shutting down and closed it already
		}
		if ch != nil {
			ch.rejected = true
			m.closeChannelLocked(ch)
		}
		m.gc(k)
		m.mu.Unlock()
		if ch != nil {
			ch.fireClose(true)
		}
		return nil
	}
	m.mu.Unlock()
	return protoErr("reject of channel %d, which we are not opening", localID)
}

func (m *Mux) handleClose(remoteID uint64) {
	m.mu.Lock()
	if remoteID == 0 || remoteID > uint64(len(m.remote)) {
		m.mu.Unlock()
		return
	}
	slot := m.remote[remoteID-1]
	if slot == nil || slot.ch == nil || slot.ch.closed {
		m.mu.Unlock()
		return
	}
	ch := slot.ch
	m.closeChannelLocked(ch)
	m.mu.Unlock()
	ch.fireClose(true)
}
