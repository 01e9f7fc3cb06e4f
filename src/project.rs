//! A Kiln project: everything needed to carry on where a session stopped. One zip file
//! (`.kilnproj`, entries stored: photos and models do not compress) holding
//! - `kiln-project.json`, the [`Manifest`]: how the dataset was built (the files as they were
//!   given, the labelling and split options, then every edit since: label changes, added
//!   photos, renamed and removed classes), the page's Settings and charts;
//! - `photos/NAME`: each file as its original bytes, bad ones included (so the summary, with
//!   its skipped files, comes back the same);
//! - `model.kiln`: the trained model, with its epoch table, when there is one.
//!
//! The page and the CLI read and write the same files: replaying the recipe gives the same
//! dataset, split included, in either. The zip's CRC-32s catch a changed byte.

use std::collections::HashSet;
use std::io::{Read, Seek, Write};

use serde::{Deserialize, Serialize};

use crate::data::{Change, DataOptions, Datasets, Item};

pub const MANIFEST: &str = "kiln-project.json";
pub const MODEL: &str = "model.kiln";
pub const PHOTOS: &str = "photos/";
const KIND: &str = "kiln-project";
/// 1: the first format.
pub const FORMAT: u32 = 1;

/// One edit of the dataset after it was built, in the order made (the page's JS API spells
/// them `{changes}`, `{add}`, `{rename: [from, to]}`, `{removeClass}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Edit {
    /// Relabelled or deleted files (the cleaner's decisions).
    Changes(Vec<Change>),
    /// Photos added to the dataset, by name (their bytes are under `photos/`).
    Add(Vec<String>),
    Rename(String, String),
    RemoveClass(String),
}

/// How to build the dataset again: the files first given, the options, then the edits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipe {
    pub options: DataOptions,
    pub files: Vec<String>,
    #[serde(default)]
    pub edits: Vec<Edit>,
}

/// The project's `kiln-project.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub kind: String,
    pub format: u32,
    pub dataset: Recipe,
    /// Whether `model.kiln` is in the project.
    #[serde(default)]
    pub model: bool,
    /// The page's Settings, by field (what the CLI knows of them it fills in).
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// The page's training charts, kept as the page wrote them.
    #[serde(default)]
    pub charts: serde_json::Value,
    /// Which Kiln wrote it ("kiln 0.1.0 (page)", "kiln 0.1.0 (cli)").
    #[serde(default)]
    pub saved_by: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("this is not a Kiln project ({0}): open a .kilnproj file saved by Kiln's page or `kiln --save-project`")]
    Foreign(String),
    #[error("the project is damaged ({0}): nothing was changed; open another copy if you have one")]
    Damaged(String),
    #[error("the project was saved by a newer Kiln (format {0}, this one reads up to {FORMAT}): update Kiln to open it")]
    Newer(u32),
    #[error("{0}")]
    Data(String),
}

impl Manifest {
    pub fn new(dataset: Recipe, model: bool, saved_by: impl Into<String>) -> Self {
        Self { kind: KIND.into(), format: FORMAT, dataset, model, settings: Default::default(), charts: serde_json::Value::Null, saved_by: saved_by.into() }
    }

    /// Every photo name the project holds: the files first given, then each added one.
    pub fn photo_names(&self) -> impl Iterator<Item = &str> {
        let added = self.dataset.edits.iter().flat_map(|e| match e {
            Edit::Add(names) => names.as_slice(),
            _ => &[],
        });
        self.dataset.files.iter().chain(added).map(String::as_str)
    }

    /// Read and check a manifest: a Kiln project of a format this Kiln reads, with options in
    /// range and every photo named once.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ProjectError> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| ProjectError::Damaged(format!("{MANIFEST}: {e}")))?;
        if value.get("kind").and_then(|k| k.as_str()) != Some(KIND) {
            return Err(ProjectError::Foreign(format!("{MANIFEST} does not say kind \"{KIND}\"")));
        }
        let m: Manifest = serde_json::from_value(value).map_err(|e| ProjectError::Damaged(format!("{MANIFEST}: {e}")))?;
        if m.format > FORMAT {
            return Err(ProjectError::Newer(m.format));
        }
        m.dataset.options.config().map_err(|e| ProjectError::Damaged(format!("its dataset options: {e}")))?;
        let mut seen = HashSet::new();
        for name in m.photo_names() {
            if name.is_empty() || name.starts_with('/') || name.split('/').any(|p| p == "..") {
                return Err(ProjectError::Damaged(format!("the photo name {name:?} is not a relative path")));
            }
            if !seen.insert(name) {
                return Err(ProjectError::Damaged(format!("the photo {name:?} is listed twice")));
            }
        }
        Ok(m)
    }

    /// The dataset the recipe builds, reading each photo's bytes with `photo(name)`.
    pub fn datasets(&self, photo: &mut dyn FnMut(&str) -> Result<Vec<u8>, ProjectError>) -> Result<Datasets, ProjectError> {
        let recipe = &self.dataset;
        let config = recipe.options.config().map_err(ProjectError::Data)?;
        let items = recipe.files.iter().map(|n| Ok(Item::new(n.clone(), photo(n)?))).collect::<Result<Vec<_>, ProjectError>>()?;
        let mut dls = Datasets::from_items(items, config).map_err(|e| ProjectError::Data(e.to_string()))?;
        for (i, edit) in recipe.edits.iter().enumerate() {
            let step = |e: String| ProjectError::Data(format!("edit {} of the project ({edit:?}) no longer applies: {e}", i + 1));
            match edit {
                Edit::Changes(changes) => dls.apply_changes(changes).map_err(step)?,
                Edit::Add(names) => {
                    let items = names.iter().map(|n| Ok(Item::new(n.clone(), photo(n)?))).collect::<Result<Vec<_>, ProjectError>>()?;
                    dls.add_items(items);
                }
                Edit::Rename(from, to) => dls.rename_class(from, to).map_err(step)?,
                Edit::RemoveClass(name) => dls.remove_class(name).map_err(step)?,
            }
        }
        Ok(dls)
    }
}

