//! `kiln predict`: a saved model over files and folders, in batches on the device, printed,
//! written as a CSV, and sorted into one folder per predicted class (copied, or moved once
//! every copy is complete). Nothing the user has is overwritten.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use kiln::device::DeviceChoice;
use kiln::learner::predict::Prediction;

use super::write_atomic;

/// Where `--sort-into` puts predictions below `--threshold`.
pub const UNSURE: &str = "unsure";

/// What `kiln predict` was asked to do besides predicting.
pub struct PredictArgs<'a> {
    pub model: &'a Path,
    pub paths: &'a [PathBuf],
    pub device: DeviceChoice,
    pub csv: Option<&'a Path>,
    pub sort_into: Option<&'a Path>,
    pub move_files: bool,
    pub threshold: f32,
    pub batch_size: usize,
}

/// Every file under `paths` (files as given, folders walked in name order, hidden files
/// skipped), each with the name it has in the CSV: its path as given, with `/`.
pub fn files_under(paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, String> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
                let entry = entry.map_err(|e| format!("reading {}: {e}", path.display()))?;
                if entry.file_type().is_file() && !entry.file_name().to_string_lossy().starts_with('.') {
                    out.push((entry.path().to_path_buf(), slashes(entry.path())));
                }
            }
        } else if path.exists() {
            out.push((path.clone(), slashes(path)));
        } else {
            return Err(format!("{} does not exist: give image files or folders of them", path.display()));
        }
    }
    Ok(out)
}

fn slashes(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "/")
}

/// One CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// The CSV the page writes too: `file,class,probability` then one column per class.
pub fn csv_header(classes: &[String]) -> String {
    let mut cols = vec!["file".to_string(), "class".into(), "probability".into()];
    cols.extend(classes.iter().map(|c| field(c)));
    cols.join(",")
}

/// `class` is the predicted class; for a one-sigmoid-per-class model, the classes above the
/// threshold separated by spaces (fastai's multi-label CSV), empty for none of these.
pub fn csv_row(name: &str, p: &Prediction) -> String {
    let mut cols = vec![field(name), field(&p.labels.join(" ")), format!("{:.6}", p.probs[p.index])];
    cols.extend(p.probs.iter().map(|v| format!("{v:.6}")));
    cols.join(",")
}

/// The folder a prediction is sorted into.
/// With one sigmoid per class, a photo of none of the classes goes to `none-of-these/`, one of
/// several to `unsure/`.
pub fn folder_for<'a>(p: &'a Prediction, threshold: f32) -> &'a str {
    match p.labels.as_slice() {
        [] => "none-of-these",
        [one] if p.probs[p.index] >= threshold => one,
        _ => UNSURE,
    }
}

/// Copy `from` into `dir` under its own name, or `name (2).ext`, `name (3).ext`, … when that
/// is taken: the new file is created exclusively, so nothing is ever overwritten.
pub fn copy_without_overwriting(from: &Path, dir: &Path) -> Result<PathBuf, String> {
    let name = from.file_name().ok_or_else(|| format!("{} has no file name", from.display()))?;
    let (stem, ext) = {
        let p = Path::new(name);
        (p.file_stem().unwrap_or(name).to_string_lossy().to_string(), p.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default())
    };
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let bytes = fs::read(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    for n in 1.. {
        let to = if n == 1 { dir.join(name) } else { dir.join(format!("{stem} ({n}){ext}")) };
        match OpenOptions::new().write(true).create_new(true).open(&to) {
            Ok(mut f) => {
                let written = f.write_all(&bytes).and_then(|()| f.sync_all());
                if let Err(e) = written {
                    let _ = fs::remove_file(&to);
                    return Err(format!("writing {}: {e}", to.display()));
                }
                return Ok(to);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("creating {}: {e}", to.display())),
        }
    }
    unreachable!("some suffix is free")
}

/// Predict every file; print, write the CSV, sort. Unreadable files are named on stderr and
/// make the command fail after the others are done.
pub fn predict(a: &PredictArgs) -> Result<(), String> {
    if !(0.0..=1.0).contains(&a.threshold) {
        return Err(format!("the threshold {} must be a probability between 0 and 1", a.threshold));
    }
    if a.batch_size == 0 {
        return Err("the batch size must be at least 1".into());
    }
    let (learner, _) = super::model::open_for(a.model, a.device)?;
    let files = files_under(a.paths)?;
    let quiet = a.csv.is_some() || a.sort_into.is_some();
    let bar = if quiet { ProgressBar::new(files.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} photos  [{elapsed} < {eta}]").expect("valid template"));
    let mut csv = vec![csv_header(&learner.classes)];
    let (mut failed, mut sorted) = (Vec::new(), Vec::new());
    for chunk in files.chunks(a.batch_size) {
        let read: Vec<Result<Vec<u8>, String>> = chunk.iter().map(|(p, _)| fs::read(p).map_err(|e| e.to_string())).collect();
        let ok: Vec<&[u8]> = read.iter().filter_map(|r| r.as_deref().ok()).collect();
        let mut preds = pollster::block_on(learner.predict_batch(&ok)).map_err(|e| e.to_string())?.into_iter();
        for ((path, name), bytes) in chunk.iter().zip(&read) {
            let result = match bytes {
                Ok(_) => preds.next().expect("one result per file read"),
                Err(e) => Err(e.clone()),
            };
            match result {
                Ok(p) => {
                    if !quiet {
                        let mut ranked: Vec<(usize, f32)> = p.probs.iter().copied().enumerate().collect();
                        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                        let top: Vec<String> = ranked.iter().take(3).map(|(i, pr)| format!("{} {:.3}", learner.classes[*i], pr)).collect();
                        println!("{}: {} ({})", path.display(), p.shown(), top.join(", "));
                    }
                    csv.push(csv_row(name, &p));
                    if let Some(dir) = a.sort_into {
                        let to = copy_without_overwriting(path, &dir.join(folder_for(&p, a.threshold)))?;
                        sorted.push((path.clone(), to));
                    }
                }
                Err(e) => {
                    bar.suspend(|| eprintln!("{}: {e}", path.display()));
                    failed.push(path.clone());
                }
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    if let Some(path) = a.csv {
        write_atomic(path, (csv.join("\n") + "\n").as_bytes())?;
        println!("wrote {} ({} predictions)", path.display(), csv.len() - 1);
    }
    if let Some(dir) = a.sort_into {
        // Every copy is on disk (synced) before any original goes.
        if a.move_files {
            for (from, _) in &sorted {
                fs::remove_file(from).map_err(|e| format!("removing {} after copying it: {e}", from.display()))?;
            }
        }
        println!("{} {} photos into {}", if a.move_files { "moved" } else { "copied" }, sorted.len(), dir.display());
    }
    if !failed.is_empty() {
        return Err(format!("{} of {} files could not be predicted (named above)", failed.len(), files.len()));
    }
    Ok(())
}
