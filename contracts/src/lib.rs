//! On-chain half of r1: the Solidity sources live beside this crate and their alloy bindings
//! are generated from the compiled artifacts.

pub mod bindings;
