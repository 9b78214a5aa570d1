// Seeds a container image from a real Node.js Hyperdrive, for the live-boot
// end-to-end test: the VM fetches the image's blocks from Node, not from Go.
//
//   node container-seed.js <image file> <name in drive> [port]
//
// Writes the file into a fresh drive in a temporary corestore, serves it on
// 127.0.0.1:<port|random> (the VM reaches it as 10.0.2.2) (corestore.replicate piped to each TCP socket) and
// prints {"key","port","size"}; exits when stdin closes.
const fs = require('fs')
const os = require('os')
const net = require('net')
const path = require('path')
const { pipeline } = require('stream/promises')
const b4a = require('b4a')
const Corestore = require('corestore')
const Hyperdrive = require('hyperdrive')

async function main () {
  const [file, name, port] = process.argv.slice(2)
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
  server.listen(Number(port || 0), '127.0.0.1', () => {
    const entrySize = fs.statSync(file).size
    process.stdout.write(JSON.stringify({ key: b4a.toString(drive.key, 'hex'), port: server.address().port, size: entrySize }) + '\n')
  })
  process.stdin.on('end', async () => {
    server.close()
    await drive.close()
    await store.close()
    fs.rmSync(dir, { recursive: true, force: true })
    process.exit(0)
  })
  process.stdin.resume()
}

main().catch((err) => { console.error(err); process.exit(1) })
