// Emits Hyperdrive fixtures for hyper/drive: a drive with nested folders, a
// file over 64 KiB, an empty file, symlinks (relative, absolute, looping),
// executables, metadata, overwrites, deletes, odd path spellings, a batch
// and enough files in one folder to split the Hyperbee; then every block of
// the db and blobs cores and the expected entries, listings, readdirs and
// file digests at several versions. Run from this directory:
//   node drive-drive.js | gzip -n -9 > ../../drive/testdata/drive.json.gz
const fs = require('fs')
const os = require('os')
const path = require('path')
const crypto = require('crypto')
const b4a = require('b4a')
const c = require('compact-encoding')
const Corestore = require('corestore')
const Hyperdrive = require('hyperdrive')
const messages = require('hypercore/lib/messages')

const hex = (b) => b4a.toString(b, 'hex')

function rng (seed) {
  let a = seed >>> 0
  return function () {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// content is a deterministic byte pattern the Go test regenerates from
// (seed, size) instead of storing every file twice.
function content (seed, size) {
  const b = b4a.alloc(size)
  for (let i = 0; i < size; i++) b[i] = (seed * 131 + i * 7 + (i >>> 8) * 13) & 0xff
  return b
}

async function main () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drive-drive-'))
  const store = new Corestore(dir, { primaryKey: b4a.alloc(32, 2), unsafe: true })
  const drive = new Hyperdrive(store)
  await drive.ready()

  const ops = []
  const paths = new Set()
  const rand = rng(0xd21e)

  async function put (p, size, seed, opts = {}) {
    const o = {}
    if (opts.executable) o.executable = true
    if (opts.metadata !== undefined) o.metadata = JSON.parse(opts.metadata)
    await drive.put(p, content(seed, size), o)
    paths.add(p)
    ops.push({ op: 'put', path: p, size, seed, executable: !!opts.executable, metadata: opts.metadata === undefined ? null : opts.metadata, version: drive.version, blobsLength: drive.blobs.core.length })
  }
  async function symlink (p, target, metadata) {
    await drive.symlink(p, target, metadata === undefined ? {} : { metadata: JSON.parse(metadata) })
    paths.add(p)
    ops.push({ op: 'symlink', path: p, target, metadata: metadata === undefined ? null : metadata, version: drive.version, blobsLength: drive.blobs.core.length })
  }
  async function del (p) {
    await drive.del(p)
    ops.push({ op: 'del', path: p, version: drive.version, blobsLength: drive.blobs.core.length })
  }

  const checkpoints = []

  await put('/README.md', 40, 1)
  await put('src/main.go', 300, 2)
  await put('/src/lib/a.txt', 10, 3)
  await put('/src/lib/b.txt', 12, 4, { metadata: '{"mode":420}' })
  await put('/bin/tool', 100, 5, { executable: true })
  checkpoints.push(drive.version)
  await put('/big.bin', 150000, 6, { metadata: '{"note":"three blocks"}' })
  await put('/empty.txt', 0, 7)
  await symlink('/link-main', 'src/main.go')
  await symlink('/abs-link', '/README.md')
  await symlink('/docs/up', '../../README.md', '{"why":"relative to the link itself"}')
  await symlink('/loop1', '/loop2')
  await symlink('/loop2', '/loop1')
  await put('/a/../c/./d.txt', 5, 8)
  await put('weird\\back/slash.txt', 6, 9)
  await put('/unicode/\u00f1o\u00f1o \u2603.txt', 7, 10)
  await put('/docs/x/y/z.txt', 8, 11)
  await put('/docs/x.txt', 9, 12)
  await put('/docs/x0', 9, 13)
  checkpoints.push(drive.version)
  const many = []
  for (let i = 0; i < 70; i++) many.push('/many/f' + String(i).padStart(3, '0'))
  for (let i = many.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    const t = many[i]
    many[i] = many[j]
    many[j] = t
  }
  for (let i = 0; i < many.length; i++) await put(many[i], 1 + (i % 5), 100 + i)
  await put('/many/sub/deeper/file', 3, 200)
  checkpoints.push(drive.version)
  await del('/src/lib/b.txt')
  await del('/does/not/exist')
  await put('/README.md', 50, 14, { executable: true })
  await put('/meta.json', 2, 15, {
    metadata: '{"b":1,"a":[true,null,"x\\u2028y<>&\\u00e9\\"\\\\\\n\\u0001"],"2":{"z":1e21,"y":0.1,"x":-0,"w":1e-7,"v":123456789012345680000,"u":5e-324,"t":1.7976931348623157e308},"10":[],"1":{},"b2":"dup","b2 ":false}'
  })
  for (let i = 0; i < 30; i++) await del(many[i])
  checkpoints.push(drive.version)

  // a batch: db entries flushed as one append, blobs appended as they go
  const batch = drive.batch()
  const batchOps = []
  await batch.put('/batch/one', content(300, 20))
  batchOps.push({ op: 'put', path: '/batch/one', size: 20, seed: 300, executable: false, metadata: null })
  await batch.put('/batch/two', content(301, 70000), { executable: true })
  batchOps.push({ op: 'put', path: '/batch/two', size: 70000, seed: 301, executable: true, metadata: null })
  await batch.del('/many/f050')
  batchOps.push({ op: 'del', path: '/many/f050' })
  await batch.symlink('/batch/link', 'one')
  batchOps.push({ op: 'symlink', path: '/batch/link', target: 'one', metadata: null })
  for (const p of ['/batch/one', '/batch/two', '/batch/link']) paths.add(p)
  await batch.flush()
  ops.push({ op: 'batch', ops: batchOps, version: drive.version, blobsLength: drive.blobs.core.length })
  checkpoints.push(drive.version)

  // dedup rewrites: only changed 64 KiB blocks are appended, plus a map
  async function putDedup (p, size, seed, patchAt) {
    const data = content(seed, size)
    if (patchAt >= 0) data[patchAt] ^= 0xff
    const ws = drive.createWriteStream(p, { dedup: true })
    for (let i = 0; i < size; i += 65536) ws.write(data.subarray(i, i + 65536))
    ws.end()
    await new Promise((resolve, reject) => { ws.once('close', resolve); ws.once('error', reject) })
    paths.add(p)
    ops.push({ op: 'putDedup', path: p, size, seed, patchAt, version: drive.version, blobsLength: drive.blobs.core.length })
  }
  await putDedup('/big.bin', 150000, 6, 70000)
  await putDedup('/big.bin', 150000, 6, -1)
  await putDedup('/fresh-dedup.bin', 140000, 16, -1)
  checkpoints.push(drive.version)

  for (const p of many) paths.add(p)
  const probePaths = [...paths, '/nope', '/src', '/src/', 'src/lib/../main.go', '/many/sub']

  const queries = []
  for (const v of checkpoints) {
    const snap = drive.checkout(v)
    await snap.ready()
    const q = { version: v, entries: [], files: [], lists: [], readdirs: [] }
    for (const p of probePaths) {
      const e = await snap.entry(p)
      let followed
      try {
        followed = { entry: await snap.entry(p, { follow: true }) }
      } catch (err) {
        followed = { error: err.message }
      }
      q.entries.push({ path: p, entry: e, follow: followed })
      if (e && e.value.blob) {
        const data = await snap.get(p)
        q.files.push({ path: p, size: data === null ? 0 : data.byteLength, sha256: crypto.createHash('sha256').update(data || b4a.alloc(0)).digest('hex') })
      }
    }
    for (const [folder, recursive] of [['/', true], ['/', false], ['/src', true], ['/many', false], ['/many/', true], ['/docs', false], ['/nope', true], ['', true]]) {
      const out = []
      for await (const e of snap.list(folder, { recursive })) out.push(e)
      q.lists.push({ folder, recursive, entries: out })
    }
    for (const folder of ['/', '/src', '/many', '/docs', '/docs/x', '/nope', '/big.bin']) {
      const out = []
      for await (const name of snap.readdir(folder)) out.push(name)
      q.readdirs.push({ folder, names: out })
    }
    await snap.close()
    queries.push(q)
  }

  const diffs = []
  for (const v of checkpoints) {
    for (const folder of ['/', '/many', '/src', '/nope']) {
      const out = []
      for await (const d of drive.diff(v, folder)) out.push(d)
      diffs.push({ version: v, folder, entries: out })
    }
  }
  {
    const old = drive.checkout(checkpoints[0])
    const out = []
    for await (const d of old.diff(checkpoints[3], '/')) out.push(d)
    diffs.push({ from: checkpoints[0], version: checkpoints[3], folder: '/', entries: out })
    await old.close()
  }

  const db = drive.db.core
  const blobs = drive.blobs.core
  const dbBlocks = []
  for (let i = 0; i < db.length; i++) dbBlocks.push(hex(await db.get(i)))
  const blobBlocks = []
  for (let i = 0; i < blobs.length; i++) blobBlocks.push(hex(await blobs.get(i)))

  // path normalisation (Hyperdrive's std()) and JSON value round trips
  const unixPathResolve = require('unix-path-resolve')
  const pathCases = ['/', '', 'a', '/a/b/', 'a//b', './a/./b/.', 'a/../b', '/a/b/../../c', '..', '/..', 'a/../..',
    'a\\b\\c', '\\a', 'c:/x/y', 'c:\\x', 'file:/x/y', 'file:///x', 'http://host/x/y', 'http://host', 'x:', 'ab:/x',
    '/\u00f1/\u2603/\ud83d\ude00', 'trailing/', '/.hidden/..x', '//double//slash//']
  const pathVectors = []
  for (const p of pathCases) {
    let r
    try {
      r = { out: unixPathResolve('/', p) }
    } catch (err) {
      r = { error: err.message }
    }
    const link = {}
    try {
      link.out = unixPathResolve('/a/b/link', p)
    } catch (err) {
      link.error = err.message
    }
    pathVectors.push({ in: p, resolved: r, fromLink: link })
  }
  const jsonCases = ['0', '-0', '1', '-1.5', '1e21', '1e20', '123e-20', '1e-6', '1e-7', '0.000001234', '5e-324', '1.7976931348623157e308', '1e400', '-1e400',
    '100', '1.0', '2.50', '"\\u0000\\u001f\\u007f\\u0080\\u2028\\u2029\\ud83d\\ude00"', '"</script>"', '{"b":1,"a":2,"1":3,"0":4,"01":5,"-1":6,"4294967294":7,"4294967295":8,"1.5":9}',
    '{"a":1,"a":2,"b":3}', '[1,[2,[3,{}]],[]]', ' { "x" : [ true , false , null ] } ', '"\\/"', 'true', 'null']
  const jsonRand = rng(0x150a)
  for (let i = 0; i < 300; i++) {
    const e = Math.floor(jsonRand() * 80) - 40
    const m = jsonRand() * 10
    jsonCases.push(String(m * Math.pow(10, e)))
    jsonCases.push(String(Math.floor(jsonRand() * 2 ** 53)))
  }
  const json = jsonCases.map((s) => ({ in: s, out: JSON.stringify(JSON.parse(s)) }))

  const out = {
    paths: pathVectors,
    json,
    description: 'hyperdrive ' + require('hyperdrive/package.json').version + ' written from a fixed op sequence',
    key: hex(drive.key),
    manifest: hex(c.encode(messages.manifest, db.manifest)),
    blobsKey: hex(blobs.key),
    blobsManifest: hex(c.encode(messages.manifest, blobs.manifest)),
    dbTreeHash: hex(db.core.state.hash()),
    dbSignature: hex(db.core.state.signature),
    blobsTreeHash: hex(blobs.core.state.hash()),
    blobsSignature: hex(blobs.core.state.signature),
    ops,
    queries,
    diffs,
    dbBlocks,
    blobBlocks
  }

  await drive.close()
  await store.close()
  fs.rmSync(dir, { recursive: true, force: true })
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
