// Emits Merkle tree, signature and proof fixtures for hyper/core/merkle
// using the real hypercore 11 code paths (MerkleTree.proof, Verifier,
// multisig). Run from this directory:
//   node core-merkle.js > ../../core/merkle/testdata/merkle.json
const fs = require('fs')
const os = require('os')
const path = require('path')
const b4a = require('b4a')
const c = require('compact-encoding')
const crypto = require('hypercore-crypto')
const Hypercore = require('hypercore')
const m = require('hypercore/lib/messages')
const caps = require('hypercore/lib/caps')
const Verifier = require('hypercore/lib/verifier')
const multisig = require('hypercore/lib/multisig')
const { MerkleTree, MerkleTreeBatch } = require('hypercore/lib/merkle-tree')

const hex = (b) => (b ? b4a.toString(b, 'hex') : null)
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'hcgo-'))
const jnode = (n) => ({ index: n.index, size: n.size, hash: hex(n.hash) })

function blockAt (i) {
  const len = (i * 37) % 50 + 1
  const b = b4a.alloc(len)
  for (let k = 0; k < len; k++) b[k] = (i * 7 + k) & 0xff
  return b
}

async function dumpCore (core, blocks, reqs) {
  const st = core.core.state
  const out = {
    key: hex(core.key),
    discoveryKey: hex(core.discoveryKey),
    manifest: core.core.header.manifest ? hex(c.encode(m.manifest, core.core.header.manifest)) : null,
    compat: core.core.compat,
    length: st.length,
    fork: st.fork,
    byteLength: st.byteLength,
    blocks: blocks.map(hex),
    roots: st.roots.map(jnode),
    treeHash: hex(st.hash()),
    signature: hex(st.signature),
    nodes: [],
    proofs: []
  }
  for (let i = 0; i < 2 * st.length - 1; i++) {
    const n = await MerkleTree.get(st, i)
    if (n) out.nodes.push(jnode(n))
  }
  let id = 0
  for (const r of reqs) {
    const req = { id: ++id, fork: st.fork, block: r.block || null, hash: r.hash || null, seek: r.seek || null, upgrade: r.upgrade || null, manifest: !!r.manifest, priority: 0 }
    const entry = { request: hex(c.encode(m.wire.request, req)), error: null, data: null }
    try {
      const rx = st.storage.read()
      const p = await MerkleTree.proof(st, rx, { block: req.block, hash: req.hash, seek: req.seek, upgrade: req.upgrade })
      rx.tryFlush()
      const proof = await p.settle()
      if (proof.block) proof.block.value = blocks[proof.block.index]
      const data = { request: req.id, fork: proof.fork, block: proof.block, hash: proof.hash, seek: proof.seek, upgrade: proof.upgrade, manifest: req.manifest ? core.core.header.manifest : null }
      entry.data = hex(c.encode(m.wire.data, data))
    } catch (err) {
      entry.error = err.code || err.message
    }
    out.proofs.push(entry)
  }
  return out
}

