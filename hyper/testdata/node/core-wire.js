// Emits encoded hypercore 11 wire messages, manifests and multisignature
// blobs for hyper/core/wire. Run from this directory:
//   node core-wire.js > ../../core/wire/testdata/messages.json
const c = require('compact-encoding')
const b4a = require('b4a')
const m = require('hypercore/lib/messages')
const caps = require('hypercore/lib/caps')

const hex = (b) => b4a.toString(b, 'hex')
const fill = (n, v) => b4a.alloc(n, v)
const node = (index, size, v) => ({ index, size, hash: fill(32, v) })

// JSON form: buffers as hex
function j(v) {
  if (b4a.isBuffer(v)) return { hex: hex(v) }
  if (Array.isArray(v)) return v.map(j)
  if (v instanceof Uint32Array) return Array.from(v)
  if (v && typeof v === 'object') {
    const o = {}
    for (const k of Object.keys(v)) o[k] = j(v[k])
    return o
  }
  return v
}

const out = { messages: [], manifests: [], multisig: [], handshake: [] }
function msg(type, enc, value) {
  out.messages.push({ type, value: j(value), hex: hex(c.encode(enc, value)) })
}

const w = m.wire
msg('sync', w.sync, { fork: 0, length: 2, remoteLength: 0, canUpgrade: true, uploading: true, downloading: true, hasManifest: true, allowPush: false })
msg('sync', w.sync, { fork: 3, length: 70000, remoteLength: 2 ** 40, canUpgrade: false, uploading: false, downloading: true, hasManifest: false, allowPush: true })
msg('request', w.request, { id: 1, fork: 0, block: null, hash: null, seek: null, upgrade: { start: 0, length: 2 }, manifest: true, priority: 0 })
msg('request', w.request, { id: 1, fork: 0, block: { index: 0, nodes: 1 }, hash: null, seek: null, upgrade: null, manifest: false, priority: 1 })
msg('request', w.request, { id: 300, fork: 2, block: null, hash: { index: 7, nodes: 2 }, seek: { bytes: 1000, padding: 3 }, upgrade: { start: 5, length: 9 }, manifest: false, priority: 0 })
msg('cancel', w.cancel, { request: 77 })
msg('data', w.data, { request: 1, fork: 0, block: { index: 3, value: b4a.from('hello'), nodes: [node(4, 10, 1), node(1, 20, 2)] }, hash: null, seek: null, upgrade: null, manifest: null })
msg('data', w.data, { request: 9, fork: 1, block: null, hash: { index: 5, nodes: [node(3, 99, 3)] }, seek: { bytes: 12, nodes: [] }, upgrade: { start: 0, length: 5, nodes: [node(3, 10, 4)], additionalNodes: [node(8, 5, 5)], signature: fill(68, 6) }, manifest: null })
msg('data', w.data, { request: 2, fork: 0, block: { index: 0, value: b4a.alloc(0), nodes: [] }, hash: null, seek: null, upgrade: { start: 1, length: 1, nodes: [], additionalNodes: [], signature: null }, manifest: { version: 1, hash: 'blake2b', allowPatch: false, quorum: 1, signers: [{ signature: 'ed25519', namespace: caps.DEFAULT_NAMESPACE, publicKey: fill(32, 7) }], prologue: null, linked: null, userData: null } })
msg('noData', w.noData, { request: 4, reason: 0 })
msg('noData', w.noData, { request: 5, reason: 1 })
msg('noData', w.noData, { request: 6, reason: 2 })
msg('want', w.want, { start: 0, length: 2097152, any: false })
msg('want', w.want, { start: 64, length: 32, any: true })
msg('unwant', w.unwant, { start: 0, length: 2097152, any: false })
msg('bitfield', w.bitfield, { start: 32, bitfield: new Uint32Array([0xffffffff, 1, 0x80000000]) })
msg('range', w.range, { drop: false, start: 0, length: 2 })
msg('range', w.range, { drop: true, start: 5, length: 1 })
msg('range', w.range, { drop: false, start: 7, length: 0 })
msg('extension', w.extension, { name: 'hyperbee', message: b4a.from([3, 1, 2, 3]) })
msg('extension', w.extension, { name: '', message: b4a.alloc(0) })

out.handshake.push({ value: { seeks: true, capability: { hex: hex(fill(32, 9)) } }, hex: hex(c.encode(w.handshake, { seeks: true, capability: fill(32, 9) })) })

function man(v) {
  out.manifests.push({ value: j(v), hex: hex(c.encode(m.manifest, v)) })
}
const signer = (k, ns = caps.DEFAULT_NAMESPACE) => ({ signature: 'ed25519', namespace: ns, publicKey: fill(32, k) })
const base = { hash: 'blake2b', allowPatch: false, prologue: null, linked: null, userData: null }
man({ ...base, version: 1, quorum: 1, signers: [signer(1)] })
man({ ...base, version: 1, quorum: 2, allowPatch: true, signers: [signer(1), signer(2), signer(3, fill(32, 4))] })
man({ ...base, version: 1, quorum: 0, signers: [], prologue: { hash: fill(32, 5), length: 12 } })
man({ ...base, version: 2, quorum: 1, signers: [signer(6)], linked: [fill(32, 7), fill(32, 8)], userData: b4a.from('user') })
man({ ...base, version: 2, quorum: 1, signers: [signer(6)], linked: [], userData: null })
man({ ...base, version: 0, quorum: 1, signers: [signer(1)] })
man({ ...base, version: 0, quorum: 2, allowPatch: true, signers: [signer(1), signer(2)] })
man({ ...base, version: 0, quorum: 0, signers: [], prologue: { hash: fill(32, 5), length: 0 } })

out.multisig.push({ v: 1, value: j({ proofs: [{ signer: 0, signature: fill(64, 1), patch: 0 }], patch: [] }), hex: hex(c.encode(m.multiSignature, { proofs: [{ signer: 0, signature: fill(64, 1), patch: 0 }], patch: [] })) })
const ms = { proofs: [{ signer: 2, signature: fill(64, 2), patch: 3 }, { signer: 0, signature: fill(64, 3), patch: 0 }], patch: [node(5, 40, 9), node(12, 3, 10)] }
out.multisig.push({ v: 1, value: j(ms), hex: hex(c.encode(m.multiSignature, ms)) })
const ms0 = { proofs: [{ signer: 1, signature: fill(64, 4), patch: { start: 4, length: 2, nodes: [0, 1] } }, { signer: 0, signature: fill(64, 5), patch: null }], patch: [node(9, 2, 11), node(10, 1, 12)] }
out.multisig.push({ v: 0, value: j(ms0), hex: hex(c.encode(m.multiSignaturev0, ms0)) })

process.stdout.write(JSON.stringify(out, null, 1) + '\n')
