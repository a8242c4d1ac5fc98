//! The cost model of a data-parallel sweep: per bond update, the flops each rank spends on its
//! shard, the bytes and messages the ranks exchange, and the serial part every rank repeats.
//!
//! At bond `(j, j+1)` with bond dimension `D` on both sides, `d` the local feature dimension, `L`
//! labels, `P` CG passes and `R` refit passes, a rank holding `n` samples spends (as the trainer
//! counts them in [`crate::SweepSummary::flops`])
//!
//! ```text
//!   two-site problem   (2P + 1) x 2 n (D d^2)(L D)     (P adjoints and P + 1 applications)
//!   one-site refit     (2R + 1) x 2 n (D d)(L D)        (when R > 0)
//!   environment step   2 n D d D
//! ```
//!
//! for images without white pixels; white pixels make the trainer skip the zero columns of the
//! projected inputs ([`crate::local`]), so on MNIST it counts (and spends) about half of this,
//! and the model is an upper bound. The ranks sum, per pass, the gradient `A^T E` (`D d^2 x L D` values in f64, `D d x L D` in
//! the refit) and a few scalars (the CGLS step length; up to 7 Newton steps of a cross-entropy line
//! search; the cost and error count), then rank 0 broadcasts the new sites (f64). Every rank
//! also repeats the truncated SVD of the `D d x d L D` bond matrix: that part does not shrink with
//! the number of ranks.
//!
//! With `alpha` the latency of a small allreduce and `beta` the time per byte of a large one,
//! both measured at 2 ranks, the exchange at `N` ranks is modelled as a tree for the latency and
//! a ring for the volume (the algorithms MPI libraries use for these sizes):
//!
//! ```text
//!   T_comm(N) = messages alpha ceil(log2 N) + bytes beta 2 (N - 1) / N
//!   T_bond(N) = flops(n_total / N) / rate + T_svd + T_comm(N)
//! ```

use crate::model::label::Direction;
use crate::model::Loss;

/// The shape of one bond update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BondShape {
    /// Bond dimension left of site j and right of site j+1 (interior bonds: the cap).
    pub bond: usize,
    /// Local feature dimension (2 for the trig map).
    pub dim: usize,
    /// Number of labels.
    pub labels: usize,
    /// CG passes of the two-site problem.
    pub cg_passes: usize,
    /// CG passes of the one-site refit (0: none).
    pub refit_passes: usize,
    /// The loss (cross-entropy line searches exchange more scalars).
    pub loss: Loss,
}

/// Work and exchange of one bond update on one rank.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BondCost {
    /// Flops on this rank's samples.
    pub flops: f64,
    /// Bytes summed over the ranks (allreduce payload) and broadcast.
    pub bytes: f64,
    /// Collective calls (each pays the latency).
    pub messages: f64,
    /// Flops of the truncated SVD every rank repeats (`~ 4 m n^2 + 8 n^3` for an `m x n`,
    /// `m >= n` matrix, LAPACK's count for a thin SVD with vectors).
    pub svd_flops: f64,
}

/// Newton steps per cross-entropy line search assumed by the model (the solver's maximum is 6
/// after the first derivative).
const LINE_SEARCH_CALLS: f64 = 7.0;

impl BondShape {
    /// The cost of one update of an interior bond (bond dimension `D` on every side) for `n`
    /// samples on this rank.
    pub fn cost(&self, n: usize) -> BondCost {
        self.cost_at(n, [self.bond; 3], Direction::LeftToRight)
    }

