//! # tnml-plot
//!
//! Pictures from plain structs, with no knowledge of the crates that made the numbers: image grids
//! with labels ([`image_grid`], PNG), line charts ([`draw_lines`]) and heat maps ([`draw_heatmap`]),
//! as PNG or SVG.

pub mod chart;
pub mod font;
pub mod grid;

pub use chart::{draw_heatmap, draw_lines, drawable, Heatmap, LineChart, Series};
pub use grid::{image_grid, GridImage, PlotError};
