//! The data commands: a dataset folder read and labelled, the sample sets written, and a
//! batch of augmented images shown.

use std::path::Path;

use kiln::augment::AugConfig;
use kiln::data::{Datasets, Item, augmented_samples, show_batch};
use kiln::device::{DeviceChoice, select_native};

use super::args::DataArgs;
use super::project::{self, Source};

/// The labelled, split dataset in `data.dir` (a folder, or a project's recipe).
/// With `--changes`, the cleaner's relabels and deletions applied (all or none).
pub fn load(data: &DataArgs) -> Result<Datasets, String> {
    Ok(load_source(data)?.0)
}

/// The dataset, and where its photos came from (for `--save-project`).
pub fn load_source(data: &DataArgs) -> Result<(Datasets, Source), String> {
    let changes = match &data.changes {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            kiln::data::changes_from_csv(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => Vec::new(),
    };
    let (mut dls, source) = if project::is_project(&data.dir) {
        // The project's own labelling and split options: it builds the dataset it saved.
        let (dls, manifest) = project::datasets(&data.dir)?;
        (dls, Source::Project { path: data.dir.clone(), manifest, changes: changes.clone() })
    } else {
        let options = data.options()?;
        let items = read_items(&data.dir)?;
        let config = match (&data.labels_csv, options.config()) {
            (Some(csv), Err(e)) => return Err(format!("{}: {e}", csv.display())),
            (_, config) => config?,
        };
        let dls = Datasets::from_items(items.clone(), config).map_err(|e| format!("{}: {e}", data.dir.display()))?;
        (dls, Source::Folder { items, options, changes: changes.clone() })
    };
    if let Some(path) = &data.changes {
        dls.apply_changes(&changes).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok((dls, source))
}

/// Photos in a folder as (class named after the file, bytes), skipping non-images.
pub fn read_photos(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut photos = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        if !matches!(ext.as_str(), "png" | "jpg" | "jpeg" | "webp") {
            continue;
        }
        let class = path.file_stem().unwrap().to_string_lossy().replace('_', "-");
        photos.push((class, std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?));
    }
    if photos.is_empty() {
        return Err(format!("no photos (.png, .jpg, .webp) in {}", dir.display()));
    }
    Ok(photos)
}

fn read_items(dir: &Path) -> Result<Vec<Item>, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a folder: give a folder of images (one sub-folder per class, or pets-style file names), or a Kiln project (.kilnproj)", dir.display()));
    }
    let mut items = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?;
        if !entry.file_type().is_file() || entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path()).to_string_lossy().to_string();
        let bytes = std::fs::read(entry.path()).map_err(|e| format!("reading {}: {e}", entry.path().display()))?;
        items.push(Item::new(rel, bytes));
    }
    Ok(items)
}

/// The digits sample set, or crops of the photos in `photos` (one class each), as PNG files.
pub fn samples(output: &Path, side: u32, photos: Option<&Path>, crops_per_cell: usize) -> Result<(), String> {
    let (items, what) = match photos {
        None => (kiln::samples::digits_items(side), "the digits sample set (1,797 images, 10 classes)".to_string()),
        Some(dir) => {
            let photos = read_photos(dir)?;
            let n = photos.len();
            let items = kiln::samples::photo_crops(&photos, crops_per_cell, side, 42)?;
            let what = format!("{} crops of {n} photos (one class each; train/ and valid/ from separate grid cells)", items.len());
            (items, what)
        }
    };
    for item in items {
        let path = output.join(&item.name);
        std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| format!("creating {}: {e}", path.display()))?;
        std::fs::write(&path, &item.bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    println!("wrote {what} to {}", output.display());
    Ok(())
}

/// fastai's show_batch: `n` augmented training images with their labels, as one grid.
pub fn show(data: &DataArgs, output: &Path, size: usize, n: usize, no_flip: bool, device: DeviceChoice) -> Result<(), String> {
    let dls = load(data)?;
    let dev = select_native(device)?;
    let aug = AugConfig::new(size).with_do_flip(!no_flip);
    let (images, labels) = pollster::block_on(augmented_samples(&dls, &aug, n, data.seed, &dev.device)).map_err(|e| e.to_string())?;
    show_batch(&images, &labels, (n as f64).sqrt().ceil() as usize)
        .save(output)
        .map_err(|e| format!("writing {}: {e}", output.display()))?;
    println!("saved {} augmented images to {}", images.len(), output.display());
    Ok(())
}
