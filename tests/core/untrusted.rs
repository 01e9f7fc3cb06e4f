//! Every reader of bytes a user hands Kiln, fed thousands of damaged variants of real inputs:
//! each must answer with an error or a value, never a panic. The mutations are seeded, so a
//! failure repeats; the input that broke a reader is written to the target directory.
//! (Coverage-guided fuzzing of the same readers, for long runs: `bash scripts/fuzz.sh 600`.)

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use image::{DynamicImage, ImageFormat};
use kiln::{Item, LabelRule};
use kiln::data::{Crop, decode_rgb8, presize, verify};
use kiln::learner::{Learner, LearnerConfig};
use kiln::model::{Arch, ClassifierConfig, ResNetConfig};
use kiln::pretrained::Checkpoint;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::{cpu, encode, gradient};

/// How many damaged variants each reader gets (KILN_UNTRUSTED_ITERS scales a longer run).
fn iters(base: usize) -> usize {
    let scale = std::env::var("KILN_UNTRUSTED_ITERS").ok().and_then(|s| s.parse::<usize>().ok()).unwrap_or(1);
    base * scale.max(1)
}

/// Values that sit on the edges parsers get wrong: zero, one, sign bits, all ones.
const EDGES: [u32; 8] = [0, 1, 0x7f, 0x80, 0xff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];

/// One damaged copy of `seed`: a few of libFuzzer's own mutations (bit flips, edge values over
/// bytes and 32-bit fields, a chunk inserted, deleted or copied elsewhere, the end cut off).
/// `window` limits where bytes change (a header, say), so the rest still parses.
fn mutate(seed: &[u8], window: usize, rng: &mut StdRng) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let limit = b.len().min(window).max(1);
        let at = rng.random_range(0..limit);
        match rng.random_range(0..7) {
            0 if !b.is_empty() => b[at] ^= 1 << rng.random_range(0..8),
            1 if !b.is_empty() => b[at] = EDGES[rng.random_range(0..EDGES.len())] as u8,
            2 if b.len() >= at + 4 => b[at..at + 4].copy_from_slice(&EDGES[rng.random_range(0..EDGES.len())].to_le_bytes()),
            3 => {
                let n = rng.random_range(1..=16);
                let fill: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                b.splice(at.min(b.len())..at.min(b.len()), fill);
            }
            4 if !b.is_empty() => {
                let end = (at + rng.random_range(1..=64)).min(b.len());
                b.drain(at.min(end)..end);
            }
            5 if b.len() > 8 => {
                let (from, n) = (rng.random_range(0..b.len() - 4), rng.random_range(1..=4));
                let chunk = b[from..from + n].to_vec();
                let to = at.min(b.len() - n);
                b[to..to + n].copy_from_slice(&chunk);
            }
            _ => b.truncate(rng.random_range(0..=b.len())),
        }
    }
    b
}

/// Runs `read` on `n` damaged copies of every seed; a panic fails the test with the input kept.
fn survive(name: &str, seeds: &[Vec<u8>], window: usize, n: usize, read: impl Fn(&[u8])) {
    let mut rng = StdRng::seed_from_u64(0x6b696c6e);
    for i in 0..n {
        let seed = &seeds[i % seeds.len()];
        let input = if i < seeds.len() { seed.clone() } else { mutate(seed, window, &mut rng) };
        if catch_unwind(AssertUnwindSafe(|| read(&input))).is_err() {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("untrusted");
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{name}-{i}.bin"));
            std::fs::write(&path, &input).unwrap();
            panic!("the {name} reader panicked on damaged input #{i} (kept at {}): it must return an error", path.display());
        }
    }
}

fn photo_heads() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/photos");
    ["chelsea.png", "rocket.jpg"]
        .iter()
        .map(|p| std::fs::read(dir.join(p)).unwrap_or_else(|e| panic!("{p}: {e}; run `bash scripts/fetch-assets.sh`")))
        .collect()
}

#[test]
fn dropped_images_are_verified_decoded_and_presized_or_refused() {
    let img = DynamicImage::ImageRgb8(gradient(23, 17));
    let mut seeds: Vec<Vec<u8>> = [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Gif, ImageFormat::Bmp, ImageFormat::WebP]
        .into_iter()
        .map(|f| encode(&img, f))
        .collect();
    seeds.extend(photo_heads());
    survive("image", &seeds, 4096, iters(3000), |bytes| {
        let _ = verify(bytes);
        if let Ok(img) = decode_rgb8(bytes, 1 << 20) {
            assert_eq!(presize(&img, 24, Crop::Centre).dimensions(), (24, 24));
        }
    });
}

