#!/usr/bin/env node
// Runs the Hardhat EDR node on 127.0.0.1 (`--port N`, default 8545) and exits when its standard
// input closes, so a parent process that dies for any reason never leaves the chain behind.
"use strict";
const path = require("path");

process.chdir(path.resolve(__dirname, ".."));
const portFlag = process.argv.indexOf("--port");
const port = portFlag >= 0 ? Number(process.argv[portFlag + 1]) : 8545;

process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();

const hre = require("hardhat");
hre.run("node", { hostname: "127.0.0.1", port }).catch((err) => {
  console.error(err);
  process.exit(1);
});
