//! Data: items → labels → split → decoded, presized pixels (fastai's DataBlock).
//!
//! A dataset starts as a list of `(name, bytes)` items, so files read from disk by the CLI and
//! `File`s dropped into a page go through the same code.

mod changes;
mod decode;
mod edit;
mod label;
mod loader;
mod options;
mod presize;
pub(crate) mod show_batch;
mod split;
mod verify;

pub use changes::{Change, from_csv as changes_from_csv, to_csv as changes_to_csv};
pub use decode::{DecodeError, decode_rgb8};
pub use edit::Added;
pub use label::{LabelRule, LabelsCsv};
pub use loader::DataLoader;
pub use options::DataOptions;
pub use presize::{Crop, presize};
pub use show_batch::{augmented_samples, show_batch};
pub use split::Splitter;
pub use verify::{VerifyError, verify};

use std::collections::BTreeMap;
use std::sync::Arc;

/// One input file: its path relative to the dataset root (with `/` separators) and its bytes.
#[derive(Clone, Debug)]
pub struct Item {
    pub name: String,
    pub bytes: Arc<[u8]>,
}

impl Item {
    pub fn new(name: impl Into<String>, bytes: impl Into<Arc<[u8]>>) -> Self {
        Self { name: name.into().replace('\\', "/"), bytes: bytes.into() }
    }
}

/// Why a file is not in the dataset.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum SkipReason {
    Empty,
    NoLabel(String),
    Undecodable(String),
    /// Cut short (a partial download or copy).
    Truncated(String),
    /// Damaged inside (bad checksums, broken structure).
    Corrupt(String),
    /// A format Kiln cannot read (HEIC, AVIF, TIFF, SVG…), with what to do.
    Unsupported(String),
    TooLarge(String),
    OutsideSplit,
    /// Taken out by the user's changes (the cleaner, or `--changes`).
    Removed,
    /// Added to a dataset that already holds a file of that name.
    Duplicate,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Empty => write!(f, "empty file"),
            SkipReason::NoLabel(why) => write!(f, "no label: {why}"),
            SkipReason::Undecodable(why) => write!(f, "undecodable: {why}"),
            SkipReason::Truncated(why) | SkipReason::Corrupt(why) | SkipReason::Unsupported(why) => write!(f, "{why}"),
            SkipReason::TooLarge(why) => write!(f, "too large: {why}"),
            SkipReason::OutsideSplit => write!(f, "outside the train/ and valid/ folders"),
            SkipReason::Removed => write!(f, "removed by your changes"),
            SkipReason::Duplicate => write!(f, "already in the dataset (a file of the same name)"),
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub name: String,
    pub reason: SkipReason,
}

/// Settings of the data pipeline (fastai's DataBlock + item_tfms).
#[derive(Clone, Debug)]
pub struct DataConfig {
    pub label_rule: LabelRule,
    pub splitter: Splitter,
    /// Side of the square presize crop (fastai's `Resize(460)`).
    pub presize: u32,
    /// Images with more pixels than this are refused before decoding (decompression bombs).
    pub max_pixels: u64,
    /// Several labels a photo (fastai's MultiCategoryBlock): the same photo in two class
    /// folders is one sample with both labels, and a labels CSV may give any number.
    pub multi_label: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            label_rule: LabelRule::default(),
            splitter: Splitter::default(),
            presize: 460,
            max_pixels: 64_000_000,
            multi_label: false,
        }
    }
}

impl DataConfig {
    pub fn with_label_rule(mut self, rule: LabelRule) -> Self {
        self.label_rule = rule;
        self
    }
    pub fn with_splitter(mut self, splitter: Splitter) -> Self {
        self.splitter = splitter;
        self
    }
    pub fn with_presize(mut self, presize: u32) -> Self {
        self.presize = presize;
        self
    }
    pub fn with_max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = max_pixels;
        self
    }
    pub fn with_multi_label(mut self, multi_label: bool) -> Self {
        self.multi_label = multi_label;
        self
    }
    /// Labels from a CSV: several a photo, and the split from its `is_valid` column if any.
    pub fn with_labels_csv(mut self, csv: LabelsCsv) -> Self {
        let csv = Arc::new(csv);
        if csv.has_split {
            self.splitter = Splitter::Csv(csv.clone());
        }
        self.label_rule = LabelRule::Csv(csv);
        self.multi_label = true;
        self
    }
}

/// A labelled sample: the compressed bytes are kept and decoded lazily per batch, so memory
/// stays at the size of the files plus one batch of presized pixels.
#[derive(Clone, Debug)]
pub struct Sample {
    pub item: Item,
    /// Its classes, sorted: exactly one in a single-label dataset, any number (none
    /// included) in a multi-label one.
    pub labels: Vec<usize>,
}

