use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use kiln::data::{Crop, DataConfig, Datasets, Item, LabelRule, SkipReason, Splitter, decode_rgb8, presize};

use crate::common::{encode, gradient, png_item};

#[test]
fn labels_by_parent_folder_and_by_pets_regex() {
    let rule = LabelRule::default();
    assert_eq!(rule.label("cats/x.jpg").unwrap(), "cats");
    assert_eq!(rule.label("train/cats/x.jpg").unwrap(), "cats");
    assert_eq!(rule.label("Maine_Coon_157.jpg").unwrap(), "Maine_Coon");
    assert_eq!(rule.label("great_pyrenees_9.JPG").unwrap(), "great_pyrenees");
    assert!(rule.label("holiday.jpg").unwrap_err().contains("does not match"));
    let re = LabelRule::regex(r"^([a-z]+)-\d+\.png$").unwrap();
    assert_eq!(re.label("some/dir/cat-3.png").unwrap(), "cat");
    assert!(LabelRule::regex(r"^[a-z]+$").unwrap_err().contains("exactly one capture group"));
    assert!(LabelRule::regex(r"(").unwrap_err().contains("not a valid regex"));
}

#[test]
fn bad_files_are_listed_with_reasons_and_do_not_stop_loading() {
    let mut items: Vec<Item> = (0..10).map(|i| png_item(&format!("red/{i}.png"), [255, 0, 0])).collect();
    items.extend((0..10).map(|i| png_item(&format!("blue/{i}.png"), [0, 0, 255])));
    items.push(Item::new("red/empty.png", Vec::<u8>::new()));
    items.push(Item::new("blue/notes.txt", b"not an image".to_vec()));
    let mut truncated = encode(&DynamicImage::ImageRgb8(gradient(40, 40)), ImageFormat::Png);
    truncated.truncate(truncated.len() / 2);
    items.push(Item::new("blue/truncated.png", truncated));
    items.push(png_item("loose.png", [0, 255, 0]));
    items.push(Item::new("red/huge.png", encode(&DynamicImage::ImageRgb8(gradient(300, 300)), ImageFormat::Png)));
    let dls = Datasets::from_items(items, DataConfig::default().with_max_pixels(200 * 200)).unwrap();
    assert_eq!(dls.classes, vec!["blue", "red"]);
    assert_eq!(dls.train.len() + dls.valid.len(), 20, "the truncated PNG is found at load time, not trained on");
    let reasons: Vec<(&str, &SkipReason)> = dls.skipped.iter().map(|s| (s.name.as_str(), &s.reason)).collect();
    assert!(reasons.contains(&("red/empty.png", &SkipReason::Empty)));
    assert!(matches!(reasons.iter().find(|r| r.0 == "blue/notes.txt").unwrap().1, SkipReason::Undecodable(_)));
    assert!(matches!(reasons.iter().find(|r| r.0 == "loose.png").unwrap().1, SkipReason::NoLabel(_)));
    assert!(matches!(reasons.iter().find(|r| r.0 == "red/huge.png").unwrap().1, SkipReason::TooLarge(_)));
    let summary = dls.summary().to_string();
    assert!(summary.contains("red/huge.png: too large"), "{summary}");
    assert!(summary.contains("loose.png: no label"), "{summary}");
    assert!(matches!(reasons.iter().find(|r| r.0 == "blue/truncated.png").unwrap().1, SkipReason::Truncated(_)));
    assert!(summary.contains("blue/truncated.png: PNG cut short"), "{summary}");
    // Everything that loaded decodes.
    let all: Vec<&kiln::data::Sample> = dls.train.iter().chain(&dls.valid).collect();
    assert!(dls.presize_batch(&all, &mut || Crop::Centre).iter().all(|r| r.is_ok()));
}

