// Verifies Go-generated proofs with Node's hypercore: reads
// {key, proofs: [hex wire.data]} as JSON on stdin, opens a fresh reader
// core for key and feeds each proof through core.verify (the path the
// replicator uses). Prints [{ok, error, length, has}] as JSON.
// Used by hyper/core's TestNodeVerifiesGoProofs.
const fs = require('fs')
const os = require('os')
const path = require('path')
const b4a = require('b4a')
const c = require('compact-encoding')
const Hypercore = require('hypercore')
const m = require('hypercore/lib/messages')

async function main () {
  const input = JSON.parse(fs.readFileSync(0, 'utf8'))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hcgo-verify-'))
  const core = new Hypercore(dir, b4a.from(input.key, 'hex'))
  await core.ready()
  const out = []
  for (const h of input.proofs) {
    const proof = c.decode(m.wire.data, b4a.from(h, 'hex'))
    let ok = false
    let error = null
    try {
      ok = await core.core.verify(proof, null)
    } catch (err) {
      error = err.code || err.message
    }
    const block = proof.block ? proof.block.index : -1
    out.push({ ok: !!ok, error, length: core.length, has: block >= 0 ? await core.has(block) : false })
  }
  fs.writeSync(1, JSON.stringify(out) + '\n')
  process.exit(0)
}

main().catch((err) => { console.error(err); process.exit(1) })
