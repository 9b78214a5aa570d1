// Emits flat-tree fixtures for hyper/core/flat: per-index functions, full
// roots for many lengths, and iterator walks. Run from this directory:
//   node core-flat.js > ../../core/flat/testdata/flat.json
const flat = require('flat-tree')

const out = { indexes: [], fullRoots: [], iterators: [] }

for (let i = 0; i < 200; i++) {
  out.indexes.push({
    index: i,
    depth: flat.depth(i),
    offset: flat.offset(i),
    parent: flat.parent(i),
    sibling: flat.sibling(i),
    leftChild: flat.leftChild(i),
    rightChild: flat.rightChild(i),
    spans: flat.spans(i),
    count: flat.count(i),
    countLeaves: flat.countLeaves(i)
  })
}

for (let len = 0; len <= 70; len++) {
  out.fullRoots.push({ length: len, roots: flat.fullRoots(2 * len) })
}

// iterator: start at each leaf/parent, apply a fixed op sequence, record state
const ops = ['parent', 'sibling', 'leftChild', 'next', 'rightChild', 'prev', 'parent', 'parent', 'sibling', 'rightSpan', 'parent', 'leftSpan', 'nextTree', 'parent']
for (let start = 0; start < 64; start++) {
  const ite = flat.iterator(start)
  const steps = []
  for (const op of ops) {
    const r = ite[op]()
    steps.push({ op, ret: r, index: ite.index, offset: ite.offset, factor: ite.factor, contains: [0, 3, 7, 12, 30].map(x => ite.contains(x)) })
  }
  out.iterators.push({ start, steps })
}

// fullRoot walk the way verifyUpgrade enumerates roots for to = 2*len
out.walks = []
for (let len = 1; len <= 40; len++) {
  const roots = []
  for (const it = flat.iterator(0); it.fullRoot(2 * len); it.nextTree()) roots.push(it.index)
  out.walks.push({ length: len, roots })
}

process.stdout.write(JSON.stringify(out) + '\n')
