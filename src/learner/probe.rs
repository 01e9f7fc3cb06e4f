//! Timing the work on a device before training on it, so that `auto` chooses between the CPU
//! and a GPU by measurement (an integrated GPU against a laptop's cores is a real contest, and
//! a software GPU loses by far). fastai has no counterpart: PyTorch users pick `cuda` or `cpu`.
//!
//! The probe is one forward and backward pass of the learner's own model at its training size,
//! on a few random images, after one untimed pass that compiles the device's kernels.

use burn::tensor::{Device, Distribution, Tensor};
use web_time::Instant;

use super::{LearnError, Learner, LearnerConfig, Pass};

/// Images a probe pass trains on: BatchNorm needs two, and more would stretch the probe past a
/// few seconds on a slow CPU. A GPU's advantage grows with the batch, so this favours the CPU
/// only where the two are close.
pub const PROBE_IMAGES: usize = 2;

/// What one device measured.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    /// The first pass, kernels compiled on the way (milliseconds).
    pub first_ms: f64,
    /// The second pass (milliseconds), or `None` when the first already lost by `GIVE_UP`×.
    pub step_ms: Option<f64>,
    /// The probe was stopped at its time limit ([`gpu_limit_ms`], then `first_ms`).
    #[serde(default)]
    pub timed_out: bool,
}

impl Probe {
    /// The figure devices are compared on: the timed pass, else the first.
    pub fn ms(&self) -> f64 {
        self.step_ms.unwrap_or(self.first_ms)
    }
}

/// A candidate whose first pass takes this many times the best timed pass so far, and at least
/// [`GIVE_UP_AFTER_MS`], is not timed again: the first pass is the compile plus one step, so the
/// step alone could only win if compiling took nearly all of it.
pub const GIVE_UP: f64 = 4.0;

/// A real GPU compiles its kernels in its first pass (a second or two), which can be many times
/// a fast CPU's step: below this a first pass never ends the probe.
pub const GIVE_UP_AFTER_MS: f64 = 10_000.0;

/// A software adapter (lavapipe, SwiftShader) compiles its first kernels for many seconds on the
/// CPU it competes with, and cannot win once it needs longer than this: its probe stops here.
/// The page's worker uses the same figure (`SOFTWARE_FLOOR_MS` in `www/worker-backend.js`).
pub const SOFTWARE_GIVE_UP_AFTER_MS: f64 = 1_500.0;

/// How long a GPU's whole probe may take against a CPU that measured `cpu_ms`: [`GIVE_UP`]×
/// the CPU, at least [`GIVE_UP_AFTER_MS`] for a real GPU (its first pass compiles) or
/// [`SOFTWARE_GIVE_UP_AFTER_MS`] for a software one, plus the CPU's pass for the timed one.
pub fn gpu_limit_ms(cpu_ms: f64, software: bool) -> f64 {
    (GIVE_UP * cpu_ms).max(if software { SOFTWARE_GIVE_UP_AFTER_MS } else { GIVE_UP_AFTER_MS }) + cpu_ms
}

/// Times `config`'s model training on `device`. `beat`: the best time another device measured,
/// if any, so a hopeless candidate stops after its first pass.
pub async fn probe(config: &LearnerConfig, device: &Device, beat: Option<f64>) -> Result<Probe, LearnError> {
    let classes = (0..config.model.num_classes).map(|i| i.to_string()).collect();
    let size = config.aug.size;
    let mut learner = Learner::new(config.clone().with_micro_batch(None), classes, size as u32, device)?;
    let n = PROBE_IMAGES;
    let targets: Vec<Vec<usize>> = (0..n).map(|i| vec![i % config.model.num_classes]).collect();
    let mut pass = async || {
        let images = Tensor::<4>::random([n, 3, size, size], Distribution::Uniform(-2.0, 2.0), &learner.device);
        let start = Instant::now();
        learner.gradients(vec![Pass::augmented(images, targets.clone())]).await?;
        Ok::<f64, LearnError>(start.elapsed().as_secs_f64() * 1e3)
    };
    let first_ms = pass().await?;
    if beat.is_some_and(|b| first_ms > (GIVE_UP * b).max(GIVE_UP_AFTER_MS)) {
        return Ok(Probe { first_ms, step_ms: None, timed_out: false });
    }
    Ok(Probe { first_ms, step_ms: Some(pass().await?), timed_out: false })
}

/// This build of Kiln: its version and the executable's size and time, so a rebuild (other
/// kernels) measures again.
#[cfg(feature = "native")]
fn build_id() -> String {
    let exe = std::env::current_exe().and_then(std::fs::metadata).ok();
    let stamp = exe.map(|m| (m.len(), m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs())));
    match stamp {
        Some((len, secs)) => format!("{} ({len} bytes, {secs})", env!("CARGO_PKG_VERSION")),
        None => env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// Where `auto` trains, and the evidence: each candidate's probe and why the winner won.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceReport {
    /// `"gpu"` or `"cpu"`.
    pub chosen: String,
    /// The GPU adapter probed (name, API, kind), if there was one.
    pub adapter: Option<String>,
    pub cpu: Option<Probe>,
    pub gpu: Option<Probe>,
    /// One line for the user: which device, and the figures that chose it.
    pub reason: String,
    /// Whether these figures come from an earlier run (the probe did not run again).
    #[serde(default)]
    pub cached: bool,
}

