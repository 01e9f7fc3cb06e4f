//! Labelling rules: parent folder, a regex with one capture group on the file name, or a CSV
//! of file names and their labels (fastai's `ImageDataLoaders.from_csv`, several a photo).

use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;

/// How a file's class is found. fastai's pets default is `^(.+)_\d+\.jpe?g$` on the name.
#[derive(Clone, Debug)]
pub enum LabelRule {
    /// The name of the folder that holds the file (ignoring `train/` and `valid/` split folders).
    ParentFolder,
    /// The first capture group of a regex matched against the file name (not the path).
    FileNameRegex(Regex),
    /// Parent folder when the file sits in a class folder, else the regex on its name.
    Auto(Regex),
    /// Each file's labels from a CSV (any number a photo, none included).
    Csv(Arc<LabelsCsv>),
}

/// A labels CSV as fastai's chapter 6 reads it: a header, a file-name column, a column of
/// labels separated by spaces, and optionally an `is_valid` column (`True`/`False`, 1/0)
/// that gives the split.
#[derive(Clone, Debug, Default)]
pub struct LabelsCsv {
    /// File name (as written in the CSV) → (labels, is_valid).
    rows: HashMap<String, (Vec<String>, Option<bool>)>,
    /// Whether every row says whether it is in the validation set.
    pub has_split: bool,
}

impl LabelsCsv {
    /// Parses the CSV's text; every problem names its line and what to do.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
        let header: Vec<String> = reader.headers().map_err(|e| format!("the labels CSV cannot be read: {e}"))?.iter().map(|h| h.to_ascii_lowercase()).collect();
        let col = |names: &[&str]| header.iter().position(|h| names.contains(&h.as_str()));
        let file = col(&["fname", "file", "filename", "file_name", "name", "image", "image_id", "image_name", "path"]);
        let labels = col(&["labels", "label", "tags", "classes"]);
        let (Some(file), Some(labels)) = (file, labels) else {
            return Err(format!(
                "the labels CSV's first line must name its columns, with one for the file (fname) and one for its labels (labels), as fastai's from_csv reads them; it has {}",
                header.join(", ")
            ));
        };
        let valid = col(&["is_valid", "valid"]);
        let mut rows = HashMap::new();
        for (i, record) in reader.records().enumerate() {
            let line = i + 2;
            let record = record.map_err(|e| format!("line {line} of the labels CSV cannot be read: {e}"))?;
            let name = record.get(file).unwrap_or("").replace('\\', "/");
            if name.is_empty() {
                return Err(format!("line {line} of the labels CSV has no file name"));
            }
            let mut set: Vec<String> = record.get(labels).unwrap_or("").split_whitespace().map(str::to_string).collect();
            set.sort();
            set.dedup();
            let is_valid = match valid.map(|v| record.get(v).unwrap_or("").to_ascii_lowercase()) {
                None => None,
                Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => Some(true),
                Some(v) if matches!(v.as_str(), "false" | "0" | "no") => Some(false),
                Some(v) => return Err(format!("line {line} of the labels CSV: is_valid is {v:?}; write True or False")),
            };
            if rows.insert(name.clone(), (set, is_valid)).is_some() {
                return Err(format!("{name:?} appears twice in the labels CSV (line {line}): give each file one row, its labels separated by spaces"));
            }
        }
        if rows.is_empty() {
            return Err("the labels CSV has no rows: one line per photo, its file name and its labels".into());
        }
        let has_split = valid.is_some();
        Ok(Self { rows, has_split })
    }

    /// The row for a file at `path` (relative to the dataset root): the CSV may give the path
    /// or only its end (`000005.jpg` for `train/000005.jpg`), with or without the extension
    /// (planet's `train_0` for `train_0.jpg`, fastai's `suff`).
    fn row(&self, path: &str) -> Option<&(Vec<String>, Option<bool>)> {
        let parts: Vec<&str> = path.split('/').collect();
        let stem = |p: String| match p.rsplit_once('.') {
            Some((s, _)) if !s.is_empty() && !s.ends_with('/') => s.to_string(),
            _ => p,
        };
        (0..parts.len()).find_map(|i| self.rows.get(&parts[i..].join("/")).or_else(|| self.rows.get(&stem(parts[i..].join("/")))))
    }

    /// Whether the CSV puts the file at `path` in the validation set.
    pub fn is_valid(&self, path: &str) -> Option<bool> {
        self.row(path).and_then(|r| r.1)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

pub const PETS_PATTERN: &str = r"^(.+)_\d+\.(?i:jpe?g|png|webp|gif|bmp)$";

impl Default for LabelRule {
    fn default() -> Self {
        LabelRule::Auto(Regex::new(PETS_PATTERN).expect("valid pattern"))
    }
}

impl LabelRule {
    /// A regex rule; the pattern must have exactly one capture group.
    pub fn regex(pattern: &str) -> Result<Self, String> {
        let re = Regex::new(pattern).map_err(|e| format!("label pattern {pattern:?} is not a valid regex: {e}"))?;
        if re.captures_len() != 2 {
            return Err(format!(
                "label pattern {pattern:?} must have exactly one capture group (…) for the label; it has {}",
                re.captures_len() - 1
            ));
        }
        Ok(LabelRule::FileNameRegex(re))
    }

    pub fn describe(&self) -> String {
        match self {
            LabelRule::ParentFolder => "parent folder name".to_string(),
            LabelRule::FileNameRegex(re) => format!("regex {} on the file name", re.as_str()),
            LabelRule::Auto(re) => format!("parent folder, else regex {} on the file name", re.as_str()),
            LabelRule::Csv(csv) => format!("labels CSV ({} rows, several labels a photo)", csv.len()),
        }
    }

    /// A file's labels: one from a folder or regex, any number from a CSV.
    pub fn labels(&self, path: &str) -> Result<Vec<String>, String> {
        match self {
            LabelRule::Csv(csv) => csv.row(path).map(|r| r.0.clone()).ok_or_else(|| "not in the labels CSV: add a row for it".to_string()),
            rule => rule.label(path).map(|l| vec![l]),
        }
    }

    pub fn label(&self, path: &str) -> Result<String, String> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let file = parts.last().copied().unwrap_or("");
        let folder = parts[..parts.len().saturating_sub(1)]
            .iter()
            .rev()
            .find(|p| !is_split_folder(p))
            .copied();
        let by_regex = |re: &Regex| {
            re.captures(file)
                .and_then(|c| c.get(1))
                .map(|m| m.as_str().to_string())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("file name does not match {:?}", re.as_str()))
        };
        match self {
            LabelRule::ParentFolder => folder
                .map(str::to_string)
                .ok_or_else(|| "the file is not inside a class folder".to_string()),
            LabelRule::FileNameRegex(re) => by_regex(re),
            LabelRule::Auto(re) => match folder {
                Some(f) => Ok(f.to_string()),
                None => by_regex(re).map_err(|e| format!("not in a class folder, and the {e}")),
            },
            LabelRule::Csv(_) => {
                let labels = self.labels(path)?;
                if labels.len() == 1 { Ok(labels[0].clone()) } else { Err(format!("the labels CSV gives it {} labels", labels.len())) }
            }
        }
    }
}

pub(crate) fn is_split_folder(name: &str) -> bool {
    matches!(name, "train" | "valid")
}
