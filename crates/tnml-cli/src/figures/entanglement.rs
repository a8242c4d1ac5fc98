//! Entanglement figures: per layer the entropy per bond (one point in time: `tnml entangle`) or
//! over the epochs (a training run, with the bound and the random-initialisation reference),
//! the Schmidt spectra, and the bonds an automatic compression chose against the entropy.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use tnml_nn::entangle::{Baseline, BondRecord};
use tnml_plot::{Heatmap, LineChart, Series};

use super::sink::{chart, read_jsonl, safe_stem, series, Sink};
use crate::run_files::{BondChoiceRecord, ENTANGLEMENT_BASELINE};

/// The most sites of an MPO layer a recorded file may name (a bound on what is drawn).
const MAX_SITES: usize = 1024;

/// All entanglement figures of the records in `path` (`entanglement.jsonl`), one set per layer.
pub fn layers(sink: &mut Sink, run: &Path, path: &Path) -> Result<()> {
    let recs: Vec<BondRecord> = read_jsonl(path)?;
    let baselines: Vec<Baseline> = match std::fs::read(run.join(ENTANGLEMENT_BASELINE)) {
        Ok(b) => serde_json::from_slice(&b).context(ENTANGLEMENT_BASELINE)?,
        Err(_) => Vec::new(),
    };
    let mut layers: BTreeMap<&str, Vec<&BondRecord>> = BTreeMap::new();
    for r in &recs {
        layers.entry(r.layer.as_str()).or_default().push(r);
    }
    for (layer, rs) in &layers {
        let bonds = rs.iter().map(|r| r.bond).max().unwrap_or(0);
        // a bond index comes from the file: bounded by what an MPO layer can have
        if bonds > MAX_SITES {
            bail!(
                "{}: layer {layer} has bond {bonds}; an MPO layer has at most {MAX_SITES} sites",
                path.display()
            );
        }
        let stem = safe_stem(layer);
        if rs.iter().all(|r| r.epoch == rs[0].epoch) {
            sink.lines(&entropy_per_bond(layer, rs), &format!("entropy-{stem}"))?;
            sink.lines(&spectra_per_bond(layer, rs), &format!("spectra-{stem}"))?;
            continue;
        }
        let baseline = baselines.iter().find(|b| b.layer == *layer);
        sink.lines(
            &entropy_over_epochs(layer, rs, bonds, baseline),
            &format!("entropy-{stem}"),
        )?;
        for b in 1..=bonds {
            if let Some(map) = spectrum_over_epochs(layer, rs, b) {
                sink.heatmap(&map, &format!("spectrum-{stem}-bond{b}"))?;
            }
        }
    }
    Ok(())
}

/// `bonds-<layer>`: one figure per layer of `bond-choices.json`.
pub fn bond_choices(sink: &mut Sink, path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let layers: Vec<BondChoiceRecord> =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    for l in layers.iter().take(MAX_SITES) {
        sink.lines(&bond_choice_chart(l), &format!("bonds-{}", safe_stem(&l.layer)))?;
    }
    Ok(())
}

/// Entropy of every bond against the epoch, the bound `ln min(cut)` dashed (one line per
/// distinct value) and the random-initialisation mean per bond when recorded.
fn entropy_over_epochs(
    layer: &str,
    rs: &[&BondRecord],
    bonds: usize,
    baseline: Option<&Baseline>,
) -> LineChart {
    let last_epoch = (rs.iter().map(|r| r.epoch).max().unwrap_or(0) as f64).max(1.0);
    let flat = |name: &str, y: f64, color: usize| series(name, vec![(0.0, y), (last_epoch, y)], color, true);
    let mut lines: Vec<Series> = (1..=bonds)
        .map(|b| {
            let pts = rs
                .iter()
                .filter(|r| r.bond == b)
                .map(|r| (r.epoch as f64, r.entropy))
                .collect();
            series(&format!("bond {b}"), pts, b - 1, false)
        })
        .collect();
    let mut bounds: Vec<f64> = rs.iter().map(|r| r.bound).collect();
    bounds.sort_by(f64::total_cmp);
    bounds.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    for (k, bound) in bounds.iter().enumerate() {
        lines.push(flat(if k == 0 { "bound ln(min cut)" } else { "" }, *bound, 7));
    }
    if let Some(base) = baseline {
        for (b, mean) in base.mean.iter().enumerate() {
            lines.push(flat(&format!("bond {} random init", b + 1), *mean, b));
        }
    }
    let title = format!("entanglement entropy of {layer} per bond");
    chart(title, "epoch", "S (nats)", lines, false)
}

