//! Transforms on images as `f32`: scaling, pooling, padding, normalization, augmentation, and
//! the index orders of [`crate::split`] (seeded shuffles, splits, batches) are re-exported here.
//!
//! Layout: image `i`, channel `c`, row `y`, column `x` sits at `((i * C + c) * H + y) * W + x`,
//! so every image flattens row-major (the pixel order of the MPS classifier).

use rand::rngs::StdRng;
use rand::Rng;

use crate::dataset::ImageSet;
use crate::error::{DataError, Result};
pub use crate::split::{batches, shuffled_indices, train_val_split};

/// Per-channel mean of the CIFAR-10 training set (pixels scaled to [0, 1]).
pub const CIFAR10_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// Per-channel standard deviation of the CIFAR-10 training set.
pub const CIFAR10_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// A batch of images in `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct Images {
    /// Pixels, `len * channels * height * width`.
    pub data: Vec<f32>,
    /// Number of images.
    pub len: usize,
    /// Channels.
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
}

impl Images {
    /// Pixels scaled to `[0, 1]` (`byte / 255`).
    pub fn from_set(set: &ImageSet) -> Self {
        Self {
            data: set.images.iter().map(|&b| f32::from(b) / 255.0).collect(),
            len: set.len(),
            channels: set.channels,
            height: set.height,
            width: set.width,
        }
    }

    /// Values per image.
    pub fn image_size(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The flattened image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let s = self.image_size();
        &self.data[i * s..(i + 1) * s]
    }

