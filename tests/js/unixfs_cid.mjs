// Prints the CID npm ipfs-unixfs-importer (an implementation independent of ours) gives a file, with the
// options that reproduce `ipfs add` (Kubo's defaults):
//   node unixfs_cid.mjs <path> <0|1> [chunkSize=262144] [maxChildrenPerNode=174]
//   0: `ipfs add`                 — dag-pb UnixFS "file" leaves, CIDv0
//   1: `ipfs add --cid-version=1` — raw leaves, CIDv1
// Both: fixed-size chunks, balanced layout, and a file of one chunk is that chunk's leaf
// (reduceSingleLeafToSelf). The optional sizes let tests build deep trees from a few bytes.
import { createReadStream } from 'node:fs'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const [path, version, chunkSize = '262144', maxChildren = '174'] = process.argv.slice(2)
if (path === undefined || !['0', '1'].includes(version)) {
  console.error('usage: node unixfs_cid.mjs <path> <0|1> [chunkSize] [maxChildrenPerNode]')
  process.exit(2)
}
const v1 = version === '1'
const options = {
  cidVersion: v1 ? 1 : 0,
  rawLeaves: v1,
  leafType: 'file',
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize: Number(chunkSize) }),
  layout: balanced({ maxChildrenPerNode: Number(maxChildren) })
}
// Only the CID is wanted: a blockstore that keeps nothing.
const discard = { put: async (cid) => cid }
let root
for await (const entry of importer([{ content: createReadStream(path) }], discard, options)) {
  root = entry.cid
}
console.log(root.toString())
