//! A dataset edited in place, as Teachable Machine's samples are: files added to it (a class
//! more, or more photos of one), a class renamed or removed. Files already there keep their
//! label and split and are not read again.

use std::collections::HashSet;

use super::{Datasets, Item, SkipReason, Skipped};

/// What [`Datasets::add_items`] did with the files it was given.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Added {
    pub train: usize,
    pub valid: usize,
    /// Classes the dataset did not have before.
    pub new_classes: Vec<String>,
    /// The files left out, each with its reason (also in the summary's skipped list).
    pub skipped: Vec<Skipped>,
}

impl Datasets {
    /// Add files: labelled by the dataset's rule, checked as at load time, and split among
    /// themselves with its validation fraction and seed (or by train/ and valid/ folders). A
    /// file whose name the dataset already holds is skipped as a duplicate.
    pub fn add_items(&mut self, items: Vec<Item>) -> Added {
        // The dataset's names, then each new one as it comes.
        let mut seen: HashSet<String> = self.train.iter().chain(&self.valid).map(|s| s.item.name.clone()).collect();
        let mut added = Added::default();
        let mut labelled = Vec::new();
        for item in items {
            if !seen.insert(item.name.clone()) {
                added.skipped.push(Skipped { name: item.name, reason: SkipReason::Duplicate });
                continue;
            }
            match super::check_item(&item, &self.config) {
                Err(reason) => added.skipped.push(Skipped { name: item.name, reason }),
                Ok(label) => labelled.push((item, label)),
            }
        }
        let names: Vec<String> = self.classes.iter().cloned().chain(labelled.iter().flat_map(|(_, l)| l.iter().cloned())).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        added.new_classes = names.iter().filter(|c| self.classes.binary_search(c).is_err()).cloned().collect();
        self.relabel_classes(names);
        let samples = labelled.into_iter().map(|(item, l)| super::Sample { labels: l.iter().map(|l| self.classes.binary_search(l).expect("class added above")).collect(), item }).collect();
        let (train, valid, unused, _) = self.config.splitter.split(samples);
        added.skipped.extend(unused.into_iter().map(|s| Skipped { name: s.item.name, reason: SkipReason::OutsideSplit }));
        (added.train, added.valid) = (train.len(), valid.len());
        self.train.extend(train);
        self.valid.extend(valid);
        self.skipped.extend(added.skipped.iter().cloned());
        added
    }

    /// Rename class `from` to `to` (a name the dataset does not use yet).
    pub fn rename_class(&mut self, from: &str, to: &str) -> Result<(), String> {
        let to = to.trim();
        if to.is_empty() || to.contains('/') {
            return Err(format!("{to:?} cannot name a class: give a name without a slash"));
        }
        if self.classes.iter().any(|c| c == to) {
            return Err(format!("there is a class {to:?} already: move {from:?}'s photos into it instead, or pick another name"));
        }
        let i = self.class_index(from)?;
        self.classes[i] = to.to_string();
        let mut names = self.classes.clone();
        names.sort();
        self.relabel_classes(names);
        Ok(())
    }

    /// Take class `name` and its files out of the dataset (two classes at least stay).
    pub fn remove_class(&mut self, name: &str) -> Result<(), String> {
        let i = self.class_index(name)?;
        if self.classes.len() <= 2 {
            return Err(format!("cannot remove {name:?}: a classifier needs at least two classes"));
        }
        // A photo stays if it has another label (multi-label) or keeps counting as "none".
        let stays = |s: &super::Sample| s.labels != [i];
        let (train_left, valid_left) = (self.train.iter().any(stays), self.valid.iter().any(stays));
        if !train_left || !valid_left {
            return Err(format!("cannot remove {name:?}: no {} images would be left", if train_left { "validation" } else { "training" }));
        }
        for split in [&mut self.train, &mut self.valid] {
            for s in split.extract_if(.., |s| s.labels == [i]) {
                self.skipped.push(Skipped { name: s.item.name, reason: SkipReason::Removed });
            }
            for s in split.iter_mut() {
                s.labels.retain(|&l| l != i);
            }
        }
        let mut names = self.classes.clone();
        names.remove(i);
        self.relabel_classes(names);
        Ok(())
    }

    fn class_index(&self, name: &str) -> Result<usize, String> {
        self.classes.iter().position(|c| c == name).ok_or_else(|| format!("there is no class {name:?}: the classes are {}", self.classes.join(", ")))
    }

    /// Switch to the sorted class list `names` (a superset of the names in use), keeping
    /// every sample's class.
    fn relabel_classes(&mut self, names: Vec<String>) {
        let old = std::mem::replace(&mut self.classes, names);
        for s in self.train.iter_mut().chain(self.valid.iter_mut()) {
            for l in &mut s.labels {
                *l = self.classes.binary_search(&old[*l]).expect("names in use are kept");
            }
            s.labels.sort();
        }
    }
}
