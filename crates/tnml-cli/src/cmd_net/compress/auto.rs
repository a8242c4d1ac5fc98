//! `tnml net compress --auto`: the bond dimensions of a trained dense model's MPO layers chosen
//! from the spectra of its weights, as far as a validation split allows.
//!
//! 1. The replaceable layers become exact MPOs (Gao's modes, or `--mpo`'s) and their Schmidt
//!    spectra are read off.
//! 2. For a growing budget `beta` (the grid [`BUDGETS`]), the bonds of all layers are chosen
//!    together by [`tnml_core::allocate::choose_bonds_across`]: the Schmidt values dropped are
//!    those that cost the least kept weight per parameter saved, over every bond of every layer,
//!    while the weight kept (`prod (1 - w_b)` over all bonds) stays at least `1 - beta`. A small
//!    layer saves few parameters per value and keeps its bonds. The model is rebuilt from the
//!    dense weights with those MPOs, retrained `--retrain-epochs`, and its accuracy measured on
//!    the validation split held out from the training images.
//! 3. The search stops at the first budget whose validation accuracy falls more than
//!    `--max-drop` points below the reference: the exact MPO (the dense function at full rank)
//!    retrained the same way (the checkpoint may have seen the validation images, and retraining
//!    moves dense weights and cores differently); the last budget within it is the result.
//! 4. `--uniform-bonds` runs the baseline (one bond dimension for every bond) through the same
//!    truncation and retraining. The test set is evaluated once, at the end, for the report.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{bail, Result};
use tnml_core::allocate::choose_bonds_across;
use tnml_core::TruncParams;
use tnml_data::Split;
use tnml_nn::checkpoint::{self, CheckpointHeader};
use tnml_nn::compress::{assemble, dense_unless_smaller, exact_layers, Compressed, ExactLayer};
use tnml_nn::models::{Net, NetConfig};
use tnml_nn::train::{evaluate, LabeledImages, TrainConfig};
use tnml_nn::{Arch, MpoLayers};

use super::args::NetCompressArgs;
use super::source::load_source;
use crate::figures::plot_run;
use crate::run_dir::RunDir;
use crate::run_files;
use crate::run_files::RunConfig;
use crate::run_files::{BondChoiceRecord, PathPoint, BOND_CHOICES, COMPRESSION_PATH};
use crate::runtime::device;

mod report;

use report::summary;

/// Budgets of relative discarded weight per layer tried in turn.
pub const BUDGETS: [f64; 18] = [
    1e-3, 0.01, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.96, 0.98,
];

/// Default learning rate of the retraining.
const RETRAIN_LR: f64 = 1e-4;

/// One evaluated candidate.
struct Candidate {
    point: PathPoint,
    specs: Vec<String>,
    /// Per layer, the bonds of its truncated MPO (what a layer kept dense would have had).
    bonds: Vec<Vec<usize>>,
    /// Per layer, whether its MPO was not smaller than the matrix, so the matrix was kept
    /// (a one-site MPO: `dense_unless_smaller`).
    kept_dense: Vec<bool>,
    net: Net,
    config: NetConfig,
}

fn mpo_params(c: &Compressed) -> usize {
    c.config
        .mpo
        .as_ref()
        .map_or(0, |specs| specs.iter().map(|s| s.num_params()).sum())
}

struct Search<'a> {
    dense: &'a Net,
    cfg: &'a NetConfig,
    layers: &'a [ExactLayer],
    retrain: &'a LabeledImages,
    valid: &'a LabeledImages,
    args: &'a NetCompressArgs,
    lr: f64,
}

