//! Presizing (fastai's item transform `Resize(460)`): a square crop resized on the CPU, big
//! enough that the later GPU augmentation leaves no empty zones.

use image::RgbImage;
use image::imageops::{self, FilterType};

/// Where the square crop sits along the image's long side: 0 = start, 1 = end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Crop {
    Centre,
    /// Random position for training, drawn by the caller's seeded RNG.
    At(f32),
}

/// Crop the largest square (centred or at the given position) and resize it to `size`².
pub fn presize(img: &RgbImage, size: u32, crop: Crop) -> RgbImage {
    let (w, h) = img.dimensions();
    let side = w.min(h);
    let t = match crop {
        Crop::Centre => 0.5,
        Crop::At(t) => t.clamp(0.0, 1.0),
    };
    let x = ((w - side) as f32 * t).round() as u32;
    let y = ((h - side) as f32 * t).round() as u32;
    let square = imageops::crop_imm(img, x, y, side, side);
    if side == size {
        return square.to_image();
    }
    // Triangle (bilinear) is fast and, unlike nearest, does not alias small digits.
    imageops::resize(&square.to_image(), size, size, FilterType::Triangle)
}
