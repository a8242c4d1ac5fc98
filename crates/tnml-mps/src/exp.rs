//! `exp(x)` for `x <= 0`, the exponential every softmax here needs (the L-BFGS refit in
//! [`crate::softmax`], the cross-entropy line searches in the local solvers), written out so
//! that it vectorizes and gives the same bits on every machine.

/// `exp(x)` for `x <= 0`, flushed to 0 below -40 (where it is below f64 rounding of a softmax
/// row sum, which includes exp(0) = 1). Range reduction `x = k ln 2 + r`, `|r| <= ln 2 / 2`, and
/// a degree-12 Taylor polynomial (relative error below 1e-15). Written out instead of calling
/// libm: inside the sweep, right after faer's AVX-512 GEMMs, glibc's `exp` measured about 160 ns
/// per call here (against 10 ns in isolation), and the line search makes `10 n L` calls per pass.
#[inline]
pub(crate) fn exp_neg(x: f64) -> f64 {
    exp_neg_lane(x)
}

/// [`exp_neg`] of every entry of `xs` in place. [`exp_neg_lane`] has no branches or
/// float-to-integer conversions, so the loop vectorizes (4 or 8 lanes).
pub(crate) fn exp_neg_slice(xs: &mut [f64]) {
    // compiled for the widest SIMD the CPU has (pulp's runtime dispatch, the one faer uses);
    // products and sums stay separate instructions (no fused multiply-add), so every machine
    // computes the same bits
    pulp::Arch::new().dispatch(|| {
        for v in xs.iter_mut() {
            *v = exp_neg_lane(*v);
        }
    });
}

/// [`exp_neg`]: `k` rounded to nearest by the `1.5 * 2^52` trick, `2^k` built from its bits.
#[inline(always)]
fn exp_neg_lane(v: f64) -> f64 {
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
    const C: [f64; 13] = [
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ];
    let x = v.max(-45.0);
    let shifted = x * std::f64::consts::LOG2_E + MAGIC;
    let kf = shifted - MAGIC;
    let r = x - kf * LN2_HI - kf * LN2_LO;
    let mut p = C[0];
    for &c in &C[1..] {
        p = p * r + c;
    }
    // k = bits(shifted) - bits(MAGIC) as a two's-complement integer, k in [-65, 0]
    let k = shifted.to_bits().wrapping_sub(MAGIC.to_bits());
    let scale = f64::from_bits(k.wrapping_add(1023) << 52);
    if v < -40.0 {
        0.0
    } else {
        p * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_neg_slice_matches_exp_neg_and_libm() {
        let mut xs: Vec<f64> = (0..4001).map(|i| -45.0 + i as f64 * 0.01125).collect();
        xs.extend([
            0.0,
            -0.0,
            -40.0,
            -40.000001,
            -1e-300,
            -0.5 * std::f64::consts::LN_2,
        ]);
        let mut got = xs.clone();
        exp_neg_slice(&mut got);
        for (&x, &g) in xs.iter().zip(&got) {
            let want = exp_neg(x);
            assert!((g - want).abs() <= 2e-15 * want, "x = {x}: {g} vs {want}");
            if x >= -40.0 {
                assert!((g - x.exp()).abs() <= 2e-15 * x.exp(), "x = {x}: {g} vs libm");
            }
        }
    }

    #[test]
    fn exp_neg_matches_libm() {
        for i in 0..=40_000 {
            let x = -(i as f64) * 1e-3;
            let (a, b) = (exp_neg(x), x.exp());
            assert!((a - b).abs() <= 4e-16 * b, "x {x}: {a} vs {b}");
        }
        assert_eq!(exp_neg(-41.0), 0.0);
        assert_eq!(exp_neg(0.0), 1.0);
    }
}
