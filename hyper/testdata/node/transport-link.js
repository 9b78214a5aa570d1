// Prints key-encoding fixtures (hypercore-id-encoding / z32) as JSON for
// hyper/link's tests.
// Run from this folder: node transport-link.js > ../../link/testdata/node-link.json
'use strict'
const id = require('hypercore-id-encoding')
const crypto = require('hypercore-crypto')

const keys = []
keys.push(Buffer.alloc(32, 0))
keys.push(Buffer.alloc(32, 0xff))
for (let i = 0; i < 6; i++) {
  keys.push(crypto.hash(Buffer.from('hyperos link fixture ' + i)))
}
const seq = Buffer.alloc(32)
for (let i = 0; i < 32; i++) seq[i] = i
keys.push(seq)

const encode = keys.map((k) => ({ key: k.toString('hex'), z32: id.encode(k) }))

const inputs = [
  encode[2].z32,
  encode[2].key,
  encode[2].key.toUpperCase(),
  encode[2].z32.slice(0, 51),
  encode[2].z32 + 'y',
  encode[2].key.slice(0, 62) + 'zz',
  encode[2].z32.slice(0, 51) + 'l', // 'l' is not in the alphabet
  // Last character with non-zero unused low bits: Node drops them.
  encode[0].z32.slice(0, 51) + 'n',
  ''
]
const decode = inputs.map((s) => {
  try {
    return { in: s, ok: true, key: id.decode(s).toString('hex') }
  } catch (err) {
    return { in: s, ok: false, error: err.message }
  }
})

process.stdout.write(JSON.stringify({ encode, decode }, null, 1) + '\n')
