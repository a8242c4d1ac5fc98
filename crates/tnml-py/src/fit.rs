//! Training from Python: the sweep or gradient trainer (and the optional core refit) run on a
//! worker thread with the GIL released, while the calling thread relays progress to a Python
//! callback and checks for signals. A Ctrl-C sets a stop flag that the trainer reads after
//! every bond update (sweeps) or minibatch (gradient): training stops there, the model is
//! whole (its last good state), and the `KeyboardInterrupt` is handed back with it.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use numpy::PyUntypedArrayMethods;
use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tnml_mps::{
    embed_batch, BondStep, EpochObserver, EpochSummary, FinalRefit, GradientConfig, Loss, MpsClassifier,
    MpsError, RefitKind, SweepConfig, SweepObserver, SweepSettings, SweepSummary, Trainer,
};

use crate::classifier::{parse_map, Model};
use crate::{mps_error, value_error};

/// The options of `MPSClassifier`, passed as a dict by the Python layer.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct FitOptions {
    trainer: String,
    bond: Vec<usize>,
    cutoff: f64,
    sweeps: usize,
    cg_passes: usize,
    refit_passes: usize,
    lam: f64,
    /// `None`: the trainer's default (`SweepConfig::default()` / `GradientConfig::default()`).
    loss: Option<String>,
    feature_map: String,
    turn_site: Option<usize>,
    epochs: usize,
    batch_size: usize,
    lr: f64,
    lr_schedule: String,
    shift: usize,
    flip: bool,
    seed: u64,
    threads: Option<usize>,
    refit: Option<String>,
    refit_lambda: Option<f64>,
    device: String,
}

/// The defaults of `MPSClassifier()`, read from the trainers' own (`SweepConfig::default()`,
/// `GradientConfig::default()`): the Python signature states them and a test checks that it
/// agrees with this.
#[pyfunction]
pub fn defaults(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyDict>> {
    let (sweep, gradient) = (SweepConfig::default(), GradientConfig::default());
    let d = pyo3::types::PyDict::new(py);
    d.set_item("bond", tnml_mps::sweep::DEFAULT_MAX_BOND)?;
    d.set_item("cutoff", tnml_mps::sweep::DEFAULT_CUTOFF)?;
    d.set_item("sweeps", sweep.sweeps)?;
    d.set_item("cg_passes", sweep.cg_passes)?;
    d.set_item("refit_passes", sweep.refit_passes)?;
    d.set_item("lam", sweep.lambda)?;
    d.set_item("sweep_loss", sweep.loss.to_string())?;
    d.set_item("gradient_loss", gradient.loss.to_string())?;
    d.set_item("epochs", gradient.epochs)?;
    d.set_item("batch_size", gradient.batch_size)?;
    d.set_item("lr", gradient.learning_rate)?;
    d.set_item("shift", gradient.shift)?;
    d.set_item("flip", gradient.flip)?;
    d.set_item("random_state", gradient.seed)?;
    Ok(d)
}

/// Seconds between progress messages within a sweep or an epoch.
const PROGRESS_EVERY_S: f64 = 1.0;

/// A progress message for the Python callback.
enum Progress {
    Step {
        kind: &'static str,
        sweep: usize,
        step: usize,
        steps: usize,
        cost: f64,
    },
    Sweep {
        sweep: usize,
        train_error: f64,
        cost: f64,
        max_bond: usize,
        discarded: f64,
        seconds: f64,
    },
    Epoch {
        epoch: usize,
        loss: f64,
        train_error: f64,
        seconds: f64,
    },
    Note(String),
}

/// The trainers' observer: sends progress, stops when the flag is set.
struct Relay<'a> {
    tx: Sender<Progress>,
    stop: &'a AtomicBool,
    last: Instant,
}

impl Relay<'_> {
    fn flow(&self) -> ControlFlow<()> {
        if self.stop.load(Ordering::Relaxed) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn step(&mut self, kind: &'static str, sweep: usize, step: usize, steps: usize, cost: f64) {
        if self.last.elapsed().as_secs_f64() >= PROGRESS_EVERY_S {
            self.last = Instant::now();
            let _ = self.tx.send(Progress::Step {
                kind,
                sweep,
                step,
                steps,
                cost,
            });
        }
    }
}

