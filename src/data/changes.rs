//! Label fixes a user decides on with the model's help (fastai's `ImageClassifierCleaner`):
//! relabel a file or take it out of the dataset. They change the dataset, never the user's
//! files, and travel as a CSV the page downloads and the CLI reads (`--changes FILE`).

use std::collections::{HashMap, HashSet};

use super::{Datasets, SkipReason, Skipped};

/// One decision about one file. `new_label: None` takes the file out of the dataset.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The file's name as the dataset lists it (its path, with `/`).
    pub file: String,
    /// Its label when the change was made: a change made on other data is refused.
    pub old_label: String,
    pub new_label: Option<String>,
}

const HEADER: [&str; 4] = ["file", "old_label", "action", "new_label"];

/// `changes` as CSV: `file,old_label,action,new_label`, one row a file, the action `relabel`
/// or `delete` (a deletion's new label is empty).
pub fn to_csv(changes: &[Change]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let row = |w: &mut csv::Writer<Vec<u8>>, r: [&str; 4]| w.write_record(r).expect("writing to memory");
    row(&mut w, HEADER);
    for c in changes {
        match &c.new_label {
            Some(l) => row(&mut w, [&c.file, &c.old_label, "relabel", l]),
            None => row(&mut w, [&c.file, &c.old_label, "delete", ""]),
        }
    }
    String::from_utf8(w.into_inner().expect("writing to memory")).expect("CSV of strings")
}

/// Reads what [`to_csv`] writes; an error names the line and what is wrong with it.
pub fn from_csv(text: &str) -> Result<Vec<Change>, String> {
    let mut r = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
    let header = r.headers().map_err(|e| format!("reading the changes: {e}"))?;
    if header.iter().map(str::trim).ne(HEADER) {
        return Err(format!("the changes file should start with the header {:?}, not {:?}", HEADER.join(","), header.iter().collect::<Vec<_>>().join(",")));
    }
    let mut out = Vec::new();
    for (i, record) in r.records().enumerate() {
        let line = i + 2;
        let rec = record.map_err(|e| format!("line {line} of the changes: {e}"))?;
        let (file, old_label, action, new_label) = (&rec[0], &rec[1], rec[2].trim(), &rec[3]);
        let new_label = match action {
            "relabel" if !new_label.is_empty() => Some(new_label.to_string()),
            "relabel" => return Err(format!("line {line} of the changes relabels {file:?} but gives no new label")),
            "delete" => None,
            other => return Err(format!("line {line} of the changes: the action {other:?} should be \"relabel\" or \"delete\"")),
        };
        out.push(Change { file: file.to_string(), old_label: old_label.to_string(), new_label });
    }
    Ok(out)
}

/// The dataset's name for a change's file (deleted files resolve to themselves).
fn found_name<'a>(file: &'a str, names: &'a HashMap<String, String>) -> &'a str {
    names.get(file).map(String::as_str).unwrap_or(file)
}

impl Datasets {
    /// Apply `changes`: relabelled files keep their split, deleted ones are listed as skipped
    /// (removed by you), and every other file stays as it was. All or nothing: an error names
    /// the file and leaves the dataset unchanged. A file is found by its name, or by its name
    /// without the first folder (the page names files from the folder it was given, the CLI
    /// from inside it).
    pub fn apply_changes(&mut self, changes: &[Change]) -> Result<(), String> {
        let index: HashMap<&str, (bool, usize)> = self
            .train
            .iter()
            .enumerate()
            .map(|(i, s)| (s.item.name.as_str(), (true, i)))
            .chain(self.valid.iter().enumerate().map(|(i, s)| (s.item.name.as_str(), (false, i))))
            .collect();
        let resolve = |file: &str| {
            let hit = index.get_key_value(file).or_else(|| file.split_once('/').and_then(|(_, rest)| index.get_key_value(rest)));
            hit.map(|(name, &at)| (name.to_string(), at))
        };
        // What each name given resolves to, for merging with the changes already applied.
        let names: HashMap<String, String> = self.changes.iter().chain(changes).filter_map(|c| Some((c.file.clone(), resolve(&c.file)?.0))).collect();
        let mut seen = HashSet::new();
        let mut planned = Vec::with_capacity(changes.len());
        for c in changes {
            let Some((_, (train, i))) = resolve(&c.file) else {
                return Err(format!("{:?} from the changes is not in this dataset: were the changes made on another folder, or was the file removed already?", c.file));
            };
            if !seen.insert((train, i)) {
                return Err(format!("{:?} is changed twice: keep one row for it", c.file));
            }
            let current = &self.label_text(&if train { &self.train } else { &self.valid }[i]);
            if *current != c.old_label {
                return Err(format!("{:?} is labelled {current:?} here, but the changes say {:?}: were they made with another labelling?", c.file, c.old_label));
            }
            let label = match &c.new_label {
                Some(l) => Some(self.classes.binary_search(l).map_err(|_| format!("{:?} cannot become {l:?}: the classes are {}", c.file, self.classes.join(", ")))?),
                None => None,
            };
            planned.push((train, i, label));
        }
        for (train, n, which) in [(true, self.train.len(), "training"), (false, self.valid.len(), "validation")] {
            if planned.iter().filter(|p| p.0 == train && p.2.is_none()).count() == n {
                return Err(format!("these changes delete every {which} image: keep some"));
            }
        }
        let mut deleted = HashSet::new();
        for (train, i, label) in planned {
            match label {
                Some(l) => (if train { &mut self.train } else { &mut self.valid })[i].labels = vec![l],
                None => _ = deleted.insert((train, i)),
            }
        }
        for (train, split) in [(true, &mut self.train), (false, &mut self.valid)] {
            let mut i = 0;
            split.retain(|s| {
                let gone = deleted.contains(&(train, i));
                if gone {
                    self.skipped.push(Skipped { name: s.item.name.clone(), reason: SkipReason::Removed });
                }
                i += 1;
                !gone
            });
        }
        // One entry a file: a file changed again keeps its first label, and one changed back
        // to it drops out.
        for c in changes {
            let name = found_name(&c.file, &names);
            match self.changes.iter().position(|p| found_name(&p.file, &names) == name) {
                Some(i) if c.new_label.as_ref() == Some(&self.changes[i].old_label) => _ = self.changes.remove(i),
                Some(i) => self.changes[i].new_label = c.new_label.clone(),
                None => self.changes.push(c.clone()),
            }
        }
        Ok(())
    }
}
