//! Local feature maps `phi: [0, 1] -> R^d`; the input is `Phi(x) = phi(x_1) (x) ... (x) phi(x_N)`.
//!
//! | map | `phi(x)` | norm |
//! |---|---|---|
//! | `Trig` (paper, d = 2) | `[cos(pi x / 2), sin(pi x / 2)]` | 1 |
//! | `TrigD(d)` | `phi_s = sqrt(C(d-1, s-1)) cos^{d-s}(pi x/2) sin^{s-1}(pi x/2)`, `s = 1..d` | 1 |
//! | `Linear` | `[1 - x, x]` | in `[1/sqrt 2, 1]` |
//!
//! Pixel values are `byte / 255` with 0 = white background (the paper's convention; MNIST
//! bytes already have 0 = background). `TrigD(2)` equals `Trig`.

use serde::{Deserialize, Serialize};

use crate::error::{MpsError, Result};

/// A local feature map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeatureMap {
    /// `[cos(pi x/2), sin(pi x/2)]` (Stoudenmire & Schwab 2016).
    Trig,
    /// The d-dimensional generalization, unit norm for every x.
    TrigD(usize),
    /// `[1 - x, x]`.
    Linear,
}

impl FeatureMap {
    /// Local dimension d.
    pub fn dim(self) -> usize {
        match self {
            Self::Trig | Self::Linear => 2,
            Self::TrigD(d) => d,
        }
    }

    /// Checks the map (d >= 2 for `TrigD`).
    ///
    /// # Errors
    /// [`MpsError::InvalidOption`].
    pub fn validate(self) -> Result<()> {
        match self {
            Self::TrigD(d) if !(2..=16).contains(&d) => {
                Err(MpsError::invalid("feature dimension", d, "it must lie in 2..=16"))
            }
            _ => Ok(()),
        }
    }

    /// Writes `phi(x)` into `out` (length `dim`).
    pub fn embed(self, x: f32, out: &mut [f32]) {
        let t = std::f64::consts::FRAC_PI_2 * f64::from(x);
        match self {
            Self::Trig => {
                out[0] = t.cos() as f32;
                out[1] = t.sin() as f32;
            }
            Self::Linear => {
                out[0] = 1.0 - x;
                out[1] = x;
            }
            Self::TrigD(d) => {
                let (c, s) = (t.cos(), t.sin());
                let mut binom = 1.0f64; // C(d-1, k)
                for (k, o) in out.iter_mut().enumerate().take(d) {
                    *o = (binom.sqrt() * c.powi((d - 1 - k) as i32) * s.powi(k as i32)) as f32;
                    binom = binom * (d - 1 - k) as f64 / (k + 1) as f64;
                }
            }
        }
    }
}

/// Features of a batch, site-major: `site_features[k][n * d + s] = phi_s(x_{n, k})`.
///
/// Site-major storage keeps the features of one site contiguous for the batched bond updates.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteFeatures {
    /// Number of samples.
    pub samples: usize,
    /// Local dimension.
    pub dim: usize,
    /// One `samples x dim` block per site.
    pub sites: Vec<Vec<f32>>,
}

/// Embeds `pixels` (`samples x num_sites`, row-major, values in `[0, 1]`).
///
/// # Errors
/// [`MpsError::RaggedPixels`] if the length is not a multiple of `num_sites`;
/// [`MpsError::PixelOutOfRange`] for a value outside `[0, 1]` or NaN.
pub fn embed_batch(map: FeatureMap, pixels: &[f32], num_sites: usize) -> Result<SiteFeatures> {
    map.validate()?;
    if num_sites == 0 || !pixels.len().is_multiple_of(num_sites) {
        return Err(MpsError::RaggedPixels {
            pixels: pixels.len(),
            sites: num_sites,
        });
    }
    let samples = pixels.len() / num_sites;
    if let Some(i) = pixels.iter().position(|v| !(0.0..=1.0).contains(v)) {
        return Err(MpsError::PixelOutOfRange {
            sample: i / num_sites,
            pixel: i % num_sites,
            value: pixels[i],
        });
    }
    let d = map.dim();
    let mut sites = vec![vec![0f32; samples * d]; num_sites];
    for (n, img) in pixels.chunks_exact(num_sites).enumerate() {
        for (k, &x) in img.iter().enumerate() {
            map.embed(x, &mut sites[k][n * d..(n + 1) * d]);
        }
    }
    Ok(SiteFeatures {
        samples,
        dim: d,
        sites,
    })
}

