//! `tnml net compress` at given bonds (not `--auto`).

use std::fmt::Write as _;

use anyhow::{bail, Result};
use tnml_data::Split;
use tnml_nn::checkpoint::{self, CheckpointHeader};
use tnml_nn::train::{evaluate, TrainConfig};
use tnml_nn::{Arch, MpoLayers};

use super::args::NetCompressArgs;
use super::source::load_source;
use crate::net::report::describe;
use crate::net::EpochPrinter;
use crate::run_dir::RunDir;
use crate::run_files;
use crate::run_files::RunConfig;
use crate::runtime::device;

/// Runs `tnml net compress` without `--auto`: every replaceable layer by TT-SVD at the modes'
/// bond (or `--max-bond`, `--cutoff`), the accuracy before and after, optional fine-tuning.
pub(super) fn compress(args: &NetCompressArgs) -> Result<()> {
    if let (Some(lr), 0) = (args.lr, args.finetune_epochs) {
        bail!("--lr {lr} is the fine-tuning's (or --auto's retraining's) learning rate: give --finetune-epochs N, or leave it out");
    }
    let dev = device();
    let (header, dense, ck) = load_source(args, &dev)?;
    let arch = header.net.arch;
    if header.net.mpo.is_some() {
        bail!(
            "{} is already an MPO model; compress takes a dense checkpoint",
            ck.display()
        );
    }
    if matches!(arch, Arch::Vgg16 | Arch::Vgg19 | Arch::Resnet56) {
        bail!(
            "compress handles models whose replaced layers are all fully connected (FC2, LeNet-5, the talk model, ResNet-20, DenseNet-40); {arch:?}'s replaced layers include convolutions"
        );
    }
    let params = args.trunc_params()?;
    let modes = args.mpo.as_ref().unwrap_or(&MpoLayers::Gao).resolve(arch, None)?;
    let test = args.data.load(Split::Test, arch, args.seed.seed)?;
    let (loss0, acc0) = evaluate(&dense, &test, 1000, &dev);
    eprintln!(
        "dense model: test accuracy {:.2}%, loss {:.4}",
        100.0 * acc0,
        loss0
    );
    let tnml_nn::compress::Compressed {
        net,
        config: cfg,
        reports,
    } = tnml_nn::compress::compress_dense(&dense, &header.net, &modes, &params, &dev)?;
    // the model file's bytes before the run directory exists: a model that cannot be written
    // (cores past f32's range) leaves nothing behind
    let model_bytes =
        tnml_nn::torch_layout::to_safetensors(&net, &cfg, std::path::Path::new(run_files::MODEL))?;
    let mut run = RunDir::create(args.out.as_deref(), "net-compress")?;
    for (name, r) in &reports {
        eprintln!(
            "  {name}: bonds {:?}, discarded weight {:.3e}",
            r.bonds.iter().map(|b| b.kept).collect::<Vec<_>>(),
            r.total_discarded_weight()
        );
    }
    let (description, report) = describe(&net, &cfg);
    eprint!("{description}");
    let (loss1, acc1) = evaluate(&net, &test, 1000, &dev);
    eprintln!(
        "after TT-SVD: test accuracy {:.2}%, loss {:.4}",
        100.0 * acc1,
        loss1
    );
    run.write_config(&RunConfig::new(
        "net compress",
        Some(args),
        serde_json::json!({
            "source": ck,
            "net": cfg,
        }),
    ))?;
    if let Some(r) = &report {
        run.write_json("compression.json", r)?;
    }
    let mut summary = format!(
        "# net compress\n\n```\n{description}```\n\n| stage | test accuracy | test loss |\n|---|---|---|\n| dense | {:.2}% | {loss0:.4} |\n| TT-SVD | {:.2}% | {loss1:.4} |\n",
        100.0 * acc0,
        100.0 * acc1
    );
    let final_net = net;
    if args.finetune_epochs > 0 {
        let tc = TrainConfig::adam(args.finetune_epochs, 100, args.lr.unwrap_or(1e-3), args.seed.seed);
        let train_set = args.data.load(Split::Train, arch, args.seed.seed)?;
        let header = CheckpointHeader::new(cfg.clone(), Some(tc.clone()));
        let mut printer = EpochPrinter::new(&mut run, header, 1);
        let optim = tc.build_optimizer();
        let (_, history) = tnml_nn::train::train(
            final_net,
            optim,
            &tc,
            &train_set,
            Some(&test),
            1,
            &dev,
            &mut printer,
        )?;
        if let Some(last) = history.last() {
            let _ = writeln!(
                summary,
                "| + {} epochs fine-tuning | {:.2}% | {:.4} |",
                last.epoch,
                100.0 * last.test_acc.unwrap_or(0.0),
                last.test_loss.unwrap_or(f64::NAN)
            );
        }
    } else {
        let header = CheckpointHeader::new(cfg.clone(), None);
        checkpoint::save(&run.path().join("checkpoint"), &header, &final_net, None)?;
        run.write_file(run_files::MODEL, &model_bytes)?;
    }
    run.write_summary(&summary)?;
    eprintln!("run directory {}", run.path().display());
    Ok(())
}