impl Search<'_> {
    /// `--retrain-epochs` of Adam at the retraining rate on the training images left after the
    /// validation split.
    fn retrain(&self, net: Net) -> Result<Net> {
        if self.args.retrain_epochs == 0 {
            return Ok(net);
        }
        let dev = device();
        let tc = TrainConfig::adam(self.args.retrain_epochs, 100, self.lr, self.args.seed.seed);
        let optim = tc.build_optimizer();
        let (net, _) = tnml_nn::train::train(
            net,
            optim,
            &tc,
            self.retrain,
            None,
            1,
            &dev,
            &mut tnml_nn::train::Silent,
        )?;
        Ok(net)
    }

    /// Builds the model with `truncate` per layer, retrains it, measures the validation accuracy.
    /// A layer whose MPO would not be smaller than its matrix keeps the matrix (except in the
    /// `exact` reference, the full-rank MPO as it is).
    fn evaluate(
        &self,
        kind: &str,
        label: String,
        mut truncate: impl FnMut(
            usize,
            &tnml_core::Mpo,
        ) -> tnml_nn::Result<(tnml_core::Mpo, tnml_core::TruncReport)>,
    ) -> Result<Candidate> {
        let dev = device();
        let n = self.layers.len();
        let (mut bonds, mut kept_dense) = (vec![Vec::new(); n], vec![false; n]);
        let c = assemble(
            self.dense,
            self.cfg,
            self.layers,
            |i, exact| {
                let (m, report) = truncate(i, exact)?;
                bonds[i] = m.bond_dims();
                if kind == "exact" {
                    return Ok((m, report));
                }
                let (m, dense) = dense_unless_smaller(exact, m)?;
                kept_dense[i] = dense;
                Ok((
                    m,
                    if dense {
                        tnml_core::TruncReport::default()
                    } else {
                        report
                    },
                ))
            },
            &dev,
        )?;
        let params = mpo_params(&c);
        let specs: Vec<String> = (c.config.mpo.iter().flatten())
            .zip(&kept_dense)
            .map(|(s, &k)| match k {
                true => format!("dense {}x{} (kept)", s.out_features(), s.in_features()),
                false => s.to_string(),
            })
            .collect();
        let config = c.config.clone();
        let net = self.retrain(c.net)?;
        let (_, val_acc) = evaluate(&net, self.valid, 1000, &dev);
        let kept: Vec<&str> = self
            .layers
            .iter()
            .zip(&kept_dense)
            .filter(|(_, &k)| k)
            .map(|(l, _)| l.name.as_str())
            .collect();
        let kept = if kept.is_empty() {
            String::new()
        } else {
            format!(
                " ({} kept dense: no MPO smaller than the matrix)",
                kept.join(", ")
            )
        };
        eprintln!(
            "  {kind} {label}: {} -> {params} MPO params{kept}, validation accuracy {:.2}%",
            specs.join("; "),
            100.0 * val_acc
        );
        Ok(Candidate {
            point: PathPoint {
                kind: kind.into(),
                label,
                params,
                val_acc,
            },
            specs,
            bonds,
            kept_dense,
            net,
            config,
        })
    }
}

/// Everything the report needs, measured.
struct Outcome {
    arch: Arch,
    source: std::path::PathBuf,
    started_mpo: bool,
    valid_len: usize,
    retrain_len: usize,
    lr: f64,
    max_drop: f64,
    /// Validation accuracy of the reference (the exact MPO retrained) and of the checkpoint as
    /// loaded.
    reference_val: f64,
    loaded_val: f64,
    loaded_test: f64,
    dense_params: usize,
    exact: Candidate,
    exact_test: f64,
    best: Candidate,
    best_test: f64,
    uniform: Vec<Candidate>,
    /// The smallest uniform model within the drop (index into `uniform`) and its test accuracy.
    best_uniform: Option<(usize, f64)>,
    path: Vec<PathPoint>,
    choices: Vec<BondChoiceRecord>,
    seconds: f64,
}

/// The Schmidt values of every bond of one layer.
type Spectra = Vec<Vec<f64>>;

/// The Schmidt spectra of every bond of every exact layer, and the physical dimension
/// `in_k * out_k` of every site (what a bond dimension costs in parameters).
fn spectra_and_sites(layers: &[ExactLayer]) -> Result<(Vec<Spectra>, Vec<Vec<usize>>)> {
    let spectra = layers
        .iter()
        .map(|l| {
            let profile = l.mpo.entanglement_profile()?;
            Ok(profile.bonds.into_iter().map(|b| b.spectrum).collect())
        })
        .collect::<Result<_>>()?;
    let phys = layers
        .iter()
        .map(|l| {
            l.mpo
                .in_modes()
                .iter()
                .zip(l.mpo.out_modes())
                .map(|(i, o)| i * o)
                .collect()
        })
        .collect();
    Ok((spectra, phys))
}

