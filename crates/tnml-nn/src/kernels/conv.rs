//! 2-D convolution (NCHW, one group, no dilation) as im2col + GEMM per sample, and its backward.
//!
//! For a sample `x_b` (`[C, H, W]`) the columns `X_b = im2col(x_b)` are `[K, P]` with
//! `K = C kh kw` and `P = H_out W_out`; the weight `W` is `[C_out, K]` (burn's `[C_out, C, kh, kw]`
//! row-major). Then
//!
//! * forward: `Y_b = W X_b + b 1^T` — `C_out K P` multiply-adds per sample;
//! * backward: `dW = sum_b dY_b X_b^T`, `db = sum_b dY_b 1`, `dx_b = col2im(W^T dY_b)` — twice the
//!   forward's multiply-adds (the last only when the input needs a gradient).
//!
//! Samples are spread over rayon's threads, each thread with its own column buffer and (backward)
//! its own `dW`, `db` accumulators summed at the end; every GEMM is a sequential faer product.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;
use tnml_core::faer;

/// The sizes of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Samples.
    pub batch: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height and width.
    pub hw: [usize; 2],
    /// Output channels.
    pub c_out: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride (rows, columns).
    pub stride: [usize; 2],
    /// Zero padding on each side (rows, columns).
    pub pad: [usize; 2],
}

impl ConvShape {
    /// Output height and width, `(H + 2 p - k) / s + 1`.
    pub fn out_hw(&self) -> [usize; 2] {
        [0, 1].map(|a| (self.hw[a] + 2 * self.pad[a] - self.kernel[a]) / self.stride[a] + 1)
    }

    /// Rows of the columns matrix, `C kh kw`.
    pub fn k(&self) -> usize {
        self.c_in * self.kernel[0] * self.kernel[1]
    }

    /// Output positions per sample, `H_out W_out`.
    pub fn p(&self) -> usize {
        let [oh, ow] = self.out_hw();
        oh * ow
    }

    fn in_len(&self) -> usize {
        self.c_in * self.hw[0] * self.hw[1]
    }

    /// Whether the kernel fits in the padded input (at least one output).
    pub fn is_valid(&self) -> bool {
        (0..2).all(|a| {
            self.stride[a] > 0 && self.kernel[a] > 0 && self.hw[a] + 2 * self.pad[a] >= self.kernel[a]
        })
    }
}

/// Visits every (row of the columns matrix, output row) pair with the input row it reads:
/// `f(col_row_offset, in_row_offset_or_none, kx)`, where a `None` input row is padding.
fn for_each_row(s: &ConvShape, mut f: impl FnMut(usize, Option<usize>, usize)) {
    let [h, w] = s.hw;
    let [kh, kw] = s.kernel;
    let [oh, ow] = s.out_hw();
    let mut r = 0;
    for c in 0..s.c_in {
        for ky in 0..kh {
            for kx in 0..kw {
                for oy in 0..oh {
                    let iy = (oy * s.stride[0] + ky) as isize - s.pad[0] as isize;
                    let src = (iy >= 0 && (iy as usize) < h).then(|| (c * h + iy as usize) * w);
                    f(r * oh * ow + oy * ow, src, kx);
                }
                r += 1;
            }
        }
    }
}

/// The output columns `ox` that read inside the input for kernel column `kx`, and the input
/// column of the first of them: `ix = ox s + kx - p` in `[0, W)`.
fn valid_cols(s: &ConvShape, kx: usize) -> (usize, usize) {
    let [_, w] = s.hw;
    let ow = s.out_hw()[1];
    let (st, p) = (s.stride[1], s.pad[1]);
    let lo = if kx >= p { 0 } else { (p - kx).div_ceil(st) };
    // last ox with ox s + kx - p <= w - 1
    let hi = if w + p > kx {
        ((w + p - kx - 1) / st + 1).min(ow)
    } else {
        0
    };
    (lo, hi.max(lo))
}

/// `cols = im2col(x_b)` (`[K, P]`, row-major); `x_b` is one sample `[C, H, W]`.
pub fn im2col(s: &ConvShape, x_b: &[f32], cols: &mut [f32]) {
    let ow = s.out_hw()[1];
    let st = s.stride[1];
    for_each_row(s, |dst, src, kx| {
        let row = &mut cols[dst..dst + ow];
        match src {
            None => row.fill(0.0),
            Some(src) => {
                let (lo, hi) = valid_cols(s, kx);
                row[..lo].fill(0.0);
                row[hi..].fill(0.0);
                let ix0 = lo * st + kx - s.pad[1];
                if st == 1 {
                    row[lo..hi].copy_from_slice(&x_b[src + ix0..src + ix0 + hi - lo]);
                } else {
                    for (j, v) in row[lo..hi].iter_mut().enumerate() {
                        *v = x_b[src + ix0 + j * st];
                    }
                }
            }
        }
    });
}