/// fastai's verify_images: files cut short, damaged or in formats Kiln cannot read are named
/// with the reason before training, in every format, and complete files pass.
#[test]
fn verify_finds_truncated_corrupt_and_unsupported_files() {
    use kiln::data::{VerifyError, verify};
    let img = DynamicImage::ImageRgb8(gradient(64, 48));
    for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::WebP, ImageFormat::Gif, ImageFormat::Bmp] {
        let full = encode(&img, format);
        assert_eq!(verify(&full), Ok(()), "{format:?}");
        for cut in [full.len() / 3, full.len() * 2 / 3, full.len() - 1] {
            let e = verify(&full[..cut]).expect_err(&format!("{format:?} cut to {cut} of {} bytes passed", full.len()));
            assert!(matches!(e, VerifyError::Truncated { .. }), "{format:?} cut to {cut}: {e}");
            assert!(e.to_string().contains("cut short"), "{e}");
            // The decoder alone would have filled the rest in silently (JPEG) or refused it.
            assert!(decode_rgb8(&full[..cut], u64::MAX).is_err(), "{format:?}: decode_rgb8 verifies too");
        }
    }
    // A flipped bit inside PNG image data: the chunk's CRC no longer matches.
    let mut png = encode(&img, ImageFormat::Png);
    let mid = png.len() / 2;
    png[mid] ^= 0x10;
    assert!(matches!(verify(&png), Err(VerifyError::Corrupt { .. })), "{:?}", verify(&png));
    // Formats Kiln cannot read: named, with what to do.
    let heic = [&[0, 0, 0, 24][..], b"ftypheic", &[0; 12]].concat();
    let e = verify(&heic).unwrap_err().to_string();
    assert!(e.contains("HEIC") && e.contains("JPEG"), "{e}");
    assert!(verify(&[&[0, 0, 0, 28][..], b"ftypavif", &[0; 16]].concat()).unwrap_err().to_string().contains("AVIF"));
    assert!(verify(b"II*\0\x08\0\0\0").unwrap_err().to_string().contains("TIFF"));
    assert!(verify(b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>").unwrap_err().to_string().contains("SVG"));
    // In a dataset the reason reaches the summary.
    let mut cut_jpeg = encode(&img, ImageFormat::Jpeg);
    cut_jpeg.truncate(cut_jpeg.len() / 3);
    let mut items: Vec<Item> = (0..4).flat_map(|i| [png_item(&format!("a/{i}.png"), [9, 9, 9]), png_item(&format!("b/{i}.png"), [99, 9, 9])]).collect();
    items.push(Item::new("a/cut.jpg", cut_jpeg));
    items.push(Item::new("b/IMG_0001.HEIC", heic));
    let dls = Datasets::from_items(items, DataConfig::default()).unwrap();
    let summary = dls.summary().to_string();
    assert!(summary.contains("a/cut.jpg: JPEG cut short"), "{summary}");
    assert!(summary.contains("b/IMG_0001.HEIC: HEIC/HEIF"), "{summary}");
    assert_eq!(dls.train.len() + dls.valid.len(), 8);
}

/// A complete, valid PNG whose header claims 100,000 × 100,000 pixels: refused as too large
/// from its header, before any pixel buffer exists.
#[test]
fn decompression_bomb_headers_are_too_large() {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        c.extend_from_slice(&crc32fast::hash(&c[4..]).to_be_bytes());
        c
    };
    let mut ihdr = 100_000u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let bomb = [&b"\x89PNG\r\n\x1a\n"[..], &chunk(b"IHDR", &ihdr), &chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0, 0, 0, 0, 1]), &chunk(b"IEND", &[])].concat();
    assert_eq!(kiln::data::verify(&bomb), Ok(()));
    let mut items: Vec<Item> = (0..5).flat_map(|i| [png_item(&format!("a/{i}.png"), [1, 2, 3]), png_item(&format!("b/{i}.png"), [9, 2, 3])]).collect();
    items.push(Item::new("b/bomb.png", bomb));
    let dls = Datasets::from_items(items, DataConfig::default()).unwrap();
    let reason = &dls.skipped.iter().find(|s| s.name == "b/bomb.png").unwrap().reason;
    assert!(matches!(reason, SkipReason::TooLarge(_)), "{reason}");
}

/// Found by `scripts/fuzz.sh decode`: a 268-byte GIF whose header declares a 121×159 screen
/// but whose frame is far larger; decoding it allocated over 2 GiB. Now the decoder's
/// allocations are bounded by the pixel budget too, and the file is skipped as too large.
#[test]
fn gif_frame_larger_than_its_screen_is_refused_without_allocating_it() {
    let bomb = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/gif-frame-larger-than-screen.gif")).unwrap();
    let err = kiln::data::decode_rgb8(&bomb, 1 << 20).unwrap_err();
    assert!(matches!(err, kiln::data::DecodeError::TooLargeHeader(_)), "{err}");
    assert!(SkipReason::from(err).to_string().contains("too large"));
}

