//! Gradient training of all cores at once: minibatches, Adam, cross-entropy or squared loss,
//! exact gradients from left/right partial contractions (no autodiff framework).
//!
//! With the label on site `c` and `l_k`, `r_k` the contractions of sites `< k` and `>= k` with
//! the features, `f^l(x) = sum l_c[a] phi_s A_c[a, s, l, b] r_{c+1}[b]`. Backpropagation runs
//! the same batched contractions outwards from the label site:
//!
//! ```text
//!   G_c = dLoss/dl_c,  G_k = M_k(x) G_{k+1},   dLoss/dA_k[a,s,b] = sum_n l_k[a] phi_s G_{k+1}[b]
//!   H_{c+1} = dLoss/dr_{c+1},  H_{k+1} = H_k M_k(x),  dLoss/dA_k[a,s,b] = sum_n H_k[a] phi_s r_{k+1}[b]
//! ```
//!
//! Every partial contraction is stored normalized per sample with its log-norm, so 196 or 784
//! sites neither underflow nor overflow; the scales are recombined per sample in `f64` only
//! where a gradient or an output is formed. Cost per batch: about three times a forward pass,
//! O(B N d D^2).

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use tnml_core::SiteTensor;

use crate::collective::{agree, sum_count, sync_model, Collective, SingleProcess};
use crate::env::{absorb_left, absorb_right, site_f32, Wing};
use crate::error::{MpsError, Result};
use crate::feature::SiteFeatures;
use crate::gemm::{gemm, gemm_at, normalize_rows, row_contract_last, row_outer};
use crate::model::{check_labels, check_training_data, Loss, MpsClassifier};
use crate::observe::{EpochObserver, EpochSummary};

/// Settings of the gradient trainer.
#[derive(Debug, Clone, PartialEq)]
pub struct GradientConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per minibatch.
    pub batch_size: usize,
    /// Adam step size.
    pub learning_rate: f64,
    /// The loss.
    pub loss: Loss,
    /// Seed of the minibatch order.
    pub seed: u64,
}

impl GradientConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// Zero epochs or batch size, a non-positive learning rate.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(MpsError::invalid("epochs", 0, "it must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(MpsError::invalid("batch size", 0, "it must be at least 1"));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(MpsError::invalid(
                "learning rate",
                self.learning_rate,
                "it must be positive and finite",
            ));
        }
        Ok(())
    }
}

