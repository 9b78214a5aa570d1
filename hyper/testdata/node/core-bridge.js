// Bridges a real Node hypercore replicator to a Go replication peer over
// stdio, for hyper/core's live interop tests.
//
// Node side: a Hypercore (reader or seeder) replicating over an in-process
// NoiseSecretStream pair. Bridge side: a Protomux "hypercore/alpha"
// channel on the other end of that pair that forwards every message, as
// raw bytes, to stdout ({"msg": type, "hex": ...} lines) and sends every
// such line read from stdin. The bridge opens the channel with a valid
// capability for its role, standing in for the Go peer's transport.
//
//   node core-bridge.js seed <blocks>   Node seeds, prints {"key", "blocks"} first;
//                                       a {"truncate": n, "more": k} line makes it
//                                       truncate and append k new blocks
//   node core-bridge.js read <keyhex> <index,...> <length> [fork] [byte,...]
//                                       Node reads once it reached length (and
//                                       fork), seeks to the byte offsets, and
//                                       prints {"result": ...} at the end
const fs = require('fs')
const os = require('os')
const path = require('path')
const readline = require('readline')
const b4a = require('b4a')
const c = require('compact-encoding')
const crypto = require('hypercore-crypto')
const Hypercore = require('hypercore')
const NoiseSecretStream = require('@hyperswarm/secret-stream')
const Protomux = require('protomux')
const m = require('hypercore/lib/messages')
const caps = require('hypercore/lib/caps')

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'hcgo-bridge-'))
const out = (o) => fs.writeSync(1, JSON.stringify(o) + '\n')

function blockAt (i) {
  return b4a.from('node block ' + i + ' ' + 'y'.repeat(i % 23))
}

async function regrow (core, length, more) {
  await core.truncate(length)
  const blocks = []
  for (let i = 0; i < more; i++) blocks.push(b4a.from('node fork' + core.fork + ' block ' + (length + i)))
  await core.append(blocks)
  out({ regrown: { fork: core.fork, length: core.length, blocks: blocks.map((b) => b4a.toString(b, 'hex')) } })
}

async function bridge (core) {
  const s1 = core.replicate(true, { keepAlive: false })
  const n2 = new NoiseSecretStream(false, null, { keepAlive: 0 })
  s1.pipe(n2.rawStream).pipe(s1)
  await n2.opened
  const mux = Protomux.from(n2)
  const messages = []
  for (let i = 0; i < 10; i++) {
    messages.push({ encoding: c.raw, onmessage: (buf) => out({ msg: i, hex: b4a.toString(buf, 'hex') }) })
  }
  const ch = mux.createChannel({
    protocol: 'hypercore/alpha',
    id: core.discoveryKey,
    handshake: m.wire.handshake,
    messages,
    onopen: () => out({ opened: true })
  })
  ch.open({ seeks: true, capability: caps.replicate(false, core.key, n2.handshakeHash) })
  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', (line) => {
    if (!line.trim()) return
    const o = JSON.parse(line)
    if (o.truncate !== undefined) {
      regrow(core, o.truncate, o.more).catch((err) => { console.error(err); process.exit(1) })
      return
    }
    ch.messages[o.msg].send(b4a.from(o.hex, 'hex'))
  })
  return rl
}

async function main () {
  const [mode, ...args] = process.argv.slice(2)
  if (mode === 'seed') {
    const n = Number(args[0])
    const core = new Hypercore(tmp(), { keyPair: crypto.keyPair(b4a.alloc(32, 0x77)) })
    await core.ready()
    const blocks = []
    for (let i = 0; i < n; i++) blocks.push(blockAt(i))
    await core.append(blocks)
    out({ key: b4a.toString(core.key, 'hex'), blocks: blocks.map((b) => b4a.toString(b, 'hex')) })
    const rl = await bridge(core)
    rl.on('close', () => process.exit(0))
    return
  }
  if (mode === 'read') {
    const key = b4a.from(args[0], 'hex')
    const wanted = args[1].split(',').map(Number)
    const length = Number(args[2])
    const fork = Number(args[3] || 0)
    const seeks = args[4] ? args[4].split(',').map(Number) : []
    const core = new Hypercore(tmp(), key)
    await core.ready()
    await bridge(core)
    const result = { blocks: {}, length: 0, contiguous: 0 }
    while (core.length < length || core.fork < fork) {
      await new Promise((resolve) => setTimeout(resolve, 10))
      await core.update({ wait: true })
    }
    result.seeks = []
    for (const bytes of seeks) result.seeks.push(await core.seek(bytes))
    for (const i of wanted) result.blocks[i] = b4a.toString(await core.get(i), 'hex')
    result.length = core.length
    result.fork = core.fork
    result.manifest = core.manifest ? b4a.toString(c.encode(m.manifest, core.manifest), 'hex') : null
    out({ result })
    process.exit(0)
  }
  throw new Error('usage: core-bridge.js seed <n> | read <key> <i,j,...> <length>')
}

main().catch((err) => { console.error(err); process.exit(1) })
