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

/// A small real-photo set for judging pretraining: each photo is one class, cut into a 4×4
/// grid of cells; 12 cells give training crops and 4 (one per row, a different column each)
/// give validation crops, so no validation pixel was ever seen in training. Items are named
/// `train/<class>/…` and `valid/<class>/…` (the folder split), as `side`-px PNGs.
pub fn photo_crops(photos: &[(String, Vec<u8>)], crops_per_cell: usize, side: u32, seed: u64) -> Result<Vec<Item>, String> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut items = Vec::new();
    for (class, bytes) in photos {
        let img = crate::data::decode_rgb8(bytes, crate::data::DataConfig::default().max_pixels).map_err(|e| format!("{class}: {e}"))?;
        let (w, h) = img.dimensions();
        let (cw, ch) = (w / 4, h / 4);
        for row in 0..4 {
            for col in 0..4 {
                let split = if col == (row * 3 + 1) % 4 { "valid" } else { "train" };
                for k in 0..crops_per_cell {
                    // A square of 60–100 % of the cell's short side, anywhere inside the cell.
                    let s = ((cw.min(ch) as f32) * rng.random_range(0.6..=1.0)) as u32;
                    let x = col * cw + rng.random_range(0..=cw - s);
                    let y = row * ch + rng.random_range(0..=ch - s);
                    let crop = image::imageops::crop_imm(&img, x, y, s, s).to_image();
                    let crop = image::imageops::resize(&crop, side, side, image::imageops::FilterType::Triangle);
                    let mut png = Vec::new();
                    crop.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).map_err(|e| e.to_string())?;
                    items.push(Item::new(format!("{split}/{class}/{class}_r{row}c{col}_{k}.png"), png));
                }
            }
        }
    }
    Ok(items)
}
