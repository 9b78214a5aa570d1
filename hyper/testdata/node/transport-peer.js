// A Node NoiseSecretStream + Protomux peer for hyper/mux's interop test.
//
//   node transport-peer.js server <seedHex>        listens on 127.0.0.1:0
//   node transport-peer.js client <seedHex> <port> connects to 127.0.0.1:port
//
// It prints one JSON object per line on stdout (events the Go test checks)
// and exits 0 when the connection closes. Behaviour:
//   - opens 'hyperos/interop' (id "interop-id", handshake string
//     'node-hello'); when open, sends 'from-node-1' and 'from-node-2' in one
//     corked batch; echoes every string as 'echo:<s>' and every buffer back
//     as is; closes the channel when it receives 'bye'.
//   - opens 'hyperos/node-initiated' (no id) and sends 'hello-from-node'
//     when the remote opens it too.
//   - accepts 'hyperos/go-initiated' through pairing and sends 'paired'.
'use strict'
const net = require('net')
const NoiseSecretStream = require('@hyperswarm/secret-stream')
const Protomux = require('protomux')
const c = require('compact-encoding')

const [mode, seedHex, port] = process.argv.slice(2)
const keyPair = NoiseSecretStream.keyPair(Buffer.from(seedHex, 'hex'))
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const hex = (b) => (b ? Buffer.from(b).toString('hex') : null)

function run (socket, isInitiator) {
  const s = new NoiseSecretStream(isInitiator, socket, { keyPair })
  s.setKeepAlive(100)
  s.on('error', (err) => out({ event: 'error', message: err.message }))
  s.on('close', () => {
    out({ event: 'closed' })
    process.exit(0)
  })
  s.on('connect', () => {
    out({ event: 'connect', publicKey: hex(s.publicKey), remotePublicKey: hex(s.remotePublicKey), handshakeHash: hex(s.handshakeHash), isInitiator })
  })

  const mux = new Protomux(s)

  function channel (protocol, id, onopen) {
    const ch = mux.createChannel({
      protocol,
      id,
      handshake: c.string,
      messages: [
        {
          encoding: c.string,
          onmessage (m) {
            out({ event: 'message', protocol, text: m })
            if (m === 'bye') {
              ch.close()
              return
            }
            ch.messages[0].send('echo:' + m)
          }
        },
        {
          encoding: c.buffer,
          onmessage (b) {
            out({ event: 'buffer', protocol, length: b.byteLength })
            ch.messages[1].send(b)
          }
        }
      ],
      onopen (hs) {
        out({ event: 'open', protocol, id: hex(id), handshake: hs })
        onopen(ch)
      },
      onclose (remote) {
        out({ event: 'close', protocol, remote })
      }
    })
    return ch
  }

  mux.pair({ protocol: 'hyperos/go-initiated' }, (id) => {
    const ch = channel('hyperos/go-initiated', id, (ch) => ch.messages[0].send('paired'))
    ch.open('node-accepts')
  })

  const interop = channel('hyperos/interop', Buffer.from('interop-id'), (ch) => {
    mux.cork()
    ch.messages[0].send('from-node-1')
    ch.messages[0].send('from-node-2')
    mux.uncork()
  })
  interop.open('node-hello')

  const nodeInitiated = channel('hyperos/node-initiated', null, (ch) => ch.messages[0].send('hello-from-node'))
  nodeInitiated.open('node-initiated')
}

if (mode === 'server') {
  const server = net.createServer((socket) => {
    server.close()
    run(socket, false)
  })
  server.listen(0, '127.0.0.1', () => out({ event: 'listening', port: server.address().port }))
} else if (mode === 'client') {
  const socket = net.connect(Number(port), '127.0.0.1')
  run(socket, true)
} else {
  console.error('usage: transport-peer.js server|client <seedHex> [port]')
  process.exit(2)
}
setTimeout(() => {
  out({ event: 'error', message: 'timed out' })
  process.exit(3)
}, 30000).unref()
