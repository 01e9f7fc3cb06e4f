//! show_batch: a grid of augmented training samples, each titled with its label.

use image::{Rgb, RgbImage};

const LINE_H: u32 = 10;

/// Lay `images` out `cols` wide with each title above its image (8×8 bitmap font; `\n` starts
/// a new line).
pub fn show_batch(images: &[RgbImage], labels: &[String], cols: usize) -> RgbImage {
    let cols = cols.max(1).min(images.len().max(1));
    let rows = images.len().div_ceil(cols);
    let (w, h) = images.first().map(|i| i.dimensions()).unwrap_or((32, 32));
    let lines = labels.iter().map(|l| l.lines().count()).max().unwrap_or(1).max(1) as u32;
    let longest = labels.iter().flat_map(|l| l.lines()).map(|l| l.chars().count()).max().unwrap_or(0) as u32;
    let title_h = lines * LINE_H + 2;
    let cell_w = w.max(64).max((longest * 8).min(240)) + 4;
    let cell_h = h + title_h + 4;
    let mut grid = RgbImage::from_pixel(cell_w * cols as u32, cell_h * rows as u32, Rgb([255, 255, 255]));
    for (i, (img, label)) in images.iter().zip(labels).enumerate() {
        let x0 = (i % cols) as u32 * cell_w + 2;
        let y0 = (i / cols) as u32 * cell_h + 2;
        for (k, line) in label.lines().enumerate() {
            draw_text(&mut grid, line, x0, y0 + k as u32 * LINE_H, cell_w - 4);
        }
        image::imageops::overlay(&mut grid, img, x0 as i64, (y0 + title_h) as i64);
    }
    grid
}

pub(crate) fn draw_text(img: &mut RgbImage, text: &str, x0: u32, y0: u32, max_w: u32) {
    draw_text_colored(img, text, x0, y0, max_w, Rgb([0, 0, 0]));
}

pub(crate) fn draw_text_colored(img: &mut RgbImage, text: &str, x0: u32, y0: u32, max_w: u32, color: Rgb<u8>) {
    use font8x8::UnicodeFonts;
    for (k, ch) in text.chars().enumerate() {
        let x = x0 + 8 * k as u32;
        if x + 8 > x0 + max_w {
            break;
        }
        let glyph = font8x8::BASIC_FONTS.get(ch).or_else(|| font8x8::BASIC_FONTS.get('?')).unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits >> col & 1 == 1 && x + col < img.width() && y0 + (row as u32) < img.height() {
                    img.put_pixel(x + col, y0 + row as u32, color);
                }
            }
        }
    }
}

/// The first `n` training samples after presizing and the full GPU augmentation, back as RGB8
/// images with their labels as words (what show_batch draws).
pub async fn augmented_samples(
    dls: &super::Datasets,
    aug: &crate::augment::AugConfig,
    n: usize,
    seed: u64,
    device: &burn::tensor::Device,
) -> Result<(Vec<RgbImage>, Vec<String>), String> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let order = super::shuffled(dls.train.len(), &mut rng);
    let samples: Vec<&super::Sample> = order.iter().take(n).map(|&i| &dls.train[i]).collect();
    let mut crop = || super::Crop::At(rng.random());
    let results = dls.presize_batch(&samples, &mut crop);
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for (r, s) in results.into_iter().zip(&samples) {
        if let Ok(px) = r {
            pixels.push(px);
            labels.push(dls.label_text(s));
        }
    }
    if pixels.is_empty() {
        return Err("none of the sampled images could be decoded: the dataset summary lists each file skipped and why".into());
    }
    let augs: Vec<_> = pixels.iter().map(|_| aug.draw(&mut rng)).collect();
    let x = crate::augment::to_tensor(&pixels, dls.config.presize as usize, device);
    let images = crate::augment::to_rgb8(crate::augment::augment_batch(x, &augs, aug.size)).await?;
    Ok((images, labels))
}