impl SweepObserver for Relay<'_> {
    fn on_bond(&mut self, s: &BondStep) -> ControlFlow<()> {
        self.step("sweep", s.sweep, s.step, s.steps_per_sweep, s.cost);
        self.flow()
    }

    fn on_sweep(&mut self, s: &SweepSummary, _model: &MpsClassifier) -> ControlFlow<()> {
        let _ = self.tx.send(Progress::Sweep {
            sweep: s.sweep,
            train_error: s.train_error,
            cost: s.cost,
            max_bond: s.bond_dims.iter().copied().max().unwrap_or(1),
            discarded: s.discarded_weight(),
            seconds: s.seconds,
        });
        self.flow()
    }
}

impl EpochObserver for Relay<'_> {
    fn on_batch(&mut self, epoch: usize, batch: usize, batches: usize, loss: f64) -> ControlFlow<()> {
        self.step("epoch", epoch, batch, batches, loss);
        self.flow()
    }

    fn on_epoch(&mut self, s: &EpochSummary, _model: &MpsClassifier) -> ControlFlow<()> {
        let _ = self.tx.send(Progress::Epoch {
            epoch: s.epoch,
            loss: s.loss,
            train_error: s.train_error,
            seconds: s.seconds,
        });
        self.flow()
    }
}

fn progress_dict<'py>(py: Python<'py>, p: &Progress) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    match p {
        Progress::Step {
            kind,
            sweep,
            step,
            steps,
            cost,
        } => {
            d.set_item("event", "step")?;
            d.set_item(*kind, sweep)?;
            d.set_item("step", step)?;
            d.set_item("steps", steps)?;
            d.set_item("cost", cost)?;
        }
        Progress::Sweep {
            sweep,
            train_error,
            cost,
            max_bond,
            discarded,
            seconds,
        } => {
            d.set_item("event", "sweep")?;
            d.set_item("sweep", sweep)?;
            d.set_item("train_error", train_error)?;
            d.set_item("cost", cost)?;
            d.set_item("max_bond", max_bond)?;
            d.set_item("discarded_weight", discarded)?;
            d.set_item("seconds", seconds)?;
        }
        Progress::Epoch {
            epoch,
            loss,
            train_error,
            seconds,
        } => {
            d.set_item("event", "epoch")?;
            d.set_item("epoch", epoch)?;
            d.set_item("loss", loss)?;
            d.set_item("train_error", train_error)?;
            d.set_item("seconds", seconds)?;
        }
        Progress::Note(text) => {
            d.set_item("event", "note")?;
            d.set_item("text", text)?;
        }
    }
    Ok(d)
}

/// Checked options, ready for the trainer.
enum Plan {
    Sweep {
        config: SweepConfig,
        refit: Option<FinalRefit>,
    },
    Gradient {
        config: GradientConfig,
        bond: usize,
    },
}

/// `device="cpu" | "cuda" | "cuda:N"`; only the gradient trainer has a GPU path.
fn parse_device(text: &str, trainer: Trainer) -> PyResult<tnml_mps::Device> {
    let device: tnml_mps::Device = text
        .parse()
        .map_err(|e: MpsError| value_error(format!("device {text:?}: {e}")))?;
    if device != tnml_mps::Device::Cpu && trainer != Trainer::Gradient {
        return Err(value_error(format!(
            "device {text:?}: the {trainer} trainer runs on the CPU only; use trainer=\"gradient\" for the GPU"
        )));
    }
    device.probe().map_err(mps_error)?;
    Ok(device)
}

