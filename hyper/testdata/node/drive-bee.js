// Emits Hyperbee fixtures for hyper/bee: every block written by Node's
// hyperbee for a seeded sequence of puts and deletes (enough keys to force
// splits, borrows and merges), a batch, and the expected get/range results
// at several versions. Run from this directory:
//   node drive-bee.js | gzip -n -9 > ../../bee/testdata/bee.json.gz
const fs = require('fs')
const os = require('os')
const path = require('path')
const b4a = require('b4a')
const Corestore = require('corestore')
const Hyperbee = require('hyperbee')

// mulberry32: a tiny seeded PRNG so the operation sequence is reproducible.
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

const hex = (b) => (b === null ? null : b4a.toString(b, 'hex'))

function shuffle (arr, rand) {
  for (let i = arr.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    const t = arr[i]
    arr[i] = arr[j]
    arr[j] = t
  }
  return arr
}

async function dumpBlocks (core) {
  const out = []
  for (let i = 0; i < core.length; i++) out.push(hex(await core.get(i)))
  return out
}

async function snapshotQueries (bee, keys, version) {
  const snap = bee.checkout(version)
  const gets = []
  for (const k of keys) {
    const node = await snap.get(k)
    gets.push({ key: hex(k), result: node ? { seq: node.seq, value: hex(node.value) } : null })
  }
  const ranges = []
  const sorted = keys.slice().sort(b4a.compare)
  const pick = (f) => sorted[Math.floor(f * (sorted.length - 1))]
  const specs = [
    {},
    { reverse: true },
    { limit: 7 },
    { reverse: true, limit: 5 },
    { gt: pick(0.2), lt: pick(0.4) },
    { gte: pick(0.2), lte: pick(0.4) },
    { gte: pick(0.5), reverse: true, limit: 9 },
    { gt: pick(0.5), lte: pick(0.9), reverse: true },
    { lt: pick(0.1) },
    { gt: pick(0.95) },
    { gte: b4a.from('k'), lt: b4a.from('l') },
    { gt: b4a.from([0xff, 0xff, 0xff]) }
  ]
  for (const spec of specs) {
    const entries = []
    for await (const node of snap.createReadStream(spec)) {
      entries.push({ seq: node.seq, key: hex(node.key), value: hex(node.value) })
    }
    const s = {}
    for (const k of Object.keys(spec)) s[k] = b4a.isBuffer(spec[k]) ? hex(spec[k]) : spec[k]
    ranges.push({ range: s, entries })
  }
  await snap.close()
  return { version, gets, ranges }
}

function makeKey (i, rand) {
  // Mostly printable keys with shared prefixes, plus some binary ones, so
  // that byte-wise comparison (not string comparison) matters.
  if (i % 17 === 0) {
    const n = 1 + Math.floor(rand() * 6)
    const b = b4a.alloc(n)
    for (let j = 0; j < n; j++) b[j] = Math.floor(rand() * 256)
    return b
  }
  return b4a.from('k' + String(i).padStart(4, '0') + (i % 3 === 0 ? '/sub' : ''))
}

function makeValue (i, rand) {
  const n = i % 23 === 0 ? 0 : Math.floor(rand() * 40)
  const b = b4a.alloc(n)
  for (let j = 0; j < n; j++) b[j] = Math.floor(rand() * 256)
  return b
}

