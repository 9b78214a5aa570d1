// Prints compact-encoding fixtures as JSON for hyper/compact's tests.
// Run from this folder: node transport-compact.js > ../../compact/testdata/node-compact.json
'use strict'
const c = require('compact-encoding')

const hex = (b) => Buffer.from(b).toString('hex')
const enc = (e, v) => hex(c.encode(e, v))
const tryDecode = (e, h) => {
  try {
    const v = c.decode(e, Buffer.from(h, 'hex'))
    return { ok: true, value: v }
  } catch (err) {
    return { ok: false, error: err.message }
  }
}

const out = { uint: [], fixed: [], buffer: [], optionalBuffer: [], string: [], bool: [], uint32array: [], array: [], fixedBytes: [], decodeUint: [], decodeArray: [], decodeBool: [], decodeBuffer: [] }

const uints = [0, 1, 0x7f, 0xfc, 0xfd, 0xfe, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, 0x100000000, 2 ** 40 + 3, 2 ** 53 - 1]
for (const n of uints) out.uint.push({ n: String(n), hex: enc(c.uint, n) })
for (const n of [0, 1, 0xff, 0x1234, 0xffff]) out.fixed.push({ type: 'uint16', n: String(n), hex: enc(c.uint16, n) })
for (const n of [0, 0x123456, 0xffffff]) out.fixed.push({ type: 'uint24', n: String(n), hex: enc(c.uint24, n) })
for (const n of [0, 0x12345678, 0xffffffff]) out.fixed.push({ type: 'uint32', n: String(n), hex: enc(c.uint32, n) })
for (const n of [0, 0x0102030405, 2 ** 53 - 1]) out.fixed.push({ type: 'uint64', n: String(n), hex: enc(c.uint64, n) })
for (const n of [0, 200, 255]) out.fixed.push({ type: 'uint8', n: String(n), hex: enc(c.uint8, n) })

// Buffers are described as (length, fill byte) to keep the fixture small;
// "head" is the encoding without the payload bytes.
for (const [len, fill] of [[0, 0], [1, 0], [4, 0xde], [252, 3], [253, 7], [65535, 9], [70000, 1]]) {
  const b = Buffer.alloc(len, fill)
  const e = c.encode(c.buffer, b)
  const o = c.encode(c.optionalBuffer, b)
  out.buffer.push({ len, fill, head: hex(e.subarray(0, e.length - len)), total: e.length })
  out.optionalBuffer.push({ len, fill, head: hex(o.subarray(0, o.length - len)), total: o.length })
}
out.optionalBuffer.push({ len: null, fill: 0, head: enc(c.optionalBuffer, null), total: 1 })
for (const s of ['', 'a', 'hypercore/alpha', 'héllo wörld ✓ 🚀', 'x'.repeat(300)]) out.string.push({ in: s, hex: enc(c.string, s) })
for (const b of [true, false]) out.bool.push({ in: b, hex: enc(c.bool, b) })
for (const a of [[], [1], [0, 0xffffffff, 0x01020304]]) out.uint32array.push({ in: a, hex: enc(c.uint32array, Uint32Array.from(a)) })
for (const a of [[], [1, 300, 70000], ['a', 'bc']]) {
  const e = typeof a[0] === 'string' ? c.array(c.string) : c.array(c.uint)
  out.array.push({ type: typeof a[0] === 'string' ? 'string' : 'uint', in: a.map(String), hex: enc(e, a) })
}
out.fixedBytes.push({ type: 'fixed32', in: hex(Buffer.alloc(32, 0xab)), hex: enc(c.fixed32, Buffer.alloc(32, 0xab)) })
out.fixedBytes.push({ type: 'fixed64', in: hex(Buffer.alloc(64, 0xcd)), hex: enc(c.fixed64, Buffer.alloc(64, 0xcd)) })

// Decoding edge cases: what Node accepts and rejects.
for (const h of ['', '00', 'fc', 'fd', 'fdff', 'fd0500', 'fe05000000', 'ff0500000000000000', 'ffffffffffffff1f00', 'ff0000000000002000', 'ffffffffffffffffff', 'fe01']) {
  const r = tryDecode(c.uint, h)
  out.decodeUint.push({ hex: h, ok: r.ok, value: r.ok ? String(r.value) : null })
}
for (const h of ['00', '0201', '02', 'fe01001000', 'fe00001000' ]) {
  const r = tryDecode(c.array(c.uint8), h)
  out.decodeArray.push({ hex: h, ok: r.ok, error: r.ok ? null : r.error, len: r.ok ? r.value.length : null })
}
for (const h of ['00', '01', '02', 'ff', '']) {
  const r = tryDecode(c.bool, h)
  out.decodeBool.push({ hex: h, ok: r.ok, value: r.ok ? r.value : null })
}
for (const h of ['00', '0141', '02', 'fd0100ab', 'ff0000000000000001']) {
  const r = tryDecode(c.buffer, h)
  out.decodeBuffer.push({ hex: h, ok: r.ok, value: r.ok ? hex(r.value) : null })
}

process.stdout.write(JSON.stringify(out, null, 1) + '\n')
