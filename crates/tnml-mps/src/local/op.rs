//! The linear map of one bond's local problem, `B -> (f^l_n)`, with the samples grouped by their
//! white pixels.
//!
//! Every feature map here sends a white pixel (value 0) to the first basis vector,
//! `phi(0) = e_0`. A sample whose pixel at an updated site is white therefore touches only the
//! `s = 0` slice of `B` there: its projected input `X[n, (a, s, t)] = l_n[a] phi_s phi_t` is zero
//! outside it. Per block of [`SUM_BLOCK_ROWS`] samples the samples are grouped by which of the
//! (one or two) updated sites are white, and each group's products use only its columns of `X`
//! and rows of `B`: `k / d` per white site. On 14x14 MNIST 68% of neighbouring pixel pairs are
//! both white and about 12% have one white pixel, so a two-site update does about
//! `0.68 / 4 + 0.12 / 2 + 0.20 = 0.43` of the dense flops.
//!
//! ```text
//!   (A B)[n, l] = sum_b (X_g B_g)[n, (l, b)] r_n[b]        per group g:  n_g x k_g x (L D)
//!   (A^T E)[rows_g, (l, b)] += X_g^T (E_g (x)_row r_g)
//! ```
//!
//! The groups never cross a block, and each block's part of `A^T E` is summed in `f32` then added
//! across blocks in `f64`, so the result does not depend on the thread count, and shards of
//! whole blocks (`crate::collective::shard_range`) add up to one process's sum.

use std::borrow::Cow;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;
use tnml_core::faer;

use crate::collective::{sum_scalar, Collective};
use crate::gemm::{gemm_contract_rows, SUM_BLOCK_ROWS};

/// Samples of one block that share a pattern of white sites.
struct Group<'a> {
    /// Index into [`LocalOp::patterns`].
    pattern: usize,
    /// The samples, relative to the block's first; `None`: all of the block, in order.
    members: Option<Vec<u32>>,
    len: usize,
    /// `len x k` projected inputs restricted to the pattern's columns.
    x: Cow<'a, [f32]>,
    /// `len x right` right environments of the members.
    r: Cow<'a, [f32]>,
    k: usize,
}

/// The linear map `B -> (f^l_n)` of one bond (or one site, for the refit).
pub(crate) struct LocalOp<'a> {
    /// This rank's samples.
    pub n: usize,
    /// Rows of `B`: `left * d^m` for `m` updated sites.
    pub k: usize,
    pub labels: usize,
    pub right: usize,
    /// The ranks sharing the training set: every sum over samples ([`LocalOp::adjoint`], the
    /// line-search scalars, the cost) is summed over the ranks.
    pub comm: &'a dyn Collective,
    /// Per pattern, the rows of `B` it touches (`None`: all).
    patterns: Vec<Option<Vec<usize>>>,
    /// Groups per block of [`SUM_BLOCK_ROWS`] samples.
    blocks: Vec<Vec<Group<'a>>>,
}

/// Whether a sample's features at a site are `e_0` (a white pixel).
fn is_white(phi: &[f32]) -> bool {
    phi[0] == 1.0 && phi[1..].iter().all(|&v| v == 0.0)
}

impl<'a> LocalOp<'a> {
    /// The map of a projected input given as a whole: `x` (`n x k`) and `r` (`n x right`), one
    /// group per block (the reference the tests hold the grouped map to).
    #[cfg(test)]
    pub fn dense(
        x: &'a [f32],
        r: &'a [f32],
        n: usize,
        k: usize,
        labels: usize,
        right: usize,
        comm: &'a dyn Collective,
    ) -> Self {
        let blocks = (0..n)
            .step_by(SUM_BLOCK_ROWS)
            .map(|start| {
                let len = SUM_BLOCK_ROWS.min(n - start);
                vec![Group {
                    pattern: 0,
                    members: None,
                    len,
                    x: Cow::Borrowed(&x[start * k..(start + len) * k]),
                    r: Cow::Borrowed(&r[start * right..(start + len) * right]),
                    k,
                }]
            })
            .collect();
        Self {
            n,
            k,
            labels,
            right,
            comm,
            patterns: vec![None],
            blocks,
        }
    }