fn plan(o: &FitOptions, sites: usize) -> PyResult<Plan> {
    let trainer: Trainer = o.trainer.parse().map_err(value_error)?;
    let loss = match &o.loss {
        Some(text) => text.parse::<Loss>().map_err(value_error)?,
        None if trainer == Trainer::Gradient => GradientConfig::default().loss,
        None => SweepConfig::default().loss,
    };
    let device = parse_device(&o.device, trainer)?;
    match trainer {
        Trainer::Sweep => {
            // the CLI's flags go through the same SweepSettings
            let refit = o
                .refit
                .as_deref()
                .map(str::parse::<RefitKind>)
                .transpose()
                .map_err(value_error)?;
            let (config, refit) = SweepSettings {
                sweeps: o.sweeps,
                max_bonds: o.bond.clone(),
                cutoff: o.cutoff,
                cg_passes: o.cg_passes,
                lambda: o.lam,
                refit_passes: o.refit_passes,
                loss: Some(loss),
                final_refit: refit,
                final_refit_lambda: o.refit_lambda,
            }
            .config()
            .map_err(mps_error)?;
            let config = config
                .turning_at(o.turn_site.unwrap_or(sites / 2), sites)
                .map_err(mps_error)?;
            Ok(Plan::Sweep { config, refit })
        }
        Trainer::Gradient => {
            if o.bond.len() != 1 {
                return Err(value_error(format!(
                    "max_bond {:?}: the gradient trainer trains at one fixed bond dimension; give one value",
                    o.bond
                )));
            }
            tnml_mps::sweep::check_turn_site(o.turn_site.unwrap_or(sites / 2), sites).map_err(mps_error)?;
            if o.refit.is_some() {
                return Err(value_error(
                    "refit applies to the sweep trainer, not to trainer=\"gradient\"",
                ));
            }
            let config = GradientConfig {
                epochs: o.epochs,
                batch_size: o.batch_size,
                learning_rate: o.lr,
                loss,
                seed: o.seed,
                schedule: o.lr_schedule.parse().map_err(value_error)?,
                shift: o.shift,
                device,
                flip: o.flip,
            };
            config.validate().map_err(mps_error)?;
            if o.bond[0] == 0 {
                return Err(mps_error(MpsError::ZeroBondDim {
                    context: String::new(),
                }));
            }
            Ok(Plan::Gradient {
                config,
                bond: o.bond[0],
            })
        }
    }
}

/// What the worker thread hands back: the model (if one was built) and how training ended.
type Outcome = (Option<MpsClassifier>, Result<(), MpsError>);

/// Builds the starting model and trains it (on the calling thread's rayon pool).
#[allow(clippy::too_many_arguments)]
fn train(
    plan: &Plan,
    pixels: &[f32],
    labels: &[usize],
    image: (usize, usize),
    num_labels: usize,
    map: tnml_mps::FeatureMap,
    turn_site: usize,
    relay: &mut Relay<'_>,
) -> Outcome {
    let sites = image.0 * image.1;
    let feats = match embed_batch(map, pixels, sites) {
        Ok(f) => f,
        Err(e) => return (None, Err(e)),
    };
    match plan {
        Plan::Sweep { config, refit } => {
            let start = MpsClassifier::from_class_means(
                pixels,
                labels,
                image,
                num_labels,
                map,
                config.trunc_at(1).max_bond,
            );
            let mut model = match start {
                Ok((m, _)) => m,
                Err(e) => return (None, Err(e)),
            };
            let res = tnml_mps::train_sweeps(&mut model, &feats, labels, config, relay);
            if res.is_err() || relay.stop.load(Ordering::Relaxed) {
                return (Some(model), res.map(|_| ()));
            }
            let Some(FinalRefit { kind, lambda }) = *refit else {
                return (Some(model), Ok(()));
            };
            let refitted = (|| {
                let mut proj = model.project(model.label_site().max(1))?;
                let phi = proj.reduced_features(&feats)?;
                let out = proj.refit_with_defaults(&phi, labels, kind, lambda, 500)?;
                let _ = relay.tx.send(Progress::Note(format!(
                    "core refit ({kind:?}, lambda {:e}): cost {:.5}, train error {:.4}",
                    out.lambda,
                    out.cost,
                    proj.error_rate(&phi, labels)
                )));
                proj.into_model()
            })();
            match refitted {
                Ok(m) => (Some(m), Ok(())),
                Err(e) => (Some(model), Err(e)),
            }
        }
        Plan::Gradient { config, bond } => {
            let start =
                MpsClassifier::near_identity(image, num_labels, map, *bond, turn_site, 1e-2, config.seed);
            let mut model = match start {
                Ok(m) => m,
                Err(e) => return (None, Err(e)),
            };
            let res = tnml_mps::train_gradient(&mut model, &feats, labels, config, relay);
            (Some(model), res.map(|_| ()))
        }
    }
}

