// Emits a truncated-and-regrown core for hyper/core's fork tests: a v1
// core with 20 blocks, truncated to 14 (fork 1), then 4 new blocks, with
// the signatures at each step and the proof a Node seeder sends a reader
// that still follows fork 0. Run from this directory:
//   node core-truncate.js > ../../core/testdata/truncate.json
const fs = require('fs')
const os = require('os')
const path = require('path')
const b4a = require('b4a')
const c = require('compact-encoding')
const crypto = require('hypercore-crypto')
const Hypercore = require('hypercore')
const m = require('hypercore/lib/messages')
const { MerkleTree } = require('hypercore/lib/merkle-tree')

const hex = (b) => (b ? b4a.toString(b, 'hex') : null)
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'hcgo-trunc-'))

async function main () {
  const kp = crypto.keyPair(b4a.alloc(32, 0x44))
  const core = new Hypercore(tmp(), { keyPair: kp })
  await core.ready()
  const blocks = []
  for (let i = 0; i < 20; i++) blocks.push(b4a.from('fork0 block ' + i))
  await core.append(blocks)
  const st = () => core.core.state
  const out = {
    seed: '44'.repeat(32),
    key: hex(core.key),
    blocks: blocks.map(hex),
    fork0: { length: st().length, signature: hex(st().signature) }
  }
  await core.truncate(14)
  out.truncated = { length: st().length, fork: st().fork, signature: hex(st().signature), treeHash: hex(st().hash()) }
  const more = []
  for (let i = 14; i < 18; i++) more.push(b4a.from('fork1 block ' + i))
  await core.append(more)
  out.more = more.map(hex)
  out.fork1 = { length: st().length, fork: st().fork, signature: hex(st().signature), treeHash: hex(st().hash()) }
  const rx = st().storage.read()
  const p = MerkleTree.proof(st(), rx, { block: { index: 16, nodes: 0 }, upgrade: { start: 0, length: 18 } })
  rx.tryFlush()
  const proof = await (await p).settle()
  proof.block.value = more[2]
  out.reorgProof = hex(c.encode(m.wire.data, { request: 1, fork: proof.fork, block: proof.block, hash: null, seek: null, upgrade: proof.upgrade, manifest: null }))
  fs.writeSync(1, JSON.stringify(out, null, 1) + '\n')
  process.exit(0)
}

main().catch((err) => { console.error(err); process.exit(1) })