    /// The map of the sites whose features are `phis` (one or two sites, each `n x d`), between
    /// the left environments `env` (`n x left`) and the right ones `r` (`n x right`): `X[n, (a,
    /// s, t)] = env[n, a] phi_1[n, s] phi_2[n, t]`, grouped by white pixels.
    #[allow(clippy::too_many_arguments)]
    pub fn sites(
        env: &[f32],
        left: usize,
        phis: &[&[f32]],
        d: usize,
        r: &'a [f32],
        right: usize,
        labels: usize,
        comm: &'a dyn Collective,
    ) -> Self {
        let n = r.len().checked_div(right).unwrap_or(0);
        let m = phis.len();
        // pattern p: bit i set = site i is white (only its s = 0 column)
        let choices = |p: usize, i: usize| if p >> i & 1 == 1 { 1 } else { d };
        let patterns: Vec<Option<Vec<usize>>> = (0..1usize << m)
            .map(|p| {
                (p != 0).then(|| {
                    let mut rows = vec![0usize];
                    for i in 0..m {
                        rows = rows
                            .iter()
                            .flat_map(|&q| (0..choices(p, i)).map(move |s| q * d + s))
                            .collect();
                    }
                    (0..left)
                        .flat_map(|a| rows.iter().map(move |&q| a * d.pow(m as u32) + q))
                        .collect()
                })
            })
            .collect();
        let blocks = (0..n)
            .into_par_iter()
            .step_by(SUM_BLOCK_ROWS)
            .map(|start| {
                let len = SUM_BLOCK_ROWS.min(n - start);
                let mut members: Vec<Vec<u32>> = vec![Vec::new(); 1 << m];
                for i in start..start + len {
                    let p = (0..m).fold(0, |p, s| {
                        p | usize::from(is_white(&phis[s][i * d..(i + 1) * d])) << s
                    });
                    members[p].push((i - start) as u32);
                }
                members
                    .into_iter()
                    .enumerate()
                    .filter(|(_, mem)| !mem.is_empty())
                    .map(|(p, mem)| {
                        let k = patterns[p].as_ref().map_or(left * d.pow(m as u32), Vec::len);
                        let mut x = Vec::with_capacity(mem.len() * k);
                        let mut rg = Vec::with_capacity(mem.len() * right);
                        let mut cols = vec![0f32; k / left];
                        for &i in &mem {
                            let i = start + i as usize;
                            // the features' outer product over the pattern's columns
                            cols.truncate(1);
                            cols[0] = 1.0;
                            for (s, phi) in phis.iter().enumerate() {
                                let f = &phi[i * d..(i + 1) * d];
                                let take = choices(p, s);
                                let prev = std::mem::take(&mut cols);
                                cols = prev
                                    .iter()
                                    .flat_map(|&c| f[..take].iter().map(move |&v| c * v))
                                    .collect();
                            }
                            for &la in &env[i * left..(i + 1) * left] {
                                x.extend(cols.iter().map(|&c| la * c));
                            }
                            rg.extend_from_slice(&r[i * right..(i + 1) * right]);
                        }
                        let whole = mem.len() == len;
                        Group {
                            pattern: p,
                            members: (!whole).then_some(mem),
                            len: x.len() / k.max(1),
                            x: Cow::Owned(x),
                            r: Cow::Owned(rg),
                            k,
                        }
                    })
                    .collect()
            })
            .collect();
        Self {
            n,
            k: left * d.pow(m as u32),
            labels,
            right,
            comm,
            patterns,
            blocks,
        }
    }

