#!/usr/bin/env node
// Compiles solidity/**/*.sol with the pinned solcjs and writes one artifact per deployable
// contract to artifacts/<Name>.json ({contractName, sourceName, compiler, abi, bytecode,
// deployedBytecode}). The Rust crate builds its alloy bindings from these files.
//   node scripts/compile.cjs           write the artifacts
//   node scripts/compile.cjs --check   exit 1 when the committed artifacts differ from a fresh build
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const ROOT = path.resolve(__dirname, "..");
const SOURCES = path.join(ROOT, "solidity");
const ARTIFACTS = path.join(ROOT, "artifacts");
const NODE_MODULES = path.join(ROOT, "node_modules");

// Contracts the Rust side deploys or calls, by source unit.
const EMIT = {
  "R1.sol": ["R1"],
  "NodeDeed.sol": ["NodeDeed"],
  "CspEscrow.sol": ["CspEscrow"],
  "PoAIManager.sol": ["PoAIManager"],
  "dev/TestUSDC.sol": ["TestUSDC"],
  "dev/R1UsdcPool.sol": ["R1UsdcPool"],
  "dev/CspEscrowV2.sol": ["CspEscrowV2"],
  "dev/BulkLicences.sol": ["BulkLicences"],
  "@openzeppelin/contracts/proxy/beacon/UpgradeableBeacon.sol": ["UpgradeableBeacon"],
  "@openzeppelin/contracts/governance/TimelockController.sol": ["TimelockController"],
};

function listSources(dir, prefix = "") {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((entry) => {
      const rel = prefix + entry.name;
      if (entry.isDirectory()) return listSources(path.join(dir, entry.name), rel + "/");
      return entry.name.endsWith(".sol") ? [rel] : [];
    });
}

function findImport(unit) {
  const candidates = [path.join(SOURCES, unit), path.join(NODE_MODULES, unit)];
  for (const file of candidates) {
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
  }
  return { error: `not found: ${unit}` };
}

function compile() {
  const sources = {};
  for (const unit of listSources(SOURCES)) {
    sources[unit] = { content: fs.readFileSync(path.join(SOURCES, unit), "utf8") };
  }
  for (const unit of Object.keys(EMIT)) {
    if (!sources[unit]) sources[unit] = { content: findImport(unit).contents };
  }
  const input = {
    language: "Solidity",
    sources,
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: "cancun",
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) process.stderr.write(e.formattedMessage + "\n");
  if (errors.length) process.exit(1);

  const artifacts = {};
  for (const [unit, names] of Object.entries(EMIT)) {
    for (const name of names) {
      const c = output.contracts[unit][name];
      const artifact = {
        contractName: name,
        sourceName: unit,
        compiler: `solc-js ${solc.version()}`,
        abi: c.abi,
        bytecode: "0x" + c.evm.bytecode.object,
        deployedBytecode: "0x" + c.evm.deployedBytecode.object,
      };
      artifacts[`${name}.json`] = JSON.stringify(artifact, null, 2) + "\n";
    }
  }
  return artifacts;
}

const artifacts = compile();
if (process.argv.includes("--check")) {
  const drift = Object.entries(artifacts).filter(([file, text]) => {
    const target = path.join(ARTIFACTS, file);
    return !fs.existsSync(target) || fs.readFileSync(target, "utf8") !== text;
  });
  const stale = fs.existsSync(ARTIFACTS)
    ? fs.readdirSync(ARTIFACTS).filter((f) => f.endsWith(".json") && !(f in artifacts))
    : [];
  if (drift.length || stale.length) {
    for (const [file] of drift) console.error(`artifact out of date: artifacts/${file}`);
    for (const file of stale) console.error(`artifact without a source: artifacts/${file}`);
    console.error("run `npm run compile` in contracts/ and commit the result");
    process.exit(1);
  }
  console.log(`artifacts up to date (${Object.keys(artifacts).length} contracts)`);
} else {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  for (const [file, text] of Object.entries(artifacts)) fs.writeFileSync(path.join(ARTIFACTS, file), text);
  for (const [file, text] of Object.entries(artifacts)) {
    const size = (JSON.parse(text).deployedBytecode.length - 2) / 2;
    console.log(`${file.padEnd(26)} ${String(size).padStart(6)} bytes deployed`);
  }
}