/// Loss, gradients (one `f64` vector per site, the site's layout) and wrong predictions of a batch.
///
/// # Errors
/// Features or labels that do not fit the model.
pub fn loss_and_gradients(
    model: &MpsClassifier,
    feats: &SiteFeatures,
    labels: &[usize],
    loss: Loss,
) -> Result<(f64, Vec<Vec<f64>>, usize)> {
    model.check_features(feats)?;
    check_labels(labels, model.num_labels)?;
    let (n, d, big_l, c) = (feats.samples, feats.dim, model.num_labels, model.label_site);
    let decision = loss.decision();
    let sites = &model.sites;
    let n_sites = sites.len();
    // forward partial contractions, normalized with log-norms: lefts[k] covers sites < k,
    // rights[k] sites >= k
    let mut lefts: Vec<Wing> = vec![Wing::trivial(n)];
    for k in 0..c {
        let mut w = lefts[k].clone();
        w.push_left(&sites[k], feats, k);
        lefts.push(w);
    }
    let mut rights: Vec<Wing> = vec![Wing::trivial(0); n_sites + 1];
    rights[n_sites] = Wing::trivial(n);
    for k in (c + 1..n_sites).rev() {
        let mut w = rights[k + 1].clone();
        w.push_right(&sites[k], feats, k);
        rights[k] = w;
    }
    // outputs
    let site_c = &sites[c];
    let (cl, cr) = (site_c.left(), site_c.right());
    let a_c = site_f32(site_c);
    let x_c = row_outer(&lefts[c].values, cl, &feats.sites[c], d);
    let t = gemm(&x_c, n, cl * d, &a_c, big_l * cr); // absorb_left with x_c kept for the gradient
    let f_hat = row_contract_last(&t, big_l, &rights[c + 1].values, cr);
    let sigma: Vec<f64> = lefts[c]
        .log_scale
        .iter()
        .zip(&rights[c + 1].log_scale)
        .map(|(a, b)| a + b)
        .collect();
    // loss and dLoss/df
    let mut total = 0.0;
    let mut wrong = 0;
    let mut delta = vec![0f64; n * big_l];
    for i in 0..n {
        let f: Vec<f64> = (0..big_l)
            .map(|l| f64::from(f_hat[i * big_l + l]) * sigma[i].exp())
            .collect();
        let y = labels[i];
        let best = decision.pick(&f);
        wrong += usize::from(best != y);
        match loss {
            Loss::CrossEntropy => {
                let m = f.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = f.iter().map(|v| (v - m).exp()).sum();
                total += -(f[y] - m - z.ln());
                for l in 0..big_l {
                    let p = (f[l] - m).exp() / z;
                    delta[i * big_l + l] = (p - f64::from(u8::from(l == y))) / n as f64;
                }
            }
            Loss::Squared => {
                for l in 0..big_l {
                    let e = f[l] - f64::from(u8::from(l == y));
                    total += 0.5 * e * e;
                    delta[i * big_l + l] = e / n as f64;
                }
            }
        }
    }
    if !total.is_finite() {
        return Ok((total, Vec::new(), wrong));
    }
    let mut grads: Vec<Vec<f64>> = vec![Vec::new(); n_sites];
    // label site: sum_n e^sigma X[n,(a,s)] delta[n,l] r[n,b]
    let dw: Vec<f32> = delta
        .iter()
        .enumerate()
        .map(|(i, v)| (v * sigma[i / big_l].exp()) as f32)
        .collect();
    let z = row_outer(&dw, big_l, &rights[c + 1].values, cr);
    grads[c] = gemm_at(&x_c, n, cl * d, &z, big_l * cr)
        .into_iter()
        .map(f64::from)
        .collect();
    // into the left wing: G_c = e^{rho} sum_{s,l,b} delta phi A_c r
    let delta32: Vec<f32> = delta.iter().map(|&v| v as f32).collect();
    let dz = row_outer(&delta32, big_l, &rights[c + 1].values, cr);
    let mut g = absorb_right(&dz, n, &a_c, cl, &feats.sites[c], d, big_l * cr);
    let lg = normalize_rows(&mut g, cl);
    let mut gamma: Vec<f64> = rights[c + 1]
        .log_scale
        .iter()
        .zip(lg)
        .map(|(a, b)| a + b)
        .collect();
    for k in (0..c).rev() {
        let (l, ll) = (&lefts[k].values, &lefts[k].log_scale);
        let (kl, kr) = (sites[k].left(), sites[k].right());
        let scaled = scale_rows(&g, kr, ll, &gamma);
        let x = row_outer(l, kl, &feats.sites[k], d);
        grads[k] = gemm_at(&x, n, kl * d, &scaled, kr)
            .into_iter()
            .map(f64::from)
            .collect();
        if k > 0 {
            g = absorb_right(&g, n, &site_f32(&sites[k]), kl, &feats.sites[k], d, kr);
            let lg = normalize_rows(&mut g, kl);
            gamma.iter_mut().zip(lg).for_each(|(a, b)| *a += b);
        }
    }
    // into the right wing: H_{c+1}[n,b] = e^{lambda} sum_l delta[n,l] T[n,(l,b)]
    let mut h = vec![0f32; n * cr];
    for i in 0..n {
        for l in 0..big_l {
            let dl = delta32[i * big_l + l];
            for b in 0..cr {
                h[i * cr + b] += dl * t[(i * big_l + l) * cr + b];
            }
        }
    }
    let lg = normalize_rows(&mut h, cr);
    let mut eta: Vec<f64> = lefts[c].log_scale.iter().zip(lg).map(|(a, b)| a + b).collect();
    for k in c + 1..n_sites {
        let (kl, kr) = (sites[k].left(), sites[k].right());
        let (r, lr) = (&rights[k + 1].values, &rights[k + 1].log_scale);
        let scaled = scale_rows(&h, kl, &eta, lr);
        let pr = row_outer(&feats.sites[k], d, r, kr);
        grads[k] = gemm_at(&scaled, n, kl, &pr, d * kr)
            .into_iter()
            .map(f64::from)
            .collect();
        if k + 1 < n_sites {
            // H_{k+1}[n,b] = sum_{a,s} H_k[n,a] A_k[a,s,b] phi_s
            h = absorb_left(&h, n, &site_f32(&sites[k]), kl, &feats.sites[k], d, kr);
            let lg = normalize_rows(&mut h, kr);
            eta.iter_mut().zip(lg).for_each(|(a, b)| *a += b);
        }
    }
    Ok((total / n.max(1) as f64, grads, wrong))
}

