//! The summary of `net compress --auto`: the set-up, the models compared, equal-parameter
//! pairs, the path and the bonds chosen.

use std::fmt::Write as _;

use super::{Candidate, NetCompressArgs, Outcome};

/// `summary.md`: the set-up, the models compared, equal-parameter pairs, the path, the bonds.
pub(super) fn summary(args: &NetCompressArgs, o: &Outcome) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# net compress --auto\n");
    let _ = writeln!(
        md,
        "- {:?} from {}; validation: {} training images held out (seed {}), retraining {} epoch(s) per step on the other {} (Adam, lr {})",
        o.arch,
        o.source.display(),
        o.valid_len,
        args.seed.seed,
        args.retrain_epochs,
        o.retrain_len,
        o.lr
    );
    let _ = writeln!(
        md,
        "- allowed validation drop: {} points below the exact MPO model (the dense function at full rank) retrained the same way ({:.2}%; the dense checkpoint as loaded: {:.2}%, which has seen the validation images if its run trained on every training image)",
        o.max_drop,
        100.0 * o.reference_val,
        100.0 * o.loaded_val
    );
    let _ = writeln!(md, "- search time {:.1} s\n", o.seconds);
    models_table(&mut md, args, o);
    equal_params_table(&mut md, o);
    let _ = writeln!(md, "\n## Path (validation accuracy after retraining)\n\n| kind | step | params | validation |\n|---|---|---:|---:|");
    for p in &o.path {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2}% |",
            p.kind,
            p.label,
            p.params,
            100.0 * p.val_acc
        );
    }
    let _ = writeln!(
        md,
        "\n## Why these bonds: entropy per bond (nats), chosen / exact rank\n"
    );
    for c in &o.choices {
        let row: Vec<String> = c
            .entropy
            .iter()
            .zip(&c.chosen)
            .zip(&c.exact_bond_dims)
            .map(|((e, d), x)| format!("S={e:.2}: D={d}/{x}"))
            .collect();
        let kept = if c.kept_dense {
            " (kept dense: these bonds would not make it smaller than the matrix)"
        } else {
            ""
        };
        let _ = writeln!(md, "- {}{kept}: {}", c.layer, row.join(", "));
    }
    md
}

/// The model as loaded, the reference, the chosen model and the smallest uniform one.
fn models_table(md: &mut String, args: &NetCompressArgs, o: &Outcome) {
    let _ = writeln!(
        md,
        "| model | MPO layers | params (replaced layers) | rho | validation | test |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|");
    let _ = writeln!(
        md,
        "| {} as loaded | - | {} | 1 | {:.2}% | {:.2}% |",
        if o.started_mpo { "MPO model" } else { "dense model" },
        o.dense_params,
        100.0 * o.loaded_val,
        100.0 * o.loaded_test
    );
    let row = |md: &mut String, title: String, c: &Candidate, test: f64| {
        let _ = writeln!(
            md,
            "| {title} | {} | {} | {:.4} | {:.2}% | {:.2}% |",
            c.specs.join("; "),
            c.point.params,
            c.point.params as f64 / o.dense_params as f64,
            100.0 * c.point.val_acc,
            100.0 * test
        );
    };
    let reference = if o.started_mpo {
        "its MPO layers as they are"
    } else {
        "exact MPO"
    };
    row(
        md,
        format!("{reference}, retrained (the reference)"),
        &o.exact,
        o.exact_test,
    );
    row(
        md,
        format!("chosen per bond ({})", o.best.point.label),
        &o.best,
        o.best_test,
    );
    if let Some((k, test)) = o.best_uniform {
        let u = &o.uniform[k];
        row(
            md,
            format!("smallest uniform within the drop ({})", u.point.label),
            u,
            test,
        );
        let ratio = u.point.params as f64 / o.best.point.params as f64;
        let _ = writeln!(md, "\nuniform / chosen parameters: {ratio:.2}x");
    } else if !args.uniform_bonds.is_empty() {
        let _ = writeln!(
            md,
            "\nno uniform bond dimension of {:?} stayed within the drop",
            args.uniform_bonds
        );
    }
}

/// Each uniform model against the largest chosen-per-bond model no bigger.
fn equal_params_table(md: &mut String, o: &Outcome) {
    if o.uniform.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n## At equal parameters: each uniform model against the largest chosen-per-bond model no bigger\n\n| uniform | params | validation | chosen per bond | params | validation |\n|---|---:|---:|---|---:|---:|");
    for u in &o.uniform {
        let peer = o
            .path
            .iter()
            .filter(|p| p.kind == "auto" && p.params <= u.point.params)
            .max_by_key(|p| p.params);
        let (label, params, val) = (&u.point.label, u.point.params, 100.0 * u.point.val_acc);
        let _ = match peer {
            Some(p) => writeln!(
                md,
                "| {label} | {params} | {val:.2}% | {} | {} | {:.2}% |",
                p.label,
                p.params,
                100.0 * p.val_acc
            ),
            None => writeln!(md, "| {label} | {params} | {val:.2}% | (none as small) | | |"),
        };
    }
}
