//! `tnml mpo compress`: TT-SVD of a dense matrix into an MPO, with the truncation and the
//! entanglement of every bond.
//!
//! `args` (the options), `matrix_source` (a synthetic matrix or one from a safetensors file),
//! `exact` (one matrix at given bonds) and `auto` (every weight of a file, bonds chosen within an
//! error); this file only dispatches, so no file of the command imports another both ways.

mod args;
mod auto;
mod exact;
mod matrix_source;

pub use args::CompressArgs;

/// Runs `tnml mpo compress`.
///
/// # Errors
/// What [`exact`] or [`auto`] return.
pub fn compress(args: &CompressArgs) -> anyhow::Result<()> {
    if args.auto {
        auto::compress_auto(args)
    } else {
        exact::compress(args)
    }
}