/// Row `i` of `v` (rows of `width`) times `exp(log_a[i] + log_b[i])`: recombines the log-scales
/// of two normalized partial contractions where a gradient is formed.
fn scale_rows(v: &[f32], width: usize, log_a: &[f64], log_b: &[f64]) -> Vec<f32> {
    v.chunks(width)
        .zip(log_a.iter().zip(log_b))
        .flat_map(|(row, (a, b))| {
            let s = (a + b).exp() as f32;
            row.iter().map(move |x| x * s)
        })
        .collect()
}

/// Mean loss, gradients and wrong predictions of the minibatch `idx` (indices into the whole
/// set), from the samples of it this rank holds (`offset..offset + feats.samples`) and summed
/// over the ranks: each rank's mean is weighted by its share of the batch before the sum.
fn batch_gradients(
    model: &MpsClassifier,
    feats: &SiteFeatures,
    labels: &[usize],
    idx: &[usize],
    offset: usize,
    loss: Loss,
    comm: &dyn Collective,
) -> Result<(f64, Vec<Vec<f64>>, usize)> {
    let mine: Vec<usize> = idx
        .iter()
        .filter_map(|&i| i.checked_sub(offset).filter(|&j| j < feats.samples))
        .collect();
    let (loss, mut grads, wrong) = if mine.is_empty() {
        let zeros = model.sites.iter().map(|s| vec![0.0; s.len()]).collect();
        (0.0, zeros, 0)
    } else {
        let y: Vec<usize> = mine.iter().map(|&i| labels[i]).collect();
        loss_and_gradients(model, &feats.select(&mine), &y, loss)?
    };
    if comm.size() == 1 {
        return Ok((loss, grads, wrong));
    }
    // a non-finite loss returns no gradients: send zeros, the summed loss stays non-finite
    if grads.is_empty() {
        grads = model.sites.iter().map(|s| vec![0.0; s.len()]).collect();
    }
    let share = mine.len() as f64 / idx.len() as f64;
    let mut flat: Vec<f64> = grads.iter().flatten().map(|g| g * share).collect();
    flat.push(loss * share);
    comm.sum_f64(&mut flat);
    let loss = flat.pop().unwrap_or(f64::NAN);
    let mut rest = flat.as_slice();
    for g in &mut grads {
        let (head, tail) = rest.split_at(g.len());
        g.copy_from_slice(head);
        rest = tail;
    }
    Ok((loss, grads, sum_count(comm, wrong)))
}

/// Largest weight magnitude the gradient trainer accepts: sites start near the identity (entries
/// of order 1) and a step of Adam moves each entry by about the learning rate, so a weight past
/// this has diverged long before it overflows.
pub const MAX_WEIGHT: f64 = 1e8;

/// Trains every core with Adam on minibatches (bond dimensions stay as they are).
///
/// On a non-finite loss, or a step that would take a weight past [`MAX_WEIGHT`] (or to a
/// non-finite value), the step is not applied and [`MpsError::Diverged`] names the epoch and
/// batch: the model is left at its last good state.
///
/// # Errors
/// Invalid config, data that do not fit, divergence.
pub fn train_gradient(
    model: &mut MpsClassifier,
    feats: &SiteFeatures,
    labels: &[usize],
    config: &GradientConfig,
    observer: &mut dyn EpochObserver,
) -> Result<Vec<EpochSummary>> {
    train_gradient_sharded(model, feats, labels, config, observer, &SingleProcess)
}

