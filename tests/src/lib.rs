//! Harness for r1's end-to-end scenarios: each scenario starts its own processes on 127.0.0.1.
