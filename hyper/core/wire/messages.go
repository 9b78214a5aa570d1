package wire

import (
	"fmt"

	"github.com/hyperos/hyperos/hyper/compact"
)

// Protocol is the Protomux protocol name of a Hypercore replication
// channel; the channel id is the core's discovery key.
const Protocol = "hypercore/alpha"

// MessageType is a message's position in the channel's message list, which
// is how Protomux tags it on the wire.
type MessageType uint

// The replication messages in hypercore 11's order (lib/replicator.js).
const (
	TypeSync MessageType = iota
	TypeRequest
	TypeCancel
	TypeData
	TypeNoData
	TypeWant
	TypeUnwant
	TypeBitfield
	TypeRange
	TypeExtension
	NumMessageTypes
)

var typeNames = [...]string{"sync", "request", "cancel", "data", "noData", "want", "unwant", "bitfield", "range", "extension"}

func (t MessageType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("MessageType(%d)", uint(t))
}

// Message is one replication message.
type Message interface {
	// Type is the message's index on the channel.
	Type() MessageType
	encode(e *compact.Encoder)
	decode(d *compact.Decoder) error
}

// Marshal encodes m into its wire bytes (without the Protomux type tag).
func Marshal(m Message) ([]byte, error) {
	return MarshalAppend(make([]byte, 0, SizeHint(m)), m)
}

// MarshalAppend appends the body of m to dst.
func MarshalAppend(dst []byte, m Message) ([]byte, error) {
	e := compact.NewEncoder(dst)
	m.encode(e)
	b, err := e.Finish()
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.Type(), err)
	}
	return b, nil
}

// SizeHint is about how many bytes m encodes to: enough for a data
// message's block value and proof, so that encoding it does not grow
// (and copy) the buffer on the way.
func SizeHint(m Message) int {
	d, ok := m.(*Data)
	if !ok {
		return 64
	}
	const perNode = 1 + 9 + 9 + 32 // index, size, hash (uints at most 9)
	n := 64
	if d.Block != nil {
		n += len(d.Block.Value) + perNode*len(d.Block.Nodes)
	}
	if d.Hash != nil {
		n += perNode * len(d.Hash.Nodes)
	}
	if d.Seek != nil {
		n += perNode * len(d.Seek.Nodes)
	}
	if u := d.Upgrade; u != nil {
		n += perNode*(len(u.Nodes)+len(u.AdditionalNodes)) + len(u.Signature)
	}
	if d.Manifest != nil {
		n += 1024
	}
	return n
}

// New returns an empty message of type t, or nil for an unknown type.
func New(t MessageType) Message {
	switch t {
	case TypeSync:
		return &Sync{}
	case TypeRequest:
		return &Request{}
	case TypeCancel:
		return &Cancel{}
	case TypeData:
		return &Data{}
	case TypeNoData:
		return &NoData{}
	case TypeWant:
		return &Want{}
	case TypeUnwant:
		return &Unwant{}
	case TypeBitfield:
		return &Bitfield{}
	case TypeRange:
		return &Range{}
	case TypeExtension:
		return &Extension{}
	}
	return nil
}

// Unmarshal decodes the body of a message of type t. A data message's
// block value aliases b (it is 64 KiB that need not be copied), so b must
// not be modified while the message is in use.
func Unmarshal(t MessageType, b []byte) (Message, error) {
	m := New(t)
	if m == nil {
		return nil, fmt.Errorf("decode message: unknown type %d: %w", uint(t), ErrInvalid)
	}
	if err := m.decode(compact.NewDecoder(b)); err != nil {
		return nil, fmt.Errorf("decode %s: %w", t, err)
	}
	return m, nil
}

// Handshake is the payload of the channel open message. Capability proves
// knowledge of the core key bound to this Noise session (see
// merkle.Capability).
type Handshake struct {
	Seeks      bool
	Capability [32]byte
}

// MarshalHandshake encodes h as messages.js `wire.handshake`.
func MarshalHandshake(h *Handshake) []byte {
	e := compact.NewEncoder(nil)
	e.Uint(boolUint(h.Seeks))
	e.Fixed32(h.Capability[:])
	return e.Bytes()
}

// UnmarshalHandshake decodes a channel open payload.
func UnmarshalHandshake(b []byte) (*Handshake, error) {
	d := compact.NewDecoder(b)
	flags, _ := d.Uint()
	c, err := d.Fixed32()
	if err != nil {
		return nil, fmt.Errorf("decode handshake: %w", err)
	}
	return &Handshake{Seeks: flags&1 != 0, Capability: c}, nil
}