async function main () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drive-bee-'))
  const store = new Corestore(dir, { primaryKey: b4a.alloc(32, 3), unsafe: true })
  const rand = rng(0x5eed)

  // --- 1: single operations ---
  const core = store.get({ name: 'bee' })
  const bee = new Hyperbee(core)
  await bee.ready()

  const ops = []
  const allKeys = []
  const seen = new Set()
  for (let i = 0; i < 420; i++) {
    const k = makeKey(i, rand)
    if (seen.has(hex(k))) continue
    seen.add(hex(k))
    allKeys.push(k)
  }
  const live = new Map()
  const checkpoints = []

  async function put (k, v) {
    await bee.put(k, v)
    live.set(hex(k), k)
    ops.push({ op: 'put', key: hex(k), value: hex(v), length: core.length })
  }
  async function del (k) {
    await bee.del(k)
    live.delete(hex(k))
    ops.push({ op: 'del', key: hex(k), length: core.length })
  }

  // inserts in random order
  for (const k of shuffle(allKeys.slice(), rand)) await put(k, makeValue(ops.length, rand))
  checkpoints.push(core.length)
  // overwrites
  for (const k of shuffle(allKeys.slice(), rand).slice(0, 40)) await put(k, makeValue(ops.length, rand))
  checkpoints.push(core.length)
  // deletes in random order, including keys that were never there (no-ops)
  const toDelete = shuffle(allKeys.slice(), rand).slice(0, 300)
  for (let i = 0; i < toDelete.length; i++) {
    await del(toDelete[i])
    if (i % 50 === 0) await del(b4a.from('missing-' + i))
  }
  checkpoints.push(core.length)
  // re-insert some, delete more until the tree is small again
  for (const k of shuffle(toDelete.slice(), rand).slice(0, 60)) await put(k, makeValue(ops.length, rand))
  checkpoints.push(core.length)
  const remaining = shuffle([...live.values()], rand)
  for (let i = 0; i < remaining.length - 3; i++) await del(remaining[i])
  checkpoints.push(core.length)
  // the empty key and extreme bytes, then empty values
  await put(b4a.alloc(0), b4a.from('empty key'))
  await put(b4a.from([0xff, 0xff, 0xff, 0xff]), b4a.alloc(0))
  await put(b4a.from([0x00]), b4a.from([0]))
  allKeys.push(b4a.alloc(0), b4a.from([0xff, 0xff, 0xff, 0xff]), b4a.from([0x00]))
  checkpoints.push(core.length)
  await del(b4a.alloc(0))
  checkpoints.push(core.length)

  // diffs between versions: left is the checkout at a, right at b
  const entryOut = (e) => (e ? { seq: e.seq, key: hex(e.key), value: hex(e.value) } : null)
  const diffs = []
  const pairs = [[checkpoints[0], checkpoints[1]], [checkpoints[1], checkpoints[0]], [checkpoints[1], checkpoints[2]], [checkpoints[2], checkpoints[3]], [checkpoints[3], checkpoints[4]], [checkpoints[0], checkpoints[4]], [300, 310], [2, 50], [checkpoints[5], checkpoints[6]], [1, checkpoints[0]]]
  for (const [a, bv] of pairs) {
    for (const range of [{}, { gte: b4a.from('k02'), lt: b4a.from('k03') }]) {
      const left = bee.checkout(a)
      const out = []
      for await (const d of left.createDiffStream(bv, range)) out.push({ left: entryOut(d.left), right: entryOut(d.right) })
      await left.close()
      const r = {}
      for (const k of Object.keys(range)) r[k] = hex(range[k])
      diffs.push({ left: a, right: bv, range: r, entries: out })
    }
  }

  const history = []
  for (const opts of [{}, { gte: 400, lt: 420 }, { reverse: true, limit: 30 }, { gte: 750, lt: 780, reverse: true }, { gte: 990 }]) {
    const out = []
    for await (const h of bee.createHistoryStream(opts)) out.push({ type: h.type, seq: h.seq, key: hex(h.key), value: hex(h.value) })
    history.push({ opts, entries: out })
  }

  const queries = []
  for (const v of [1, 2, 3, 10, 50, ...checkpoints]) {
    queries.push(await snapshotQueries(bee, allKeys.concat([b4a.from('missing'), b4a.from('')]), v))
  }

  // --- 2: a batch with puts and deletes (different block layout) ---
  const core2 = store.get({ name: 'batch' })
  const bee2 = new Hyperbee(core2)
  await bee2.ready()
  const batchOps = []
  const keys2 = []
  for (let i = 0; i < 120; i++) keys2.push(b4a.from('b' + String(i * 7919 % 1000).padStart(3, '0')))
  // a few single puts first
  for (const k of keys2.slice(0, 15)) {
    const v = makeValue(batchOps.length, rand)
    await bee2.put(k, v)
    batchOps.push({ op: 'put', key: hex(k), value: hex(v), batch: 0 })
  }
  // then batches of puts and deletes, flushed as one append each
  let bno = 1
  for (let start = 15; start < keys2.length; start += 35) {
    const b = bee2.batch()
    for (const k of keys2.slice(start, start + 35)) {
      const v = makeValue(batchOps.length, rand)
      await b.put(k, v)
      batchOps.push({ op: 'put', key: hex(k), value: hex(v), batch: bno })
      if (rand() < 0.2) {
        const d = keys2[Math.floor(rand() * (start + 1))]
        await b.del(d)
        batchOps.push({ op: 'del', key: hex(d), batch: bno })
      }
    }
    await b.flush()
    bno++
  }
  const b = bee2.batch()
  for (const k of shuffle(keys2.slice(), rand).slice(0, 70)) {
    await b.del(k)
    batchOps.push({ op: 'del', key: hex(k), batch: bno })
  }
  await b.flush()
  const batchQueries = [await snapshotQueries(bee2, keys2, core2.length)]

  // --- 3: a long random mix of single writes and batches, with reads
  // through the batches (which see their own pending writes) ---
  const core3 = store.get({ name: 'mixed' })
  const bee3 = new Hyperbee(core3)
  await bee3.ready()
  const mixed = []
  const mrand = rng(0x3a7)
  const keyspace = 300
  const mkey = () => b4a.from((Math.floor(mrand() * keyspace) * 7919).toString(16))
  for (let step = 0; step < 1200; step++) {
    const x = Math.floor(mrand() * 10)
    if (x < 5) {
      const k = mkey()
      const v = b4a.from('v' + step)
      await bee3.put(k, v)
      mixed.push({ op: 'put', key: hex(k), value: hex(v), batch: 0 })
    } else if (x < 8) {
      const k = mkey()
      await bee3.del(k)
      mixed.push({ op: 'del', key: hex(k), batch: 0 })
    } else {
      const b = bee3.batch()
      const n = 1 + Math.floor(mrand() * 30)
      for (let i = 0; i < n; i++) {
        const k = mkey()
        if (mrand() < 0.33) {
          await b.del(k)
          mixed.push({ op: 'del', key: hex(k), batch: step })
        } else {
          const v = b4a.from('b' + step + '.' + i)
          await b.put(k, v)
          mixed.push({ op: 'put', key: hex(k), value: hex(v), batch: step })
        }
        const probe = mrand() < 0.5 ? k : mkey()
        const got = await b.get(probe)
        mixed.push({ op: 'get', key: hex(probe), batch: step, result: got ? { seq: got.seq, value: hex(got.value) } : null })
      }
      await b.flush()
    }
  }
  const mixedQueries = [await snapshotQueries(bee3, Array.from({ length: keyspace }, (_, i) => b4a.from((i * 7919).toString(16))), core3.length)]

  const out = {
    mixed: { ops: mixed, blocks: await dumpBlocks(core3), queries: mixedQueries },
    description: 'hyperbee ' + require('hyperbee/package.json').version + ' blocks for a seeded op sequence',
    single: { ops, blocks: await dumpBlocks(core), queries, diffs, history },
    batch: { ops: batchOps, blocks: await dumpBlocks(core2), queries: batchQueries }
  }

  await bee.close()
  await bee2.close()
  await bee3.close()
  await store.close()
  fs.rmSync(dir, { recursive: true, force: true })
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
