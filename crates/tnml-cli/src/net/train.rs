//! The training driver of `tnml net train` and `tnml experiment`: options in, a run directory
//! out (config.json, checkpoint/, model.safetensors, metrics.jsonl, entanglement.jsonl, plots,
//! summary.md).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::optim::ModuleOptimizer;
use indicatif::{ProgressBar, ProgressStyle};
use tnml_data::Split;
use tnml_nn::checkpoint::{self, CheckpointHeader};
use tnml_nn::entangle::{Baseline, BondRecord};
use tnml_nn::train::{EpochRecord, LabeledImages, TrainConfig, TrainObserver};
use tnml_nn::{Arch, Net, NetConfig};

use super::config::NetTrainArgs;
use super::report::{describe, entanglement_table, record_entanglement, summary_table};
use crate::run_dir::RunDir;
use crate::run_files;
use crate::run_files::RunConfig;
use crate::runtime::device;

/// Prints every epoch, writes the checkpoint, model.safetensors, metrics and entanglement.
pub struct EpochPrinter<'a> {
    run: &'a mut RunDir,
    header: CheckpointHeader,
    entangle_every: usize,
    bar: Option<ProgressBar>,
    write_error: Option<anyhow::Error>,
    validation: Option<LabeledImages>,
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
            validation: None,
        }
    }

    /// Also evaluates `validation` after every epoch (recorded as `validation_loss` /
    /// `validation_acc`).
    pub fn with_validation(mut self, validation: Option<LabeledImages>) -> Self {
        self.validation = validation;
        self
    }

    /// Ends the progress bar; returns the epochs recorded, the epoch of the last checkpoint
    /// written, and the first write error, if any.
    pub fn finish(mut self) -> (Vec<EpochRecord>, usize, Option<anyhow::Error>) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        (self.header.history, self.header.epoch, self.write_error)
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
        let mut record = record.clone();
        let mut validation = String::new();
        if let Some(v) = &self.validation {
            let (loss, acc) = tnml_nn::train::evaluate(net, v, 1000, &device());
            (record.validation_loss, record.validation_acc) = (Some(loss), Some(acc));
            validation = format!("  validation loss {loss:.4} acc {:.2}%", 100.0 * acc);
        }
        let record = &record;
        eprintln!(
            "epoch {:>3}  lr {:.3e}  train loss {:.4} acc {:.2}%{validation}  test loss {} acc {}  ({:.1} s)",
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
        // weights that went non-finite show in the losses measured with them: such an epoch is
        // never saved, the checkpoint stays at the last finite one
        if !record.train_loss.is_finite() || record.test_loss.is_some_and(|l| !l.is_finite()) {
            return Err(tnml_nn::NnError::NonFiniteLoss {
                loss: if record.train_loss.is_finite() {
                    record.test_loss.unwrap_or(f64::NAN) as f32
                } else {
                    record.train_loss as f32
                },
                epoch: record.epoch,
                step: 0,
            });
        }
        // the header is committed only once its checkpoint is on disk, so a failed save names
        // the epoch actually kept
        let mut header = self.header.clone();
        header.epoch = record.epoch;
        header.history.push(record.clone());
        let dir = self.checkpoint_dir();
        checkpoint::save(&dir, &header, net, Some(optim))?;
        self.header = header;
        tnml_nn::torch_layout::write(&self.run.path().join(run_files::MODEL), net, &self.header.net)?;
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

/// Brings `entanglement.jsonl` in line with the checkpoint of epoch `epoch` on resume, as
/// `reset_metrics` does for metrics.jsonl: records of later epochs (written before a kill that
/// lost their checkpoint) are dropped, and the checkpoint's own epoch, when it is due and a kill
/// between the checkpoint and the record lost it, is measured again from the checkpoint's model
/// (the same weights: the same numbers).
fn rebuild_entanglement(run: &RunDir, net: &Net, epoch: usize, every: usize) -> Result<()> {
    let path = run.path().join(run_files::ENTANGLEMENT);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(()); // no MPO layer, or entanglement off
    };
    let epoch_of = |line: &str| serde_json::from_str::<BondRecord>(line).ok().map(|r| r.epoch);
    let kept: Vec<String> = text
        .lines()
        .filter(|l| epoch_of(l).is_some_and(|e| e <= epoch))
        .map(str::to_string)
        .collect();
    let has_last = kept.iter().any(|l| epoch_of(l) == Some(epoch));
    let mut body = kept.join("\n");
    if !body.is_empty() {
        body.push('\n');
    }
    crate::run_dir::atomic_write(&path, body.as_bytes())?;
    if every > 0 && epoch > 0 && epoch.is_multiple_of(every) && !has_last {
        record_entanglement(run, net, epoch)?;
    }
    Ok(())
}

