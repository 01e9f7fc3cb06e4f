//! GPU batch augmentation (fastai's `aug_transforms`), in one pass per batch.
//!
//! Per image, a seeded RNG draws flip, rotation, zoom, perspective warp and the
//! RandomResizedCrop; they are composed on the CPU into ONE 3×3 homography that maps output
//! coordinates to source coordinates. The device then builds the sampling grid from those
//! matrices and samples ONCE (bilinear, reflection padding, align_corners), applies the
//! lighting transform once, and normalises with the ImageNet statistics.

use burn::tensor::ops::{GridSampleOptions, GridSamplePaddingMode, InterpolateMode};
use burn::tensor::{Device, Tensor, TensorData, activation};
use rand::Rng;

/// ImageNet mean and standard deviation per RGB channel.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// fastai's `aug_transforms(size, min_scale)` with its defaults.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AugConfig {
    pub size: usize,
    pub min_scale: f32,
    pub do_flip: bool,
    pub max_rotate: f32,
    pub min_zoom: f32,
    pub max_zoom: f32,
    pub max_warp: f32,
    pub p_affine: f32,
    pub max_lighting: f32,
    pub p_lighting: f32,
}

impl AugConfig {
    pub fn new(size: usize) -> Self {
        Self {
            size,
            min_scale: 0.75,
            do_flip: true,
            max_rotate: 10.0,
            min_zoom: 1.0,
            max_zoom: 1.1,
            max_warp: 0.2,
            p_affine: 0.75,
            max_lighting: 0.2,
            p_lighting: 0.75,
        }
    }
    pub fn with_min_scale(mut self, v: f32) -> Self {
        self.min_scale = v;
        self
    }
    pub fn with_do_flip(mut self, v: bool) -> Self {
        self.do_flip = v;
        self
    }
    pub fn with_max_rotate(mut self, v: f32) -> Self {
        self.max_rotate = v;
        self
    }
    pub fn with_max_warp(mut self, v: f32) -> Self {
        self.max_warp = v;
        self
    }
    pub fn with_max_lighting(mut self, v: f32) -> Self {
        self.max_lighting = v;
        self
    }
    pub fn with_zoom(mut self, min: f32, max: f32) -> Self {
        self.min_zoom = min;
        self.max_zoom = max;
        self
    }
    /// Geometry and lighting off: only the resize and normalisation remain.
    pub fn none(size: usize) -> Self {
        Self::new(size)
            .with_min_scale(1.0)
            .with_do_flip(false)
            .with_max_rotate(0.0)
            .with_zoom(1.0, 1.0)
            .with_max_warp(0.0)
            .with_max_lighting(0.0)
    }
}

/// A row-major 3×3 homography on normalised coordinates in [-1, 1].
pub type Mat3 = [[f32; 3]; 3];

pub const IDENTITY: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

pub fn mat_mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            out[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

/// One image's augmentation: where each output pixel samples from, and the lighting change.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageAug {
    /// Output coordinates → source coordinates.
    pub matrix: Mat3,
    /// Added to the logit of every pixel (brightness).
    pub brightness: f32,
    /// Multiplies the logit (contrast).
    pub contrast: f32,
}

impl ImageAug {
    pub fn identity() -> Self {
        Self { matrix: IDENTITY, brightness: 0.0, contrast: 1.0 }
    }
}

