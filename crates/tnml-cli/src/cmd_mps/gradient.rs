//! `tnml mps train --trainer gradient`: Adam on all cores, with a line per epoch.

use std::ops::ControlFlow;

use anyhow::Result;
use indicatif::ProgressBar;
use tnml_mps::collective::sharded_error_rate;
use tnml_mps::{MpsClassifier, SiteFeatures};

use super::save::{checkpoint, finish_training, save_failed};
use super::shard::RankData;
use super::train_args::TrainArgs;
use crate::cluster::Cluster;
use crate::progress::step_bar;
use crate::run_dir::RunDir;
use crate::run_files::RunConfig;
use crate::runtime::check_memory;

/// Progress and checkpoints of the gradient trainer: every rank scores its test shard, rank 0
/// (`run` is `Some`) prints and writes.
struct EpochPrinter<'a> {
    bar: ProgressBar,
    test: &'a SiteFeatures,
    test_labels: &'a [usize],
    /// This rank's shard of the held-out training images (`--validation`; `None` without).
    validation: Option<(&'a SiteFeatures, &'a [usize])>,
    cluster: &'a Cluster,
    run: Option<&'a mut RunDir>,
    failure: Option<anyhow::Error>,
    lines: Vec<String>,
}

impl tnml_mps::EpochObserver for EpochPrinter<'_> {
    fn on_batch(&mut self, epoch: usize, batch: usize, batches: usize, loss: f64) -> ControlFlow<()> {
        if batch == 1 {
            self.bar.reset();
            self.bar.set_length(batches as u64);
        }
        self.bar.set_position(batch as u64);
        self.bar.set_message(format!("epoch {epoch} loss {loss:.4}"));
        ControlFlow::Continue(())
    }

    fn on_epoch(&mut self, s: &tnml_mps::EpochSummary, model: &MpsClassifier) -> ControlFlow<()> {
        let test_error =
            sharded_error_rate(self.cluster.comm(), model, self.test, self.test_labels).unwrap_or(f64::NAN);
        let validation_error = self
            .validation
            .map(|(f, y)| sharded_error_rate(self.cluster.comm(), model, f, y).unwrap_or(f64::NAN));
        let Some(run) = self.run.as_deref_mut() else {
            return ControlFlow::Continue(());
        };
        let val = validation_error.map_or(String::new(), |v| format!(", validation error {v:.4}"));
        let line = format!(
            "epoch {}: loss {:.5}, train error {:.4}{val}, test error {:.4}, {:.1} s",
            s.epoch, s.loss, s.train_error, test_error, s.seconds
        );
        self.bar.suspend(|| eprintln!("{line}"));
        let rec = serde_json::json!({"epoch": s.epoch, "loss": s.loss, "train_error": s.train_error, "validation_error": validation_error, "test_error": test_error, "seconds": s.seconds});
        self.lines.push(format!(
            "| {} | {:.5} | {:.4} | {} | {:.4} | {:.1} |",
            s.epoch,
            s.loss,
            s.train_error,
            validation_error.map_or("-".to_string(), |v| format!("{v:.4}")),
            test_error,
            s.seconds
        ));
        if let Err(e) = checkpoint(run, model, &rec, s.epoch) {
            let saved = s.epoch.checked_sub(1).filter(|&e| e > 0);
            self.failure = Some(save_failed(e, run, "epoch", saved));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// Runs `tnml mps train --trainer gradient` on every rank of `cluster` (data-parallel
/// minibatches: each rank contracts the samples of a batch it holds, the gradients are summed).
pub(super) fn train(args: &TrainArgs, cluster: &Cluster) -> Result<()> {
    args.threads.apply_or(cluster.default_threads())?;
    let device = args.gradient.device.probe()?;
    let map = args.feature_map;
    let bond = *args.max_bond.last().unwrap_or(&10);
    // sites (at most 28x28) x d x bond^2 in f64 for the model, Adam's two moments and the
    // gradient, plus f32 left/right partial contractions per batch
    let (d, sites_max) = (map.dim() as u128, 784u128);
    let b = bond as u128;
    check_memory(
        (sites_max + 10) * d * b * b * 8 * 4 + (args.gradient.batch_size as u128) * sites_max * b * 4 * 3,
        &format!("the gradient trainer at bond {bond}"),
    )?;
    let data = RankData::load(args, cluster)?;
    let (side, sites) = (data.side, data.sites());
    let (n_train, n_valid, n_test) = (data.train_labels.len(), data.validation_total, data.test_total);
    let mut model = MpsClassifier::near_identity(
        (side, side),
        10,
        map,
        bond,
        args.turn_site.unwrap_or(sites / 2),
        1e-2,
        args.seed.seed,
    )?;
    let config = tnml_mps::GradientConfig {
        epochs: args.gradient.epochs,
        batch_size: args.gradient.batch_size,
        learning_rate: args.gradient.lr,
        loss: args.loss.unwrap_or(tnml_mps::GradientConfig::default().loss),
        seed: args.seed.seed,
        schedule: args.gradient.lr_schedule,
        shift: args.gradient.shift,
        device: args.gradient.device,
        flip: args.gradient.flip,
    };
    config.validate()?;
    let mut run = if cluster.is_root() {
        let run = RunDir::create(args.out.as_deref(), "mps-train")?;
        run.write_config(&RunConfig::new(
            "mps train",
            Some(args),
            serde_json::json!({"trainer": "gradient", "ranks": cluster.size()}),
        ))?;
        eprintln!(
            "gradient training: {} train / {} validation / {} test images, {sites} sites, bond {bond}, {:?}, on {}{}",
            n_train,
            n_valid,
            n_test,
            map,
            device,
            if cluster.size() > 1 {
                format!(", {} ranks", cluster.size())
            } else {
                String::new()
            }
        );
        Some(run)
    } else {
        None
    };
    let bar = step_bar(cluster);
    let mut obs = EpochPrinter {
        bar,
        test: &data.test,
        test_labels: &data.test_shard_labels,
        validation: data.validation_shard(),
        cluster,
        run: run.as_mut(),
        failure: None,
        lines: Vec::new(),
    };
    let result = tnml_mps::train_gradient_sharded(
        &mut model,
        &data.train,
        &data.train_shard_labels,
        &config,
        &mut obs,
        cluster.comm(),
    );
    obs.bar.finish_and_clear();
    let (lines, failure) = (std::mem::take(&mut obs.lines), obs.failure.take());
    finish_training(run.as_ref(), cluster, &model, result.map(|_| ()), failure)?;
    let Some(run) = run else {
        return Ok(());
    };
    let md = format!(
        "# MPS classifier (gradient training)\n\n- {} train / {} validation / {} test, {side}x{side}, {:?}, bond {bond}, Adam lr {} ({:?}), batch {}, {:?}\n\n| epoch | loss | train error | validation error | test error | seconds |\n|---:|---:|---:|---:|---:|---:|\n{}\n",
        n_train, n_valid, n_test, map, args.gradient.lr, config.schedule, args.gradient.batch_size, config.loss, lines.join("\n")
    );
    run.write_summary(&md)?;
    print!("{md}");
    println!("\nwrote {}", run.path().display());
    Ok(())
}
