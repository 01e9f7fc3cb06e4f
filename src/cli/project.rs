//! Kiln projects on the command line (the format: [`kiln::project`]): a `.kilnproj` given
//! where a folder of photos or a model goes, and `--save-project` after training.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use kiln::data::{Change, DataOptions, Datasets, Item};
use kiln::learner::{Learner, LearnerOptions};
use kiln::project::{Edit, Manifest, ProjectFile, Recipe};

/// Where a run's photos came from, so `--save-project` can write them again.
pub enum Source {
    Folder { items: Vec<Item>, options: DataOptions, changes: Vec<Change> },
    Project { path: PathBuf, manifest: Manifest, changes: Vec<Change> },
}

impl Source {
    /// The labelling and split options the dataset was built with.
    pub fn options(&self) -> &DataOptions {
        match self {
            Source::Folder { options, .. } => options,
            Source::Project { manifest, .. } => &manifest.dataset.options,
        }
    }
}

/// Whether `path` is a project (a zip) rather than a folder or a `.kiln` model.
pub fn is_project(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    path.is_file() && File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"PK\x03\x04"
}

pub fn open(path: &Path) -> Result<ProjectFile<BufReader<File>>, String> {
    let file = File::open(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    ProjectFile::open(BufReader::new(file)).map_err(|e| format!("{}: {e}", path.display()))
}

/// The project's dataset, built again from its recipe.
pub fn datasets(path: &Path) -> Result<(Datasets, Manifest), String> {
    let mut project = open(path)?;
    let dls = project.datasets().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((dls, project.manifest))
}

/// The project's trained model as `.kiln` bytes.
pub fn model_bytes(path: &Path) -> Result<Vec<u8>, String> {
    open(path)?
        .model()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .ok_or_else(|| format!("{} has no trained model yet: train it first (kiln fine-tune {} --save-project …)", path.display(), path.display()))
}

/// The page's Settings fields for what the CLI ran (the page shows them when it opens the project).
pub fn page_settings(o: &LearnerOptions, data: &DataOptions, method: &str, epochs: usize, freeze_epochs: usize, lr: f64) -> serde_json::Map<String, serde_json::Value> {
    let name = serde_json::to_value(o).ok().and_then(|v| v.get("arch").cloned()).unwrap_or_default();
    let s = |v: &dyn ToString| serde_json::Value::String(v.to_string());
    serde_json::Map::from_iter([
        ("arch".to_string(), name),
        ("size".into(), s(&o.size)),
        ("bs".into(), s(&o.batch_size)),
        ("flip".into(), o.do_flip.into()),
        ("fp16".into(), o.fp16.into()),
        ("method".into(), s(&method)),
        ("epochs".into(), s(&epochs)),
        ("freeze-epochs".into(), s(&freeze_epochs)),
        ("lr".into(), s(&lr)),
        ("presize".into(), s(&data.presize)),
        ("valid-pct".into(), s(&data.valid_pct)),
        ("seed".into(), s(&data.seed)),
        ("label-regex".into(), s(&data.label_regex.clone().unwrap_or_default())),
    ])
}

/// Write `learner` and the photos of `source` as a project at `out` (never over a file this
/// run read); the page's Settings are `settings` over those of a project read.
pub fn save(out: &Path, source: &Source, learner: &Learner, settings: serde_json::Map<String, serde_json::Value>, inputs: &[&Path]) -> Result<(), String> {
    super::refuse_overwrite(out, inputs, "--save-project", "a file this run read")?;
    let model = pollster::block_on(kiln::export::to_bytes(learner)).map_err(|e| e.to_string())?;
    let saved_by = format!("kiln {} (cli)", env!("CARGO_PKG_VERSION"));
    let (mut manifest, mut reader) = match source {
        Source::Folder { items, options, changes } => {
            let mut edits = Vec::new();
            if !changes.is_empty() {
                edits.push(Edit::Changes(changes.clone()));
            }
            let recipe = Recipe { options: options.clone(), files: items.iter().map(|i| i.name.clone()).collect(), edits };
            (Manifest::new(recipe, true, saved_by), None)
        }
        Source::Project { path, manifest, changes } => {
            let mut m = manifest.clone();
            if !changes.is_empty() {
                m.dataset.edits.push(Edit::Changes(changes.clone()));
            }
            (Manifest { model: true, saved_by, ..m }, Some(open(path)?))
        }
    };
    manifest.settings.extend(settings);
    let by_name: std::collections::HashMap<&str, &Item> = match source {
        Source::Folder { items, .. } => items.iter().map(|i| (i.name.as_str(), i)).collect(),
        Source::Project { .. } => Default::default(),
    };
    let mut photo = |name: &str| -> Result<Vec<u8>, String> {
        match (&mut reader, by_name.get(name)) {
            (Some(project), _) => project.photo(name).map_err(|e| e.to_string()),
            (None, Some(item)) => Ok(item.bytes.to_vec()),
            (None, None) => Err(format!("{name} is not among the photos read")),
        }
    };
    super::write_atomic_with(out, |f| {
        let w = kiln::project::write(std::io::BufWriter::new(f), &manifest, &mut photo, Some(&model))?;
        w.into_inner().map(drop).map_err(|e| format!("writing {}: {e}", out.display()))
    })?;
    println!("saved the project to {} ({} photos, the model after {} epoch(s))", out.display(), manifest.photo_names().count(), learner.history.len());
    Ok(())
}