    /// The cost of one update for `n` samples with bond dimensions `[left, kept, right]`: `left`
    /// left of site j, `kept` between the sites after the split, `right` right of site j+1,
    /// going `dir` (which site takes the label for the refit and which environment is
    /// extended).
    pub fn cost_at(&self, n: usize, [left, kept, right]: [usize; 3], dir: Direction) -> BondCost {
        let f = |v: usize| v as f64;
        let (n, d, big_l) = (f(n), f(self.dim), f(self.labels));
        let (p, r) = (f(self.cg_passes), f(self.refit_passes));
        let op2 = 2.0 * n * (f(left) * d * d) * (big_l * f(right));
        // the refit site: (kept, d, L, right) going right, (left, d, L, kept) going left
        let (rk, rc) = match dir {
            Direction::LeftToRight => (f(kept) * d, big_l * f(right)),
            Direction::RightToLeft => (f(left) * d, big_l * f(kept)),
        };
        let op1 = 2.0 * n * rk * rc;
        let refit = if self.refit_passes > 0 {
            (2.0 * r + 1.0) * op1
        } else {
            0.0
        };
        let env = match dir {
            Direction::LeftToRight => 2.0 * n * f(left) * d * f(kept),
            Direction::RightToLeft => 2.0 * n * f(kept) * d * f(right),
        };
        let flops = (2.0 * p + 1.0) * op2 + refit + env;
        // gradients are summed in f64 (see LocalOp::adjoint)
        let grad2 = 8.0 * f(left) * d * d * big_l * f(right);
        let grad1 = 8.0 * rk * rc;
        // the two new sites (f64; the label site is the refit's shape), then the refitted one
        let plain = match dir {
            Direction::LeftToRight => f(left) * d * f(kept),
            Direction::RightToLeft => f(kept) * d * f(right),
        };
        let sites = 8.0 * (plain + rk * rc);
        let refit_site = if self.refit_passes > 0 { 8.0 * rk * rc } else { 0.0 };
        let bytes = p * grad2 + r * grad1 + sites + refit_site;
        let per_pass = match self.loss {
            Loss::Squared => 2.0,
            Loss::CrossEntropy => 1.0 + LINE_SEARCH_CALLS,
        };
        // + cost and count of each solve, the site broadcasts (shape and data), the stop flag
        let solves = if self.refit_passes > 0 { 2.0 } else { 1.0 };
        let messages = (p + r) * per_pass + 2.0 * solves + 2.0 * (1.0 + solves) + 1.0;
        let (rows, cols) = (f(left) * d, d * big_l * f(right));
        let (m, k) = (rows.max(cols), rows.min(cols));
        BondCost {
            flops,
            bytes,
            messages,
            svd_flops: 4.0 * m * k * k + 8.0 * k * k * k,
        }
    }
}

/// Constants of a machine (or cluster) for the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Machine {
    /// Seconds of one small allreduce between 2 ranks.
    pub alpha: f64,
    /// Seconds per byte of a large allreduce between 2 ranks.
    pub beta: f64,
    /// Flops per second of one rank in the bond's GEMMs.
    pub rate: f64,
    /// Flops per second of the SVD (f64, one core).
    pub svd_rate: f64,
}

/// Predicted seconds of one bond update, split into compute, serial SVD and exchange.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BondTime {
    /// The shard's flops at the rank's rate.
    pub compute: f64,
    /// The SVD every rank repeats.
    pub serial: f64,
    /// Latency and volume of the collectives.
    pub comm: f64,
}

impl BondTime {
    /// All three.
    pub fn total(&self) -> f64 {
        self.compute + self.serial + self.comm
    }
}

/// The model's time of one bond update on `ranks` ranks sharing `total` samples.
pub fn bond_time(shape: &BondShape, total: usize, ranks: usize, machine: &Machine) -> BondTime {
    let ranks = ranks.max(1);
    let c = shape.cost(total.div_ceil(ranks));
    let comm = if ranks == 1 {
        0.0
    } else {
        let n = ranks as f64;
        c.messages * machine.alpha * n.log2().ceil() + c.bytes * machine.beta * 2.0 * (n - 1.0) / n
    };
    BondTime {
        compute: c.flops / machine.rate,
        serial: c.svd_flops / machine.svd_rate,
        comm,
    }
}