/// The bundled real photos (JPEG and PNG from scikit-image/scikit-learn) all pass: no false alarms.
#[test]
fn verify_passes_real_photos() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/photos");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("assets/photos: run scripts/fetch-assets.sh").flatten() {
        let p = entry.path();
        if p.extension().is_some_and(|x| x == "png" || x == "jpg") {
            assert_eq!(kiln::data::verify(&std::fs::read(&p).unwrap()), Ok(()), "{}", p.display());
            n += 1;
        }
    }
    assert!(n >= 10, "{n} photos");
}

#[test]
fn random_split_is_seeded_and_folder_split_wins() {
    let items = || (0..50).map(|i| png_item(&format!("{}/{i}.png", ["a", "b"][i % 2]), [i as u8, 0, 0])).collect::<Vec<_>>();
    let names = |d: &Datasets| d.valid.iter().map(|s| s.item.name.clone()).collect::<Vec<_>>();
    let a = Datasets::from_items(items(), DataConfig::default()).unwrap();
    let b = Datasets::from_items(items(), DataConfig::default()).unwrap();
    assert_eq!(a.valid.len(), 10);
    assert_eq!(names(&a), names(&b));
    let c = Datasets::from_items(items(), DataConfig::default().with_splitter(Splitter::Random { valid_pct: 0.2, seed: 7 })).unwrap();
    assert_ne!(names(&a), names(&c));

    let mut items = vec![png_item("train/a/1.png", [1, 0, 0]), png_item("train/b/2.png", [2, 0, 0])];
    items.push(png_item("valid/a/3.png", [3, 0, 0]));
    items.push(png_item("valid/b/4.png", [4, 0, 0]));
    items.push(png_item("test/a/5.png", [5, 0, 0]));
    let d = Datasets::from_items(items, DataConfig::default()).unwrap();
    assert_eq!(d.train.len(), 2);
    assert_eq!(names(&d), vec!["valid/a/3.png", "valid/b/4.png"]);
    assert_eq!(d.skipped.len(), 1, "test/ is listed, not silently dropped");
    assert_eq!(d.skipped[0].reason, SkipReason::OutsideSplit);
}

#[test]
fn no_usable_images_is_a_clear_error() {
    let err = Datasets::from_items(vec![Item::new("a/x.txt", b"hello".to_vec())], DataConfig::default()).unwrap_err();
    assert!(err.to_string().contains("1 undecodable"), "{err}");
    let err = Datasets::from_items(vec![png_item("a/1.png", [0; 3]), png_item("a/2.png", [0; 3])], DataConfig::default()).unwrap_err();
    assert!(err.to_string().contains("only one class"), "{err}");
}

#[test]
fn decodes_every_format_to_rgb8() {
    let img = DynamicImage::ImageRgb8(gradient(16, 12));
    for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::WebP, ImageFormat::Gif, ImageFormat::Bmp] {
        let rgb = decode_rgb8(&encode(&img, format), u64::MAX).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(rgb.dimensions(), (16, 12), "{format:?}");
        let p = rgb.get_pixel(15, 0);
        assert!(p[0] > 200 && p[1] < 60, "{format:?}: {p:?}");
    }
    // Grey, alpha and 16-bit inputs become RGB8.
    let grey = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(4, 4, image::Luma([200])));
    assert_eq!(decode_rgb8(&encode(&grey, ImageFormat::Png), u64::MAX).unwrap().get_pixel(0, 0).0, [200, 200, 200]);
    let rgba = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(4, 4, image::Rgba([10, 20, 30, 128])));
    assert_eq!(decode_rgb8(&encode(&rgba, ImageFormat::Png), u64::MAX).unwrap().get_pixel(0, 0).0, [10, 20, 30]);
    let deep = DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(4, 4, image::Rgb([65535u16, 0, 32896])));
    assert_eq!(decode_rgb8(&encode(&deep, ImageFormat::Png), u64::MAX).unwrap().get_pixel(0, 0).0, [255, 0, 128]);
}

