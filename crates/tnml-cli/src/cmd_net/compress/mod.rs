//! `tnml net compress`: a trained dense model's fully connected layers to MPOs by TT-SVD, with
//! the accuracy before and after, and optional fine-tuning.
//!
//! `args` (the options), `source` (the dense model: checkpoint or state_dict), `exact` (at given
//! bonds) and `auto` (bonds chosen from the spectra on a validation split); this file only
//! dispatches, so no file of the command imports another both ways.

mod args;
mod auto;
mod exact;
mod source;

pub use args::NetCompressArgs;

/// Runs `tnml net compress`.
///
/// # Errors
/// What [`exact`] or [`auto`] return.
pub(crate) fn compress(args: &NetCompressArgs) -> anyhow::Result<()> {
    if args.auto {
        auto::compress_auto(args)
    } else {
        exact::compress(args)
    }
}