/// The line explaining a choice between two measured devices.
pub fn reason(cpu: &Probe, gpu: &Probe, gpu_name: &str) -> (bool, String) {
    let fmt = |p: &Probe| match p.step_ms {
        Some(ms) => format!("{ms:.0} ms"),
        None if p.timed_out => format!("did not finish in {:.0} ms", p.first_ms),
        None => format!("{:.0} ms for its first pass (kernels compiled), not timed further", p.first_ms),
    };
    let gpu_wins = gpu.ms() < cpu.ms();
    let (fast, slow) = if gpu_wins { (gpu.ms(), cpu.ms()) } else { (cpu.ms(), gpu.ms()) };
    let which = if gpu_wins { format!("the GPU ({gpu_name})") } else { "the CPU".to_string() };
    // A stopped probe only bounds the loser's time.
    let over = if cpu.timed_out || gpu.timed_out { "over " } else { "" };
    (gpu_wins, format!("{which}, {over}{:.1}× faster on a training pass of this model: GPU {}, CPU {}", slow / fast, fmt(gpu), fmt(cpu)))
}

/// `--device auto` natively: the CPU backend against wgpu's default adapter (any kind, a
/// software one included: the probe decides), each probed on `config`'s work with burn's
/// autotune off (tuning is for the shapes training will run, not the probe's). The result is
/// kept in `cache` (a JSON file) per adapter, build, model, size and CPU threads, so the probe
/// runs once. `probe_gpu(config, beat_ms, limit_ms)` times the GPU and stops at the limit
/// (the CLI runs [`probe_gpu_here`] in a child process it kills), giving `None` when the probe
/// did not finish in time; that counts as slower, and is kept only for a software adapter.
#[cfg(feature = "native")]
pub fn choose_native(
    config: &LearnerConfig,
    cache: Option<&std::path::Path>,
    probe_gpu: impl FnOnce(&LearnerConfig, f64, f64) -> Result<Option<Probe>, String>,
) -> Result<(crate::device::Selected, DeviceReport), String> {
    use crate::device::{Selected, cpu_because, default_wgpu};
    let (gpu, adapter, software) = match default_wgpu() {
        Ok(found) => found,
        Err(e) => {
            let reason = format!("the CPU: no GPU adapter was found ({e})");
            let s = cpu_because(&format!("no GPU adapter was found ({e})"));
            return Ok((s, DeviceReport { chosen: "cpu".into(), adapter: None, cpu: None, gpu: None, reason, cached: false }));
        }
    };
    let key = format!(
        "{adapter} | kiln {} | {} at {} px{} | {} CPU threads",
        build_id(),
        config.model.arch.name(),
        config.aug.size,
        if config.fp16 { ", fp16" } else { "" },
        rayon::current_num_threads()
    );
    let mut saved: std::collections::BTreeMap<String, DeviceReport> =
        cache.and_then(|p| std::fs::read(p).ok()).and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let report = match saved.get(&key) {
        Some(r) => DeviceReport { cached: true, ..r.clone() },
        None => {
            let autotune = burn_cubecl::autotune_enabled();
            burn_cubecl::set_autotune(false);
            let c = pollster::block_on(probe(&config.clone().with_fp16(false), &Device::flex(), None));
            let c = c.map_err(|e| format!("probing the CPU: {e}"));
            let limit_ms = c.as_ref().map_or(0.0, |c| gpu_limit_ms(c.ms(), software));
            let g = c.as_ref().ok().map(|c| probe_gpu(config, c.ms(), limit_ms));
            burn_cubecl::set_autotune(autotune);
            let c = c?;
            let g = match g.expect("probed after the CPU") {
                Ok(Some(g)) => g,
                // Stopped at the limit: slower than the CPU by at least the limit's margin.
                Ok(None) => Probe { first_ms: limit_ms, step_ms: None, timed_out: true },
                // The GPU cannot train this model (no half precision for --fp16, too little memory):
                // the CPU, saying why. Not cached, as a driver update may change it.
                Err(e) => {
                    let reason = format!("the CPU: the GPU ({adapter}) cannot train this model ({e})");
                    let s = cpu_because(&reason);
                    return Ok((s, DeviceReport { chosen: "cpu".into(), adapter: Some(adapter), cpu: Some(c), gpu: None, reason, cached: false }));
                }
            };
            let (gpu_wins, reason) = reason(&c, &g, &adapter);
            // A real GPU stopped at the limit may only have been busy: measured again next time.
            let keep = !g.timed_out || software;
            let r = DeviceReport { chosen: if gpu_wins { "gpu" } else { "cpu" }.into(), adapter: Some(adapter.clone()), cpu: Some(c), gpu: Some(g), reason, cached: false };
            if let Some(p) = cache.filter(|_| keep) {
                saved.insert(key, r.clone());
                // A cache that cannot be written only means probing again next time.
                let _ = p.parent().map(std::fs::create_dir_all);
                let _ = std::fs::write(p, serde_json::to_vec_pretty(&saved).unwrap_or_default());
            }
            r
        }
    };
    let selected = if report.chosen == "gpu" {
        Selected { device: gpu, description: format!("GPU (wgpu, {adapter}), measured: {}", report.reason) }
    } else {
        Selected { device: Device::flex(), description: format!("CPU (burn flex backend), measured: {}", report.reason) }
    };
    Ok((selected, report))
}

/// The GPU's probe in this process, on wgpu's default adapter (what the CLI's `kiln probe-gpu`
/// child runs; a thread here could not be stopped at the limit, a child process can).
#[cfg(feature = "native")]
pub fn probe_gpu_here(config: &LearnerConfig, beat_ms: f64) -> Result<Probe, String> {
    let (gpu, _, _) = crate::device::default_wgpu()?;
    pollster::block_on(probe(config, &gpu, Some(beat_ms))).map_err(|e| e.to_string())
}