/// Trains a classifier on `x` (`(n, h*w)` float32, C order, in [0, 1]) and `y` (`(n,)` int64
/// in `0..num_labels`). Returns the model and the exception that interrupted training (a
/// `KeyboardInterrupt`, or what `progress` raised), if any: the model is then the last good
/// state. Errors of the data, the options or the numerics raise.
#[pyfunction]
#[pyo3(signature = (x, y, image_shape, num_labels, options, progress=None))]
#[allow(clippy::needless_pass_by_value)]
pub fn fit(
    py: Python<'_>,
    x: PyReadonlyArray2<'_, f32>,
    y: PyReadonlyArray1<'_, i64>,
    image_shape: (usize, usize),
    num_labels: usize,
    options: FitOptions,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Model, Option<Py<PyAny>>)> {
    let sites = image_shape.0 * image_shape.1;
    if x.shape()[1] != sites {
        return Err(value_error(format!(
            "X has {} columns, image_shape {image_shape:?} needs {sites}",
            x.shape()[1]
        )));
    }
    let labels: Vec<usize> = y
        .as_slice()
        .map_err(value_error)?
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            usize::try_from(l)
                .ok()
                .filter(|&l| l < num_labels)
                .ok_or_else(|| value_error(format!("label {l} of sample {i} is outside 0..{num_labels}")))
        })
        .collect::<PyResult<_>>()?;
    let pixels = x.as_slice().map_err(value_error)?.to_vec();
    let map = parse_map(&options.feature_map)?;
    let plan = plan(&options, sites)?;
    let pool = match options.threads {
        None => None,
        Some(0) => return Err(value_error("threads 0: give at least 1 (or None for all cores)")),
        Some(t) => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .map_err(|e| PyRuntimeError::new_err(format!("cannot start {t} threads: {e}")))?,
        ),
    };
    let turn_site = options.turn_site.unwrap_or(sites / 2);
    let stop = AtomicBool::new(false);
    let mut interrupt: Option<PyErr> = None;
    let outcome = py.detach(|| {
        let (tx, rx) = channel();
        std::thread::scope(|s| {
            let worker = s.spawn(|| {
                let run = || {
                    let mut relay = Relay {
                        tx,
                        stop: &stop,
                        last: Instant::now(),
                    };
                    train(
                        &plan,
                        &pixels,
                        &labels,
                        image_shape,
                        num_labels,
                        map,
                        turn_site,
                        &mut relay,
                    )
                };
                match &pool {
                    Some(p) => p.install(run),
                    None => run(),
                }
            });
            loop {
                let msg = match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                Python::attach(|py| {
                    let mut result = py.check_signals();
                    if let (Ok(()), Some(m), Some(cb)) = (&result, &msg, &progress) {
                        result = progress_dict(py, m).and_then(|d| cb.bind(py).call1((d,)).map(|_| ()));
                    }
                    if let Err(e) = result {
                        stop.store(true, Ordering::Relaxed);
                        interrupt.get_or_insert(e);
                    }
                });
            }
            worker.join()
        })
    });
    let (model, result) = outcome.map_err(|_| PyRuntimeError::new_err("the training thread panicked"))?;
    result.map_err(mps_error)?;
    let model = model.ok_or_else(|| PyRuntimeError::new_err("training produced no model"))?;
    Ok((
        Model { inner: model },
        interrupt.map(|e| e.into_value(py).into_any()),
    ))
}
