//! Network runs shared by `tnml net` and `tnml experiment`: the one training configuration
//! ([`NetTrainArgs`]), the training driver ([`train`]) and what a run reports.

pub mod config;
pub mod report;
pub mod train;

pub use config::{NetData, NetTrainArgs};
pub use train::{train, EpochPrinter};
