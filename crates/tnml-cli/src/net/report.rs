//! What a network run prints and records: the model's layers and compression, the epoch table,
//! the entanglement table against the random-initialization baseline.

use std::fmt::Write as _;

use anyhow::Result;
use tnml_nn::checkpoint;
use tnml_nn::entangle::{Baseline, BondRecord};
use tnml_nn::models::CompressionReport;
use tnml_nn::train::EpochRecord;
use tnml_nn::{Net, NetConfig};

use crate::run_dir::RunDir;
use crate::run_files;

/// One line per layer and the compression ratio, as printed and recorded.
pub fn describe(net: &Net, cfg: &NetConfig) -> (String, Option<CompressionReport>) {
    let mut text = String::new();
    let tensors = checkpoint::named_tensors(net);
    let total: usize = tensors.values().map(|(s, _)| s.iter().product::<usize>()).sum();
    let _ = writeln!(text, "model {:?}: {} parameters in all", cfg.arch, total);
    // per layer: the second path component (`Lenet5.conv1.weight` -> conv1, `Vgg.features.3...` -> features.3, ResNet's `blocks.K`)
    let mut per_layer: Vec<(String, usize)> = Vec::new();
    for (name, (shape, _)) in &tensors {
        let parts: Vec<&str> = name.split('.').collect();
        let layer = match parts.as_slice() {
            [_, group @ ("features" | "blocks"), i, ..] => format!("{group}.{i}"),
            [_, l, ..] => l.to_string(),
            _ => name.clone(),
        };
        let n: usize = shape.iter().product();
        match per_layer.iter_mut().find(|(l, _)| *l == layer) {
            Some(e) => e.1 += n,
            None => per_layer.push((layer, n)),
        }
    }
    let _ = writeln!(
        text,
        "  per layer: {}",
        per_layer
            .iter()
            .map(|(l, n)| format!("{l} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let report = cfg.compression();
    if let Some(r) = &report {
        for l in &r.layers {
            let _ = writeln!(
                text,
                "  {:<8} {:<28} {:>9} params (dense {:>10}, ratio {:.4})",
                l.name,
                l.spec,
                l.params.mpo_params,
                l.params.dense_params,
                l.params.ratio()
            );
        }
        let _ = writeln!(
            text,
            "compression over the replaced layers: rho = {} / {} = {:.4} (1/rho = {:.1})",
            r.total.mpo_params,
            r.total.dense_params,
            r.total.ratio(),
            r.total.factor()
        );
    } else {
        for (name, fin, fout, dense) in cfg.arch.replaceable() {
            let _ = writeln!(text, "  {name:<8} dense {fin} -> {fout}: {dense} params");
        }
    }
    (text, report)
}

/// Appends the entanglement of every MPO layer of `net` to `entanglement.jsonl`; returns the records.
pub fn record_entanglement(run: &RunDir, net: &Net, epoch: usize) -> Result<Vec<BondRecord>> {
    let recs = tnml_nn::entangle::net_records(net, epoch)?;
    if !recs.is_empty() {
        let lines = recs
            .iter()
            .map(serde_json::to_string)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        run.append_lines(run_files::ENTANGLEMENT, &lines)?;
    }
    Ok(recs)
}

/// Entropy per bond of each layer, as a markdown table (last recorded epoch vs baseline).
pub fn entanglement_table(recs: &[BondRecord], baselines: &[Baseline]) -> String {
    let mut s = String::from(
        "| layer | bond | D | S | bound | S/bound | random init S |\n|---|---|---|---|---|---|---|\n",
    );
    for r in recs {
        let base = baselines
            .iter()
            .find(|b| b.layer == r.layer)
            .and_then(|b| {
                b.mean
                    .get(r.bond - 1)
                    .map(|m| format!("{m:.4} +- {:.4}", b.std[r.bond - 1]))
            })
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.4} | {:.4} | {:.3} | {base} |",
            r.layer, r.bond, r.bond_dim, r.entropy, r.bound, r.ratio
        );
    }
    s
}

pub fn summary_table(history: &[EpochRecord]) -> String {
    let val = history.iter().any(|r| r.validation_acc.is_some());
    let mut s = if val {
        String::from("| epoch | lr | train loss | train acc | validation loss | validation acc | test loss | test acc | seconds |\n|---|---|---|---|---|---|---|---|---|\n")
    } else {
        String::from("| epoch | lr | train loss | train acc | test loss | test acc | seconds |\n|---|---|---|---|---|---|---|\n")
    };
    let loss = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.4}"));
    let acc = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.2}%", 100.0 * v));
    for r in history {
        let validation = if val {
            format!(" {} | {} |", loss(r.validation_loss), acc(r.validation_acc))
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "| {} | {:.3e} | {:.4} | {:.2}% |{validation} {} | {} | {:.1} |",
            r.epoch,
            r.lr,
            r.train_loss,
            100.0 * r.train_acc,
            loss(r.test_loss),
            acc(r.test_acc),
            r.train_seconds
        );
    }
    s
}
