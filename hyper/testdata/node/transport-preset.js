// A Node NoiseSecretStream started from a handshake done elsewhere, as
// hyperdht does, for hyper/secretstream's FromKeys interop test.
//
//   node transport-preset.js <port> <initiator:true|false> <txHex> <rxHex> <hashHex> <pubHex> <remotePubHex>
//
// Connects to 127.0.0.1:port, echoes every message as 'echo:<message>', and
// ends the stream after echoing 'bye'. Prints JSON events on stdout.
'use strict'
const net = require('net')
const NoiseSecretStream = require('@hyperswarm/secret-stream')

const [port, initiator, tx, rx, hash, pub, remotePub] = process.argv.slice(2)
const b = (h) => Buffer.from(h, 'hex')
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')

const socket = net.connect(Number(port), '127.0.0.1')
const s = new NoiseSecretStream(initiator === 'true', socket, {
  handshake: { tx: b(tx), rx: b(rx), hash: b(hash), publicKey: b(pub), remotePublicKey: b(remotePub) }
})
s.on('error', (err) => out({ event: 'error', message: err.message }))
s.on('close', () => {
  out({ event: 'closed' })
  process.exit(0)
})
s.on('data', (data) => {
  const text = data.toString()
  out({ event: 'message', length: data.byteLength })
  s.write(Buffer.from('echo:' + text))
  if (text === 'bye') s.end()
})
setTimeout(() => {
  out({ event: 'error', message: 'timed out' })
  process.exit(3)
}, 20000).unref()
