//! Where a command computes: `--device auto` measures the command's own work on the CPU and
//! the GPU (kiln::learner::probe) and remembers the answer in the user's cache folder.

use std::path::{Path, PathBuf};

use kiln::device::{DeviceChoice, Selected, select_native};
use kiln::learner::LearnerConfig;
use kiln::learner::probe::choose_native;

/// The probe's results: `$KILN_CACHE_DIR`, else `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`.
pub fn cache_path() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let dir = var("KILN_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("kiln")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/kiln")))?;
    Some(dir.join("device-probe.json"))
}

/// The device for training or predicting with `config`'s model, announced on stderr.
pub fn for_work(choice: DeviceChoice, config: &LearnerConfig) -> Result<Selected, String> {
    let selected = match choice {
        DeviceChoice::Auto => {
            let cache = cache_path();
            let (selected, report) = choose_native(config, cache.as_deref())?;
            if report.cached {
                let from = cache.as_deref().map(Path::display).map(|p| format!(" ({p})")).unwrap_or_default();
                eprintln!("device: measured on an earlier run{from}; delete that file to measure again");
            }
            selected
        }
        other => select_native(other)?,
    };
    eprintln!("device: {}", selected.description);
    Ok(selected)
}