pub fn flip_x() -> Mat3 {
    [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
}

pub fn rotation(degrees: f32) -> Mat3 {
    let (s, c) = degrees.to_radians().sin_cos();
    [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
}

/// fastai's zoom: scale by 1/zoom about a point placed by (col_pct, row_pct) in [0, 1].
pub fn zoom(z: f32, col_pct: f32, row_pct: f32) -> Mat3 {
    let s = 1.0 / z;
    [
        [s, 0.0, (1.0 - s) * (2.0 * col_pct - 1.0)],
        [0.0, s, (1.0 - s) * (2.0 * row_pct - 1.0)],
        [0.0, 0.0, 1.0],
    ]
}

/// A square crop of side `frac` (of the source) placed by (col_pct, row_pct) in [0, 1].
pub fn crop(frac: f32, col_pct: f32, row_pct: f32) -> Mat3 {
    [
        [frac, 0.0, (1.0 - frac) * (2.0 * col_pct - 1.0)],
        [0.0, frac, (1.0 - frac) * (2.0 * row_pct - 1.0)],
        [0.0, 0.0, 1.0],
    ]
}

/// fastai's `Warp`: the perspective transform that moves the four corners by the symmetric
/// pattern of magnitudes (x, y).
pub fn warp(x: f32, y: f32) -> Mat3 {
    let orig = [[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]];
    let targ = [[-1.0 - y, -1.0 - x], [-1.0 + y, 1.0 + x], [1.0 + y, -1.0 + x], [1.0 - y, 1.0 - x]];
    homography(&orig, &targ)
}

/// The homography taking the four `from` points to the `to` points (an 8×8 linear solve).
pub fn homography(from: &[[f32; 2]; 4], to: &[[f32; 2]; 4]) -> Mat3 {
    let mut a = [[0f64; 9]; 8];
    for i in 0..4 {
        let (x, y) = (from[i][0] as f64, from[i][1] as f64);
        let (u, v) = (to[i][0] as f64, to[i][1] as f64);
        a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    // Gaussian elimination with partial pivoting on the augmented matrix.
    for col in 0..8 {
        let pivot = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs())).unwrap();
        a.swap(col, pivot);
        for row in 0..8 {
            if row != col {
                let f = a[row][col] / a[col][col];
                for k in col..9 {
                    a[row][k] -= f * a[col][k];
                }
            }
        }
    }
    let h: Vec<f32> = (0..8).map(|i| (a[i][8] / a[i][i]) as f32).collect();
    [[h[0], h[1], h[2]], [h[3], h[4], h[5]], [h[6], h[7], 1.0]]
}

fn logit(p: f32) -> f32 {
    (p / (1.0 - p)).ln()
}

impl AugConfig {
    /// Draw one image's parameters, each transform with its own probability (fastai's defaults).
    pub fn draw(&self, rng: &mut impl Rng) -> ImageAug {
        let u = |rng: &mut dyn rand::RngCore, lo: f32, hi: f32| if hi > lo { rng.random_range(lo..hi) } else { lo };
        // RandomResizedCropGPU(size, min_scale, ratio=(1,1)) on a square source: a square of
        // area U(min_scale, 1) always fits, so fastai's "10 tries, else centre" never falls back.
        let area = u(rng, self.min_scale, 1.0);
        let mut m = crop(area.sqrt(), rng.random(), rng.random());
        if self.max_warp > 0.0 && rng.random::<f32>() < self.p_affine {
            let (x, y) = (u(rng, -self.max_warp, self.max_warp), u(rng, -self.max_warp, self.max_warp));
            m = mat_mul(&m, &warp(x, y));
        }
        if self.do_flip && rng.random::<f32>() < 0.5 {
            m = mat_mul(&m, &flip_x());
        }
        if self.max_rotate > 0.0 && rng.random::<f32>() < self.p_affine {
            m = mat_mul(&m, &rotation(u(rng, -self.max_rotate, self.max_rotate)));
        }
        if self.max_zoom > self.min_zoom && rng.random::<f32>() < self.p_affine {
            m = mat_mul(&m, &zoom(u(rng, self.min_zoom, self.max_zoom), rng.random(), rng.random()));
        }
        let (mut brightness, mut contrast) = (0.0, 1.0);
        if self.max_lighting > 0.0 {
            if rng.random::<f32>() < self.p_lighting {
                brightness = logit(u(rng, 0.5 * (1.0 - self.max_lighting), 0.5 * (1.0 + self.max_lighting)));
            }
            if rng.random::<f32>() < self.p_lighting {
                let l = (1.0 - self.max_lighting).ln();
                contrast = u(rng, l, -l).exp();
            }
        }
        ImageAug { matrix: m, brightness, contrast }
    }
}

/// Presized RGB8 images (all `side`²) → a float batch [N, 3, side, side] in [0, 1] on `device`.
pub fn to_tensor(images: &[Vec<u8>], side: usize, device: &Device) -> Tensor<4> {
    let n = images.len();
    let mut data = Vec::with_capacity(n * side * side * 3);
    for img in images {
        debug_assert_eq!(img.len(), side * side * 3);
        data.extend(img.iter().map(|&v| v as f32 / 255.0));
    }
    Tensor::<4>::from_data(TensorData::new(data, [n, side, side, 3]), device).permute([0, 3, 1, 2])
}

/// The base grid of output coordinates (align_corners): [size², 3] rows of (x, y, 1).
fn base_grid(size: usize, device: &Device) -> Tensor<2> {
    let step = if size > 1 { 2.0 / (size - 1) as f32 } else { 0.0 };
    let mut data = Vec::with_capacity(size * size * 3);
    for r in 0..size {
        for c in 0..size {
            data.extend([-1.0 + c as f32 * step, -1.0 + r as f32 * step, 1.0]);
        }
    }
    Tensor::from_data(TensorData::new(data, [size * size, 3]), device)
}

/// Resample each image of `images` [N, C, H, W] through its matrix to `size`², in one pass.
pub fn warp_batch(images: Tensor<4>, matrices: &[Mat3], size: usize) -> Tensor<4> {
    let device = images.device();
    let n = matrices.len();
    let mt: Vec<f32> = matrices
        .iter()
        .flat_map(|m| (0..3).flat_map(move |j| (0..3).map(move |i| m[i][j])))
        .collect();
    let mt = Tensor::<3>::from_data(TensorData::new(mt, [n, 3, 3]), &device);
    let base = base_grid(size, &device).unsqueeze::<3>().repeat_dim(0, n);
    let src = base.matmul(mt); // [N, size², 3]
    let xy = src.clone().slice([0..n, 0..size * size, 0..2]);
    let w = src.slice([0..n, 0..size * size, 2..3]);
    let grid = (xy / w).reshape([n, size, size, 2]);
    let options = GridSampleOptions::new(InterpolateMode::Bilinear)
        .with_padding_mode(GridSamplePaddingMode::Reflection)
        .with_align_corners(true);
    images.grid_sample_2d(grid, options)
}

/// fastai's LightingTfm: brightness then contrast, both in logit space, once per batch.
pub fn lighting(images: Tensor<4>, augs: &[ImageAug]) -> Tensor<4> {
    if augs.iter().all(|a| a.brightness == 0.0 && a.contrast == 1.0) {
        return images;
    }
    let device = images.device();
    let n = augs.len();
    let b = Tensor::<4>::from_data(TensorData::new(augs.iter().map(|a| a.brightness).collect::<Vec<_>>(), [n, 1, 1, 1]), &device);
    let c = Tensor::<4>::from_data(TensorData::new(augs.iter().map(|a| a.contrast).collect::<Vec<_>>(), [n, 1, 1, 1]), &device);
    let x = images.clamp(1e-6, 1.0 - 1e-6);
    let logit = (x.clone() / (x.neg() + 1.0)).log();
    activation::sigmoid((logit + b) * c)
}

/// ImageNet normalisation: (x − mean) / std per channel.
pub fn normalize(images: Tensor<4>) -> Tensor<4> {
    let device = images.device();
    let mean = Tensor::<1>::from_floats(IMAGENET_MEAN, &device).reshape([1, 3, 1, 1]);
    let std = Tensor::<1>::from_floats(IMAGENET_STD, &device).reshape([1, 3, 1, 1]);
    (images - mean) / std
}

/// The training batch transform: one grid sample, one lighting pass, normalisation.
pub fn augment_batch(images: Tensor<4>, augs: &[ImageAug], size: usize) -> Tensor<4> {
    let matrices: Vec<Mat3> = augs.iter().map(|a| a.matrix).collect();
    // Nothing here takes a gradient. Under autodiff, grid_sample falls back to burn's generic
    // form (a dozen gathers and element-wise passes); the backend's own kernel is one pass.
    let autodiff = images.is_autodiff();
    let out = normalize(lighting(warp_batch(images.inner(), &matrices, size), augs));
    if autodiff { out.autodiff() } else { out }
}

/// The validation batch transform: centre resize to `size` and normalisation only.
pub fn valid_batch(images: Tensor<4>, size: usize) -> Tensor<4> {
    normalize(resize_batch(images, size))
}

/// Resize a batch to `size` × `size` (the whole image, bilinear, as validation does).
pub fn resize_batch(images: Tensor<4>, size: usize) -> Tensor<4> {
    let n = images.dims()[0];
    let [h, w] = [images.dims()[2], images.dims()[3]];
    if h == size && w == size { images } else { warp_batch(images, &vec![IDENTITY; n], size) }
}

/// Undo the normalisation and turn a [N, 3, H, W] batch into RGB8 images (for show_batch).
pub async fn to_rgb8(images: Tensor<4>) -> Result<Vec<image::RgbImage>, String> {
    let device = images.device();
    let mean = Tensor::<1>::from_floats(IMAGENET_MEAN, &device).reshape([1, 3, 1, 1]);
    let std = Tensor::<1>::from_floats(IMAGENET_STD, &device).reshape([1, 3, 1, 1]);
    let [n, _, h, w] = images.dims();
    let x = (images * std + mean).clamp(0.0, 1.0).permute([0, 2, 3, 1]);
    let data = x.into_data_async().await.map_err(|e| format!("reading the batch back failed: {e:?}"))?;
    let values = data.try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
    let per = h * w * 3;
    Ok((0..n)
        .map(|i| {
            let px = values[i * per..(i + 1) * per].iter().map(|v| (v * 255.0).round() as u8).collect();
            image::RgbImage::from_raw(w as u32, h as u32, px).expect("buffer sized h*w*3")
        })
        .collect())
}
