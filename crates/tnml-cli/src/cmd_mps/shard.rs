//! The data of one MPI rank: its contiguous shard of every image set (after the seeded
//! shuffle, `tnml_mps::collective::shard_range`), and what its memory holds.

use tnml_data::Split;
use tnml_mps::collective::shard_range;
use tnml_mps::{embed_batch, SiteFeatures};

use super::options::{load_pixels, split_validation};
use super::train_args::TrainArgs;

use crate::cluster::{say, Cluster};
use crate::runtime::{peak_resident_bytes, total_memory};

/// This rank's rows of `x` (rows of `width` values) and `y`.
pub(super) fn shard_rows(x: &[f32], y: &[usize], width: usize, cluster: &Cluster) -> (Vec<f32>, Vec<usize>) {
    let r = shard_range(y.len(), cluster.rank(), cluster.size());
    (x[r.start * width..r.end * width].to_vec(), y[r].to_vec())
}

/// Bytes of the sweep's environment cache for `n` images on a chain of `sites` sites whose
/// bonds are `bonds`: one f32 slot of `n x width` per bond plus the two trivial ends.
pub(super) fn environment_bytes(n: usize, bonds: &[usize]) -> u128 {
    4 * n as u128 * (bonds.iter().map(|&b| b as u128).sum::<u128>() + 2)
}

/// Refuses a bond cap whose environments (`bonds` bonds of `n` images, `cap` wide, f32) cannot
/// fit in this machine's memory: the sweeps could grow to it and be killed for memory hours
/// later. The message gives the largest cap that fits.
///
/// # Errors
/// The cap's environments exceed the machine's memory.
pub(super) fn check_cap_fits(n: usize, bonds: usize, cap: usize) -> anyhow::Result<()> {
    let capped = environment_bytes(n, &vec![cap; bonds]);
    let total = total_memory();
    if capped > total {
        let fits = (total / (4 * n.max(1) as u128)).saturating_sub(2) / bonds.max(1) as u128;
        anyhow::bail!(
            "--max-bond {cap}: the environments at that cap would need {:.3e} GB ({bonds} bonds x {n} images x {cap} x 4 B), more than this machine's {:.1} GB; the largest cap that fits is {fits}",
            capped as f64 / 1e9,
            total as f64 / 1e9
        );
    }
    Ok(())
}

/// Prints this rank's environment bytes before the sweeps: at the start (`bonds` after the
/// label was moved to the turn site, which widens the bonds on its way up to `L` times the start's)
/// and at the bond cap. Every rank prints its own line (the memory of a distributed run is per
/// rank).
pub(super) fn report_start_memory(cluster: &Cluster, n: usize, bonds: &[usize], cap: usize) {
    let start = environment_bytes(n, bonds);
    let capped = environment_bytes(n, &vec![cap; bonds.len()]);
    say(&format!(
        "{}{n} training images: environments {:.1} MB at the start (bonds up to {}), {:.1} MB at the cap {cap} ({} sites x {n} images x {cap} x 4 B)",
        cluster.tag(),
        start as f64 / 1e6,
        bonds.iter().max().unwrap_or(&1),
        capped as f64 / 1e6,
        bonds.len() + 1
    ));
}

/// Prints this rank's environment bytes at the final bonds and its peak resident memory.
pub(super) fn report_end_memory(cluster: &Cluster, n: usize, bonds: &[usize]) {
    say(&format!(
        "{}environments {:.1} MB at the final bonds, peak resident memory {}",
        cluster.tag(),
        environment_bytes(n, bonds) as f64 / 1e6,
        peak_resident_bytes().map_or("unknown".to_string(), |b| format!("{:.1} MB", b as f64 / 1e6))
    ));
}

/// The images of one rank, as both trainers read them: the training subset (seeded), the test
/// images and the validation split held out of the training subset, each sharded to this rank
/// and embedded by the feature map (environments and passes are built for the shard alone).
pub(super) struct RankData {
    /// Image side after pooling; the chain has `side * side` sites.
    pub side: usize,
    /// The whole training subset's pixels and labels (every rank: the class-mean start reads
    /// them; drop them once the start is built).
    pub train_pixels: Vec<f32>,
    pub train_labels: Vec<usize>,
    /// Images in the whole test and validation sets (all ranks together).
    pub test_total: usize,
    pub validation_total: usize,
    /// This rank's shards, embedded, and their labels.
    pub train: SiteFeatures,
    pub train_shard_labels: Vec<usize>,
    pub test: SiteFeatures,
    pub test_shard_labels: Vec<usize>,
    pub validation: SiteFeatures,
    pub validation_shard_labels: Vec<usize>,
}

impl RankData {
    /// Loads, splits, shards and embeds the images `args` asks for (data set, limits, seed,
    /// validation split, feature map); refuses fewer training images than ranks.
    ///
    /// # Errors
    /// Data that cannot be read, a validation split that leaves no training image, fewer
    /// training images than ranks.
    pub(super) fn load(args: &TrainArgs, cluster: &Cluster) -> anyhow::Result<Self> {
        let (data, limits, seed, validation, map) = (
            &args.data,
            &args.limits,
            args.seed.seed,
            args.validation,
            args.feature_map,
        );
        let subset = Some((limits.train_limit.unwrap_or(usize::MAX), seed));
        let (x, y, side) = load_pixels(data, Split::Train, subset, None)?;
        let (xt, yt, _) = load_pixels(data, Split::Test, None, limits.test_limit)?;
        let sites = side * side;
        let ((x, y), (x_val, y_val)) = split_validation(x, y, sites, validation)?;
        if y.len() < cluster.size() {
            anyhow::bail!(
                "{} training images cannot be shared by {} ranks: every rank needs at least one",
                y.len(),
                cluster.size()
            );
        }
        let (xs, ys) = shard_rows(&x, &y, sites, cluster);
        let (xts, yts) = shard_rows(&xt, &yt, sites, cluster);
        let (xvs, yvs) = shard_rows(&x_val, &y_val, sites, cluster);
        Ok(Self {
            side,
            test_total: yt.len(),
            validation_total: y_val.len(),
            train: embed_batch(map, &xs, sites)?,
            train_shard_labels: ys,
            test: embed_batch(map, &xts, sites)?,
            test_shard_labels: yts,
            validation: embed_batch(map, &xvs, sites)?,
            validation_shard_labels: yvs,
            train_pixels: x,
            train_labels: y,
        })
    }

    /// This rank's shard of the validation split and its labels (`None` without a split).
    pub(super) fn validation_shard(&self) -> Option<(&SiteFeatures, &[usize])> {
        (self.validation_total > 0).then_some((&self.validation, self.validation_shard_labels.as_slice()))
    }

    /// Sites of the chain.
    pub(super) fn sites(&self) -> usize {
        self.side * self.side
    }
}