function requests (L) {
  const reqs = []
  // upgrades alone, including ones shorter than the tree (additional nodes)
  for (const [s, l] of [[0, L], [0, 1], [0, 20], [5, 10], [16, L - 16], [L - 1, 1], [32, L - 32], [20, L - 20], [3, 1], [0, 0], [10, L]]) {
    if (l >= 0 && s + l <= L + 1) reqs.push({ upgrade: { start: s, length: l } })
  }
  // blocks with every node count up to past the root
  for (const i of [0, 1, 5, 16, 31, 32, L - 1]) {
    for (let n = 0; n <= 7; n++) reqs.push({ block: { index: i, nodes: n } })
  }
  // blocks with upgrades (inside and before the upgrade range)
  for (const [i, n, s, l] of [[0, 0, 0, L], [3, 0, 0, L], [10, 0, 0, 34], [33, 0, 0, L], [L - 1, 0, 0, L], [20, 0, 16, L - 16], [2, 2, 16, L - 16], [2, 1, 16, 4], [L - 1, 0, 30, L - 30], [5, 0, 8, 4], [12, 3, 16, 8]]) {
    reqs.push({ block: { index: i, nodes: n }, upgrade: { start: s, length: l } })
  }
  // hash requests
  for (const [i, n, up] of [[3, 1, null], [3, 2, null], [15, 2, null], [5, 0, null], [7, 0, { start: 0, length: L }], [22, 1, { start: 16, length: L - 16 }], [1, 3, null]]) {
    reqs.push({ hash: { index: i, nodes: n }, upgrade: up })
  }
  // seeks
  for (const [b, p, up] of [[0, 0, [0, L]], [100, 0, [0, L]], [321, 0, [0, L]], [500, 1, [0, L]], [7, 0, [0, 20]], [250, 0, null], [1000, 0, [0, L]], [99999, 0, [0, L]]]) {
    reqs.push({ seek: { bytes: b, padding: p }, upgrade: up && { start: up[0], length: up[1] } })
  }
  reqs.push({ block: { index: 4, nodes: 2 }, seek: { bytes: 60, padding: 0 } })
  reqs.push({ block: { index: 1, nodes: 3 }, seek: { bytes: 20, padding: 0 }, upgrade: { start: 16, length: L - 16 } })
  reqs.push({ upgrade: { start: 0, length: L }, manifest: true })
  return reqs.filter((r) => !r.upgrade || r.upgrade.length >= 0)
}