impl Sample {
    pub fn new(item: Item, label: usize) -> Self {
        Self { item, labels: vec![label] }
    }
    /// The class of a single-label dataset's sample (a multi-label one's first, or 0).
    pub fn label(&self) -> usize {
        self.labels.first().copied().unwrap_or(0)
    }
}

/// The labelled, split dataset (fastai's `Datasets`/`DataLoaders` pair, minus batching).
#[derive(Clone, Debug)]
pub struct Datasets {
    pub classes: Vec<String>,
    pub train: Vec<Sample>,
    pub valid: Vec<Sample>,
    pub skipped: Vec<Skipped>,
    pub config: DataConfig,
    /// How labels were assigned, in words (for `summary`).
    pub label_rule_used: String,
    /// How the split was made, in words (for `summary`).
    pub split_used: String,
    /// The relabels and deletions applied so far ([`Datasets::apply_changes`]).
    pub changes: Vec<Change>,
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("no images could be loaded from {total} file(s); skipped: {detail}")]
    NoImages { total: usize, detail: String },
    #[error("only one class ({0:?}) was found; a classifier needs at least two. Put each class's images in a folder named after it, or name the files after their class like Maine_Coon_157.jpg")]
    OneClass(String),
    #[error("the training split is empty: add images, lower the validation fraction, or add a train/ folder")]
    EmptyTrain,
    #[error("the validation split is empty: add images, raise the validation fraction above 0, or add a valid/ folder")]
    EmptyValid,
}

impl Datasets {
    /// Whether photos have sets of labels (any number) rather than one class each.
    pub fn multi_label(&self) -> bool {
        self.config.multi_label
    }

    /// A sample's labels as words: its class, or a multi-label set separated by spaces
    /// (fastai's label_delim), "" for none.
    pub fn label_text(&self, s: &Sample) -> String {
        s.labels.iter().map(|&l| self.classes[l].as_str()).collect::<Vec<_>>().join(" ")
    }

    /// Label, check and split `items`. Every file ends up either in a split or in `skipped`
    /// with its reason; a bad file never stops the others from loading.
    pub fn from_items(items: Vec<Item>, mut config: DataConfig) -> Result<Self, DataError> {
        let total = items.len();
        let mut skipped = Vec::new();
        let mut labelled: Vec<(Item, Vec<String>)> = Vec::new();
        for item in items {
            match check_item(&item, &config) {
                Ok(labels) => labelled.push((item, labels)),
                Err(reason) => skipped.push(Skipped { name: item.name, reason }),
            }
        }
        if config.multi_label {
            labelled = merge_copies(labelled);
        }
        if labelled.is_empty() {
            let mut detail: BTreeMap<String, usize> = BTreeMap::new();
            for s in &skipped {
                let key = match &s.reason {
                    SkipReason::Empty => "empty",
                    SkipReason::NoLabel(_) => "no label",
                    SkipReason::Undecodable(_) => "undecodable",
                    SkipReason::Truncated(_) => "truncated",
                    SkipReason::Corrupt(_) => "corrupt",
                    SkipReason::Unsupported(_) => "in an unsupported format",
                    SkipReason::TooLarge(_) => "too large",
                    SkipReason::OutsideSplit => "outside split",
                    SkipReason::Removed => "removed",
                    SkipReason::Duplicate => "duplicate",
                };
                *detail.entry(key.to_string()).or_default() += 1;
            }
            let detail = if detail.is_empty() {
                "nothing (the folder has no files)".to_string()
            } else {
                detail.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
            };
            return Err(DataError::NoImages { total, detail });
        }
        let mut label_rule_used = config.label_rule.describe();
        let distinct = |labelled: &[(Item, Vec<String>)]| -> Vec<String> {
            let set: std::collections::BTreeSet<&str> = labelled.iter().flat_map(|(_, l)| l.iter().map(String::as_str)).collect();
            set.into_iter().map(str::to_string).collect()
        };
        let mut classes = distinct(&labelled);
        // One folder of files named like Maine_Coon_157.jpg: the folder is where they were
        // kept, not their class, so the automatic rule reads the names as it does for loose files.
        if let (1, LabelRule::Auto(re), false) = (classes.len(), &config.label_rule, config.multi_label) {
            let by_name = LabelRule::FileNameRegex(re.clone());
            if let Ok(names) = labelled.iter().map(|(item, _)| by_name.labels(&item.name)).collect::<Result<Vec<_>, _>>() {
                let relabelled: Vec<(Item, Vec<String>)> = labelled.iter().map(|(item, _)| item.clone()).zip(names).collect();
                let by_name_classes = distinct(&relabelled);
                if by_name_classes.len() >= 2 {
                    label_rule_used = format!("{} (the files share one folder, {:?})", by_name.describe(), classes[0]);
                    (labelled, classes) = (relabelled, by_name_classes);
                    // Files added later are labelled the same way.
                    config.label_rule = by_name;
                }
            }
        }
        if classes.len() < 2 {
            return Err(DataError::OneClass(classes.first().cloned().unwrap_or_default()));
        }
        let samples: Vec<Sample> = labelled
            .into_iter()
            .map(|(item, l)| Sample { labels: l.iter().map(|l| classes.binary_search(l).expect("class list built from labels")).collect(), item })
            .collect();
        let (train, valid, unused, split_used) = config.splitter.split(samples);
        skipped.extend(unused.into_iter().map(|s| Skipped { name: s.item.name, reason: SkipReason::OutsideSplit }));
        if train.is_empty() {
            return Err(DataError::EmptyTrain);
        }
        if valid.is_empty() {
            return Err(DataError::EmptyValid);
        }
        Ok(Self {
            label_rule_used,
            split_used,
            classes,
            train,
            valid,
            skipped,
            config,
            changes: Vec::new(),
        })
    }

