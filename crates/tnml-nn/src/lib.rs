//! MPO-Net on burn: matrix-product-operator layers ([`MpoLinear`]) and the FC2 / LeNet-5 / VGG
//! models of Gao et al. (2020), trained from scratch or compressed from dense weights by TT-SVD.
//!
//! The tensor-network numerics (TT-SVD, canonical forms, entanglement) live in `tnml-core`; this
//! crate converts MPO layers to and from [`tnml_core::Mpo`] for them.

pub mod checkpoint;
pub mod compress;
pub mod data;
pub mod entangle;
pub mod error;
pub mod init;
pub mod kernels;
pub mod labeled;
pub mod models;
pub mod mpo_linear;
pub mod options;
pub mod shards;
pub mod spec;
pub mod torch_layout;
pub mod train;
pub mod weights;

pub use error::{NnError, Result};
pub use init::WeightInit;
pub use models::{Arch, Net, NetConfig, NormKind};
pub use mpo_linear::{MpoLinear, MpoLinearConfig};
pub use options::MpoLayers;
pub use spec::{MpoSpec, Plan};