/// Trains (or resumes) one network run as `args` says, into its run directory.
///
/// # Errors
/// Invalid options (refused before anything is written), unreadable data, a failed write, a
/// training that diverged (the last good checkpoint is named).
pub fn train(args: &NetTrainArgs) -> Result<()> {
    args.threads.apply()?;
    let dev = device();
    let resumed;
    let args = match &args.resume {
        Some(dir) => {
            resumed = resume_args(args, dir)?;
            &resumed
        }
        None => args,
    };
    // everything is checked and loaded before the run directory is touched
    let Prepared {
        net_cfg,
        train_cfg,
        net,
        optim,
        header,
    } = prepare(args, &dev)?;
    let train_set = args.data.load(Split::Train, net_cfg.arch, train_cfg.seed)?;
    let (train_set, validation) = match args.validation {
        Some(n) => {
            let (t, v) = train_set.split_validation(n, train_cfg.seed)?;
            (t, Some(v))
        }
        None => (train_set, None),
    };
    let test_set = args.data.load(Split::Test, net_cfg.arch, train_cfg.seed)?;
    let first_epoch = header.epoch + 1;
    let mut run = open_run(args, &net, &net_cfg, &train_cfg, &header)?;
    let (description, report) = describe(&net, &net_cfg);
    eprint!("{description}");
    if first_epoch == 1 {
        run.write_config(&RunConfig::new(
            "net train",
            Some(args),
            serde_json::json!({
                "dataset": args.data.location.resolve().0.cli_name(),
                "train_samples": train_set.len(),
                "validation_samples": validation.as_ref().map_or(0, LabeledImages::len),
                "test_samples": test_set.len(),
                "threads": rayon::current_num_threads(),
                "net": net_cfg,
                "train": train_cfg,
            }),
        ))?;
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
    let mut printer = EpochPrinter::new(&mut run, header, args.entangle_every).with_validation(validation);
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
    let (history, saved_epoch, write_error) = printer.finish();
    if let Err(e) = result {
        let kept = if saved_epoch == 0 {
            "no epoch finished, nothing was saved".to_string()
        } else {
            format!(
                "the last good checkpoint (epoch {saved_epoch}) is in {}",
                ck.display()
            )
        };
        return Err(anyhow::Error::from(e).context(format!("training stopped; {kept}")));
    }
    write_summary(&run, &description, net_cfg.arch, &history)?;
    if let Some(e) = write_error {
        return Err(e.context("writing metrics.jsonl"));
    }
    print_done(&run, &history);
    Ok(())
}

/// What a run trains: the configurations, the model, its optimizer and the checkpoint header.
struct Prepared {
    net_cfg: NetConfig,
    train_cfg: TrainConfig,
    net: Net,
    optim: ModuleOptimizer,
    header: CheckpointHeader,
}

/// A new model from the options, or the run's checkpoint (`--resume`) with `--epochs` applied.
fn prepare(args: &NetTrainArgs, dev: &burn::tensor::Device) -> Result<Prepared> {
    let Some(dir) = &args.resume else {
        let net_cfg = args.net_config()?;
        let train_cfg = args.train_config()?;
        let net = net_cfg.init(dev)?;
        let header = CheckpointHeader::new(net_cfg.clone(), Some(train_cfg.clone()));
        let optim = train_cfg.build_optimizer();
        return Ok(Prepared {
            net_cfg,
            train_cfg,
            net,
            optim,
            header,
        });
    };
    let ck = checkpoint::resolve_dir(dir);
    let (mut header, net) =
        checkpoint::load(&ck, dev).with_context(|| format!("resuming from {}", ck.display()))?;
    let mut train_cfg = header
        .train
        .clone()
        .context("checkpoint has no training configuration")?;
    if args.epochs <= header.epoch {
        bail!(
            "{} has trained {} of {} epochs already: pass --epochs N with N > {} to continue",
            dir.display(),
            header.epoch,
            train_cfg.epochs,
            header.epoch
        );
    }
    train_cfg.epochs = args.epochs;
    header.train = Some(train_cfg.clone());
    let optim = checkpoint::load_optimizer(&ck, train_cfg.build_optimizer())?;
    Ok(Prepared {
        net_cfg: header.net.clone(),
        train_cfg,
        net,
        optim,
        header,
    })
}

/// The run directory: the resumed one (metrics and entanglement records cut back to the
/// checkpoint, the resume recorded) or a new one with the random-initialisation entanglement
/// baseline and the epoch-0 records.
fn open_run(
    args: &NetTrainArgs,
    net: &Net,
    net_cfg: &NetConfig,
    train_cfg: &TrainConfig,
    header: &CheckpointHeader,
) -> Result<RunDir> {
    if let Some(dir) = &args.resume {
        let mut run = RunDir::open_existing(dir)?;
        run.reset_metrics(&header.history)?;
        rebuild_entanglement(&run, net, header.epoch, args.entangle_every)?;
        record_resume(&run, args, train_cfg, header.epoch)?;
        eprintln!(
            "resuming {} after epoch {} of {}",
            dir.display(),
            header.epoch,
            train_cfg.epochs
        );
        return Ok(run);
    }
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
        run.write_json(run_files::ENTANGLEMENT_BASELINE, &baselines)?;
        record_entanglement(&run, net, 0)?;
    }
    Ok(run)
}

