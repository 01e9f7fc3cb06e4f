//! The dataset settings a user chooses, as the CLI's flags and the page's options give them:
//! checked here once, for both, before a [`DataConfig`] is built.

use super::{DataConfig, LabelRule, LabelsCsv, Splitter};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DataOptions {
    /// Label by this regex (one capture group) on the file name instead of by folder.
    pub label_regex: Option<String>,
    /// Fraction of images held out for validation (ignored when train/ and valid/ folders exist).
    pub valid_pct: f64,
    /// Seed of the random split.
    pub seed: u64,
    /// Side of the square presize crop (fastai's `Resize(460)`).
    pub presize: u32,
    /// Refuse images with more pixels than this (decompression bombs).
    pub max_pixels: u64,
    /// Several labels a photo: the same photo in several class folders gets all their labels.
    pub multi_label: bool,
    /// The text of a labels CSV (file name, space-separated labels, optionally is_valid), as
    /// fastai's `from_csv` reads it; implies `multi_label`.
    pub labels_csv: Option<String>,
}

impl Default for DataOptions {
    fn default() -> Self {
        let d = DataConfig::default();
        Self { label_regex: None, valid_pct: 0.2, seed: 42, presize: d.presize, max_pixels: d.max_pixels, multi_label: false, labels_csv: None }
    }
}

impl DataOptions {
    /// The option names, as the page's options object spells them.
    pub const KEYS: &'static [&'static str] = &["labelRegex", "validPct", "seed", "presize", "maxPixels", "multiLabel", "labelsCsv"];

    /// The pipeline's settings, or a sentence naming the value that is out of range.
    pub fn config(&self) -> Result<DataConfig, String> {
        if !(0.0..1.0).contains(&self.valid_pct) {
            return Err(format!("the validation fraction {} must be at least 0 and less than 1 (0.2 holds out a fifth)", self.valid_pct));
        }
        if !(8..=2048).contains(&self.presize) {
            return Err(format!("the presize {} must be between 8 and 2048 pixels (fastai's default is 460)", self.presize));
        }
        if self.max_pixels == 0 {
            return Err("the pixel limit must be above 0".into());
        }
        let mut config = DataConfig::default()
            .with_splitter(Splitter::Auto { valid_pct: self.valid_pct, seed: self.seed })
            .with_presize(self.presize)
            .with_max_pixels(self.max_pixels)
            .with_multi_label(self.multi_label);
        match (self.label_regex.as_deref().filter(|r| !r.is_empty()), self.labels_csv.as_deref()) {
            (Some(_), Some(_)) => return Err("give either a label pattern or a labels CSV, not both".into()),
            (Some(re), None) => config = config.with_label_rule(LabelRule::regex(re)?),
            (None, Some(csv)) => config = config.with_labels_csv(LabelsCsv::parse(csv)?),
            (None, None) => {}
        }
        Ok(config)
    }
}