/// How one image is moved for augmentation: mirrored left-right (`flip`), then translated by
/// `dy` rows down and `dx` columns right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Move {
    /// Rows down.
    pub dy: i32,
    /// Columns right.
    pub dx: i32,
    /// Mirror left-right first.
    pub flip: bool,
}

impl SiteFeatures {
    /// The features of the images translated by `shifts[n] = (dy, dx)` pixels (down, right),
    /// for sites laid out row-major as an `image = (height, width)` grid; what comes in at the
    /// border is a white pixel, `phi(0) = e_0` for every feature map here.
    ///
    /// # Panics
    /// When `height * width` is not the number of sites or `shifts` not one per sample.
    pub fn shifted(&self, image: (usize, usize), shifts: &[(i32, i32)]) -> SiteFeatures {
        let moves: Vec<Move> = shifts
            .iter()
            .map(|&(dy, dx)| Move { dy, dx, flip: false })
            .collect();
        self.moved(image, &moves)
    }

    /// The features of the images each moved by `moves[n]`: mirrored left-right first when
    /// `flip`, then translated by `(dy, dx)` pixels (down, right), for sites laid out row-major
    /// as an `image = (height, width)` grid; what comes in at the border is a white pixel,
    /// `phi(0) = e_0` for every feature map here.
    ///
    /// # Panics
    /// When `height * width` is not the number of sites or `moves` not one per sample.
    pub fn moved(&self, image: (usize, usize), moves: &[Move]) -> SiteFeatures {
        let (h, w) = image;
        assert_eq!(h * w, self.sites.len(), "image shape against sites");
        assert_eq!(moves.len(), self.samples, "one move per sample");
        let d = self.dim;
        let mut sites = vec![vec![0f32; self.samples * d]; self.sites.len()];
        for (k, site) in sites.iter_mut().enumerate() {
            let (y, x) = ((k / w) as i32, (k % w) as i32);
            for (n, &Move { dy, dx, flip }) in moves.iter().enumerate() {
                let (sy, mut sx) = (y - dy, x - dx);
                if flip {
                    sx = w as i32 - 1 - sx;
                }
                let out = &mut site[n * d..(n + 1) * d];
                if (0..h as i32).contains(&sy) && (0..w as i32).contains(&sx) {
                    let src = &self.sites[sy as usize * w + sx as usize];
                    out.copy_from_slice(&src[n * d..(n + 1) * d]);
                } else {
                    out[0] = 1.0;
                }
            }
        }
        SiteFeatures {
            samples: self.samples,
            dim: d,
            sites,
        }
    }