/// The smallest power-of-two rank count at which the exchange is at least `fraction` of a bond
/// update (`None` if not reached by 2^20 ranks).
pub fn ranks_where_comm_reaches(
    shape: &BondShape,
    total: usize,
    machine: &Machine,
    fraction: f64,
) -> Option<usize> {
    (1..=20).map(|e| 1usize << e).find(|&n| {
        let t = bond_time(shape, total, n, machine);
        t.comm >= fraction * t.total()
    })
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use super::*;
    use crate::observe::{BondStep, SweepObserver};
    use crate::{embed_batch, train_sweeps, FeatureMap, MpsClassifier, SweepConfig};

    /// Records `(bond, direction, kept)` of every update of the second sweep (the first moves
    /// the label, which widens the bonds on its way until they are truncated).
    struct Steps(Vec<(usize, Direction, usize)>);

    impl SweepObserver for Steps {
        fn on_bond(&mut self, s: &BondStep) -> ControlFlow<()> {
            if s.sweep == 2 {
                self.0.push((s.bond, s.direction, s.truncation.kept));
            }
            ControlFlow::Continue(())
        }
    }

    #[test]
    fn the_model_counts_the_flops_the_trainer_counts() {
        // 4x4 images of scattered grey values, none white (white pixels make the trainer skip
        // work the model counts): every interior bond reaches the cap 2
        let (n, sites) = (60, 16);
        let x: Vec<f32> = (0..n * sites)
            .map(|i| ((i * 7919 % 101) as f32 + 1.0) / 102.0)
            .collect();
        let y: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let mut model = MpsClassifier::from_class_means(&x, &y, (4, 4), 3, FeatureMap::Trig, 2)
            .unwrap()
            .0;
        let feats = embed_batch(FeatureMap::Trig, &x, sites).unwrap();
        for loss in [Loss::Squared, Loss::CrossEntropy] {
            let config = SweepConfig {
                sweeps: 2,
                schedule: SweepConfig::bond_schedule(&[2], 1e-14),
                cg_passes: 3,
                refit_passes: 1,
                loss,
                turn_site: Some(8),
                ..SweepConfig::default()
            };
            let mut steps = Steps(Vec::new());
            let summary = train_sweeps(&mut model, &feats, &y, &config, &mut steps).unwrap();
            let shape = BondShape {
                bond: 2,
                dim: 2,
                labels: 3,
                cg_passes: 3,
                refit_passes: 1,
                loss,
            };
            let predicted: f64 = steps
                .0
                .iter()
                .map(|&(bond, dir, kept)| {
                    let j = bond - 1;
                    let left = if j == 0 { 1 } else { 2 };
                    let right = if j + 2 == sites { 1 } else { 2 };
                    assert_eq!(kept, 2, "bond {bond} is at the cap");
                    shape.cost_at(n, [left, kept, right], dir).flops
                })
                .sum();
            let counted = summary[1].flops;
            assert!(
                (predicted - counted).abs() <= 1e-9 * counted,
                "{loss:?}: {predicted} vs {counted}"
            );
        }
    }

    fn shape(loss: Loss) -> BondShape {
        BondShape {
            bond: 20,
            dim: 2,
            labels: 10,
            cg_passes: 3,
            refit_passes: 1,
            loss,
        }
    }

    #[test]
    fn flops_halve_with_the_shard_and_the_exchange_does_not_depend_on_it() {
        let s = shape(Loss::CrossEntropy);
        let (a, b) = (s.cost(60_000), s.cost(30_000));
        assert!((a.flops - 2.0 * b.flops).abs() < 1e-6 * a.flops);
        assert_eq!(
            (a.bytes, a.messages, a.svd_flops),
            (b.bytes, b.messages, b.svd_flops)
        );
        // 7 two-site ops of 2 n (D d^2)(L D) = 13.44 GFLOP, 3 refit ops of 2 n (D d)(L D) =
        // 2.88 GFLOP, the environment step 0.096 GFLOP
        assert!((a.flops / 1e9 - 16.416).abs() < 1e-9, "{}", a.flops / 1e9);
    }

    #[test]
    fn more_ranks_cut_compute_and_grow_the_exchange_until_it_dominates() {
        let m = Machine {
            alpha: 2e-6,
            beta: 1e-10,
            rate: 5e10,
            svd_rate: 5e9,
        };
        let s = shape(Loss::Squared);
        let t1 = bond_time(&s, 60_000, 1, &m);
        let t8 = bond_time(&s, 60_000, 8, &m);
        assert_eq!(t1.comm, 0.0);
        assert!((t1.compute / t8.compute - 60_000f64 / 7_500.0).abs() < 1e-9);
        assert!(t8.comm > 0.0 && t8.serial == t1.serial);
        let n10 = ranks_where_comm_reaches(&s, 60_000, &m, 0.1).unwrap();
        let t = bond_time(&s, 60_000, n10, &m);
        assert!(t.comm >= 0.1 * t.total());
        let before = bond_time(&s, 60_000, n10 / 2, &m);
        assert!(before.comm < 0.1 * before.total());
    }
}