// Sync tells the remote our fork and length and what we are willing to do.
type Sync struct {
	Fork, Length, RemoteLength uint64
	CanUpgrade                 bool
	Uploading                  bool
	Downloading                bool
	HasManifest                bool
	AllowPush                  bool
}

func (*Sync) Type() MessageType { return TypeSync }

func (m *Sync) encode(e *compact.Encoder) {
	var f uint64
	for i, b := range []bool{m.CanUpgrade, m.Uploading, m.Downloading, m.HasManifest, m.AllowPush} {
		if b {
			f |= 1 << i
		}
	}
	e.Uint(f)
	e.Uint(m.Fork)
	e.Uint(m.Length)
	e.Uint(m.RemoteLength)
}

func (m *Sync) decode(d *compact.Decoder) error {
	f, _ := d.Uint()
	m.Fork, _ = d.Uint()
	m.Length, _ = d.Uint()
	m.RemoteLength, _ = d.Uint()
	m.CanUpgrade = f&1 != 0
	m.Uploading = f&2 != 0
	m.Downloading = f&4 != 0
	m.HasManifest = f&8 != 0
	m.AllowPush = f&16 != 0
	return d.Err()
}

// RequestBlock asks for a block (or, in Request.Hash, a tree node) plus
// Nodes ancestors of it that the requester lacks.
type RequestBlock struct {
	Index, Nodes uint64
}

// RequestSeek asks for the block containing byte offset Bytes, where each
// block is counted Padding bytes shorter.
type RequestSeek struct {
	Bytes, Padding uint64
}

// RequestUpgrade asks for the proof that extends a tree of length Start by
// Length blocks.
type RequestUpgrade struct {
	Start, Length uint64
}

// Request asks the remote for data and proofs.
type Request struct {
	ID, Fork uint64
	Block    *RequestBlock
	Hash     *RequestBlock
	Seek     *RequestSeek
	Upgrade  *RequestUpgrade
	Manifest bool
	Priority uint64
}

func (*Request) Type() MessageType { return TypeRequest }

func (m *Request) encode(e *compact.Encoder) {
	var f uint64
	if m.Block != nil {
		f |= 1
	}
	if m.Hash != nil {
		f |= 2
	}
	if m.Seek != nil {
		f |= 4
	}
	if m.Upgrade != nil {
		f |= 8
	}
	if m.Manifest {
		f |= 16
	}
	if m.Priority != 0 {
		f |= 32
	}
	e.Uint(f)
	e.Uint(m.ID)
	e.Uint(m.Fork)
	if m.Block != nil {
		e.Uint(m.Block.Index)
		e.Uint(m.Block.Nodes)
	}
	if m.Hash != nil {
		e.Uint(m.Hash.Index)
		e.Uint(m.Hash.Nodes)
	}
	if m.Seek != nil {
		e.Uint(m.Seek.Bytes)
		e.Uint(m.Seek.Padding)
	}
	if m.Upgrade != nil {
		e.Uint(m.Upgrade.Start)
		e.Uint(m.Upgrade.Length)
	}
	if m.Priority != 0 {
		e.Uint(m.Priority)
	}
}

func (m *Request) decode(d *compact.Decoder) error {
	f, _ := d.Uint()
	m.ID, _ = d.Uint()
	m.Fork, _ = d.Uint()
	if f&1 != 0 {
		m.Block = &RequestBlock{}
		m.Block.Index, _ = d.Uint()
		m.Block.Nodes, _ = d.Uint()
	}
	if f&2 != 0 {
		m.Hash = &RequestBlock{}
		m.Hash.Index, _ = d.Uint()
		m.Hash.Nodes, _ = d.Uint()
	}
	if f&4 != 0 {
		m.Seek = &RequestSeek{}
		m.Seek.Bytes, _ = d.Uint()
		m.Seek.Padding, _ = d.Uint()
	}
	if f&8 != 0 {
		m.Upgrade = &RequestUpgrade{}
		m.Upgrade.Start, _ = d.Uint()
		m.Upgrade.Length, _ = d.Uint()
	}
	m.Manifest = f&16 != 0
	if f&32 != 0 {
		m.Priority, _ = d.Uint()
	}
	return d.Err()
}

// Cancel withdraws an earlier request.
type Cancel struct {
	Request uint64
}

func (*Cancel) Type() MessageType { return TypeCancel }

func (m *Cancel) encode(e *compact.Encoder) { e.Uint(m.Request) }