    /// `B` restricted to each pattern's rows (`B` is `k x (labels * right)`).
    fn pattern_rows<'b>(&self, b: &'b [f32]) -> Vec<Cow<'b, [f32]>> {
        let w = self.labels * self.right;
        self.patterns
            .iter()
            .map(|rows| match rows {
                None => Cow::Borrowed(b),
                Some(rows) => Cow::Owned(
                    rows.iter()
                        .flat_map(|&q| b[q * w..(q + 1) * w].iter().copied())
                        .collect(),
                ),
            })
            .collect()
    }

    /// `A B` for `B` of shape `k x (labels * right)`: returns `n x labels`.
    pub fn apply(&self, b: &[f32]) -> Vec<f32> {
        let (nl, right) = (self.labels, self.right);
        let bs = self.pattern_rows(b);
        let mut out = vec![0f32; self.n * nl];
        out.par_chunks_mut(SUM_BLOCK_ROWS * nl)
            .zip(&self.blocks)
            .for_each(|(o, groups)| {
                for g in groups {
                    let f = gemm_contract_rows(&g.x, g.len, g.k, &bs[g.pattern], nl, &g.r, right);
                    match &g.members {
                        None => o.copy_from_slice(&f),
                        Some(mem) => {
                            for (&i, fi) in mem.iter().zip(f.chunks_exact(nl)) {
                                o[i as usize * nl..(i as usize + 1) * nl].copy_from_slice(fi);
                            }
                        }
                    }
                }
            });
        out
    }

    /// `A^T E` for `E` of shape `n x labels`: returns `k x (labels * right)`, summed over the
    /// ranks' samples in f64 before the rounding to f32.
    pub fn adjoint(&self, e: &[f32]) -> Vec<f32> {
        let (nl, right) = (self.labels, self.right);
        let w = nl * right;
        let (k, patterns) = (self.k, &self.patterns);
        let mut g = self
            .blocks
            .par_iter()
            .enumerate()
            .map(|(bi, groups)| {
                let start = bi * SUM_BLOCK_ROWS;
                let mut acc = vec![0f32; k * w];
                let mut z = Vec::new();
                let mut part = Vec::new();
                for grp in groups {
                    // z = E_g (x)_row r_g
                    z.clear();
                    z.resize(grp.len * w, 0.0);
                    for (j, (zrow, rrow)) in z.chunks_exact_mut(w).zip(grp.r.chunks_exact(right)).enumerate()
                    {
                        let i = start + grp.members.as_ref().map_or(j, |m| m[j] as usize);
                        for (zl, &el) in zrow.chunks_exact_mut(right).zip(&e[i * nl..(i + 1) * nl]) {
                            zl.iter_mut().zip(rrow).for_each(|(z, &rb)| *z = el * rb);
                        }
                    }
                    let rows = patterns[grp.pattern].as_ref();
                    let dst: &mut Vec<f32> = if rows.is_none() { &mut acc } else { &mut part };
                    dst.resize(grp.k * w, 0.0);
                    matmul(
                        MatMut::from_row_major_slice_mut(&mut dst[..grp.k * w], grp.k, w),
                        if rows.is_none() {
                            Accum::Add
                        } else {
                            Accum::Replace
                        },
                        MatRef::from_row_major_slice(&grp.x, grp.len, grp.k).transpose(),
                        MatRef::from_row_major_slice(&z, grp.len, w),
                        1.0f32,
                        Par::Seq,
                    );
                    if let Some(rows) = rows {
                        for (&q, pr) in rows.iter().zip(part.chunks_exact(w)) {
                            acc[q * w..(q + 1) * w]
                                .iter_mut()
                                .zip(pr)
                                .for_each(|(a, v)| *a += v);
                        }
                    }
                }
                acc.into_iter().map(f64::from).collect::<Vec<f64>>()
            })
            .reduce(
                || vec![0f64; k * w],
                |mut x, y| {
                    x.iter_mut().zip(&y).for_each(|(a, b)| *a += b);
                    x
                },
            );
        self.comm.sum_f64(&mut g);
        g.into_iter().map(|v| v as f32).collect()
    }

    /// A sum over samples of this rank's partial `value`, over all ranks.
    pub fn total(&self, value: f64) -> f64 {
        sum_scalar(self.comm, value)
    }

    /// Flops of one `apply` or `adjoint` (the groups' products, white slices left out).
    pub fn flops(&self) -> f64 {
        let w = (self.labels * self.right) as f64;
        self.blocks
            .iter()
            .flatten()
            .map(|g| 2.0 * g.len as f64 * g.k as f64 * w)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::SingleProcess;

    fn features(n: usize, d: usize, seed: usize, white_every: usize) -> Vec<f32> {
        (0..n)
            .flat_map(|i| {
                let white = !(i * 7 + seed).is_multiple_of(white_every);
                (0..d).map(move |s| {
                    if white {
                        f32::from(u8::from(s == 0))
                    } else {
                        ((i * 13 + s * 5 + seed) % 11) as f32 / 11.0
                    }
                })
            })
            .collect()
    }

    /// Grouping by white pixels changes nothing but the rounding: `A B` and `A^T E` agree with
    /// the dense map over the full projected input, for one and two sites, over several blocks.
    #[test]
    fn grouped_products_match_the_dense_ones() {
        let (n, left, right, labels, d) = (2 * SUM_BLOCK_ROWS + 300, 3, 4, 5, 3);
        let env: Vec<f32> = (0..n * left)
            .map(|i| ((i * 31 % 17) as f32 - 8.0) / 9.0)
            .collect();
        let r: Vec<f32> = (0..n * right)
            .map(|i| ((i * 23 % 13) as f32 - 6.0) / 7.0)
            .collect();
        let (p1, p2) = (features(n, d, 1, 3), features(n, d, 2, 4));
        for m in [1usize, 2] {
            let phis: Vec<&[f32]> = [&p1[..], &p2[..]][..m].to_vec();
            let k = left * d.pow(m as u32);
            // the dense projected input
            let x: Vec<f32> = (0..n)
                .flat_map(|i| {
                    let mut cols = vec![1f32];
                    for phi in &phis {
                        cols = cols
                            .iter()
                            .flat_map(|&c| phi[i * d..(i + 1) * d].iter().map(move |&v| c * v))
                            .collect();
                    }
                    let e = &env[i * left..(i + 1) * left];
                    e.iter()
                        .flat_map(move |&a| cols.clone().into_iter().map(move |c| a * c))
                        .collect::<Vec<_>>()
                })
                .collect();
            let dense = LocalOp::dense(&x, &r, n, k, labels, right, &SingleProcess);
            let split = LocalOp::sites(&env, left, &phis, d, &r, right, labels, &SingleProcess);
            assert_eq!(split.k, k);
            assert!(
                split.flops() < 0.8 * dense.flops(),
                "m = {m}: {} vs {}",
                split.flops(),
                dense.flops()
            );
            let b: Vec<f32> = (0..k * labels * right)
                .map(|i| ((i * 17 % 19) as f32 - 9.0) / 10.0)
                .collect();
            let e: Vec<f32> = (0..n * labels)
                .map(|i| ((i * 29 % 23) as f32 - 11.0) / 12.0)
                .collect();
            for (a, c) in split.apply(&b).iter().zip(dense.apply(&b)) {
                assert!(
                    (a - c).abs() <= 1e-5 * c.abs().max(1.0),
                    "m = {m}: apply {a} vs {c}"
                );
            }
            for (a, c) in split.adjoint(&e).iter().zip(dense.adjoint(&e)) {
                assert!(
                    (a - c).abs() <= 1e-4 * c.abs().max(1.0),
                    "m = {m}: adjoint {a} vs {c}"
                );
            }
        }
    }
}