/// `summary.md`: the model, the epochs, the last entanglement records and the figures.
fn write_summary(run: &RunDir, description: &str, arch: Arch, history: &[EpochRecord]) -> Result<()> {
    let mut summary = format!("# net train: {arch:?}\n\n```\n{description}```\n\n");
    summary.push_str(&summary_table(history));
    if let Ok(text) = std::fs::read_to_string(run.path().join(run_files::ENTANGLEMENT)) {
        let recs: Vec<BondRecord> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let last = recs.iter().map(|r| r.epoch).max().unwrap_or(0);
        let last_recs: Vec<_> = recs.into_iter().filter(|r| r.epoch == last).collect();
        let baselines: Vec<Baseline> = std::fs::read(run.path().join(run_files::ENTANGLEMENT_BASELINE))
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
    run.write_summary(&summary)
}

/// The closing line: the last test accuracy, and the validation accuracy with its best epoch.
fn print_done(run: &RunDir, history: &[EpochRecord]) {
    let Some(last) = history.last() else {
        return;
    };
    let validation = last.validation_acc.map_or(String::new(), |v| {
        let best = history
            .iter()
            .filter_map(|r| Some((r.validation_acc?, r.epoch)))
            .fold((v, last.epoch), |b, c| if c.0 > b.0 { c } else { b });
        format!(
            ", validation accuracy {:.2}% (best {:.2}% at epoch {})",
            100.0 * v,
            100.0 * best.0,
            best.1
        )
    });
    eprintln!(
        "done: test accuracy {} after {} epochs{validation}; {}",
        last.test_acc.map_or("-".into(), |v| format!("{:.2}%", 100.0 * v)),
        last.epoch,
        run.path().display()
    );
}

/// The options of the run in `dir` (its config.json), with the options that may change on a
/// resume (`--epochs`, `--threads`) taken from `args`. Any other option given on the command
/// line must equal the saved one: a resume never silently trains on other data or settings.
fn resume_args(args: &NetTrainArgs, dir: &Path) -> Result<NetTrainArgs> {
    const MAY_CHANGE: [&str; 4] = ["epochs", "threads", "resume", "out"];
    let path = dir.join(run_files::CONFIG);
    let text = std::fs::read(&path).with_context(|| format!("resuming: reading {}", path.display()))?;
    let config: serde_json::Value =
        serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let saved_json = config
        .get("args")
        .filter(|a| a.get("data").is_none())
        .with_context(|| {
            format!(
                "{} does not hold the options of a net train run written by this version of tnml: \
                 its data options cannot be restored, so it is not resumed",
                path.display()
            )
        })?;
    let saved: NetTrainArgs = serde_json::from_value(saved_json.clone())
        .with_context(|| format!("{}: the saved options do not parse", path.display()))?;
    let given = serde_json::to_value(args)?;
    let differ: Vec<String> = args
        .explicit
        .iter()
        .filter(|id| !MAY_CHANGE.contains(&id.as_str()))
        .filter(|id| given.get(id.as_str()) != saved_json.get(id.as_str()))
        .map(|id| {
            format!(
                "--{} {} (the run has {})",
                id.replace('_', "-"),
                given.get(id.as_str()).unwrap_or(&serde_json::Value::Null),
                saved_json.get(id.as_str()).unwrap_or(&serde_json::Value::Null)
            )
        })
        .collect();
    if !differ.is_empty() {
        bail!(
            "--resume continues a run with the options it was started with; given otherwise: {}. \
             Only --epochs and --threads may change; start a new run to change the others",
            differ.join(", ")
        );
    }
    let mut merged = saved;
    if args.explicit.iter().any(|id| id == "epochs") {
        merged.epochs = args.epochs;
    }
    merged.threads = args.threads;
    merged.resume = args.resume.clone();
    merged.out = None;
    Ok(merged)
}

/// Records a resume in the run directory: config.json gets the new epoch total and a
/// `resumes` entry; resumes.jsonl a line.
fn record_resume(
    run: &RunDir,
    args: &NetTrainArgs,
    train: &tnml_nn::train::TrainConfig,
    after: usize,
) -> Result<()> {
    let path = run.path().join(run_files::CONFIG);
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    let entry = serde_json::json!({
        "after_epoch": after,
        "epochs": train.epochs,
        "options_given": args.explicit,
    });
    config["args"] = serde_json::to_value(args)?;
    config["train"] = serde_json::to_value(train)?;
    match config.get_mut("resumes").and_then(|r| r.as_array_mut()) {
        Some(list) => list.push(entry.clone()),
        None => config["resumes"] = serde_json::json!([entry]),
    }
    run.write_json(run_files::CONFIG, &config)?;
    run.append_lines(run_files::RESUMES, &[serde_json::to_string(&entry)?])
}
