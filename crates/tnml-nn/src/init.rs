//! Initialization of MPO cores so that the *reconstructed* matrix has a chosen variance.
//!
//! With i.i.d. cores `G_k ~ N(0, s_c^2)`, an entry of `W` is a sum of `prod_k r_k` products of `d`
//! independent factors, so
//!
//! ```text
//! Var(W_ij) = s_c^(2d) * prod_{k=1}^{d-1} r_k
//! s_c      = s^(1/d) * (prod_k r_k)^(-1/(2d))     (t3f's rule)
//! ```
//!
//! gives `Var(W_ij) = s^2` exactly, for targets Glorot `2/(N_x+N_y)`, He `2/N_x`, LeCun `1/N_x` or a
//! fixed standard deviation. (Per-core Xavier, as in Gao's TensorFlow code, misses this product and
//! under-scales wide layers, e.g. 0.24x of Glorot for FC2 at D=16.)

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::spec::MpoSpec;

/// Target variance of the reconstructed weight matrix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum WeightInit {
    /// `2 / (fan_in + fan_out)`.
    Glorot,
    /// `2 / fan_in` (for ReLU).
    He,
    /// `1 / fan_in`.
    LeCun,
    /// A fixed standard deviation of the entries of `W`.
    Std(f64),
}

impl WeightInit {
    /// Standard deviation of `W`'s entries for a `fan_in -> fan_out` layer.
    pub fn std(&self, fan_in: usize, fan_out: usize) -> f64 {
        match *self {
            WeightInit::Glorot => (2.0 / (fan_in + fan_out) as f64).sqrt(),
            WeightInit::He => (2.0 / fan_in as f64).sqrt(),
            WeightInit::LeCun => (1.0 / fan_in as f64).sqrt(),
            WeightInit::Std(s) => s,
        }
    }
}

/// Standard deviation of each core entry that gives `W` the target `std`:
/// `std^(1/d) * (prod r_k)^(-1/(2d))`.
pub fn core_std(spec: &MpoSpec, std: f64) -> f64 {
    let d = spec.len() as f64;
    let prod_r: f64 = spec.bond_dims.iter().map(|&r| r as f64).product();
    std.powf(1.0 / d) * prod_r.powf(-1.0 / (2.0 * d))
}

/// A seeded stream of standard normal samples (Box-Muller), identical on every platform.
pub struct Normal {
    rng: StdRng,
    spare: Option<f64>,
}

impl Normal {
    /// A stream from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            spare: None,
        }
    }

    /// The next N(0,1) sample.
    pub fn sample(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let u1: f64 = 1.0 - self.rng.random::<f64>(); // (0, 1]
        let u2: f64 = self.rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        self.spare = Some(r * t.sin());
        r * t.cos()
    }

    /// `n` samples scaled by `std`, as f32.
    pub fn vec(&mut self, n: usize, std: f64) -> Vec<f32> {
        (0..n).map(|_| (self.sample() * std) as f32).collect()
    }
}

/// Random cores (row-major `[r_{k-1}, I_k, J_k, r_k]`) whose product has entries of standard
/// deviation `init.std(N_x, N_y)` in expectation.
pub fn random_cores(spec: &MpoSpec, init: WeightInit, seed: u64) -> Vec<Vec<f32>> {
    let s = core_std(spec, init.std(spec.in_features(), spec.out_features()));
    let mut normal = Normal::new(seed);
    (0..spec.len())
        .map(|k| normal.vec(spec.core_shape(k).iter().product(), s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_std_inverts_the_variance_product() {
        let spec = MpoSpec::uniform(&[4, 7, 7, 4], &[4, 4, 4, 4], 16).unwrap();
        let s = core_std(&spec, 0.05);
        let var_w = s.powi(8) * 16f64.powi(3);
        assert!((var_w.sqrt() - 0.05).abs() < 1e-12);
    }

    #[test]
    fn normal_stream_has_unit_variance() {
        let v = Normal::new(3).vec(100_000, 1.0);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.02,
            "mean {mean} var {var}"
        );
    }
}