#[test]
fn refuses_images_over_the_pixel_budget_before_decoding() {
    let bytes = encode(&DynamicImage::ImageRgb8(gradient(100, 100)), ImageFormat::Png);
    let err = decode_rgb8(&bytes, 9_999).unwrap_err().to_string();
    assert!(err.contains("10000 pixels") && err.contains("9999"), "{err}");
    assert!(decode_rgb8(&bytes, 10_000).is_ok());
}

/// A JPEG with an EXIF APP1 segment holding only the Orientation tag.
fn jpeg_with_orientation(img: &RgbImage, orientation: u16) -> Vec<u8> {
    let jpeg = encode(&DynamicImage::ImageRgb8(img.clone()), ImageFormat::Jpeg);
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08\x00\x01".to_vec();
    tiff.extend([0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01]);
    tiff.extend(orientation.to_be_bytes());
    tiff.extend([0, 0, 0, 0, 0, 0]);
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((app1.len() + 2) as u16).to_be_bytes());
    out.extend(app1);
    out.extend(&jpeg[2..]);
    out
}

#[test]
fn honours_exif_orientation() {
    // A wide image with a red left half: orientation 6 (rotate 90° clockwise) makes it tall
    // with the red half on top.
    let img = RgbImage::from_fn(40, 20, |x, _| if x < 20 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) });
    let rotated = decode_rgb8(&jpeg_with_orientation(&img, 6), u64::MAX).unwrap();
    assert_eq!(rotated.dimensions(), (20, 40));
    assert!(rotated.get_pixel(10, 5)[0] > 200, "top should be red");
    assert!(rotated.get_pixel(10, 35)[2] > 200, "bottom should be blue");
    let plain = decode_rgb8(&jpeg_with_orientation(&img, 1), u64::MAX).unwrap();
    assert_eq!(plain.dimensions(), (40, 20));
}

#[test]
fn presize_crops_a_square_centred_or_at_a_position() {
    let img = gradient(100, 50);
    let centre = presize(&img, 50, Crop::Centre);
    assert_eq!(centre.dimensions(), (50, 50));
    // Centre crop covers x in 25..75: its left edge has x ≈ 25.
    let left = centre.get_pixel(0, 0)[0] as i32;
    assert!((left - (25 * 255 / 99) as i32).abs() <= 2, "{left}");
    let start = presize(&img, 50, Crop::At(0.0));
    assert_eq!(start.get_pixel(0, 0)[0], 0);
    let end = presize(&img, 50, Crop::At(1.0));
    assert_eq!(end.get_pixel(49, 0)[0], 255);
    assert_eq!(presize(&img, 20, Crop::Centre).dimensions(), (20, 20));
}

#[test]
fn show_batch_draws_a_titled_grid() {
    let images = vec![RgbImage::from_pixel(32, 32, Rgb([255, 0, 0])); 5];
    let labels: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
    let grid = kiln::data::show_batch(&images, &labels, 3);
    let (w, h) = grid.dimensions();
    assert_eq!((w / 3, h / 2), (68, 48));
    // The title strip has dark text pixels; the image area is red.
    let dark = (2..14).flat_map(|y| (2..30).map(move |x| (x, y))).filter(|&(x, y)| grid.get_pixel(x, y)[0] < 50).count();
    assert!(dark > 5, "label text drawn");
    assert_eq!(grid.get_pixel(2, 14).0, [255, 0, 0]);
}

mod loader {
    use kiln::data::DataLoader;
    use rand::SeedableRng;

    #[test]
    fn epochs_drop_the_last_partial_batch_and_reshuffle() {
        let dl = DataLoader::new(4);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a = dl.epoch(10, &mut rng);
        assert_eq!(a.len(), 2, "10 items at batch 4: two full batches, the partial one dropped");
        assert!(a.iter().all(|b| b.len() == 4));
        let mut seen: Vec<usize> = a.concat();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 8, "no index twice in an epoch");
        assert_ne!(a, dl.epoch(10, &mut rng), "a fresh shuffle each epoch");
        // Fewer items than a batch: one batch of all of them.
        assert_eq!(DataLoader::new(64).epoch(5, &mut rng).iter().map(Vec::len).collect::<Vec<_>>(), vec![5]);
    }

    #[test]
    fn micro_batches_are_near_equal_and_never_a_single_image() {
        let batch: Vec<usize> = (0..64).collect();
        let dl = DataLoader::new(64).with_micro_batch(24);
        let parts = dl.micro_batches(&batch);
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), vec![22, 21, 21]);
        assert_eq!(parts.concat(), batch);
        assert_eq!(dl.accumulation_steps(), 3);
        // 9 at 8 a pass: 5 + 4, not 8 + 1.
        let nine: Vec<usize> = (0..9).collect();
        assert_eq!(DataLoader::new(9).with_micro_batch(8).micro_batches(&nine).iter().map(|p| p.len()).collect::<Vec<_>>(), vec![5, 4]);
        // Clamped to [2, batch size].
        assert_eq!(DataLoader::new(16).with_micro_batch(0).micro_batch, 2);
        assert_eq!(DataLoader::new(16).with_micro_batch(100).micro_batch, 16);
        assert_eq!(DataLoader::new(16).micro_batches(&batch[..16]).len(), 1);
    }
}