async function main () {
  const out = {}

  // primitives
  out.hashes = {
    namespaces: crypto.namespace('hypercore', 6).map(hex),
    leaves: [b4a.alloc(0), b4a.from('a'), b4a.alloc(1000, 3)].map((b) => ({ data: hex(b), hash: hex(crypto.data(b)) })),
    parent: hex(crypto.parent({ index: 0, size: 3, hash: b4a.alloc(32, 1) }, { index: 2, size: 4, hash: b4a.alloc(32, 2) })),
    parentSwapped: hex(crypto.parent({ index: 2, size: 4, hash: b4a.alloc(32, 2) }, { index: 0, size: 3, hash: b4a.alloc(32, 1) })),
    tree: hex(crypto.tree([{ index: 7, size: 100, hash: b4a.alloc(32, 4) }, { index: 9, size: 5, hash: b4a.alloc(32, 5) }])),
    discoveryKey: hex(crypto.discoveryKey(b4a.alloc(32, 6))),
    capabilityInitiator: hex(caps.replicate(true, b4a.alloc(32, 6), b4a.alloc(64, 8))),
    capabilityResponder: hex(caps.replicate(false, b4a.alloc(32, 6), b4a.alloc(64, 8)))
  }

  // a v1 manifest core with 37 blocks of varying size
  const L = 37
  const blocks = []
  for (let i = 0; i < L; i++) blocks.push(blockAt(i))
  const kp = crypto.keyPair(b4a.alloc(32, 0x21))
  const core = new Hypercore(tmp(), { keyPair: kp })
  await core.ready()
  await core.append(blocks.slice(0, 10))
  await core.append(blocks.slice(10, 30))
  for (let i = 30; i < L; i++) await core.append(blocks[i])
  out.core = await dumpCore(core, blocks, requests(L))
  out.core.seed = '21'.repeat(32)

  // a multi-signer manifest (2 of 3, patches allowed) over the same tree:
  // signer 0 signs length 30, signer 2 signs length 37 and proves 30 -> 37
  // with patch nodes.
  const kps = [0x31, 0x32, 0x33].map((s) => crypto.keyPair(b4a.alloc(32, s)))
  const manifest = Verifier.createManifest({ quorum: 2, allowPatch: true, signers: kps.map((k) => ({ publicKey: k.publicKey })) })
  const mkey = Verifier.manifestHash(manifest)
  const st = core.core.state
  const b30 = new MerkleTreeBatch(st)
  await b30.restore(30)
  const sig0 = crypto.sign(b30.signable(mkey), kps[0].secretKey)
  const full = new MerkleTreeBatch(st)
  const sig2 = crypto.sign(full.signable(mkey), kps[2].secretKey)
  const rx = st.storage.read()
  const up = MerkleTree.proof(st, rx, { upgrade: { start: 30, length: 7 } })
  rx.tryFlush()
  const upNodes = (await (await up).settle()).upgrade.nodes
  const blob = multisig.assemble([
    { signer: 0, signature: sig0, patch: 0, nodes: null },
    { signer: 2, signature: sig2, patch: 7, nodes: upNodes }
  ])
  const verifier = new Verifier(mkey, manifest)
  out.multisig = {
    seeds: ['31', '32', '33'].map((s) => s.repeat(32)),
    manifest: hex(c.encode(m.manifest, manifest)),
    key: hex(mkey),
    length: 30,
    roots: b30.roots.map(jnode),
    signature: hex(blob),
    verified: verifier.verify(b30, blob),
    plainSignature: hex(multisig.assemble([{ signer: 1, signature: crypto.sign(full.signable(mkey), kps[1].secretKey), patch: 0, nodes: null }, { signer: 2, signature: sig2, patch: 0, nodes: null }])),
    plainLength: L
  }
  // a static (prologue) manifest pinning the first 20 blocks of the tree
  const b20 = new MerkleTreeBatch(st)
  await b20.restore(20)
  const staticManifest = Verifier.createManifest({ quorum: 0, signers: [], prologue: { hash: b20.hash(), length: 20 } })
  const skey = Verifier.manifestHash(staticManifest)
  const sv = new Verifier(skey, staticManifest)
  out.static = {
    manifest: hex(c.encode(m.manifest, staticManifest)),
    key: hex(skey),
    length: 20,
    roots: b20.roots.map(jnode),
    verified: sv.verify(b20, null),
    verifiedFull: sv.verify(new MerkleTreeBatch(st), null)
  }

  // version-0 manifests: one signer (raw signature over the signer's
  // namespace) and two of two (multiSignaturev0)
  out.v0 = []
  for (const signers of [[kps[0]], [kps[0], kps[1]]]) {
    const man = Verifier.createManifest({ version: 0, quorum: signers.length, signers: signers.map((k) => ({ publicKey: k.publicKey })) })
    const key = Verifier.manifestHash(man)
    const v = new Verifier(key, man)
    const sigs = signers.map((k) => v.sign(full, k))
    const sig = signers.length === 1 ? sigs[0] : v.assemble(sigs.map((s, i) => ({ signer: i, signature: s, patch: 0, nodes: null })))
    out.v0.push({ manifest: hex(c.encode(m.manifest, man)), key: hex(key), signature: hex(sig), verified: v.verify(full, sig) })
  }

  // close() never settles after the restored batch above; the process
  // exits explicitly at the end instead.
  core.close().catch(() => {})

  // a compat core (key = public key)
  const ckp = crypto.keyPair(b4a.alloc(32, 0x22))
  const cc = new Hypercore(tmp(), { compat: true, keyPair: ckp })
  await cc.ready()
  const cblocks = blocks.slice(0, 11)
  await cc.append(cblocks)
  out.compat = await dumpCore(cc, cblocks, requests(11).filter((r) => {
    const all = [r.block && r.block.index, r.upgrade && r.upgrade.start + r.upgrade.length]
    return all.every((x) => !x || x <= 11)
  }))
  out.compat.seed = '22'.repeat(32)
  cc.close().catch(() => {})

  fs.writeSync(1, JSON.stringify(out) + '\n')
  process.exit(0)
}

main().catch((err) => { console.error(err); process.exit(1) })
