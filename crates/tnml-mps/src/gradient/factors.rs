//! The two factors of every site's gradient for a whole minibatch, written by the blocks' passes
//! into their own rows and multiplied site by site afterwards.
//!
//! With `B` the batch, site `k` of shape `(l, p, r)` (`p = d`, or `d L` at the label site),
//! `dA_k = gl_k^T gr_k` where `gl_k` is `B x l` (the scaled left contraction or right carry)
//! and `gr_k` is `B x p r` (the features times the carry, or times the right contraction), as
//! [`super::pass`] derives them. Keeping them costs `4 B (l + p r)` bytes a site (bond 20,
//! batch 100: 4.8 MB for 196 sites; bond 120: 28 MB). The product is one GEMM over all `B`
//! rows (`2 B l p r` flops), so a site's gradient is formed and written once per batch, by one
//! thread, whatever the number of blocks or threads, and comes out the same bit for bit.

use std::mem::take;
use std::ops::Range;

use super::pass::{mm, rows, BlockFactors, Shape};

/// The batch's gradient factors, one pair of row-major buffers per site.
#[derive(Debug, Default)]
pub(super) struct BatchFactors {
    gl: Vec<Vec<f32>>,
    gr: Vec<Vec<f32>>,
    /// Rows of the last batch when every block wrote its factors, else 0.
    rows: usize,
}

impl BatchFactors {
    /// Sizes the buffers for a batch cut into `blocks` (contiguous, from row 0) over sites of
    /// `shapes`, and hands out each block's rows. The factors count as unwritten until
    /// [`Self::written`].
    pub(super) fn split(&mut self, shapes: &[Shape], blocks: &[Range<usize>]) -> Vec<BlockFactors<'_>> {
        self.rows = 0;
        let n = blocks.last().map_or(0, |b| b.end);
        self.gl.resize(shapes.len(), Vec::new());
        self.gr.resize(shapes.len(), Vec::new());
        let mut out: Vec<BlockFactors<'_>> = blocks
            .iter()
            .map(|_| BlockFactors {
                gl: Vec::with_capacity(shapes.len()),
                gr: Vec::with_capacity(shapes.len()),
            })
            .collect();
        for ((gl, gr), &(l, p, r)) in self.gl.iter_mut().zip(self.gr.iter_mut()).zip(shapes) {
            gl.resize(n * l, 0.0);
            gr.resize(n * p * r, 0.0);
            let (mut left, mut right) = (gl.as_mut_slice(), gr.as_mut_slice());
            for (block, range) in out.iter_mut().zip(blocks) {
                let (a, rest) = take(&mut left).split_at_mut(range.len() * l);
                let (b, rest_r) = take(&mut right).split_at_mut(range.len() * p * r);
                block.gl.push(a);
                block.gr.push(b);
                (left, right) = (rest, rest_r);
            }
        }
        out
    }

    /// Every block wrote its factors: `rows` rows of the batch are ready.
    pub(super) fn written(&mut self, rows: usize) {
        self.rows = rows;
    }

    /// `out = dA_k`, the batch gradient of site `k` (shape `(l, p, r)`), in `f64` (`tmp` is
    /// scratch); zeros when the factors are not all written (no batch yet, or a block stopped
    /// at a non-finite loss).
    pub(super) fn site_gradient(&self, k: usize, shape: Shape, tmp: &mut Vec<f32>, out: &mut [f64]) {
        let (l, p, r) = shape;
        let n = self.rows;
        if n == 0 {
            out.iter_mut().for_each(|x| *x = 0.0);
            return;
        }
        tmp.resize(l * p * r, 0.0);
        mm(
            tmp,
            l,
            rows(&self.gl[k], n, l).transpose(),
            rows(&self.gr[k], n, p * r),
        );
        out.iter_mut()
            .zip(tmp.iter())
            .for_each(|(o, &g)| *o = f64::from(g));
    }
}