func (m *Cancel) decode(d *compact.Decoder) error {
	var err error
	m.Request, err = d.Uint()
	return err
}

// DataBlock carries a block value and the nodes proving it.
type DataBlock struct {
	Index uint64
	Value []byte
	Nodes []Node
}

// DataHash carries the nodes proving a tree node (a hash request).
type DataHash struct {
	Index uint64
	Nodes []Node
}

// DataSeek carries the nodes that locate the block containing a byte offset.
type DataSeek struct {
	Bytes uint64
	Nodes []Node
}

// DataUpgrade carries the nodes that extend a tree from Start to
// Start+Length, AdditionalNodes that extend it further to the sender's real
// length, and the signature over that final length.
type DataUpgrade struct {
	Start, Length   uint64
	Nodes           []Node
	AdditionalNodes []Node
	Signature       []byte
}

// Data answers a request. It doubles as the proof type of hyper/core/merkle:
// Request is zero there and Fork is the tree's fork.
type Data struct {
	Request, Fork uint64
	Block         *DataBlock
	Hash          *DataHash
	Seek          *DataSeek
	Upgrade       *DataUpgrade
	Manifest      *Manifest
}

func (*Data) Type() MessageType { return TypeData }

func (m *Data) encode(e *compact.Encoder) {
	var f uint64
	if m.Block != nil {
		f |= 1
	}
	if m.Hash != nil {
		f |= 2
	}
	if m.Seek != nil {
		f |= 4
	}
	if m.Upgrade != nil {
		f |= 8
	}
	if m.Manifest != nil {
		f |= 16
	}
	e.Uint(f)
	e.Uint(m.Request)
	e.Uint(m.Fork)
	if b := m.Block; b != nil {
		e.Uint(b.Index)
		e.Buffer(b.Value)
		EncodeNodes(e, b.Nodes)
	}
	if h := m.Hash; h != nil {
		e.Uint(h.Index)
		EncodeNodes(e, h.Nodes)
	}
	if s := m.Seek; s != nil {
		e.Uint(s.Bytes)
		EncodeNodes(e, s.Nodes)
	}
	if u := m.Upgrade; u != nil {
		e.Uint(u.Start)
		e.Uint(u.Length)
		EncodeNodes(e, u.Nodes)
		EncodeNodes(e, u.AdditionalNodes)
		e.OptionalBuffer(u.Signature)
	}
	if m.Manifest != nil {
		EncodeManifest(e, m.Manifest)
	}
}

func (m *Data) decode(d *compact.Decoder) error {
	f, _ := d.Uint()
	m.Request, _ = d.Uint()
	var err error
	if m.Fork, err = d.Uint(); err != nil {
		return err
	}
	if f&1 != 0 {
		b := &DataBlock{}
		b.Index, _ = d.Uint()
		v, err := d.Buffer()
		if err != nil {
			return fmt.Errorf("block value: %w", err)
		}
		b.Value = v // aliases the input, which Unmarshal's caller hands over
		if b.Nodes, err = DecodeNodes(d); err != nil {
			return fmt.Errorf("block nodes: %w", err)
		}
		m.Block = b
	}
	if f&2 != 0 {
		h := &DataHash{}
		h.Index, _ = d.Uint()
		if h.Nodes, err = DecodeNodes(d); err != nil {
			return fmt.Errorf("hash nodes: %w", err)
		}
		m.Hash = h
	}
	if f&4 != 0 {
		s := &DataSeek{}
		s.Bytes, _ = d.Uint()
		if s.Nodes, err = DecodeNodes(d); err != nil {
			return fmt.Errorf("seek nodes: %w", err)
		}
		m.Seek = s
	}
	if f&8 != 0 {
		u := &DataUpgrade{}
		u.Start, _ = d.Uint()
		u.Length, _ = d.Uint()
		if u.Nodes, err = DecodeNodes(d); err != nil {
			return fmt.Errorf("upgrade nodes: %w", err)
		}
		if u.AdditionalNodes, err = DecodeNodes(d); err != nil {
			return fmt.Errorf("upgrade additional nodes: %w", err)
		}
		sig, err := d.OptionalBuffer()
		if err != nil {
			return fmt.Errorf("upgrade signature: %w", err)
		}
		if sig != nil {
			u.Signature = append([]byte{}, sig...)
		}
		m.Upgrade = u
	}
	if f&16 != 0 {
		if m.Manifest, err = DecodeManifest(d); err != nil {
			return err
		}
	}
	return nil
}

