//! The `kiln` command's parts, by concern: its grammar ([`args`]), data commands ([`data`]),
//! training ([`train`]), saved models ([`model`]), prediction and sorting ([`predict`]) and pretrained weights ([`weights`]). Each
//! reads files, calls the core and prints.

pub mod args;
pub mod data;
pub mod model;
pub mod predict;
pub mod project;
pub mod train;
pub mod weights;

use std::path::Path;

/// Write a file whole or not at all: into a temporary file beside it, then renamed over it,
/// so Ctrl-C or a full disk never leaves half a model under the real name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let fail = |e: std::io::Error| format!("writing {}: {e}", path.display());
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| format!("{} is not a file name", path.display()))?;
    let tmp = dir.join(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
    let result = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = result.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    Ok(())
}
