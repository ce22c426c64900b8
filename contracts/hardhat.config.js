// The Hardhat EDR node r1's tests and devnet run against (`node scripts/chain.cjs`).
// Contracts are compiled by scripts/compile.cjs, not by Hardhat.
module.exports = {
  networks: {
    hardhat: {
      chainId: 31337,
      hardfork: "cancun",
      blockGasLimit: 60_000_000,
      allowBlocksWithSameTimestamp: true,
      mining: { auto: true },
    },
  },
};
