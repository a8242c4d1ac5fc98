//! Integration tests of the `tnml` binary, one test binary for all commands (each binary links
//! burn, so one instead of six saves a newcomer's first `cargo test` several links). The MPI
//! tests (`tests/mpi.rs`, feature `mpi`) stay their own binary.

mod auto;
mod cli;
mod common;
mod interop;
mod net;
mod net_auto_dense;
mod predict;
mod resume;