    /// The features of the samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> SiteFeatures {
        let d = self.dim;
        let sites = self
            .sites
            .iter()
            .map(|s| {
                indices
                    .iter()
                    .flat_map(|&i| s[i * d..(i + 1) * d].iter().copied())
                    .collect()
            })
            .collect();
        SiteFeatures {
            samples: indices.len(),
            dim: d,
            sites,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trig_maps_white_and_black_to_basis_vectors() {
        let mut v = [0.0; 2];
        FeatureMap::Trig.embed(0.0, &mut v);
        assert_eq!(v, [1.0, 0.0]);
        FeatureMap::Trig.embed(1.0, &mut v);
        assert!(v[0].abs() < 1e-7 && (v[1] - 1.0).abs() < 1e-7);
    }

    #[test]
    fn trig_d_is_unit_norm_and_extends_trig() {
        for d in 2..7 {
            for x in [0.0, 0.13, 0.5, 0.77, 1.0] {
                let mut v = vec![0.0; d];
                FeatureMap::TrigD(d).embed(x, &mut v);
                let n: f32 = v.iter().map(|a| a * a).sum();
                assert!((n - 1.0).abs() < 1e-5, "d={d} x={x} norm2={n}");
            }
        }
        let (mut a, mut b) = ([0.0; 2], [0.0; 2]);
        FeatureMap::Trig.embed(0.3, &mut a);
        FeatureMap::TrigD(2).embed(0.3, &mut b);
        assert_eq!(a, b);
    }

    /// Shifting the features is embedding the shifted image (white fill).
    #[test]
    fn shifted_features_are_the_features_of_the_shifted_image() {
        let (h, w) = (3, 4);
        let img: Vec<f32> = (0..2 * h * w).map(|i| (i % 7) as f32 / 7.0).collect();
        let feats = embed_batch(FeatureMap::Trig, &img, h * w).unwrap();
        let shifts = [(1, -2), (0, 0)];
        let got = feats.shifted((h, w), &shifts);
        let mut moved = vec![0f32; img.len()];
        for (n, &(dy, dx)) in shifts.iter().enumerate() {
            for y in 0..h as i32 {
                for x in 0..w as i32 {
                    let (sy, sx) = (y - dy, x - dx);
                    if (0..h as i32).contains(&sy) && (0..w as i32).contains(&sx) {
                        moved[n * h * w + (y * w as i32 + x) as usize] =
                            img[n * h * w + (sy * w as i32 + sx) as usize];
                    }
                }
            }
        }
        assert_eq!(got, embed_batch(FeatureMap::Trig, &moved, h * w).unwrap());
        assert_eq!(feats.shifted((h, w), &[(0, 0), (0, 0)]), feats);
    }

    /// A mirror is the mirrored image's features; mirror then shift as `Move` says.
    #[test]
    fn mirrored_features_are_the_features_of_the_mirrored_image() {
        let (h, w) = (3, 4);
        let img: Vec<f32> = (0..h * w).map(|i| (i % 5) as f32 / 5.0).collect();
        let feats = embed_batch(FeatureMap::Linear, &img, h * w).unwrap();
        let flip = Move {
            dy: 0,
            dx: 0,
            flip: true,
        };
        let mirrored: Vec<f32> = (0..h * w).map(|k| img[(k / w) * w + (w - 1 - k % w)]).collect();
        assert_eq!(
            feats.moved((h, w), &[flip]),
            embed_batch(FeatureMap::Linear, &mirrored, h * w).unwrap()
        );
        // twice is the identity; mirror then shift one right
        assert_eq!(feats.moved((h, w), &[flip]).moved((h, w), &[flip]), feats);
        let both = feats.moved(
            (h, w),
            &[Move {
                dy: 0,
                dx: 1,
                flip: true,
            }],
        );
        assert_eq!(both, feats.moved((h, w), &[flip]).shifted((h, w), &[(0, 1)]));
    }

    #[test]
    fn embed_batch_checks_pixels() {
        let f = embed_batch(FeatureMap::Linear, &[0.0, 0.25, 1.0, 0.5], 2).unwrap();
        assert_eq!(f.samples, 2);
        assert_eq!(f.sites[1], vec![0.75, 0.25, 0.5, 0.5]);
        let e = embed_batch(FeatureMap::Trig, &[0.0, 1.5, 0.0, 0.0], 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "pixel 1 of sample 0 is 1.5: pixel values must lie in [0, 1]"
        );
        assert!(embed_batch(FeatureMap::Trig, &[0.0, 0.0, 0.0], 2).is_err());
        assert!(embed_batch(FeatureMap::Trig, &[f32::NAN, 0.0], 2).is_err());
        assert!(embed_batch(FeatureMap::TrigD(1), &[0.0, 0.0], 2).is_err());
    }
}