/// `dx_b += col2im(dcols)`: the adjoint of [`im2col`].
pub fn col2im_add(s: &ConvShape, dcols: &[f32], dx_b: &mut [f32]) {
    let st = s.stride[1];
    for_each_row(s, |dst, src, kx| {
        if let Some(src) = src {
            let (lo, hi) = valid_cols(s, kx);
            let ix0 = lo * st + kx - s.pad[1];
            let row = &dcols[dst + lo..dst + hi];
            if st == 1 {
                for (d, g) in dx_b[src + ix0..src + ix0 + hi - lo].iter_mut().zip(row) {
                    *d += g;
                }
            } else {
                for (j, g) in row.iter().enumerate() {
                    dx_b[src + ix0 + j * st] += g;
                }
            }
        }
    });
}

fn rows(a: &[f32], m: usize, n: usize) -> MatRef<'_, f32> {
    MatRef::from_row_major_slice(a, m, n)
}

/// `y = conv(x, w) + b` for `x: [B, C, H, W]`, `w: [C_out, C, kh, kw]`, `b: [C_out]`; returns
/// `[B, C_out, H_out, W_out]` row-major.
pub fn forward(s: &ConvShape, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
    let (k, p, co) = (s.k(), s.p(), s.c_out);
    let mut y = vec![0f32; s.batch * co * p];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(co * p)
        .zip(x.par_chunks(s.in_len()))
        .for_each_init(
            || vec![0f32; k * p],
            |cols, (y_b, x_b)| {
                im2col(s, x_b, cols);
                let dst = MatMut::from_row_major_slice_mut(y_b, co, p);
                matmul(
                    dst,
                    Accum::Replace,
                    rows(w, co, k),
                    rows(cols, k, p),
                    1.0,
                    Par::Seq,
                );
                if let Some(b) = b {
                    for (row, &bias) in y_b.chunks_exact_mut(p).zip(b) {
                        row.iter_mut().for_each(|v| *v += bias);
                    }
                }
            },
        );
    y
}

/// Per-thread state of [`backward`]: `dW` and `db` summed in f64 over samples (each sample's
/// product is an f32 GEMM), the columns and their gradient.
struct Accumulators {
    dw: Vec<f64>,
    db: Vec<f64>,
    dw_sample: Vec<f32>,
    cols: Vec<f32>,
    dcols: Vec<f32>,
}

