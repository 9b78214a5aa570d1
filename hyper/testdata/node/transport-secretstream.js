// Prints fixtures for hyper/secretstream's tests: noise-curve-ed DH
// results (including the points libsodium refuses) and libsodium
// crypto_secretstream_xchacha20poly1305 transcripts with every tag.
// Run from this folder:
//   node transport-secretstream.js > ../../secretstream/testdata/node-secretstream.json
'use strict'
const sodium = require('sodium-universal')
const curve = require('noise-curve-ed')
const NoiseSecretStream = require('@hyperswarm/secret-stream')

const hex = (b) => Buffer.from(b).toString('hex')
const seeded = (fill) => curve.generateKeyPair(Buffer.alloc(32, fill))

// Diffie-Hellman on Edwards points.
const dh = []
for (const [a, b] of [[1, 2], [0x11, 0x22], [0xe0, 0xe1], [0x7f, 0x80]]) {
  const ka = seeded(a)
  const kb = seeded(b)
  dh.push({ seed: hex(Buffer.alloc(32, a)), remote: hex(kb.publicKey), ok: true, out: hex(curve.dh(kb.publicKey, ka)) })
  if (hex(curve.dh(ka.publicKey, kb)) !== dh[dh.length - 1].out) throw new Error('dh not symmetric')
}

// Points libsodium may refuse. Whatever Node decides is the fixture.
const order8 = Buffer.from('26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05', 'hex')
const mixed = Buffer.alloc(32)
sodium.crypto_core_ed25519_add(mixed, seeded(3).publicKey, order8)
const p = Buffer.from(seeded(3).publicKey)
const flipped = Buffer.from(p)
flipped[31] ^= 0x80
const candidates = {
  identity: '0100000000000000000000000000000000000000000000000000000000000000',
  order2: 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  order8: hex(order8),
  negativeZero: '0100000000000000000000000000000000000000000000000000000000000080',
  nonCanonicalY: 'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  nonCanonicalY2: 'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  notOnCurve: '0200000000000000000000000000000000000000000000000000000000000000',
  mixedTorsion: hex(mixed),
  signFlipped: hex(flipped),
  allOnes: 'ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff'
}
const kp5 = seeded(5)
for (const [name, h] of Object.entries(candidates)) {
  try {
    dh.push({ name, seed: hex(Buffer.alloc(32, 5)), remote: h, ok: true, out: hex(curve.dh(Buffer.from(h, 'hex'), kp5)) })
  } catch (err) {
    dh.push({ name, seed: hex(Buffer.alloc(32, 5)), remote: h, ok: false, error: err.message })
  }
}

// secretstream transcripts. The header is random; Go replays it.
const T = {
  message: sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
  push: sodium.crypto_secretstream_xchacha20poly1305_TAG_PUSH,
  rekey: sodium.crypto_secretstream_xchacha20poly1305_TAG_REKEY,
  final: sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
}
const tagByte = (t) => (Buffer.isBuffer(t) ? t[0] : t)
// startCounter, if set, overwrites the 32-bit message counter in the state
// (libsodium's layout: key[32] ‖ counter[4] ‖ inonce[8] ‖ pad[8]) so that a
// short transcript crosses the counter wrap, where libsodium rekeys.
function transcript (keyFill, plan, startCounter) {
  const key = Buffer.alloc(32, keyFill)
  const state = Buffer.alloc(sodium.crypto_secretstream_xchacha20poly1305_STATEBYTES)
  const header = Buffer.alloc(24)
  sodium.crypto_secretstream_xchacha20poly1305_init_push(state, header, key)
  if (startCounter !== undefined) state.writeUInt32LE(startCounter, 32)
  const messages = []
  for (const [len, tag] of plan) {
    const m = Buffer.alloc(len)
    for (let i = 0; i < len; i++) m[i] = (i * 31 + len) & 0xff
    const c = Buffer.alloc(len + 17)
    sodium.crypto_secretstream_xchacha20poly1305_push(state, c, m, null, T[tag])
    messages.push({ len, tag: tagByte(T[tag]), cipher: hex(c) })
  }
  return { key: hex(key), header: hex(header), startCounter: startCounter === undefined ? null : startCounter, messages }
}
const sizes = []
for (let n = 0; n <= 80; n++) sizes.push([n, 'message'])
for (const n of [127, 128, 129, 1000, 4096]) sizes.push([n, 'message'])
const streams = [
  transcript(0x42, sizes),
  transcript(0x43, [[5, 'message'], [3, 'rekey'], [7, 'message'], [0, 'push'], [9, 'rekey'], [1, 'message'], [4, 'final']]),
  transcript(0x44, [[10, 'message'], [11, 'message'], [12, 'message'], [13, 'message']], 0xfffffffe)
]

// The stream-id namespaces, as NoiseSecretStream computes them.
const hash = Buffer.alloc(64, 0x5a)
const ids = { hash: hex(hash), initiator: hex(NoiseSecretStream.id(hash, true)), responder: hex(NoiseSecretStream.id(hash, false)) }

process.stdout.write(JSON.stringify({ dh, streams, ids }, null, 1) + '\n')
