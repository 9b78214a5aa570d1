// A Node Hyperdrive peer for hyper/share's interop tests and benchmark,
// speaking plain TCP on 127.0.0.1 (corestore.replicate piped to a socket,
// as the issue asks; no DHT).
//
//   node share-peer.js seed <spec> [port]
//       Writes a drive (spec: "mixed", "big:<bytes>", or "mixed+big:<bytes>")
//       in a fresh corestore, serves it on 127.0.0.1:<port|random> and
//       prints {"key","port","version","entries"} where entries maps
//       every path of the final version to {size, sha256, executable,
//       linkname}. Reads commands on stdin, one per line:
//         put <path> <size> <seed>   prints {"version"} after writing
//       and exits when stdin closes.
//   node share-peer.js read <keyhex> <port> [--version N] [--only p1,p2]
//       Connects to 127.0.0.1:<port>, prints {"ready"} once it has a first
//       version if N is given, waits for version ≥ N, reads every file (or only the listed ones) and prints
//       {"version","entries","readdir"} in the same shape, then exits.
//   node share-peer.js fetch <keyhex> <port> <path>
//       Downloads one file as fast as Node can (the benchmark's reader):
//       prints {"bytes","ms","sha256"}.
//   node share-peer.js mirror <keyhex> <port>
//       Downloads the whole drive (every block of both cores) from the
//       peer at <port>, then serves it on a random port and prints
//       {"port"}: a second, full Node seeder of someone else's drive.
const fs = require('fs')
const os = require('os')
const net = require('net')
const path = require('path')
const crypto = require('crypto')
const readline = require('readline')
const b4a = require('b4a')
const Corestore = require('corestore')
const Hyperdrive = require('hyperdrive')

const out = (o) => fs.writeSync(1, JSON.stringify(o) + '\n')
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'share-peer-'))

// content is the deterministic byte pattern the Go tests regenerate.
function content (seed, size) {
  const b = b4a.alloc(size)
  for (let i = 0; i < size; i++) b[i] = (seed * 131 + i * 7 + (i >>> 8) * 13) & 0xff
  return b
}

async function writeMixed (drive) {
  // version after version: files, nested folders, a file over 64 KiB,
  // executables, symlinks, an overwrite and deletes
  await drive.put('/README.md', content(1, 1200))
  await drive.put('/bin/tool', content(2, 5000), { executable: true })
  await drive.put('/docs/a/b/c/deep.txt', content(3, 333))
  await drive.put('/docs/large.bin', content(4, 200 * 1024 + 17))
  await drive.put('/docs/exactly-64k.bin', content(5, 65536))
  await drive.put('/empty', b4a.alloc(0))
  const batch = drive.batch()
  for (let i = 0; i < 60; i++) await batch.put(`/many/file-${String(i).padStart(3, '0')}.txt`, content(100 + i, 40 + i * 13))
  await batch.flush()
  await drive.symlink('/links/readme', '/README.md')
  await drive.symlink('/links/rel', '../docs/large.bin')
  await drive.symlink('/links/outside', '../../../etc/passwd')
  await drive.put('/gone.txt', content(6, 10))
  await drive.put('/README.md', content(7, 1500))
  await drive.del('/gone.txt')
  await drive.del('/many/file-007.txt')
  await drive.put('/space name/ünïcode.txt', content(8, 77))
}

async function writeBig (drive, size) {
  const ws = drive.createWriteStream('/big.bin')
  const chunk = 65536
  for (let off = 0; off < size; off += chunk) {
    const n = Math.min(chunk, size - off)
    const b = b4a.alloc(n)
    for (let i = 0; i < n; i++) b[i] = (9 * 131 + (off + i) * 7 + ((off + i) >>> 8) * 13) & 0xff
    if (!ws.write(b)) await new Promise((resolve) => ws.once('drain', resolve))
  }
  await new Promise((resolve, reject) => ws.end((err) => err ? reject(err) : resolve()))
}

async function describe (drive, only) {
  const entries = {}
  const list = only ? only.map((p) => ({ key: p })) : []
  if (!only) for await (const e of drive.list('/', { recursive: true })) list.push(e)
  for (const { key } of list) {
    const e = await drive.entry(key)
    if (!e) { entries[key] = null; continue }
    const v = e.value
    const o = { size: v.blob ? v.blob.byteLength : 0, executable: !!v.executable, linkname: v.linkname || null }
    if (v.blob) o.sha256 = crypto.createHash('sha256').update(await drive.get(key)).digest('hex')
    entries[key] = o
  }
  return entries
}

