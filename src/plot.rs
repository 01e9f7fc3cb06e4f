//! PNG plots for the CLI: the LR finder curve on a log axis with its suggestions, and the
//! confusion matrix as a heat map. Drawn with the 8×8 bitmap font used by show_batch (the page
//! draws the same data with uPlot and HTML).

use image::{Rgb, RgbImage};

use crate::data::show_batch::draw_text_colored;
use crate::learner::LrFind;

const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
const GREY: Rgb<u8> = Rgb([200, 200, 200]);

fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), color: Rgb<u8>) {
    let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        let (x, y) = (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
        if x >= 0.0 && y >= 0.0 && (x as u32) < img.width() && (y as u32) < img.height() {
            img.put_pixel(x as u32, y as u32, color);
        }
    }
}

fn rect(img: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, color: Rgb<u8>) {
    for yy in y..(y + h).min(img.height()) {
        for xx in x..(x + w).min(img.width()) {
            img.put_pixel(xx, yy, color);
        }
    }
}

fn text(img: &mut RgbImage, s: &str, x: u32, y: u32, color: Rgb<u8>) {
    let w = img.width().saturating_sub(x);
    draw_text_colored(img, s, x, y, w, color);
}

/// Loss against learning rate (log axis), each suggestion marked and named in a legend.
pub fn lr_find_plot(r: &LrFind) -> RgbImage {
    let (w, h) = (720u32, 440u32);
    let (left, right, top, bottom) = (64.0, 16.0, 24.0, 48.0);
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    text(&mut img, "lr_find: smoothed loss vs learning rate (log scale)", 64, 6, BLACK);
    if r.lrs.len() < 2 {
        text(&mut img, "too few points recorded", 200, 200, BLACK);
        return img;
    }
    let finite: Vec<f64> = r.losses.iter().copied().filter(|v| v.is_finite()).collect();
    let (lo_x, hi_x) = (r.lrs[0].log10(), r.lrs[r.lrs.len() - 1].log10());
    let lo_y = finite.iter().copied().fold(f64::INFINITY, f64::min);
    // fastai's plot stops at the divergence; clip the top to keep the valley readable.
    let hi_y = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max).min(lo_y + 3.0 * (finite[0] - lo_y).abs().max(1e-3));
    let (pw, ph) = (w as f64 - left - right, h as f64 - top - bottom);
    let px = |lr: f64| left + (lr.log10() - lo_x) / (hi_x - lo_x).max(1e-12) * pw;
    let py = |loss: f64| top + (1.0 - ((loss.min(hi_y) - lo_y) / (hi_y - lo_y).max(1e-12))) * ph;
    // Axes, decade ticks and labels.
    line(&mut img, (left, top), (left, top + ph), BLACK);
    line(&mut img, (left, top + ph), (left + pw, top + ph), BLACK);
    for d in (lo_x.ceil() as i32)..=(hi_x.floor() as i32) {
        let x = px(10f64.powi(d));
        line(&mut img, (x, top), (x, top + ph), GREY);
        text(&mut img, &format!("1e{d}"), (x - 12.0).max(0.0) as u32, (top + ph + 6.0) as u32, BLACK);
    }
    for k in 0..=4 {
        let v = lo_y + (hi_y - lo_y) * k as f64 / 4.0;
        let y = py(v);
        line(&mut img, (left - 4.0, y), (left, y), BLACK);
        text(&mut img, &format!("{v:.2}"), 4, (y - 4.0).max(0.0) as u32, BLACK);
    }
    text(&mut img, "learning rate", (left + pw / 2.0 - 52.0) as u32, h - 16, BLACK);
    for i in 1..r.lrs.len() {
        if r.losses[i].is_finite() && r.losses[i - 1].is_finite() {
            line(&mut img, (px(r.lrs[i - 1]), py(r.losses[i - 1])), (px(r.lrs[i]), py(r.losses[i])), Rgb([30, 90, 200]));
        }
    }
    if let Some(s) = &r.suggestions {
        let marks = [
            ("minimum", s.minimum, Rgb([200, 30, 30])),
            ("steep", s.steep, Rgb([30, 150, 30])),
            ("valley", s.valley, Rgb([220, 120, 0])),
            ("slide", s.slide, Rgb([140, 30, 180])),
        ];
        for (k, (name, sug, color)) in marks.into_iter().enumerate() {
            let (x, y) = (px(sug.point.0), py(sug.point.1));
            rect(&mut img, (x - 3.0).max(0.0) as u32, (y - 3.0).max(0.0) as u32, 7, 7, color);
            let ly = top as u32 + 6 + 12 * k as u32;
            rect(&mut img, w - 200, ly, 8, 8, color);
            text(&mut img, &format!("{name} {:.2e}", sug.lr), w - 186, ly, BLACK);
        }
    }
    img
}

/// Rows actual, columns predicted; darker blue = more items; the count in every cell.
pub fn confusion_plot(classes: &[String], m: &[Vec<usize>]) -> RgbImage {
    let k = classes.len() as u32;
    let label_w = classes.iter().map(|c| c.chars().count()).max().unwrap_or(1).min(20) as u32 * 8 + 8;
    let cell = 36u32.max(8 * m.iter().flatten().max().map(|v| v.to_string().len()).unwrap_or(1) as u32 + 8);
    let (x0, y0) = (label_w + 16, label_w + 24);
    let mut img = RgbImage::from_pixel(x0 + k * cell + 8, y0 + k * cell + 8, Rgb([255, 255, 255]));
    text(&mut img, "actual (rows) / predicted (columns)", 4, 4, BLACK);
    let max = m.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    for (a, row) in m.iter().enumerate() {
        let name: String = classes[a].chars().take(20).collect();
        text(&mut img, &name, 8, y0 + a as u32 * cell + cell / 2 - 4, BLACK);
        // Column labels, written bottom-up.
        let cx = x0 + a as u32 * cell + cell / 2 - 4;
        for (i, ch) in name.chars().rev().enumerate() {
            text(&mut img, &ch.to_string(), cx, y0 - 12 - 8 * i as u32, BLACK);
        }
        for (p, &v) in row.iter().enumerate() {
            let t = v as f64 / max;
            let shade = Rgb([(247.0 - 239.0 * t) as u8, (251.0 - 203.0 * t) as u8, (255.0 - 148.0 * t) as u8]);
            let (cx, cy) = (x0 + p as u32 * cell, y0 + a as u32 * cell);
            rect(&mut img, cx, cy, cell - 1, cell - 1, shade);
            let s = v.to_string();
            let color = if t > 0.5 { Rgb([255, 255, 255]) } else { BLACK };
            text(&mut img, &s, cx + cell / 2 - 4 * s.len() as u32, cy + cell / 2 - 4, color);
        }
    }
    img
}