// Reasons a request could not be served.
const (
	ReasonNotAvailable   = 1
	ReasonInvalidRequest = 2
)

// NoData says a request cannot be answered; Reason 0 means unspecified.
type NoData struct {
	Request, Reason uint64
}

func (*NoData) Type() MessageType { return TypeNoData }

func (m *NoData) encode(e *compact.Encoder) {
	e.Uint(m.Request)
	if m.Reason != 0 {
		e.Uint(1)
		e.Uint(m.Reason)
	} else {
		e.Uint(0)
	}
}

func (m *NoData) decode(d *compact.Decoder) error {
	var err error
	if m.Request, err = d.Uint(); err != nil {
		return err
	}
	if d.Remaining() > 0 {
		f, err := d.Uint()
		if err != nil {
			return err
		}
		if f&1 != 0 {
			m.Reason, err = d.Uint()
		}
		return err
	}
	return nil
}

// Want asks the remote to tell us (by bitfield/range) which blocks in
// [Start, Start+Length) it has.
type Want struct {
	Start, Length uint64
	Any           bool
}

func (*Want) Type() MessageType { return TypeWant }

func (m *Want) encode(e *compact.Encoder) { encodeWant(e, m.Start, m.Length, m.Any) }

func (m *Want) decode(d *compact.Decoder) error {
	var err error
	m.Start, m.Length, m.Any, err = decodeWant(d)
	return err
}

// Unwant withdraws a Want.
type Unwant struct {
	Start, Length uint64
	Any           bool
}

func (*Unwant) Type() MessageType { return TypeUnwant }

func (m *Unwant) encode(e *compact.Encoder) { encodeWant(e, m.Start, m.Length, m.Any) }

func (m *Unwant) decode(d *compact.Decoder) error {
	var err error
	m.Start, m.Length, m.Any, err = decodeWant(d)
	return err
}

func encodeWant(e *compact.Encoder, start, length uint64, any bool) {
	e.Uint(start)
	e.Uint(length)
	if any {
		e.Uint(1)
	}
}

func decodeWant(d *compact.Decoder) (start, length uint64, any bool, err error) {
	start, _ = d.Uint()
	if length, err = d.Uint(); err != nil {
		return
	}
	if d.Remaining() > 0 {
		var f uint64
		if f, err = d.Uint(); err != nil {
			return
		}
		any = f&1 != 0
	}
	return
}

// Bitfield reports which blocks from Start on the sender has, LSB first in
// little-endian 32-bit words. Start is a multiple of 32 in practice.
type Bitfield struct {
	Start    uint64
	Bitfield []uint32
}

func (*Bitfield) Type() MessageType { return TypeBitfield }

func (m *Bitfield) encode(e *compact.Encoder) {
	e.Uint(m.Start)
	e.Uint32Array(m.Bitfield)
}

func (m *Bitfield) decode(d *compact.Decoder) error {
	m.Start, _ = d.Uint()
	var err error
	m.Bitfield, err = d.Uint32Array()
	return err
}

// Range says the sender has (or, with Drop, no longer has) every block in
// [Start, Start+Length).
type Range struct {
	Drop          bool
	Start, Length uint64
}

func (*Range) Type() MessageType { return TypeRange }

func (m *Range) encode(e *compact.Encoder) {
	var f uint64
	if m.Drop {
		f |= 1
	}
	if m.Length == 1 {
		f |= 2
	}
	e.Uint(f)
	e.Uint(m.Start)
	if m.Length != 1 {
		e.Uint(m.Length)
	}
}

func (m *Range) decode(d *compact.Decoder) error {
	f, _ := d.Uint()
	var err error
	if m.Start, err = d.Uint(); err != nil {
		return err
	}
	m.Drop = f&1 != 0
	if f&2 != 0 {
		m.Length = 1
		return nil
	}
	m.Length, err = d.Uint()
	return err
}

// Extension carries an application message; an empty Name means "the same
// extension as the previous one".
type Extension struct {
	Name    string
	Message []byte
}

func (*Extension) Type() MessageType { return TypeExtension }

func (m *Extension) encode(e *compact.Encoder) {
	e.String(m.Name)
	e.Raw(m.Message)
}

func (m *Extension) decode(d *compact.Decoder) error {
	var err error
	if m.Name, err = d.String(); err != nil {
		return err
	}
	raw, err := d.Raw()
	if err != nil {
		return err
	}
	m.Message = append([]byte{}, raw...)
	return nil
}