    /// Counts per class and split, the label rule, and every skipped file with its reason.
    pub fn summary(&self) -> Summary {
        let count = |samples: &[Sample]| {
            let mut c = vec![0usize; self.classes.len()];
            for &l in samples.iter().flat_map(|s| &s.labels) {
                c[l] += 1;
            }
            c
        };
        let (train, valid) = (count(&self.train), count(&self.valid));
        let mut examples = vec![Vec::new(); self.classes.len()];
        for s in self.train.iter().chain(&self.valid) {
            for &l in &s.labels {
                if examples[l].len() < 4 {
                    examples[l].push(s.item.name.clone());
                }
            }
        }
        Summary {
            classes: self
                .classes
                .iter()
                .enumerate()
                .map(|(i, name)| ClassCount { name: name.clone(), train: train[i], valid: valid[i], examples: std::mem::take(&mut examples[i]) })
                .collect(),
            n_train: self.train.len(),
            n_valid: self.valid.len(),
            label_rule: self.label_rule_used.clone(),
            split: self.split_used.clone(),
            skipped: self.skipped.clone(),
            warnings: self.warnings(&train, &valid),
            changes: self.changes.len(),
            multi_label: self.multi_label(),
            unlabelled: self.train.iter().chain(&self.valid).filter(|s| s.labels.is_empty()).count(),
        }
    }

    /// Classes the model cannot learn (no training image) or whose accuracy cannot be measured
    /// (no validation image), each as a sentence naming the class and what to do.
    fn warnings(&self, train: &[usize], valid: &[usize]) -> Vec<String> {
        let mut out = Vec::new();
        for (i, name) in self.classes.iter().enumerate() {
            let total = train[i] + valid[i];
            if train[i] == 0 {
                out.push(format!(
                    "{name:?} has no training images ({} held out for validation), so the model cannot learn it: add more images of {name:?}, or lower the validation fraction",
                    images(total)
                ));
            } else if valid[i] == 0 {
                out.push(format!(
                    "{name:?} has no validation images ({} all used for training), so its accuracy is not measured: add more images of {name:?}, or raise the validation fraction",
                    images(total)
                ));
            }
        }
        out
    }

    /// Refuses training when a class has no training image, naming the classes.
    pub fn check_learnable(&self) -> Result<(), String> {
        let mut counts = vec![0usize; self.classes.len()];
        for &l in self.train.iter().flat_map(|s| &s.labels) {
            counts[l] += 1;
        }
        let missing: Vec<String> = self.classes.iter().zip(&counts).filter(|(_, n)| **n == 0).map(|(c, _)| format!("{c:?}")).collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(format!(
            "cannot train: {} {} no training images, so the model could not learn {}. Add more images of {}, or lower the validation fraction",
            missing.join(", "),
            if missing.len() == 1 { "has" } else { "have" },
            if missing.len() == 1 { "it" } else { "them" },
            if missing.len() == 1 { "it" } else { "each" },
        ))
    }