#[test]
fn one_folder_of_pets_style_names_is_labelled_by_file_name() {
    let pets = |names: &[&str]| -> Vec<Item> { names.iter().map(|n| png_item(&format!("pets/{n}"), [90, 60, 30])).collect() };
    let dls = Datasets::from_items(pets(&["Maine_Coon_1.png", "Maine_Coon_2.jpg", "Persian_1.png", "Persian_12.png", "Persian_3.png"]), DataConfig::default()).unwrap();
    assert_eq!(dls.classes, vec!["Maine_Coon", "Persian"]);
    let summary = dls.summary();
    assert!(summary.label_rule.contains("the file name") && summary.label_rule.contains("\"pets\""), "{}", summary.label_rule);
    // A folder whose files are not all named so is one class, and the message says what to do
    // without markup.
    let err = Datasets::from_items(pets(&["Maine_Coon_1.png", "Persian_1.png", "holiday.png"]), DataConfig::default()).unwrap_err().to_string();
    assert!(err.contains("only one class (\"pets\")") && err.contains("Maine_Coon_157.jpg") && !err.contains('`'), "{err}");
}

#[test]
fn a_class_without_training_or_validation_images_is_named_with_what_to_do() {
    let mut items: Vec<Item> = Vec::new();
    for (class, rgb) in [("red", [200, 0, 0]), ("blue", [0, 0, 200])] {
        items.extend((0..3).map(|i| png_item(&format!("train/{class}/{i}.png"), rgb)));
        items.push(png_item(&format!("valid/{class}/9.png"), rgb));
    }
    items.push(png_item("valid/kite/1.png", [0, 200, 0]));
    items.push(png_item("train/gull/1.png", [200, 200, 200]));
    items.push(png_item("train/gull/2.png", [210, 200, 200]));
    let dls = Datasets::from_items(items, DataConfig::default().with_presize(20)).unwrap();
    let warnings = dls.summary().warnings;
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings.iter().any(|w| w.starts_with("\"kite\" has no training images (1 image held out") && w.contains("lower the validation fraction")), "{warnings:?}");
    assert!(warnings.iter().any(|w| w.starts_with("\"gull\" has no validation images (2 images") && w.contains("raise the validation fraction")), "{warnings:?}");
    assert!(dls.summary().to_string().contains("Warning: \"kite\""));
    let err = dls.check_learnable().unwrap_err();
    assert!(err.contains("\"kite\" has no training images") && !err.contains("gull"), "{err}");
}

