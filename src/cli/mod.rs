//! The `kiln` command's parts, by concern: its grammar ([`args`]), data commands ([`data`]),
//! where to compute ([`device`]), training ([`train`]), saved models ([`model`]), prediction and sorting ([`predict`]) and pretrained weights ([`weights`]). Each
//! reads files, calls the core and prints.

pub mod args;
pub mod data;
pub mod device;
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
    write_atomic_with(path, |f| f.write_all(bytes).map_err(|e| format!("writing {}: {e}", path.display())))
}

/// [`write_atomic`] for a file written piece by piece: `write` fills a temporary file beside
/// `path`, which replaces `path` only once it is complete and synced.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&mut std::fs::File) -> Result<(), String>) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("writing {}: {e}", path.display());
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| format!("{} is not a file name", path.display()))?;
    let tmp = dir.join(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
    let result = std::fs::File::create(&tmp).map_err(fail).and_then(|mut f| {
        write(&mut f)?;
        f.sync_all().map_err(fail)
    });
    if let Err(e) = result.and_then(|()| std::fs::rename(&tmp, path).map_err(fail)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// An error when `output` is one of the files this run reads (`flag` names the option):
/// what the user gave is never overwritten.
pub fn refuse_overwrite(output: &Path, inputs: &[&Path], flag: &str, what: &str) -> Result<(), String> {
    let out = output.canonicalize();
    if inputs.iter().any(|i| matches!((i.canonicalize(), &out), (Ok(a), Ok(b)) if a == *b)) {
        return Err(format!("{flag} {} is {what}: choose another file (Kiln does not overwrite it)", output.display()));
    }
    Ok(())
}
