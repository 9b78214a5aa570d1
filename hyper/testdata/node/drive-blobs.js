// Emits Hyperblobs fixtures for hyper/blobs: blobs of several sizes with the
// default block size, one written with a custom block size, one written as
// uneven stream chunks, and block-map (dedup) blobs; then every block of the
// core, every id, and a digest of each blob and of some byte ranges. Run
// from this directory:
//   node drive-blobs.js | gzip -n -9 > ../../blobs/testdata/blobs.json.gz
const fs = require('fs')
const os = require('os')
const path = require('path')
const crypto = require('crypto')
const b4a = require('b4a')
const Corestore = require('corestore')
const Hyperblobs = require('hyperblobs')

const hex = (b) => b4a.toString(b, 'hex')
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex')

function content (seed, size) {
  const b = b4a.alloc(size)
  for (let i = 0; i < size; i++) b[i] = (seed * 131 + i * 7 + (i >>> 8) * 13) & 0xff
  return b
}

async function collect (stream) {
  const parts = []
  for await (const p of stream) parts.push(p)
  return b4a.concat(parts)
}

async function main () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drive-blobs-'))
  const store = new Corestore(dir, { primaryKey: b4a.alloc(32, 4), unsafe: true })
  const core = store.get({ name: 'blobs' })
  await core.ready()
  const blobs = new Hyperblobs(core)

  const out = { blobs: [] }
  async function record (kind, id, data) {
    const ranges = []
    const size = data.byteLength
    for (const [start, length] of [[0, 1], [1, 100], [65535, 2], [65536, 65536], [size - 10, 10], [70000, 100000], [3, size - 3]]) {
      if (start < 0 || length <= 0 || start + length > size) continue
      const got = await collect(blobs.createReadStream(id, { start, length }))
      ranges.push({ start, length, sha256: sha(got) })
    }
    out.blobs.push({ kind, id, size, sha256: sha(await blobs.get(id)), ranges })
  }

  for (const [seed, size] of [[1, 0], [2, 1], [3, 65536], [4, 65537], [5, 200000]]) {
    const data = content(seed, size)
    const id = await blobs.put(data)
    await record('put', id, data)
  }
  {
    const data = content(6, 10000)
    const id = await blobs.put(data, { blockSize: 1000 })
    await record('blockSize1000', id, data)
  }
  {
    // uneven chunks: each stream write becomes one block
    const data = content(7, 150000)
    const ws = blobs.createWriteStream()
    const cuts = [0, 10, 70000, 70001, 140000, 150000]
    for (let i = 1; i < cuts.length; i++) ws.write(data.subarray(cuts[i - 1], cuts[i]))
    ws.end()
    await new Promise((resolve, reject) => { ws.once('close', resolve); ws.once('error', reject) })
    await record('uneven', ws.id, data)
  }
  {
    const data = content(8, 140000)
    const id = await blobs.put(data, { blockMap: true })
    await record('blockMap', id, data)
  }
  {
    // dedup against the previous block map: only changed blocks are new
    const data = b4a.concat([content(8, 65536), content(9, 74464)])
    const ws = blobs.createWriteStream({ dedup: true, blob: out.blobs[out.blobs.length - 1].id })
    for (let i = 0; i < data.byteLength; i += 65536) ws.write(data.subarray(i, i + 65536))
    ws.end()
    await new Promise((resolve, reject) => { ws.once('close', resolve); ws.once('error', reject) })
    await record('dedup', ws.id, data)
  }

  out.blocks = []
  for (let i = 0; i < core.length; i++) out.blocks.push(hex(await core.get(i)))
  await store.close()
  fs.rmSync(dir, { recursive: true, force: true })
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