/// [`train_gradient`] with the training set sharded over the ranks of `comm` (data-parallel
/// minibatches): `feats` / `labels` are this rank's contiguous shard of the whole set, in rank
/// order ([`crate::collective::shard_range`]). Every rank draws the same minibatch order over
/// the whole set, contracts the batch's samples it holds, and the batch gradient is summed over
/// the ranks (one allreduce of all cores' gradients per batch), so every rank applies the same
/// Adam step to the same model: the training of one process on the union of the shards, up to
/// the order of additions. With [`SingleProcess`] this is `train_gradient`.
///
/// # Errors
/// As [`train_gradient`].
pub fn train_gradient_sharded(
    model: &mut MpsClassifier,
    feats: &SiteFeatures,
    labels: &[usize],
    config: &GradientConfig,
    observer: &mut dyn EpochObserver,
    comm: &dyn Collective,
) -> Result<Vec<EpochSummary>> {
    config.validate()?;
    check_training_data(model, feats, labels)?;
    sync_model(comm, model)?;
    model.set_decision(config.loss.decision());
    // this rank's samples are offset..offset + n of the whole set
    let n_local = feats.samples;
    let mut counts = vec![0.0; comm.size()];
    counts[comm.rank()] = n_local as f64;
    comm.sum_f64(&mut counts);
    let offset: usize = counts[..comm.rank()].iter().map(|&c| c as usize).sum();
    let total: usize = counts.iter().map(|&c| c as usize).sum();
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let mut m: Vec<Vec<f64>> = model.sites.iter().map(|s| vec![0.0; s.len()]).collect();
    let mut v = m.clone();
    let mut step = 0i32;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut out = Vec::new();
    for epoch in 1..=config.epochs {
        let t0 = std::time::Instant::now();
        let mut order: Vec<usize> = (0..total).collect();
        order.shuffle(&mut rng);
        let batches: Vec<&[usize]> = order.chunks(config.batch_size).collect();
        let (mut loss_sum, mut wrong) = (0.0, 0);
        for (bi, idx) in batches.iter().enumerate() {
            let (loss, grads, w) = batch_gradients(model, feats, labels, idx, offset, config.loss, comm)?;
            let diverged = |what: String| MpsError::Diverged {
                epoch,
                batch: bi + 1,
                what,
            };
            if !loss.is_finite() {
                return Err(diverged(format!("the loss is {loss}")));
            }
            step += 1;
            let (c1, c2) = (1.0 - b1.powi(step), 1.0 - b2.powi(step));
            // the step is computed aside and applied only if every weight stays in range
            let mut updated = Vec::with_capacity(grads.len());
            for (k, g) in grads.iter().enumerate() {
                let mut data = model.sites[k].data().to_vec();
                for (i, gi) in g.iter().enumerate() {
                    m[k][i] = b1 * m[k][i] + (1.0 - b1) * gi;
                    v[k][i] = b2 * v[k][i] + (1.0 - b2) * gi * gi;
                    data[i] -= config.learning_rate * (m[k][i] / c1) / ((v[k][i] / c2).sqrt() + eps);
                }
                if let Some(x) = data.iter().find(|x| !x.is_finite() || x.abs() > MAX_WEIGHT) {
                    return Err(diverged(format!(
                        "a weight of site {k} became {x:e} (beyond {MAX_WEIGHT:e}); lower --lr"
                    )));
                }
                updated.push(data);
            }
            for (k, data) in updated.into_iter().enumerate() {
                let s = &model.sites[k];
                model.sites[k] = SiteTensor::new(s.left(), s.phys(), s.right(), data)?;
            }
            loss_sum += loss * idx.len() as f64;
            wrong += w;
            if agree(comm, observer.on_batch(epoch, bi + 1, batches.len(), loss)).is_break() {
                return Ok(out);
            }
        }
        let summary = EpochSummary {
            epoch,
            loss: loss_sum / total as f64,
            train_error: wrong as f64 / total as f64,
            seconds: t0.elapsed().as_secs_f64(),
        };
        let flow = agree(comm, observer.on_epoch(&summary, model));
        out.push(summary);
        if flow.is_break() {
            break;
        }
    }
    Ok(out)
}
