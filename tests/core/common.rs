//! Small fixtures made in code.

use std::io::Cursor;

use image::{ImageFormat, Rgb, RgbImage};
use kiln::Item;

/// An RGB image of `w`×`h` whose pixel (x, y) encodes its position.
pub fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([(x * 255 / w.max(2).saturating_sub(1).max(1)) as u8, (y * 255 / h.max(2).saturating_sub(1).max(1)) as u8, 128]))
}

pub fn encode(img: &image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

pub fn png_item(name: &str, color: [u8; 3]) -> Item {
    let img = image::DynamicImage::ImageRgb8(RgbImage::from_pixel(12, 10, Rgb(color)));
    Item::new(name, encode(&img, ImageFormat::Png))
}

pub fn cpu() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}
