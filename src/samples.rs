//! The bundled sample set: scikit-learn's handwritten digits (1,797 real 8×8 scans, BSD-3),
//! as PNG files in one folder per class, so it goes through the same decoding as user photos.

use std::io::Read;

use crate::data::Item;

static DIGITS_CSV_GZ: &[u8] = include_bytes!("../tests/data/digits.csv.gz");

/// The digits as (pixels 0–255 row-major 8×8, label) pairs.
pub fn digits() -> Vec<([u8; 64], u8)> {
    let mut csv = String::new();
    flate2::read::GzDecoder::new(DIGITS_CSV_GZ).read_to_string(&mut csv).expect("bundled digits.csv.gz is valid");
    csv.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Vec<u8> = line.split(',').map(|x| x.trim().parse::<f32>().expect("number") as u8).collect();
            let mut px = [0u8; 64];
            for (p, &x) in px.iter_mut().zip(&v[..64]) {
                // 0–16 ink counts → white paper, dark ink.
                *p = 255 - (x as u32 * 255 / 16) as u8;
            }
            (px, v[64])
        })
        .collect()
}

/// The digits as PNG items named `digit_N/digits_I.png`, upscaled to `side` px.
pub fn digits_items(side: u32) -> Vec<Item> {
    digits()
        .into_iter()
        .enumerate()
        .map(|(i, (px, label))| {
            let img = image::GrayImage::from_raw(8, 8, px.to_vec()).expect("8×8");
            let img = image::imageops::resize(&img, side, side, image::imageops::FilterType::Triangle);
            let mut png = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).expect("PNG encodes");
            Item::new(format!("{label}/digit_{i}.png"), png)
        })
        .collect()
}
