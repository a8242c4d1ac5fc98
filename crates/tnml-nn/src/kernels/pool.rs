//! Max pooling over `k x k` windows with stride `k` (no padding, floor), NCHW, and its backward.
//!
//! `y[c, i, j] = max_{a, b < k} x[c, k i + a, k j + b]`; the backward sends `dy[c, i, j]` to the
//! first maximum of its window (scan order), recomputed from `x` rather than stored. Both are one
//! pass over `x`, parallel over the `B C` planes.

use rayon::prelude::*;

/// Output height and width for an `h x w` plane.
pub fn out_hw(hw: [usize; 2], k: usize) -> [usize; 2] {
    [hw[0] / k, hw[1] / k]
}

/// Index (within the plane) of the first maximum of window `(i, j)`.
#[inline]
fn argmax(plane: &[f32], w: usize, k: usize, i: usize, j: usize) -> usize {
    let mut best = (i * k) * w + j * k;
    for a in 0..k {
        let row = (i * k + a) * w + j * k;
        for (b, &v) in plane[row..row + k].iter().enumerate() {
            // `>` keeps the first maximum; a NaN wins so that it propagates like in burn
            if v > plane[best] || (v.is_nan() && !plane[best].is_nan()) {
                best = row + b;
            }
        }
    }
    best
}

/// Calls `f(window_index, argmax_index)` for every window of one plane, in window order.
#[inline]
fn each_window(x_p: &[f32], hw: [usize; 2], k: usize, mut f: impl FnMut(usize, usize)) {
    let w = hw[1];
    let [oh, ow] = out_hw(hw, k);
    if k == 2 {
        // the common case, without the generic inner loops
        for i in 0..oh {
            let (r0, r1) = (2 * i * w, (2 * i + 1) * w);
            for j in 0..ow {
                let c = [r0 + 2 * j, r0 + 2 * j + 1, r1 + 2 * j, r1 + 2 * j + 1];
                let mut best = c[0];
                for &idx in &c[1..] {
                    let (v, m) = (x_p[idx], x_p[best]);
                    if v > m || (v.is_nan() && !m.is_nan()) {
                        best = idx;
                    }
                }
                f(i * ow + j, best);
            }
        }
    } else {
        for i in 0..oh {
            for j in 0..ow {
                f(i * ow + j, argmax(x_p, w, k, i, j));
            }
        }
    }
}

/// Planes per parallel task (about 32k input values).
fn planes_per_task(plane: usize) -> usize {
    (32_768 / plane.max(1)).max(1)
}

/// `y = maxpool(x)` for `planes` planes of `h x w`; returns `planes x h/k x w/k`.
pub fn forward(x: &[f32], hw: [usize; 2], k: usize) -> Vec<f32> {
    let plane = hw[0] * hw[1];
    let [oh, ow] = out_hw(hw, k);
    let planes = x.len().checked_div(plane).unwrap_or(0);
    let mut y = vec![0f32; planes * oh * ow];
    if y.is_empty() {
        return y;
    }
    let per = planes_per_task(plane);
    y.par_chunks_mut(per * oh * ow)
        .zip(x.par_chunks(per * plane))
        .for_each(|(y_t, x_t)| {
            for (y_p, x_p) in y_t.chunks_exact_mut(oh * ow).zip(x_t.chunks_exact(plane)) {
                each_window(x_p, hw, k, |o, i| y_p[o] = x_p[i]);
            }
        });
    y
}

/// The input gradient of [`forward`] for the output gradient `dy`.
pub fn backward(x: &[f32], hw: [usize; 2], k: usize, dy: &[f32]) -> Vec<f32> {
    let plane = hw[0] * hw[1];
    let [oh, ow] = out_hw(hw, k);
    let mut dx = vec![0f32; x.len()];
    if oh * ow == 0 {
        return dx;
    }
    let per = planes_per_task(plane);
    dx.par_chunks_mut(per * plane)
        .zip(x.par_chunks(per * plane))
        .zip(dy.par_chunks(per * oh * ow))
        .for_each(|((dx_t, x_t), dy_t)| {
            for ((dx_p, x_p), dy_p) in dx_t
                .chunks_exact_mut(plane)
                .zip(x_t.chunks_exact(plane))
                .zip(dy_t.chunks_exact(oh * ow))
            {
                each_window(x_p, hw, k, |o, i| dx_p[i] += dy_p[o]);
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_and_routes_the_gradient_to_the_maximum() {
        // one 5x4 plane, k = 2: the last row is dropped (floor)
        let x = [
            1.0, 5.0, 0.0, -1.0, //
            3.0, 2.0, -2.0, -3.0, //
            0.0, 0.0, 7.0, 7.0, //
            9.0, 0.0, 7.0, 1.0, //
            100.0, 100.0, 100.0, 100.0,
        ];
        assert_eq!(forward(&x, [5, 4], 2), vec![5.0, 0.0, 9.0, 7.0]);
        let dx = backward(&x, [5, 4], 2, &[1.0, 2.0, 3.0, 4.0]);
        let mut want = vec![0.0; 20];
        want[1] = 1.0; // 5
        want[2] = 2.0; // first of the 0.0, -1.0, -2.0, -3.0 window's maximum
        want[12] = 3.0; // 9
        want[10] = 4.0; // the first 7
        assert_eq!(dx, want);
    }

    #[test]
    fn the_generic_window_agrees_with_the_2x2_one() {
        let x: Vec<f32> = (0..2 * 36).map(|i| ((i * 37) % 23) as f32).collect();
        let (mut fast, mut generic) = (Vec::new(), Vec::new());
        each_window(&x[..36], [6, 6], 2, |o, i| fast.push((o, i)));
        for i in 0..3 {
            for j in 0..3 {
                generic.push((i * 3 + j, argmax(&x[..36], 6, 2, i, j)));
            }
        }
        assert_eq!(fast, generic);
        // k = 3 goes through the generic path
        assert_eq!(forward(&x, [6, 6], 3).len(), 2 * 4);
    }

    #[test]
    fn a_nan_propagates() {
        let x = [1.0, f32::NAN, 2.0, 3.0];
        assert!(forward(&x, [2, 2], 2)[0].is_nan());
    }
}