    /// Decode and presize one batch of samples (CPU item transforms). Undecodable files found
    /// here (past the header check) come back as `Err` entries so the caller can drop them.
    pub fn presize_batch(&self, samples: &[&Sample], crop: &mut dyn FnMut() -> Crop) -> Vec<Result<Vec<u8>, Skipped>> {
        let size = self.config.presize;
        let max_pixels = self.config.max_pixels;
        let crops: Vec<Crop> = samples.iter().map(|_| crop()).collect();
        let work = |(s, c): (&&Sample, &Crop)| -> Result<Vec<u8>, Skipped> {
            decode_rgb8(&s.item.bytes, max_pixels)
                .map(|img| presize(&img, size, *c).into_raw())
                .map_err(|e| Skipped { name: s.item.name.clone(), reason: e.into() })
        };
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            samples.par_iter().zip(crops.par_iter()).map(work).collect()
        }
        #[cfg(not(feature = "rayon"))]
        {
            samples.iter().zip(crops.iter()).map(work).collect()
        }
    }
}

/// A file's labels, or why it cannot be in the dataset: the header checks only (cheap), as
/// full decoding happens per batch.
fn check_item(item: &Item, config: &DataConfig) -> Result<Vec<String>, SkipReason> {
    if item.bytes.is_empty() {
        return Err(SkipReason::Empty);
    }
    decode::check_header(&item.bytes, config.max_pixels)?;
    config.label_rule.labels(&item.name).map_err(SkipReason::NoLabel)
}

/// The same photo (file name and bytes) in several class folders, as one sample with every
/// folder's label: how a multi-label dataset is made by dragging folders.
fn merge_copies(labelled: Vec<(Item, Vec<String>)>) -> Vec<(Item, Vec<String>)> {
    let mut at: std::collections::HashMap<(String, u32, usize), usize> = Default::default();
    let mut out: Vec<(Item, Vec<String>)> = Vec::with_capacity(labelled.len());
    for (item, labels) in labelled {
        let base = item.name.rsplit('/').next().unwrap_or("").to_string();
        let key = (base, crc32fast::hash(&item.bytes), item.bytes.len());
        match at.get(&key) {
            Some(&i) if out[i].0.bytes == item.bytes => out[i].1.extend(labels),
            _ => {
                at.insert(key, out.len());
                out.push((item, labels));
            }
        }
    }
    for (_, labels) in &mut out {
        labels.sort();
        labels.dedup();
    }
    out
}

/// Shuffle indices with the given RNG (fastai shuffles the training set every epoch).
pub fn shuffled(n: usize, rng: &mut impl rand::Rng) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    use rand::seq::SliceRandom;
    idx.shuffle(rng);
    idx
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassCount {
    pub name: String,
    pub train: usize,
    pub valid: usize,
    /// A few file names of this class (for a gallery).
    pub examples: Vec<String>,
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub classes: Vec<ClassCount>,
    pub n_train: usize,
    pub n_valid: usize,
    pub label_rule: String,
    pub split: String,
    pub skipped: Vec<Skipped>,
    /// Classes that cannot be learned or measured, as sentences to show the user.
    pub warnings: Vec<String>,
    /// How many of the user's changes (relabels and deletions) are applied.
    pub changes: usize,
    /// Photos have sets of labels (a labels CSV, or one photo in several class folders).
    pub multi_label: bool,
    /// Photos with no label at all (multi-label datasets only): examples of "none of these".
    pub unlabelled: usize,
}

/// "1 image", "2 images".
pub fn images(n: usize) -> String {
    if n == 1 { "1 image".into() } else { format!("{n} images") }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Labels: {}", self.label_rule)?;
        writeln!(f, "Split:  {}", self.split)?;
        writeln!(f, "{} classes, {} training and {} validation images", self.classes.len(), self.n_train, self.n_valid)?;
        if self.multi_label {
            writeln!(f, "Several labels a photo ({} with none); the counts below are of labels", self.unlabelled)?;
        }
        if self.changes > 0 {
            writeln!(f, "Changes: {} of yours applied (relabelled or removed files)", self.changes)?;
        }
        let w = self.classes.iter().map(|c| c.name.len()).max().unwrap_or(5).max(5);
        writeln!(f, "  {:<w$}  {:>7}  {:>7}", "class", "train", "valid")?;
        for c in &self.classes {
            writeln!(f, "  {:<w$}  {:>7}  {:>7}", c.name, c.train, c.valid)?;
        }
        for w in &self.warnings {
            writeln!(f, "Warning: {w}")?;
        }
        if self.skipped.is_empty() {
            writeln!(f, "Skipped: none")?;
        } else {
            writeln!(f, "Skipped {} file(s):", self.skipped.len())?;
            for s in &self.skipped {
                writeln!(f, "  {}: {}", s.name, s.reason)?;
            }
        }
        Ok(())
    }
}
