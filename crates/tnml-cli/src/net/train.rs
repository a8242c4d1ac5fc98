//! The training driver of `tnml net train` and `tnml experiment`: options in, a run directory
//! out (config.json, checkpoint/, model.safetensors, metrics.jsonl, entanglement.jsonl, plots,
//! summary.md).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tnml_data::Split;
use tnml_nn::checkpoint::{self, CheckpointHeader};
use tnml_nn::entangle::{Baseline, BondRecord};
use tnml_nn::train::{EpochRecord, TrainObserver};
use tnml_nn::Net;

use super::config::NetTrainArgs;
use super::report::{describe, entanglement_table, record_entanglement, summary_table};
use crate::run_dir::RunDir;
use crate::runtime::device;

/// Prints every epoch, writes the checkpoint, model.safetensors, metrics and entanglement.
pub struct EpochPrinter<'a> {
    run: &'a mut RunDir,
    header: CheckpointHeader,
    entangle_every: usize,
    bar: Option<ProgressBar>,
    write_error: Option<anyhow::Error>,
}

impl<'a> EpochPrinter<'a> {
    /// An observer writing into `run`, recording the entanglement every `entangle_every` epochs.
    pub fn new(run: &'a mut RunDir, header: CheckpointHeader, entangle_every: usize) -> Self {
        Self {
            run,
            header,
            entangle_every,
            bar: None,
            write_error: None,
        }
    }

    /// Ends the progress bar; returns the epochs recorded and the first write error, if any.
    pub fn finish(mut self) -> (Vec<EpochRecord>, Option<anyhow::Error>) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        (self.header.history, self.write_error)
    }

    /// The run's checkpoint directory.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.run.path().join("checkpoint")
    }
}

