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

/// The default wgpu device (lavapipe in CI). burn registers one wgpu runtime per process, so
/// the first test to ask initialises it and the others reuse it.
pub fn wgpu() -> burn::tensor::Device {
    use burn::tensor::Device;
    static INIT: std::sync::Mutex<Option<Device>> = std::sync::Mutex::new(None);
    let mut d = INIT.lock().unwrap_or_else(|e| e.into_inner());
    d.get_or_insert_with(|| Device::wgpu_options().init().expect("a wgpu adapter (install mesa-vulkan-drivers for lavapipe)")).clone()
}

/// A checkpoint written by tests/fixtures/torch_checkpoint.py (stdlib Python) with `args`,
/// made once per script version and shared by every test that asks for the same one (the
/// pure-Python writer takes seconds per ResNet).
pub fn torch_checkpoint(args: &[&str]) -> Vec<u8> {
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_checkpoint.py");
    let version = crc32fast::hash(&std::fs::read(&script).unwrap());
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("checkpoints-{version:08x}"));
    let out = dir.join(args.join("_").replace("--", ""));
    let _one_at_a_time = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    if !out.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = out.with_extension("partial");
        let status = std::process::Command::new("python3").arg(&script).arg(&tmp).args(args).status().expect("python3 runs");
        assert!(status.success(), "the fixture script failed for {args:?}");
        std::fs::rename(&tmp, &out).unwrap();
    }
    std::fs::read(out).unwrap()
}
