// Seeds a container image from a real Node.js Hyperdrive, for the live-boot
// end-to-end test: the VM fetches the image's blocks from Node, not from Go.
//
//   node container-seed.js <image file> <name in drive> [port] [--tamper]
//
// Writes the file into a fresh drive in a temporary corestore, serves it on
// 127.0.0.1:<port|random> (the VM reaches it as 10.0.2.2) (corestore.replicate piped to each TCP socket) and
// prints {"key","port","size"}; exits when stdin closes.
//
// With --tamper it also serves the same drive on a second port (tamper_port)
// as a hostile peer: every block of the image it sends has one byte flipped,
// with the honest proof. It prints {"tampered": N} as it does so, so that a
// test knows the hostile peer was really asked.
const fs = require('fs')
const os = require('os')
const net = require('net')
const path = require('path')
const { pipeline } = require('stream/promises')
const b4a = require('b4a')
const Corestore = require('corestore')
const Hyperdrive = require('hyperdrive')

async function main () {
  const args = process.argv.slice(2)
  const tamper = args.includes('--tamper')
  const [file, name, port] = args.filter((a) => a !== '--tamper')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'container-seed-'))
  const store = new Corestore(dir)
  const drive = new Hyperdrive(store)
  await drive.ready()
  await pipeline(fs.createReadStream(file), drive.createWriteStream('/' + name))
  const server = net.createServer((socket) => {
    const stream = store.replicate(false)
    socket.pipe(stream).pipe(socket)
    stream.on('error', () => socket.destroy())
    socket.on('error', () => stream.destroy())
  })
  const hostile = new WeakSet() // the noise streams of the tampering server
  const evil = net.createServer((socket) => {
    const stream = store.replicate(false)
    hostile.add(stream.noiseStream)
    socket.pipe(stream).pipe(socket)
    stream.on('error', () => socket.destroy())
    socket.on('error', () => stream.destroy())
  })
  let tampered = 0
  if (tamper) {
    // Hypercore has no hook for outgoing data, so wrap each new hostile
    // peer's data sender of the blobs core as it appears.
    const blobs = await drive.getBlobs()
    const replicator = blobs.core.core.replicator
    setInterval(() => {
      for (const peer of replicator.peers) {
        if (peer.hyperosTampered || !hostile.has(peer.stream)) continue
        peer.hyperosTampered = true
        const send = peer.wireData.send.bind(peer.wireData)
        peer.wireData.send = (msg) => {
          if (msg.block && msg.block.value && msg.block.value.byteLength > 0) {
            const value = b4a.from(msg.block.value)
            value[0] ^= 0xff
            msg = { ...msg, block: { ...msg.block, value } }
            tampered++
            if (tampered === 1 || tampered % 16 === 0) process.stdout.write(JSON.stringify({ tampered }) + '\n')
          }
          send(msg)
        }
      }
    }, 20).unref()
    await new Promise((resolve) => evil.listen(0, '127.0.0.1', resolve))
  }
  server.listen(Number(port || 0), '127.0.0.1', () => {
    const entrySize = fs.statSync(file).size
    const out = { key: b4a.toString(drive.key, 'hex'), port: server.address().port, size: entrySize }
    if (tamper) out.tamper_port = evil.address().port
    process.stdout.write(JSON.stringify(out) + '\n')
  })
  process.stdin.on('end', async () => {
    server.close()
    evil.close()
    await drive.close()
    await store.close()
    fs.rmSync(dir, { recursive: true, force: true })
    process.exit(0)
  })
  process.stdin.resume()
}

main().catch((err) => { console.error(err); process.exit(1) })