impl TrainObserver for EpochPrinter<'_> {
    fn on_step(&mut self, epoch: usize, step: usize, steps: usize, loss: f32) {
        let bar = self.bar.get_or_insert_with(|| {
            let b = ProgressBar::new(steps as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} steps, loss {msg} ({eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b
        });
        bar.set_prefix(epoch.to_string());
        bar.set_position(step as u64);
        if step.is_multiple_of(10) || step == steps {
            bar.set_message(format!("{loss:.4}"));
        }
    }

    fn on_epoch(
        &mut self,
        record: &EpochRecord,
        net: &Net,
        optim: &burn::optim::ModuleOptimizer,
    ) -> tnml_nn::Result<()> {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        eprintln!(
            "epoch {:>3}  lr {:.3e}  train loss {:.4} acc {:.2}%  test loss {} acc {}  ({:.1} s)",
            record.epoch,
            record.lr,
            record.train_loss,
            100.0 * record.train_acc,
            record.test_loss.map_or("-".into(), |v| format!("{v:.4}")),
            record
                .test_acc
                .map_or("-".into(), |v| format!("{:.2}%", 100.0 * v)),
            record.train_seconds
        );
        self.header.epoch = record.epoch;
        self.header.history.push(record.clone());
        let dir = self.checkpoint_dir();
        checkpoint::save(&dir, &self.header, net, Some(optim))?;
        checkpoint::export_safetensors(&self.run.path().join("model.safetensors"), net, &self.header.net)?;
        if let Err(e) = self.run.log_metric(record) {
            self.write_error = Some(e);
        }
        if self.entangle_every > 0 && record.epoch.is_multiple_of(self.entangle_every) {
            if let Err(e) = record_entanglement(self.run, net, record.epoch) {
                self.write_error = Some(e);
            }
        }
        Ok(())
    }
}

/// Trains (or resumes) one network run as `args` says, into its run directory.
///
/// # Errors
/// Invalid options (refused before anything is written), unreadable data, a failed write, a
/// training that diverged (the last good checkpoint is named).
pub fn train(args: &NetTrainArgs) -> Result<()> {
    args.threads.apply()?;
    let dev = device();
    let (net_cfg, train_cfg, mut run, first_epoch, header, net, optim) = if let Some(dir) = &args.resume {
        let ck = dir.join("checkpoint");
        let (mut header, net) =
            checkpoint::load(&ck, &dev).with_context(|| format!("resuming from {}", ck.display()))?;
        let mut tc = header
            .train
            .clone()
            .context("checkpoint has no training configuration")?;
        tc.epochs = tc.epochs.max(args.epochs);
        header.train = Some(tc.clone());
        let optim = checkpoint::load_optimizer(&ck, tc.build_optimizer())?;
        let run = RunDir::open_existing(dir)?;
        eprintln!(
            "resuming {} after epoch {} of {}",
            dir.display(),
            header.epoch,
            tc.epochs
        );
        (header.net.clone(), tc, run, header.epoch + 1, header, net, optim)
    } else {
        let net_cfg = args.net_config()?;
        let train_cfg = args.train_config()?;
        let net = net_cfg.init(&dev)?;
        for s in net_cfg.mpo.iter().flatten() {
            for c in &s.clamps {
                eprintln!(
                    "note: {s}: bond {} asked for {}, clamped to its rank cap {} (more adds parameters, not expressiveness)",
                    c.bond, c.requested, c.cap
                );
            }
        }
        let run = RunDir::create(args.out.as_deref(), "net-train")?;
        if args.entangle_every > 0 && !net.mpo_layers().is_empty() {
            let baselines = net
                .mpo_layers()
                .iter()
                .map(|(name, l)| tnml_nn::entangle::random_baseline(name, l.spec(), net_cfg.init, 5))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            run.write_json("entanglement-baseline.json", &baselines)?;
            record_entanglement(&run, &net, 0)?;
        }
        let header = CheckpointHeader::new(net_cfg.clone(), Some(train_cfg.clone()));
        let optim = train_cfg.build_optimizer();
        (net_cfg, train_cfg, run, 1, header, net, optim)
    };
    let train_set = args.data.load(Split::Train, net_cfg.arch, train_cfg.seed)?;
    let test_set = args.data.load(Split::Test, net_cfg.arch, train_cfg.seed)?;
    let (description, report) = describe(&net, &net_cfg);
    eprint!("{description}");
    if first_epoch == 1 {
        run.write_config(&serde_json::json!({
            "command": "net train",
            "tnml_version": env!("CARGO_PKG_VERSION"),
            "dataset": args.data.location.resolve().0.cli_name(),
            "train_samples": train_set.len(),
            "test_samples": test_set.len(),
            "threads": rayon::current_num_threads(),
            "net": net_cfg,
            "train": train_cfg,
            "args": args,
        }))?;
        if let Some(r) = &report {
            run.write_json("compression.json", r)?;
        }
    }
    eprintln!(
        "training on {} images, testing on {}; run directory {}",
        train_set.len(),
        test_set.len(),
        run.path().display()
    );
    let mut printer = EpochPrinter::new(&mut run, header, args.entangle_every);
    let result = tnml_nn::train::train(
        net,
        optim,
        &train_cfg,
        &train_set,
        Some(&test_set),
        first_epoch,
        &dev,
        &mut printer,
    );
    let ck = printer.checkpoint_dir();
    let (history, write_error) = printer.finish();
    if let Err(e) = result {
        let kept = if history.is_empty() {
            "no epoch finished, nothing was saved".to_string()
        } else {
            format!(
                "the last good checkpoint (epoch {}) is in {}",
                history.len(),
                ck.display()
            )
        };
        return Err(anyhow::Error::from(e).context(format!("training stopped; {kept}")));
    }
    let mut summary = format!("# net train: {:?}\n\n```\n{description}```\n\n", net_cfg.arch);
    summary.push_str(&summary_table(&history));
    if let Ok(text) = std::fs::read_to_string(run.path().join("entanglement.jsonl")) {
        let recs: Vec<BondRecord> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let last = recs.iter().map(|r| r.epoch).max().unwrap_or(0);
        let last_recs: Vec<_> = recs.into_iter().filter(|r| r.epoch == last).collect();
        let baselines: Vec<Baseline> = std::fs::read(run.path().join("entanglement-baseline.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let _ = write!(
            summary,
            "\n## Entanglement after epoch {last}\n\n{}",
            entanglement_table(&last_recs, &baselines)
        );
    }
    match crate::figures::plot_run(run.path(), &["png", "svg"]) {
        Ok(files) => {
            let _ = write!(summary, "\nPlots: {} files in plots/.\n", files.len());
        }
        Err(e) => eprintln!("warning: plotting failed: {e:#}"),
    }
    run.write_summary(&summary)?;
    if let Some(e) = write_error {
        return Err(e.context("writing metrics.jsonl"));
    }
    if let Some(last) = history.last() {
        eprintln!(
            "done: test accuracy {} after {} epochs; {}",
            last.test_acc.map_or("-".into(), |v| format!("{:.2}%", 100.0 * v)),
            last.epoch,
            run.path().display()
        );
    }
    Ok(())
}
