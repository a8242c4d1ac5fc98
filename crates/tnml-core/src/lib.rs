//! # tnml-core
//!
//! The tensor-network core of tnml: matrix product states ([`Mps`]) and operators ([`Mpo`]),
//! TT-SVD, canonical forms, truncation and entanglement, on dense `f64` storage and faer.
//! It knows nothing of neural networks; the MPS classifier and MPO-Net build on it.
//!
//! ## Conventions (stated once, used everywhere)
//! - Site tensors: MPS `[left, phys, right]`, MPO `[left, in, out, right]`, row-major; boundary
//!   bonds have size 1.
//! - `bond` b = number of sites to its left, valid `1..len`.
//! - Dense MPO matrices are `(prod out_modes, prod in_modes)`: `y = W x`, as PyTorch's
//!   `nn.Linear.weight`. Site k of the MPO carries the pair `(in_k, out_k)`, `in_k` major.
//! - Truncation: [`TruncParams`] `{ max_bond, cutoff, min_bond }`, cutoff = relative discarded
//!   weight `sum dropped s^2 / sum s^2`; every truncating call returns what it dropped
//!   ([`Truncation`], [`TruncReport`]).
//! - Entropy uses the natural log, of the normalized state. The entanglement of an MPO is that
//!   of `W / ||W||` read as a vector with `(in_k, out_k)` grouped per site.
//! - Compression ratio `rho = MPO parameters / dense parameters` (Gao et al. 2020), and its
//!   inverse, the compression factor (Novikov et al. 2015): [`Compression`].
//!
//! Every call is sequential (faer without rayon); parallelize over samples or layers above.

pub mod allocate;
pub mod bonds;
mod canonical;
pub mod compression;
pub mod entanglement;
pub mod error;
pub mod linalg;
pub mod modes;
pub mod mpo;
pub mod mpo_file;
pub mod mps;
pub mod site;
pub mod trunc;

pub use faer;

pub use bonds::{clamp_bond_dims, rank_caps};
pub use compression::Compression;
pub use entanglement::{BondEntanglement, EntanglementProfile};
pub use error::{check_modes, CoreError, Result};
pub use linalg::{truncated_svd, TruncatedSvd};
pub use mpo::Mpo;
pub use mps::Mps;
pub use site::SiteTensor;
pub use trunc::{BondClamp, TruncParams, TruncReport, Truncation};

/// The README's Rust example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
