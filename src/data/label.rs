//! Labelling rules: parent folder, or a regex with one capture group on the file name.

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
        }
    }
}

pub(crate) fn is_split_folder(name: &str) -> bool {
    matches!(name, "train" | "valid")
}
