#!/usr/bin/env node
// The independent reference for r1-r1fs: the CID `ipfs add` (kubo, default settings) gives each
// path, computed with ipfs-unixfs-importer (pinned in package-lock.json), every kubo default
// set explicitly so a change of the importer's own defaults cannot move the answer.
//
//   node cids.mjs --cid-version 0|1 [--shard-split-threshold-bytes N] [--hidden] PATH...
//
// Prints one `PATH CID` line per PATH. A directory is added recursively like `ipfs add -r`:
// entries whose name starts with `.` are left out unless --hidden is given (kubo's --hidden);
// symlinks and special files are refused.

import { createReadStream } from 'node:fs'
import { lstat, readdir } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { BlackHoleBlockstore } from 'blockstore-core/black-hole'
import { importer } from 'ipfs-unixfs-importer'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'

function usage (message) {
  process.stderr.write(`cids.mjs: ${message}\nusage: node cids.mjs --cid-version 0|1 [--shard-split-threshold-bytes N] [--hidden] PATH...\n`)
  process.exit(2)
}

const paths = []
let cidVersion
let shardSplitThresholdBytes = 262144
let hidden = false
const args = process.argv.slice(2)
for (let i = 0; i < args.length; i++) {
  const arg = args[i]
  if (arg === '--cid-version') {
    cidVersion = Number(args[++i])
  } else if (arg === '--shard-split-threshold-bytes') {
    shardSplitThresholdBytes = Number(args[++i])
  } else if (arg === '--hidden') {
    hidden = true
  } else if (arg.startsWith('--')) {
    usage(`unknown option ${arg}`)
  } else {
    paths.push(arg)
  }
}
if (cidVersion !== 0 && cidVersion !== 1) usage('--cid-version must be 0 or 1')
if (!Number.isInteger(shardSplitThresholdBytes) || shardSplitThresholdBytes < 0) usage('bad --shard-split-threshold-bytes')
if (paths.length === 0) usage('no PATH given')

// kubo's `ipfs add` defaults (and `--cid-version=1`, which turns raw leaves on).
const options = {
  cidVersion,
  rawLeaves: cidVersion === 1,
  leafType: 'file',
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize: 262144 }),
  layout: balanced({ maxChildrenPerNode: 174 }),
  shardSplitThresholdBytes,
  shardSplitStrategy: 'links-bytes',
  shardFanoutBits: 8,
  wrapWithDirectory: false,
  fieldOrder: 'links-first'
}

// Import candidates for `path`, named from `name` down, parents before children, names sorted.
async function * candidates (path, name) {
  const stat = await lstat(path)
  if (stat.isSymbolicLink()) throw new Error(`${path}: is a symlink`)
  if (stat.isFile()) {
    yield { path: name, content: createReadStream(path) }
  } else if (stat.isDirectory()) {
    yield { path: name }
    const entries = (await readdir(path)).sort()
    for (const entry of entries) {
      if (!hidden && entry.startsWith('.')) continue
      yield * candidates(join(path, entry), `${name}/${entry}`)
    }
  } else {
    throw new Error(`${path}: is not a regular file or a directory`)
  }
}

const blockstore = new BlackHoleBlockstore()
for (const path of paths) {
  const name = basename(path)
  let root
  for await (const entry of importer(candidates(path, name), blockstore, options)) {
    if (entry.path === name) root = entry.cid
  }
  if (root == null) throw new Error(`${path}: the importer gave no root`)
  process.stdout.write(`${path} ${root.toString()}\n`)
}
