//! # tnml-plot
//!
//! Pictures from plain structs, with no knowledge of the crates that made the numbers. For now:
//! image grids with labels ([`image_grid`]), written as PNG.

pub mod font;
pub mod grid;

pub use grid::{image_grid, GridImage, PlotError};