    /// 2x2 average pooling in floating point (28x28 -> 14x14).
    ///
    /// # Errors
    /// An odd height or width.
    pub fn avg_pool2x2(&self) -> Result<Self> {
        if !self.height.is_multiple_of(2) || !self.width.is_multiple_of(2) {
            return Err(DataError::OddSides {
                height: self.height,
                width: self.width,
            });
        }
        let (h, w) = (self.height / 2, self.width / 2);
        let mut data = Vec::with_capacity(self.len * self.channels * h * w);
        for plane in self.data.chunks_exact(self.height * self.width) {
            for y in 0..h {
                for x in 0..w {
                    let at = |dy: usize, dx: usize| plane[(2 * y + dy) * self.width + 2 * x + dx];
                    data.push(0.25 * (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)));
                }
            }
        }
        Ok(Self {
            data,
            height: h,
            width: w,
            ..*self
        })
    }

    /// Zero padding to `height x width`, centred (the odd pixel goes to the bottom / right).
    ///
    /// # Errors
    /// A target smaller than the images.
    pub fn pad_to(&self, height: usize, width: usize) -> Result<Self> {
        if height < self.height || width < self.width {
            return Err(DataError::PadSmaller {
                height: self.height,
                width: self.width,
                target_height: height,
                target_width: width,
            });
        }
        let (top, left) = ((height - self.height) / 2, (width - self.width) / 2);
        let mut data = vec![0.0; self.len * self.channels * height * width];
        for (src, dst) in self
            .data
            .chunks_exact(self.height * self.width)
            .zip(data.chunks_exact_mut(height * width))
        {
            for y in 0..self.height {
                let d = (top + y) * width + left;
                dst[d..d + self.width].copy_from_slice(&src[y * self.width..(y + 1) * self.width]);
            }
        }
        Ok(Self {
            data,
            height,
            width,
            ..*self
        })
    }

    /// One-channel images repeated into `channels` equal channels (grey as RGB).
    ///
    /// # Errors
    /// Images that already have several channels.
    pub fn repeat_channels(&self, channels: usize) -> Result<Self> {
        if self.channels != 1 {
            return Err(DataError::NotGrey {
                what: format!("repeating into {channels} channels"),
                channels: self.channels,
            });
        }
        let plane = self.height * self.width;
        let data = self
            .data
            .chunks_exact(plane)
            .flat_map(|p| std::iter::repeat_n(p, channels).flatten().copied())
            .collect();
        Ok(Self {
            data,
            channels,
            ..*self
        })
    }

    /// Mean and standard deviation of each channel over all images.
    pub fn channel_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let plane = self.height * self.width;
        let mut sum = vec![0f64; self.channels];
        let mut sq = vec![0f64; self.channels];
        for (k, p) in self.data.chunks_exact(plane).enumerate() {
            let c = k % self.channels;
            for &v in p {
                sum[c] += f64::from(v);
                sq[c] += f64::from(v) * f64::from(v);
            }
        }
        let n = (self.len * plane).max(1) as f64;
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let std = sum
            .iter()
            .zip(&sq)
            .map(|(s, q)| ((q / n - (s / n).powi(2)).max(0.0)).sqrt() as f32)
            .collect();
        (mean, std)
    }

    /// Per-channel normalization `(x - mean_c) / std_c`.
    ///
    /// # Errors
    /// Wrong number of channels, or a non-positive standard deviation.
    pub fn normalize(&mut self, mean: &[f32], std: &[f32]) -> Result<()> {
        if mean.len() != self.channels || std.len() != self.channels {
            return Err(DataError::NormalizationShape {
                means: mean.len(),
                stds: std.len(),
                channels: self.channels,
            });
        }
        if let Some(s) = std.iter().find(|s| s.is_nan() || **s <= 0.0) {
            return Err(DataError::NonPositiveStd { value: *s });
        }
        let plane = self.height * self.width;
        for (k, p) in self.data.chunks_exact_mut(plane).enumerate() {
            let c = k % self.channels;
            p.iter_mut().for_each(|v| *v = (*v - mean[c]) / std[c]);
        }
        Ok(())
    }

    /// CIFAR-style augmentation: zero-pad by `pad` on each side, crop a random window of the
    /// original size, and flip horizontally with probability 1/2, independently per image.
    pub fn random_crop_flip(&self, pad: usize, rng: &mut StdRng) -> Self {
        self.random_crop(pad, true, rng)
    }

    /// Random translation by up to `pad` pixels in each direction (zero fill), no flip: the
    /// augmentation for digits, where a mirror image is another symbol.
    pub fn random_shift(&self, pad: usize, rng: &mut StdRng) -> Self {
        self.random_crop(pad, false, rng)
    }

    fn random_crop(&self, pad: usize, allow_flip: bool, rng: &mut StdRng) -> Self {
        let (h, w) = (self.height, self.width);
        let mut out = vec![0.0; self.data.len()];
        for i in 0..self.len {
            let (dy, dx) = (rng.random_range(0..=2 * pad), rng.random_range(0..=2 * pad));
            let flip = allow_flip && rng.random_bool(0.5);
            for c in 0..self.channels {
                let base = (i * self.channels + c) * h * w;
                for y in 0..h {
                    let sy = (y + dy) as isize - pad as isize;
                    if sy < 0 || sy >= h as isize {
                        continue;
                    }
                    for x in 0..w {
                        let sx = (x + dx) as isize - pad as isize;
                        if sx < 0 || sx >= w as isize {
                            continue;
                        }
                        let tx = if flip { w - 1 - x } else { x };
                        out[base + y * w + tx] = self.data[base + sy as usize * w + sx as usize];
                    }
                }
            }
        }
        Self { data: out, ..*self }
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Self {
        let mut data = Vec::with_capacity(indices.len() * self.image_size());
        for &i in indices {
            data.extend_from_slice(self.image(i));
        }
        Self {
            data,
            len: indices.len(),
            ..*self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ramp(len: usize, c: usize, h: usize, w: usize) -> Images {
        Images {
            data: (0..len * c * h * w).map(|i| i as f32).collect(),
            len,
            channels: c,
            height: h,
            width: w,
        }
    }

    #[test]
    fn pooling_averages_each_2x2_block() {
        let im = ramp(1, 1, 2, 4).avg_pool2x2().unwrap();
        // rows [0 1 2 3] [4 5 6 7] -> (0+1+4+5)/4, (2+3+6+7)/4
        assert_eq!((im.height, im.width), (1, 2));
        assert_eq!(im.data, vec![2.5, 4.5]);
        assert!(ramp(1, 1, 3, 4).avg_pool2x2().is_err());
    }

    #[test]
    fn padding_centres_the_image() {
        let im = ramp(2, 1, 2, 2).pad_to(4, 4).unwrap();
        assert_eq!(
            im.image(1),
            &[0., 0., 0., 0., 0., 4., 5., 0., 0., 6., 7., 0., 0., 0., 0., 0.]
        );
        assert!(ramp(1, 1, 2, 2).pad_to(1, 4).is_err());
    }

    #[test]
    fn repeating_channels_copies_each_grey_image() {
        let im = ramp(2, 1, 1, 2).repeat_channels(3).unwrap();
        assert_eq!((im.len, im.channels), (2, 3));
        assert_eq!(im.image(1), &[2., 3., 2., 3., 2., 3.]);
        assert!(ramp(1, 3, 2, 2).repeat_channels(3).is_err());
    }

    #[test]
    fn normalization_gives_zero_mean_unit_std() {
        let mut im = ramp(3, 2, 4, 4);
        let (m, s) = im.channel_stats();
        im.normalize(&m, &s).unwrap();
        let (m2, s2) = im.channel_stats();
        assert!(
            m2.iter().all(|x| x.abs() < 1e-4) && s2.iter().all(|x| (x - 1.0).abs() < 1e-4),
            "{m2:?} {s2:?}"
        );
        assert!(im.normalize(&[0.0], &[1.0]).is_err());
        assert!(im.normalize(&[0.0, 0.0], &[1.0, 0.0]).is_err());
    }

    #[test]
    fn crop_and_flip_keep_pixels_and_are_seeded() {
        let im = ramp(4, 3, 5, 5);
        let a = im.random_crop_flip(0, &mut StdRng::seed_from_u64(1));
        // with no padding the crop is the identity; each image is itself or its mirror
        for i in 0..4 {
            let (x, y) = (im.image(i), a.image(i));
            let mirrored: Vec<f32> = x.chunks(5).flat_map(|r| r.iter().rev().copied()).collect();
            assert!(y == x || y == mirrored.as_slice());
        }
        let b = im.random_crop_flip(2, &mut StdRng::seed_from_u64(7));
        let c = im.random_crop_flip(2, &mut StdRng::seed_from_u64(7));
        assert_eq!(b, c);
    }

    #[test]
    fn splits_and_batches() {
        let (tr, va) = train_val_split(100, 0.1, 3).unwrap();
        assert_eq!((tr.len(), va.len()), (90, 10));
        let mut all: Vec<usize> = tr.iter().chain(&va).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(train_val_split(100, 0.1, 3).unwrap(), (tr.clone(), va));
        assert_ne!(shuffled_indices(100, 1), shuffled_indices(100, 2));
        let sizes: Vec<usize> = batches(&tr, 32).unwrap().map(<[usize]>::len).collect();
        assert_eq!(sizes, vec![32, 32, 26]);
        assert!(batches(&tr, 0).is_err());
        assert!(train_val_split(10, 1.0, 0).is_err());
    }
}