impl Search<'_> {
    /// The budgets of [`BUDGETS`] in turn (a budget giving the bonds of the one before is
    /// skipped); returns the path and the last model within `floor`. Without a uniform baseline
    /// the path stops at the first model below `floor`; with one it goes on to the smallest.
    fn budget_path(
        &self,
        spectra: &[Spectra],
        phys: &[Vec<usize>],
        floor: f64,
    ) -> Result<(Vec<PathPoint>, Option<Candidate>)> {
        let chains: Vec<(&[usize], &[Vec<f64>])> = phys
            .iter()
            .zip(spectra)
            .map(|(p, s)| (p.as_slice(), s.as_slice()))
            .collect();
        let mut path = Vec::new();
        let mut best = None;
        let mut last_bonds: Option<Vec<Vec<usize>>> = None;
        let mut stopped = false;
        for beta in BUDGETS {
            let choices: Vec<Vec<usize>> = choose_bonds_across(&chains, beta)?
                .into_iter()
                .map(|c| c.bond_dims)
                .collect();
            if last_bonds.as_ref() == Some(&choices) {
                continue; // the same model as the last budget
            }
            last_bonds = Some(choices.clone());
            let cand = self.evaluate("auto", format!("budget {beta}"), |i, exact| {
                let mut m = exact.clone();
                let report = m.truncate_to_bonds(&choices[i])?;
                Ok((m, report))
            })?;
            path.push(cand.point.clone());
            stopped |= cand.point.val_acc < floor;
            if !stopped {
                best = Some(cand);
            } else if self.args.uniform_bonds.is_empty() {
                break;
            }
        }
        Ok((path, best))
    }

    /// One model per `--uniform-bonds` value, every bond capped at it.
    fn uniform(&self) -> Result<Vec<Candidate>> {
        self.args
            .uniform_bonds
            .iter()
            .map(|&d| {
                self.evaluate("uniform", format!("D={d}"), |_, exact| {
                    let mut m = exact.clone();
                    let report = m.truncate(&TruncParams::max_bond(d))?;
                    Ok((m, report))
                })
            })
            .collect()
    }
}

/// `--max-drop` (default 0.5 points) and `--uniform-bonds` checked before any work.
fn checked_max_drop(args: &NetCompressArgs) -> Result<f64> {
    let max_drop = args.max_drop.unwrap_or(0.5);
    if !(0.0..=100.0).contains(&max_drop) {
        bail!("--max-drop {max_drop}: accuracy points between 0 and 100");
    }
    if args.uniform_bonds.contains(&0) {
        bail!("--uniform-bonds: a bond dimension of 0 has no MPO; give values >= 1");
    }
    Ok(max_drop)
}

/// The modes of the MPO layers: a dense model gets Gao's (or `--mpo`'s); an MPO model starts
/// from its own cores. Models whose replaced layers include convolutions are refused.
fn layer_modes(
    args: &NetCompressArgs,
    header: &CheckpointHeader,
    source: &std::path::Path,
) -> Result<Vec<tnml_nn::MpoSpec>> {
    let arch = header.net.arch;
    if matches!(arch, Arch::Vgg16 | Arch::Vgg19 | Arch::Resnet56) {
        bail!(
            "compress handles models whose replaced layers are all fully connected (FC2, LeNet-5, the talk model, ResNet-20, DenseNet-40); {arch:?}'s replaced layers include convolutions"
        );
    }
    match &header.net.mpo {
        Some(_) if args.mpo.is_some() => bail!(
            "--mpo: {} already has MPO layers; --auto starts from their cores and modes",
            source.display()
        ),
        Some(specs) => Ok(specs.clone()),
        None => Ok(args.mpo.as_ref().unwrap_or(&MpoLayers::Gao).resolve(arch, None)?),
    }
}