/// The spectrum `log10 s^2` of bond `b` against the epoch, as a heat map (`None` when no record
/// of that bond has a spectrum).
fn spectrum_over_epochs(layer: &str, rs: &[&BondRecord], b: usize) -> Option<Heatmap> {
    let at: Vec<&BondRecord> = rs.iter().copied().filter(|r| r.bond == b).collect();
    let rows = at.iter().map(|r| r.spectrum.len()).max().unwrap_or(0);
    if rows == 0 {
        return None;
    }
    let values = (0..rows)
        .map(|k| {
            at.iter()
                .map(|r| r.spectrum.get(k).map_or(f64::NAN, |s| (s * s).max(1e-16).log10()))
                .collect()
        })
        .collect();
    Some(Heatmap {
        title: format!("entanglement spectrum of {layer}, bond {b}: log10 s^2"),
        x_label: "epoch".into(),
        y_label: "Schmidt index".into(),
        values,
        x_values: at.iter().map(|r| r.epoch as f64).collect(),
        first_row: 1.0,
    })
}

/// Entropy per bond against the capacity `ln D` of the chosen (and uniform) bond dimensions.
fn bond_choice_chart(l: &BondChoiceRecord) -> LineChart {
    let pts = |v: &[f64]| v.iter().enumerate().map(|(i, &y)| ((i + 1) as f64, y)).collect();
    let ln = |d: &[usize]| d.iter().map(|&x| (x as f64).ln()).collect::<Vec<_>>();
    let mut lines = vec![
        series("entropy S of the exact MPO", pts(&l.entropy), 0, false),
        series("ln D chosen per bond", pts(&ln(&l.chosen)), 1, false),
        series("ln rank (exact)", pts(&ln(&l.exact_bond_dims)), 3, true),
    ];
    if let Some(u) = &l.uniform {
        lines.push(series("ln D uniform", pts(&ln(u)), 2, true));
    }
    chart(
        format!("{}: entropy and bonds chosen", l.layer),
        "bond",
        "nats",
        lines,
        false,
    )
}

/// Entropy per bond of one layer at one time, with the bound `ln min(cut)` dashed.
fn entropy_per_bond(layer: &str, rs: &[&BondRecord]) -> LineChart {
    let pts = |f: &dyn Fn(&BondRecord) -> f64| rs.iter().map(|r| (r.bond as f64, f(r))).collect::<Vec<_>>();
    let lines = vec![
        series("entropy S", pts(&|r| r.entropy), 0, false),
        series("Renyi-2", pts(&|r| r.renyi2), 1, false),
        series("bound ln(min cut)", pts(&|r| r.bound), 7, true),
    ];
    chart(
        format!("entanglement entropy of {layer}"),
        "bond",
        "S (nats)",
        lines,
        false,
    )
}

/// Schmidt spectra `s^2` of one layer, one line per bond, on a log axis.
fn spectra_per_bond(layer: &str, rs: &[&BondRecord]) -> LineChart {
    let lines = rs
        .iter()
        .map(|r| {
            let pts = r
                .spectrum
                .iter()
                .enumerate()
                .map(|(k, s)| ((k + 1) as f64, s * s))
                .collect();
            series(&format!("bond {}", r.bond), pts, r.bond - 1, false)
        })
        .collect();
    chart(
        format!("entanglement spectra of {layer}"),
        "Schmidt index",
        "s^2",
        lines,
        true,
    )
}