#[test]
fn label_rules_take_any_pattern_and_path() {
    let seeds: Vec<Vec<u8>> = ["^(.+)_\\d+\\.jpg$\nimages/Maine_Coon_157.jpg", "(\\w+)\ntrain/cats/x.png", "(?P<c>[a-z]+)-\\d\nx/dog-1.jpg"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    survive("label", &seeds, 64, iters(5000), |bytes| {
        let text = String::from_utf8_lossy(bytes);
        let (pattern, path) = text.split_once('\n').unwrap_or((&text, "a/b.jpg"));
        let _ = LabelRule::ParentFolder.label(path);
        if let Ok(rule) = LabelRule::regex(pattern) {
            let _ = rule.label(path);
        }
    });
}

#[test]
fn changes_files_are_read_or_refused_by_line() {
    let seeds = vec![
        b"file,old_label,action,new_label\ncat/1.png,cat,relabel,dog\ndog/2.png,dog,delete,\n".to_vec(),
        b"file,old_label,action,new_label\n\"a,b.png\",x,relabel,\"y\"\"z\"\n".to_vec(),
    ];
    survive("changes", &seeds, 256, iters(5000), |bytes| {
        let _ = kiln::data::changes_from_csv(&String::from_utf8_lossy(bytes));
    });
}

/// Headers and pickles of PyTorch checkpoints (zip and legacy) and safetensors, with their
/// tensor data intact behind them, so damage reaches the parsers rather than the first check.
#[test]
fn pretrained_checkpoints_load_or_name_what_is_wrong() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("untrusted");
    std::fs::create_dir_all(&dir).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_checkpoint.py");
    let seeds: Vec<Vec<u8>> = ["legacy", "safetensors", "zip"]
        .iter()
        .map(|format| {
            let out = dir.join(format!("resnet18.{format}"));
            let ok = std::process::Command::new("python3").arg(&script).arg(&out).args(["--format", format]).status().expect("python3 runs");
            assert!(ok.success(), "the fixture script failed for {format}");
            std::fs::read(out).unwrap()
        })
        .collect();
    survive("checkpoint", &seeds, 16 << 10, iters(300), |bytes| {
        if let Ok(ckpt) = Checkpoint::from_bytes(bytes) {
            let _ = ckpt.infer_arch();
        }
    });
}

/// `.kiln` models: the CRC is recomputed after each mutation (as the cargo-fuzz target does), so
/// damage reaches the JSON header and the weights reader behind the checksum.
#[test]
fn kiln_files_load_or_are_refused() {
    let classes: Vec<String> = ["a", "b"].iter().map(|c| c.to_string()).collect();
    let config = LearnerConfig::new(ClassifierConfig::new(Arch::Custom(ResNetConfig::tiny()), 2), 16).with_batch_size(2);
    let learner = Learner::new(config, classes, 16, &cpu()).unwrap();
    let seed = pollster::block_on(kiln::export::to_bytes(&learner)).unwrap();
    let device = cpu();
    survive("kiln", &[seed], 2048, iters(1500), |bytes| {
        let mut bytes = bytes.to_vec();
        if bytes.len() >= 16 && &bytes[..4] == b"KILN" && bytes[4..8] == 3u32.to_le_bytes() {
            let crc = crc32fast::hash(&bytes[16..]);
            bytes[12..16].copy_from_slice(&crc.to_le_bytes());
        }
        if kiln::export::read_header(&bytes).is_ok() {
            let _ = kiln::export::from_bytes(&bytes, &device);
            let _ = kiln::export::backbone_from_bytes(&bytes, &device);
        }
    });
}

/// Projects (`.kilnproj`): the zip directory, the manifest and the photos behind it.
#[test]
fn projects_open_or_are_refused() {
    let photos: Vec<Item> = (0..4).map(|i| crate::common::png_item(&format!("{}/{i}.png", ["cat", "dog"][i % 2]), [60 * i as u8, 20, 20])).collect();
    let recipe = kiln::project::Recipe { options: Default::default(), files: photos.iter().map(|i| i.name.clone()).collect(), edits: vec![kiln::project::Edit::Rename("cat".into(), "kitten".into())] };
    let manifest = kiln::project::Manifest::new(recipe, false, "test");
    let seed = kiln::project::write(std::io::Cursor::new(Vec::new()), &manifest, &mut |n| Ok(photos.iter().find(|i| i.name == n).unwrap().bytes.to_vec()), None).unwrap().into_inner();
    survive("project", &[seed], 1 << 20, iters(1500), |bytes| {
        if let Ok(mut p) = kiln::project::ProjectFile::open(std::io::Cursor::new(bytes.to_vec())) {
            let _ = p.datasets();
            let _ = p.model();
        }
    });
}