/// The gradients of [`forward`] for the output gradient `dy`: `(dx, dw, db)`, `dx` only when
/// `need_dx`. `dW` and `db` are summed over samples in f64, so their error does not grow with the
/// batch.
pub fn backward(
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    need_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let (k, p, co) = (s.k(), s.p(), s.c_out);
    let mut dx = vec![0f32; if need_dx { x.len() } else { 0 }];
    let per_sample = |mut a: Accumulators, x_b: &[f32], dy_b: &[f32], dx_b: Option<&mut [f32]>| {
        im2col(s, x_b, &mut a.cols);
        // dW_b = dY_b X_b^T
        let dst = MatMut::from_row_major_slice_mut(&mut a.dw_sample, co, k);
        matmul(
            dst,
            Accum::Replace,
            rows(dy_b, co, p),
            rows(&a.cols, k, p).transpose(),
            1.0,
            Par::Seq,
        );
        a.dw.iter_mut()
            .zip(&a.dw_sample)
            .for_each(|(u, &v)| *u += f64::from(v));
        for (g, row) in a.db.iter_mut().zip(dy_b.chunks_exact(p)) {
            *g += row.iter().map(|&v| f64::from(v)).sum::<f64>();
        }
        if let Some(dx_b) = dx_b {
            let dst = MatMut::from_row_major_slice_mut(&mut a.dcols, k, p);
            matmul(
                dst,
                Accum::Replace,
                rows(w, co, k).transpose(),
                rows(dy_b, co, p),
                1.0,
                Par::Seq,
            );
            col2im_add(s, &a.dcols, dx_b);
        }
        a
    };
    let init = || Accumulators {
        dw: vec![0.0; co * k],
        db: vec![0.0; co],
        dw_sample: vec![0.0; co * k],
        cols: vec![0.0; k * p],
        dcols: vec![0.0; if need_dx { k * p } else { 0 }],
    };
    let reduce = |mut a: Accumulators, b: Accumulators| {
        a.dw.iter_mut().zip(&b.dw).for_each(|(u, v)| *u += v);
        a.db.iter_mut().zip(&b.db).for_each(|(u, v)| *u += v);
        a
    };
    let xs = x.par_chunks(s.in_len()).zip(dy.par_chunks(co * p));
    let acc = if need_dx {
        xs.zip(dx.par_chunks_mut(s.in_len()))
            .fold(init, |a, ((x_b, dy_b), dx_b)| {
                per_sample(a, x_b, dy_b, Some(dx_b))
            })
            .reduce(init, reduce)
    } else {
        xs.fold(init, |a, (x_b, dy_b)| per_sample(a, x_b, dy_b, None))
            .reduce(init, reduce)
    };
    let to_f32 = |v: Vec<f64>| v.into_iter().map(|g| g as f32).collect();
    (need_dx.then_some(dx), to_f32(acc.dw), to_f32(acc.db))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::scratch::test_values as values;

    /// The textbook definition, one output at a time.
    fn naive(s: &ConvShape, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
        let [h, wd] = s.hw;
        let [oh, ow] = s.out_hw();
        let [kh, kw] = s.kernel;
        let mut y = vec![0f32; s.batch * s.c_out * oh * ow];
        for n in 0..s.batch {
            for o in 0..s.c_out {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = b[o] as f64;
                        for c in 0..s.c_in {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (oy * s.stride[0] + ky) as isize - s.pad[0] as isize;
                                    let ix = (ox * s.stride[1] + kx) as isize - s.pad[1] as isize;
                                    if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= wd {
                                        continue;
                                    }
                                    let xv = x[((n * s.c_in + c) * h + iy as usize) * wd + ix as usize];
                                    let wv = w[((o * s.c_in + c) * kh + ky) * kw + kx];
                                    acc += f64::from(xv) * f64::from(wv);
                                }
                            }
                        }
                        y[((n * s.c_out + o) * oh + oy) * ow + ox] = acc as f32;
                    }
                }
            }
        }
        y
    }

    fn shapes() -> Vec<ConvShape> {
        let mut v = Vec::new();
        for (stride, pad) in [
            ([1, 1], [0, 0]),
            ([1, 1], [2, 1]),
            ([2, 2], [1, 1]),
            ([2, 1], [0, 2]),
        ] {
            v.push(ConvShape {
                batch: 3,
                c_in: 2,
                hw: [7, 6],
                c_out: 4,
                kernel: [3, 2],
                stride,
                pad,
            });
        }
        v.push(ConvShape {
            batch: 2,
            c_in: 1,
            hw: [28, 28],
            c_out: 6,
            kernel: [5, 5],
            stride: [1, 1],
            pad: [2, 2],
        });
        v
    }

    #[test]
    fn forward_matches_the_definition() {
        for s in shapes() {
            let x = values(s.batch * s.in_len(), 1);
            let w = values(s.c_out * s.k(), 2);
            let b = values(s.c_out, 3);
            let got = forward(&s, &x, &w, Some(&b));
            let want = naive(&s, &x, &w, &b);
            assert_eq!(got.len(), want.len());
            for (g, e) in got.iter().zip(&want) {
                assert!((g - e).abs() < 1e-5, "{s:?}: {g} vs {e}");
            }
        }
    }

    /// `<dy, conv(x)>` is linear in x, w, b: its gradients are checked against finite differences
    /// of the exact (f64) definition.
    #[test]
    fn backward_is_the_adjoint_of_forward() {
        for s in shapes() {
            let x = values(s.batch * s.in_len(), 4);
            let w = values(s.c_out * s.k(), 5);
            let b = values(s.c_out, 6);
            let dy = values(s.batch * s.c_out * s.p(), 7);
            let (dx, dw, db) = backward(&s, &x, &w, &dy, true);
            let dx = dx.unwrap();
            let loss = |x: &[f32], w: &[f32], b: &[f32]| -> f64 {
                naive(&s, x, w, b)
                    .iter()
                    .zip(&dy)
                    .map(|(y, g)| f64::from(*y) * f64::from(*g))
                    .sum()
            };
            // the loss is linear, so a unit step gives the exact derivative (up to rounding)
            for i in (0..x.len()).step_by(7) {
                let mut xp = x.clone();
                xp[i] += 1.0;
                let fd = loss(&xp, &w, &b) - loss(&x, &w, &b);
                assert!(
                    (fd - f64::from(dx[i])).abs() < 1e-4,
                    "{s:?} dx[{i}]: {fd} vs {}",
                    dx[i]
                );
            }
            for i in 0..w.len() {
                let mut wp = w.clone();
                wp[i] += 1.0;
                let fd = loss(&x, &wp, &b) - loss(&x, &w, &b);
                assert!(
                    (fd - f64::from(dw[i])).abs() < 1e-4,
                    "{s:?} dw[{i}]: {fd} vs {}",
                    dw[i]
                );
            }
            for (i, &got) in db.iter().enumerate() {
                let want: f64 = dy
                    .chunks_exact(s.p())
                    .skip(i)
                    .step_by(s.c_out)
                    .flatten()
                    .map(|&v| f64::from(v))
                    .sum();
                assert!((want - f64::from(got)).abs() < 1e-4);
            }
            let (none, dw2, _) = backward(&s, &x, &w, &dy, false);
            assert!(none.is_none());
            assert_eq!(dw, dw2);
        }
    }
}
