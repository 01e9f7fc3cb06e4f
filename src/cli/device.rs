//! Where a command computes: `--device auto` measures the command's own work on the CPU and
//! the GPU (kiln::learner::probe) and remembers the answer in the user's cache folder.

use std::path::{Path, PathBuf};

use kiln::device::{DeviceChoice, Selected, select_native};
use kiln::learner::LearnerConfig;
use kiln::learner::probe::{Probe, choose_native, probe_gpu_here};

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
            let (selected, report) = choose_native(config, cache.as_deref(), probe_gpu_in_child)?;
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

/// What the parent sends the child on stdin.
#[derive(serde::Serialize, serde::Deserialize)]
struct ProbeRequest {
    config: LearnerConfig,
    beat_ms: f64,
}

/// The GPU's probe in a child `kiln probe-gpu`, killed at `limit_ms`: a software adapter
/// (lavapipe) spends many seconds compiling its first kernels, and a thread could not be stopped.
/// `None` when it did not finish in time.
fn probe_gpu_in_child(config: &LearnerConfig, beat_ms: f64, limit_ms: f64) -> Result<Option<Probe>, String> {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let exe = std::env::current_exe().map_err(|e| format!("probing the GPU: {e}"))?;
    let mut child = Command::new(exe)
        .arg("probe-gpu")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("probing the GPU: {e}"))?;
    let request = serde_json::to_vec(&ProbeRequest { config: config.clone(), beat_ms }).map_err(|e| e.to_string())?;
    // The child reads all of stdin before it starts; a closed pipe means it already failed.
    let _ = child.stdin.take().map(|mut i| i.write_all(&request));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("probing the GPU: {e}"))? {
            break status;
        }
        if start.elapsed().as_secs_f64() * 1e3 > limit_ms {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (mut out, mut err) = (String::new(), String::new());
    let _ = child.stdout.take().map(|mut o| o.read_to_string(&mut out));
    let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
    if !status.success() {
        let err = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim_start_matches("error: ");
        return Err(err.to_string());
    }
    serde_json::from_str(out.trim()).map(Some).map_err(|e| format!("probing the GPU: the probe's answer was not read ({e}): {out}"))
}

/// `kiln probe-gpu`: [`probe_gpu_in_child`]'s other half.
pub fn probe_gpu_child() -> Result<(), String> {
    use std::io::Read;
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).map_err(|e| e.to_string())?;
    let request: ProbeRequest = serde_json::from_slice(&input).map_err(|e| format!("probe-gpu reads what kiln sends it: {e}"))?;
    let probe = probe_gpu_here(&request.config, request.beat_ms)?;
    println!("{}", serde_json::to_string(&probe).map_err(|e| e.to_string())?);
    Ok(())
}
