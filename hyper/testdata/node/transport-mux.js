// Prints a Protomux transcript as JSON for hyper/mux's tests: two real
// Protomux instances (A and B) over an in-memory framed pipe, with every
// frame, every user operation and every callback in the order they
// happened. The Go tests replay one side and compare.
// Run from this folder: node transport-mux.js > ../../mux/testdata/node-mux.json
'use strict'
const Protomux = require('protomux')
const c = require('compact-encoding')
const { Duplex } = require('streamx')

const log = []
const hex = (b) => Buffer.from(b).toString('hex')

let a = null
let b = null
function side (name, other) {
  return new Duplex({
    write (data, cb) {
      log.push({ kind: 'frame', from: name, hex: hex(data) })
      other().push(data)
      cb(null)
    }
  })
}
a = side('a', () => b)
b = side('b', () => a)

const muxA = new Protomux(a)
const muxB = new Protomux(b)

const idX = Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex')

function channel (mux, who, protocol, id, messages) {
  const ch = mux.createChannel({
    protocol,
    id,
    handshake: c.string,
    onopen (hs) { log.push({ kind: 'onopen', side: who, protocol, handshake: hs }) },
    onclose (remote) { log.push({ kind: 'onclose', side: who, protocol, remote }) },
    messages: messages.map((enc, type) => ({
      encoding: enc,
      onmessage (m) {
        log.push({ kind: 'onmessage', side: who, protocol, type, hex: hex(c.encode(enc, m)) })
      }
    }))
  })
  return ch
}

const op = (side, name, args = {}) => log.push({ kind: 'op', side, op: name, ...args })
const tick = () => new Promise((resolve) => setTimeout(resolve, 20))

async function main () {
  // B accepts alpha (any id) when A opens it, and refuses everything else.
  let alphaB = null
  muxB.pair({ protocol: 'alpha' }, (id) => {
    op('b', 'pair-open', { protocol: 'alpha', id: hex(id), handshake: 'hb' })
    alphaB = channel(muxB, 'b', 'alpha', id, [c.string, c.uint])
    alphaB.open('hb')
  })

  // 1. A corks, opens alpha and beta, sends on both, uncorks: one batch.
  op('a', 'cork')
  muxA.cork()
  op('a', 'open', { protocol: 'alpha', id: hex(idX), handshake: 'ha' })
  const alphaA = channel(muxA, 'a', 'alpha', idX, [c.string, c.uint])
  alphaA.open('ha')
  op('a', 'open', { protocol: 'beta', id: '', handshake: 'hbeta' })
  const betaA = channel(muxA, 'a', 'beta', null, [c.string])
  betaA.open('hbeta')
  op('a', 'send', { protocol: 'alpha', type: 0, hex: hex(c.encode(c.string, 'one')) })
  alphaA.messages[0].send('one')
  op('a', 'send', { protocol: 'alpha', type: 1, hex: hex(c.encode(c.uint, 70000)) })
  alphaA.messages[1].send(70000)
  op('a', 'uncork')
  muxA.uncork()
  await tick()

  // 2. Plain (unbatched) messages both ways.
  op('b', 'send', { protocol: 'alpha', type: 0, hex: hex(c.encode(c.string, 'two')) })
  alphaB.messages[0].send('two')
  await tick()
  op('a', 'send', { protocol: 'alpha', type: 1, hex: hex(c.encode(c.uint, 5)) })
  alphaA.messages[1].send(5)
  await tick()
  // An empty frame (keepalive) is ignored.
  op('a', 'raw', { hex: '' })
  a.write(Buffer.alloc(0))
  await tick()

  // 3. A opens gamma uncorked; B has no pairing for it and rejects.
  op('a', 'open', { protocol: 'gamma', id: '', handshake: '' })
  const gammaA = channel(muxA, 'a', 'gamma', null, [])
  gammaA.open('')
  await tick()

  // 4. B corks and sends two messages, then A closes alpha.
  op('b', 'cork')
  muxB.cork()
  op('b', 'send', { protocol: 'alpha', type: 0, hex: hex(c.encode(c.string, 'three')) })
  alphaB.messages[0].send('three')
  op('b', 'send', { protocol: 'alpha', type: 1, hex: hex(c.encode(c.uint, 3)) })
  alphaB.messages[1].send(3)
  op('b', 'uncork')
  muxB.uncork()
  await tick()
  op('a', 'close', { protocol: 'alpha' })
  alphaA.close()
  await tick()

  // 5. A reopens alpha (same id); its local id is reused.
  op('a', 'open', { protocol: 'alpha', id: hex(idX), handshake: 'again' })
  const alphaA2 = channel(muxA, 'a', 'alpha', idX, [c.string, c.uint])
  alphaA2.open('again')
  await tick()

  process.stdout.write(JSON.stringify({ log }, null, 1) + '\n')
  process.exit(0)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