/// Runs `tnml net compress --auto`.
pub(super) fn compress_auto(args: &NetCompressArgs) -> Result<()> {
    let t0 = Instant::now();
    let max_drop = checked_max_drop(args)?;
    let dev = device();
    let (header, dense, source) = load_source(args, &dev)?;
    let arch = header.net.arch;
    let modes = layer_modes(args, &header, &source)?;
    let all_train = args.data.load(Split::Train, arch, args.seed.seed)?;
    let (retrain, valid) = all_train.split_validation(args.validation, args.seed.seed)?;
    let (_, loaded_val) = evaluate(&dense, &valid, 1000, &dev);
    let layers = exact_layers(&dense, &header.net, &modes)?;
    let dense_params = layers
        .iter()
        .map(|l| l.mpo.dense_shape().0 * l.mpo.dense_shape().1)
        .sum();
    let (spectra, phys) = spectra_and_sites(&layers)?;
    let search = Search {
        dense: &dense,
        cfg: &header.net,
        layers: &layers,
        retrain: &retrain,
        valid: &valid,
        args,
        lr: args.lr.unwrap_or(RETRAIN_LR),
    };
    // The reference is the uncompressed model in the same form, trained the same way: the exact
    // MPO (TT-SVD at full rank, the dense function) retrained like every candidate. The dense
    // checkpoint as loaded is no fair reference: if its run used every training image it has
    // seen the validation split, and one more epoch trains dense weights and MPO cores
    // differently (on MNIST's FC2 the dense model gained 0.5 points from it, the exact MPO
    // lost 0.2).
    let exact = search.evaluate("exact", "full rank".into(), |_, m| {
        Ok((m.clone(), tnml_core::TruncReport::default()))
    })?;
    let reference_val = exact.point.val_acc;
    eprintln!(
        "reference: the exact MPO model retrained the same way, validation accuracy {:.2}% on {} held-out training images (the dense checkpoint as loaded: {:.2}%); allowed drop {max_drop} points",
        100.0 * reference_val,
        valid.len(),
        100.0 * loaded_val,
    );
    let floor = reference_val - max_drop / 100.0;
    let (mut path, best) = search.budget_path(&spectra, &phys, floor)?;
    let uniform = search.uniform()?;
    path.extend(uniform.iter().map(|c| c.point.clone()));
    let Some(best) = best else {
        bail!(
            "even the smallest budget ({}) lost more than {max_drop} points of validation accuracy ({:.2}% vs dense {:.2}%): nothing to keep",
            BUDGETS[0],
            100.0 * path.first().map_or(0.0, |p| p.val_acc),
            100.0 * reference_val
        );
    };
    let test = args.data.load(Split::Test, arch, args.seed.seed)?;
    let test_acc = |net: &Net| evaluate(net, &test, 1000, &dev).1;
    let best_uniform = (0..uniform.len())
        .filter(|&k| uniform[k].point.val_acc >= floor)
        .min_by_key(|&k| uniform[k].point.params)
        .map(|k| (k, test_acc(&uniform[k].net)));
    let choices = layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            Ok(BondChoiceRecord {
                layer: l.name.clone(),
                entropy: l.mpo.entanglement_profile()?.entropies(),
                exact_bond_dims: l.mpo.bond_dims(),
                chosen: best.bonds[i].clone(),
                uniform: best_uniform.map(|(k, _)| uniform[k].bonds[i].clone()),
                kept_dense: best.kept_dense[i],
            })
        })
        .collect::<Result<_>>()?;
    let outcome = Outcome {
        arch,
        started_mpo: header.net.mpo.is_some(),
        valid_len: valid.len(),
        retrain_len: retrain.len(),
        lr: search.lr,
        max_drop,
        reference_val,
        loaded_val,
        loaded_test: test_acc(&dense),
        dense_params,
        exact_test: test_acc(&exact.net),
        exact,
        best_test: test_acc(&best.net),
        best,
        uniform,
        best_uniform,
        path,
        choices,
        source,
        seconds: t0.elapsed().as_secs_f64(),
    };
    write_run(args, &outcome)
}

/// The run directory: config, the path, the bond choices, the chosen model (checkpoint and
/// PyTorch layout), figures and the summary (also printed).
fn write_run(args: &NetCompressArgs, o: &Outcome) -> Result<()> {
    let run = RunDir::create(args.out.as_deref(), "net-compress")?;
    run.write_config(&RunConfig::new(
        "net compress --auto",
        Some(args),
        serde_json::json!({
            "source": o.source,
            "net": o.best.config,
            "budgets": BUDGETS,
        }),
    ))?;
    let mut lines = String::new();
    for p in &o.path {
        let _ = writeln!(lines, "{}", serde_json::to_string(p)?);
    }
    run.write_file(COMPRESSION_PATH, lines.as_bytes())?;
    run.write_json(BOND_CHOICES, &o.choices)?;
    let header = CheckpointHeader::new(o.best.config.clone(), None);
    checkpoint::save(&run.path().join("checkpoint"), &header, &o.best.net, None)?;
    tnml_nn::torch_layout::write(&run.path().join(run_files::MODEL), &o.best.net, &o.best.config)?;
    plot_run(run.path(), &["png"])?;
    let md = summary(args, o);
    run.write_summary(&md)?;
    print!("{md}");
    println!("\nwrote {}", run.path().display());
    Ok(())
}