/// A project opened for reading: its manifest, and its photos and model read on demand.
pub struct ProjectFile<R: Read + Seek> {
    pub manifest: Manifest,
    zip: zip::ZipArchive<R>,
}

impl<R: Read + Seek> ProjectFile<R> {
    pub fn open(reader: R) -> Result<Self, ProjectError> {
        let mut zip = zip::ZipArchive::new(reader).map_err(|e| match e {
            zip::result::ZipError::InvalidArchive(_) => ProjectError::Foreign(format!("not a zip file, or one cut short: {e}")),
            e => ProjectError::Damaged(e.to_string()),
        })?;
        let bytes = read_entry(&mut zip, MANIFEST).map_err(|e| match e {
            ProjectError::Damaged(why) if zip.index_for_name(MANIFEST).is_none() => ProjectError::Foreign(why),
            e => e,
        })?;
        let manifest = Manifest::from_json(&bytes)?;
        Ok(Self { manifest, zip })
    }

    /// A photo's bytes, checked against the zip's CRC-32.
    pub fn photo(&mut self, name: &str) -> Result<Vec<u8>, ProjectError> {
        read_entry(&mut self.zip, &format!("{PHOTOS}{name}"))
    }

    /// The dataset, built again from the recipe.
    pub fn datasets(&mut self) -> Result<Datasets, ProjectError> {
        let manifest = self.manifest.clone();
        manifest.datasets(&mut |name| self.photo(name))
    }

    /// The trained model's `.kiln` bytes, if the project has one.
    pub fn model(&mut self) -> Result<Option<Vec<u8>>, ProjectError> {
        if !self.manifest.model {
            return Ok(None);
        }
        read_entry(&mut self.zip, MODEL).map(Some)
    }
}

fn read_entry<R: Read + Seek>(zip: &mut zip::ZipArchive<R>, name: &str) -> Result<Vec<u8>, ProjectError> {
    let mut entry = zip.by_name(name).map_err(|e| ProjectError::Damaged(format!("{name}: {e}")))?;
    let mut bytes = Vec::with_capacity(entry.size().min(1 << 30) as usize);
    // Reading to the end checks the entry's CRC-32.
    entry.read_to_end(&mut bytes).map_err(|e| ProjectError::Damaged(format!("{name}: {e}")))?;
    Ok(bytes)
}

/// Write a project: the manifest, then each photo (`photo(name)` gives its bytes), then the
/// model. Entries are stored (no compression), one at a time.
pub fn write<W: Write + Seek>(
    out: W,
    manifest: &Manifest,
    photo: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
    model: Option<&[u8]>,
) -> Result<W, String> {
    let mut zip = zip::ZipWriter::new(out);
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    // Zip64 fields only where an entry needs them: every reader takes plain entries.
    let opts = |len: usize| stored.large_file(len as u64 >= u32::MAX as u64);
    let fail = |e: zip::result::ZipError| format!("writing the project: {e}");
    let json = serde_json::to_vec_pretty(manifest).map_err(|e| e.to_string())?;
    zip.start_file(MANIFEST, opts(json.len())).map_err(fail)?;
    zip.write_all(&json).map_err(|e| e.to_string())?;
    for name in manifest.photo_names() {
        let bytes = photo(name)?;
        zip.start_file(format!("{PHOTOS}{name}"), opts(bytes.len())).map_err(fail)?;
        zip.write_all(&bytes).map_err(|e| e.to_string())?;
    }
    if manifest.model != model.is_some() {
        return Err("the manifest and the model disagree on whether there is a model".into());
    }
    if let Some(model) = model {
        zip.start_file(MODEL, opts(model.len())).map_err(fail)?;
        zip.write_all(model).map_err(|e| e.to_string())?;
    }
    zip.finish().map_err(fail)
}