/// fastai's from_csv layout (PASCAL's train.csv): fname, space-separated labels, is_valid.
#[test]
fn a_labels_csv_gives_sets_of_labels_and_the_split() {
    use kiln::data::LabelsCsv;
    let csv = "fname,labels,is_valid\n\
               a.png,cat dog,False\n\
               b.png,dog,False\n\
               pics/c.png,,True\n\
               d.png,cat,True\n\
               e.png,dog cat cat,False\n";
    let items = vec![
        crate::common::png_item("photos/a.png", [200, 0, 0]),
        crate::common::png_item("photos/b.png", [0, 200, 0]),
        crate::common::png_item("photos/pics/c.png", [0, 0, 200]),
        crate::common::png_item("photos/d.png", [200, 200, 0]),
        crate::common::png_item("photos/e.png", [0, 200, 200]),
        crate::common::png_item("photos/f.png", [9, 9, 9]),
    ];
    let dls = Datasets::from_items(items, DataConfig::default().with_labels_csv(LabelsCsv::parse(csv).unwrap())).unwrap();
    assert!(dls.multi_label());
    assert_eq!(dls.classes, ["cat", "dog"]);
    let labels = |name: &str| dls.train.iter().chain(&dls.valid).find(|s| s.item.name.ends_with(name)).map(|s| dls.label_text(s)).unwrap();
    assert_eq!(labels("/a.png"), "cat dog");
    assert_eq!(labels("/e.png"), "cat dog", "repeated labels count once");
    assert_eq!(labels("/c.png"), "", "a row without labels is a photo of none of the classes");
    let names = |split: &[kiln::data::Sample]| split.iter().map(|s| s.item.name.rsplit('/').next().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(names(&dls.train), ["a.png", "b.png", "e.png"]);
    assert_eq!(names(&dls.valid), ["c.png", "d.png"]);
    let f = dls.skipped.iter().find(|s| s.name == "photos/f.png").expect("a photo the CSV does not list is skipped");
    assert!(f.reason.to_string().contains("not in the labels CSV"), "{}", f.reason);
    let summary = dls.summary();
    assert!(summary.multi_label && summary.unlabelled == 1);
    assert_eq!((summary.classes[0].train, summary.classes[1].train), (2, 3), "labels are counted, not photos");
    assert!(summary.to_string().contains("Several labels a photo (1 with none)"), "{summary}");

    // Problems name the line and what to do.
    let e = LabelsCsv::parse("file\na.png\n").unwrap_err();
    assert!(e.contains("first line") && e.contains("labels"), "{e}");
    let e = LabelsCsv::parse("fname,labels\na.png,cat\na.png,dog\n").unwrap_err();
    assert!(e.contains("\"a.png\" appears twice") && e.contains("line 3"), "{e}");
    let e = LabelsCsv::parse("fname,labels,is_valid\na.png,cat,maybe\n").unwrap_err();
    assert!(e.contains("line 2") && e.contains("True or False"), "{e}");
    // Without is_valid the usual random split applies.
    let no_split = LabelsCsv::parse("fname,labels\na.png,cat\n").unwrap();
    assert!(!no_split.has_split);
    // planet's layout: image_name without the extension, tags.
    let planet = LabelsCsv::parse("image_name,tags\ntrain_0,haze primary\ntrain_1,clear\n").unwrap();
    let rule = kiln::data::LabelRule::Csv(std::sync::Arc::new(planet));
    assert_eq!(rule.labels("photos/train_0.jpg").unwrap(), ["haze", "primary"]);
    assert_eq!(rule.labels("train_1.png").unwrap(), ["clear"]);
    assert!(rule.labels("train_2.jpg").is_err());
}

/// Dragging the same photo into two class folders gives it both labels when several labels a
/// photo are allowed; otherwise it stays two photos of one class each.
#[test]
fn the_same_photo_in_two_class_folders_is_one_multi_label_photo() {
    let mut items = Vec::new();
    for i in 0..6 {
        items.push(crate::common::png_item(&format!("cat/{i}.png"), [200, i as u8, 0]));
        items.push(crate::common::png_item(&format!("dog/{}.png", i + 10), [0, i as u8, 200]));
    }
    items.push(crate::common::png_item("cat/both.png", [90, 90, 90]));
    items.push(crate::common::png_item("dog/both.png", [90, 90, 90]));
    // Same name, other bytes: two photos.
    items.push(crate::common::png_item("cat/same-name.png", [1, 2, 3]));
    items.push(crate::common::png_item("dog/same-name.png", [3, 2, 1]));
    let config = DataConfig::default().with_splitter(kiln::Splitter::Random { valid_pct: 0.25, seed: 1 });
    let single = Datasets::from_items(items.clone(), config.clone()).unwrap();
    assert_eq!(single.train.len() + single.valid.len(), 16);
    assert!(!single.multi_label());
    let multi = Datasets::from_items(items, config.with_multi_label(true)).unwrap();
    assert_eq!(multi.train.len() + multi.valid.len(), 15);
    let both = multi.train.iter().chain(&multi.valid).find(|s| s.item.name.ends_with("both.png")).unwrap();
    assert_eq!(both.labels, [0, 1]);
    assert_eq!(multi.train.iter().chain(&multi.valid).filter(|s| s.item.name.ends_with("same-name.png")).count(), 2);
}
