// Prints what npm @openzeppelin/merkle-tree (OpenZeppelin's own implementation) builds from bytes32 values:
//   node oz_merkle_tree.cjs < digests.json   (a JSON array of 0x-hex bytes32)
// → {"root": "0x…", "proofs": [[…] for each value in input order], "dump": StandardMerkleTree.dump()}
// CommonJS on purpose: require() honours NODE_PATH, so a copy of the package outside node_modules works too.
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree')

let input = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => { input += chunk })
process.stdin.on('end', () => {
  const digests = JSON.parse(input)
  const tree = StandardMerkleTree.of(digests.map((d) => [d]), ['bytes32'])
  const proofs = digests.map((_, i) => tree.getProof(i))
  process.stdout.write(JSON.stringify({ root: tree.root, proofs, dump: tree.dump() }))
})