function serve (store, port) {
  return new Promise((resolve) => {
    const server = net.createServer((socket) => {
      const s = store.replicate(false)
      s.on('error', () => {})
      socket.on('error', () => {})
      s.pipe(socket).pipe(s)
    })
    server.listen(port || 0, '127.0.0.1', () => resolve(server))
  })
}

function connect (store, port) {
  const socket = net.connect(port, '127.0.0.1')
  const s = store.replicate(true)
  s.on('error', () => {})
  socket.on('error', () => {})
  s.pipe(socket).pipe(s)
  return s
}

async function untilVersion (drive, v) {
  for (;;) {
    await drive.db.core.update({ wait: true })
    if (drive.version >= v) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

async function main () {
  const [mode, ...args] = process.argv.slice(2)
  if (mode === 'seed') {
    const store = new Corestore(tmp())
    const drive = new Hyperdrive(store)
    await drive.ready()
    for (const part of args[0].split('+')) {
      if (part === 'mixed') await writeMixed(drive)
      else if (part.startsWith('big:')) await writeBig(drive, Number(part.slice(4)))
      else throw new Error('unknown spec ' + part)
    }
    const server = await serve(store, Number(args[1] || 0))
    out({ key: b4a.toString(drive.key, 'hex'), port: server.address().port, version: drive.version, entries: await describe(drive) })
    const rl = readline.createInterface({ input: process.stdin })
    rl.on('line', async (line) => {
      const [cmd, p, size, seed] = line.trim().split(' ')
      if (cmd === 'put') {
        await drive.put(p, content(Number(seed), Number(size)))
        out({ version: drive.version })
      }
    })
    rl.on('close', () => process.exit(0))
    return
  }
  if (mode === 'read') {
    const key = b4a.from(args[0], 'hex')
    const port = Number(args[1])
    let version = 0
    let only = null
    for (let i = 2; i < args.length; i++) {
      if (args[i] === '--version') version = Number(args[++i])
      if (args[i] === '--only') only = args[++i].split(',')
    }
    const store = new Corestore(tmp())
    const drive = new Hyperdrive(store, key)
    await drive.ready()
    const done = store.findingPeers()
    connect(store, port)
    setTimeout(done, 2000)
    await untilVersion(drive, 1)
    // With --version, say that we are connected and synced before waiting
    // for the writer to get there.
    if (version) out({ ready: drive.version })
    await untilVersion(drive, version)
    const entries = await describe(drive, only)
    const readdir = {}
    if (!only) for (const d of ['/', '/docs', '/many']) { readdir[d] = []; for await (const n of drive.readdir(d)) readdir[d].push(n) }
    out({ version: drive.version, entries, readdir })
    process.exit(0)
  }
  if (mode === 'fetch') {
    const key = b4a.from(args[0], 'hex')
    const store = new Corestore(tmp())
    const drive = new Hyperdrive(store, key)
    await drive.ready()
    connect(store, Number(args[1]))
    await untilVersion(drive, 1)
    const blobs = await drive.getBlobs()
    const entry = await drive.entry(args[2])
    while (blobs.core.length < entry.value.blob.blockOffset + entry.value.blob.blockLength) await blobs.core.update({ wait: true })
    const t0 = Date.now()
    const h = crypto.createHash('sha256')
    let bytes = 0
    for await (const chunk of drive.createReadStream(args[2])) { h.update(chunk); bytes += chunk.length }
    out({ bytes, ms: Date.now() - t0, sha256: h.digest('hex') })
    process.exit(0)
  }
  if (mode === 'mirror') {
    const key = b4a.from(args[0], 'hex')
    const store = new Corestore(tmp())
    const drive = new Hyperdrive(store, key)
    await drive.ready()
    connect(store, Number(args[1]))
    await untilVersion(drive, 1)
    await drive.db.core.download({ start: 0, end: drive.db.core.length }).done()
    const blobs = await drive.getBlobs()
    await blobs.core.download({ start: 0, end: blobs.core.length }).done()
    const server = await serve(store, 0)
    out({ port: server.address().port, version: drive.version })
    const rl = readline.createInterface({ input: process.stdin })
    rl.on('close', () => process.exit(0))
    return
  }
  throw new Error('usage: share-peer.js seed|read|fetch|mirror ...')
}

main().catch((err) => { console.error(err); process.exit(1) })
