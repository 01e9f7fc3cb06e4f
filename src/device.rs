//! Choosing where to compute: wgpu (Vulkan, Metal, DX12; WebGPU in the browser) by default,
//! burn's CPU backend (flex) as the fallback or on request.

use burn::tensor::Device;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// Whichever of the CPU and wgpu's adapter trains the model faster, by measurement.
    Auto,
    Gpu,
    Cpu,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "gpu" => Ok(Self::Gpu),
            "cpu" => Ok(Self::Cpu),
            other => Err(format!("unknown device {other:?}: use auto, gpu or cpu")),
        }
    }
}

/// Whether `device` (with or without autodiff) is burn's CPU backend, flex.
pub fn is_cpu(device: &Device) -> bool {
    device.clone().inner() == Device::flex()
}

/// How much memory a training pass may take on a device, which sizes the micro-batches
/// (gradients are accumulated over them, so the optimiser still sees the whole batch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBudget {
    pub bytes: u64,
}

const GIB: u64 = 1 << 30;

impl MemoryBudget {
    /// wasm32 addresses at most 4 GiB and an allocation failure aborts the module, so the
    /// browser's CPU backend keeps a pass well under it (the dataset's files, a presized batch
    /// and allocator slack live there too). WebGPU and native GPUs: a conservative 3 GiB, as
    /// browsers do not report free GPU memory. Native CPU: 8 GiB.
    pub fn of(device: &Device) -> Self {
        let cpu = is_cpu(device);
        let bytes = match (cfg!(target_arch = "wasm32"), cpu) {
            (true, true) => 3 * GIB / 2,
            (_, false) => 3 * GIB,
            (false, true) => 8 * GIB,
        };
        Self { bytes }
    }
}

/// The device picked, and a line for the user saying which and why.
pub struct Selected {
    pub device: Device,
    pub description: String,
}

pub fn cpu() -> Selected {
    Selected { device: Device::flex(), description: "CPU (burn flex backend)".into() }
}

/// The CPU backend, saying why it was chosen.
pub fn cpu_because(why: &str) -> Selected {
    Selected { device: Device::flex(), description: format!("CPU (burn flex backend): {why}") }
}

/// wgpu's default adapter (any kind), its name, API and type, and whether it is a software
/// one (lavapipe, SwiftShader). Asking for an adapter the machine lacks may panic inside the
/// runtime: that is an error here.
#[cfg(feature = "native")]
pub fn default_wgpu() -> Result<(Device, String, bool), String> {
    let (device, setup) = std::panic::catch_unwind(|| Device::wgpu_options().init_with_setup())
        .map_err(|_| "the wgpu runtime failed to start".to_string())?
        .map_err(|e| e.to_string())?;
    let info = setup.adapter.get_info();
    Kernels::for_adapter(&info).set();
    let software = info.device_type == burn::tensor::wgpu::wgpu::DeviceType::Cpu;
    Ok((device, format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type), software))
}

/// Which convolution and matmul kernels wgpu runs without autotune. Software adapters disagree:
/// lavapipe runs the kernels chosen by shape fastest, SwiftShader (Chromium's WebGPU without a
/// GPU) the direct convolutions and the naive matmul (docs/BENCHMARKS.md, "GPU kernels").
#[cfg(any(feature = "native", feature = "webgpu"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// Convolutions by shape (vendor/burn-cubecl, `heuristic.rs`), tiled matmuls: the default.
    ByShape,
    /// burn's direct convolutions and the naive matmul: SwiftShader's.
    SwiftShader,
    /// burn's own no-autotune kernels, for benches.
    Upstream,
}

#[cfg(any(feature = "native", feature = "webgpu"))]
impl Kernels {
    /// The set for an adapter: SwiftShader by name natively, and in the browser its fallback
    /// adapter (Chromium's is SwiftShader; the name is often withheld there).
    pub fn for_adapter(info: &burn::tensor::wgpu::wgpu::AdapterInfo) -> Kernels {
        let software = info.device_type == burn::tensor::wgpu::wgpu::DeviceType::Cpu;
        let browser = info.backend == burn::tensor::wgpu::wgpu::Backend::BrowserWebGpu;
        match software && (browser || info.name.contains("SwiftShader")) {
            true => Kernels::SwiftShader,
            false => Kernels::ByShape,
        }
    }

    /// Used by every wgpu kernel launched from now on (one adapter per process).
    pub fn set(self) {
        burn_cubecl::set_upstream_conv(self != Kernels::ByShape);
        burn_cubecl::set_naive_matmul(self == Kernels::SwiftShader);
    }
}

/// Pick a native device. `Gpu` takes wgpu's default adapter (any kind) and fails when there is
/// none. `Auto` is decided by measuring the work (`learner::probe::choose_native`); here, for
/// work too small to measure (show_batch), it is the CPU.
#[cfg(feature = "native")]
pub fn select_native(choice: DeviceChoice) -> Result<Selected, String> {
    match choice {
        DeviceChoice::Cpu => Ok(cpu()),
        DeviceChoice::Gpu => match default_wgpu() {
            Ok((device, adapter, _)) => Ok(Selected { device, description: format!("GPU (wgpu, default adapter: {adapter})") }),
            Err(e) => Err(format!("no GPU adapter was found ({e}); use --device cpu, or install a Vulkan/Metal/DX12 driver")),
        },
        DeviceChoice::Auto => Ok(cpu_because("too little work to be worth measuring a GPU")),
    }
}

/// Whether wgpu chooses its kernels by timing candidates (burn's autotune) for shapes seen from
/// now on. Tuning takes minutes on the first batches of every new shape, so it is off unless
/// asked for; without it the convolutions take kernels chosen by shape (vendor/burn-cubecl,
/// `heuristic.rs`). A build without the `autotune` feature cannot turn it on.
#[cfg(feature = "native")]
pub fn set_autotune(on: bool) -> Result<(), String> {
    if on {
        fewer_tuning_samples();
    }
    burn_cubecl::set_autotune(on);
    match burn_cubecl::autotune_enabled() == on {
        true => Ok(()),
        false => Err("this build has no autotune: build with the `autotune` feature (on by default)".into()),
    }
}

/// cubecl times each candidate kernel 3 to 10 times; Kiln asks for 1 to 3. Its shapes are few
/// and the same every batch, so a rough ranking is enough, and each sample of a slow candidate
/// is a whole kernel's time on the first batches. A `cubecl.toml` that sets `[autotune.bench]`
/// keeps its own; cubecl's configuration is read once, so this only counts before the first
/// kernel runs (the CLI turns autotune on before it opens a device).
#[cfg(feature = "native")]
pub fn fewer_tuning_samples() {
    use burn_cubecl::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig, autotune::BenchConfig};
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    let (bench, upstream) = (&mut config.autotune.bench, BenchConfig::default());
    if (bench.min_samples, bench.max_samples, bench.short_circuit_samples) == (upstream.min_samples, upstream.max_samples, upstream.short_circuit_samples) {
        (bench.min_samples, bench.max_samples, bench.short_circuit_samples) = (1, 3, 1);
    }
    CubeClRuntimeConfig::try_set(config);
}

#[cfg(feature = "native")]
pub fn autotune_enabled() -> bool {
    burn_cubecl::autotune_enabled()
}

/// Runs `f` on a thread of the CPU backend's rayon pool and waits for it (the threaded browser
/// build; elsewhere it runs here). Called from outside the pool, every parallel kernel of a
/// training pass injects its work and parks the calling thread, and between kernels the pool's
/// Web Workers fall asleep, so each kernel starts with an Atomics.notify wake-up. From inside
/// the pool the thread that runs the pass starts each kernel at once and the others steal their
/// share: EfficientNet-Lite0's step at 2 threads 4–7 % faster in Chromium. Natively (futex wake-ups
/// are cheap) it measured no better.
#[cfg(all(feature = "rayon", target_arch = "wasm32"))]
pub fn on_cpu_pool<R: Send>(device: &Device, f: impl FnOnce() -> R + Send) -> R {
    if is_cpu(device) && rayon::current_thread_index().is_none() {
        rayon::scope(|_| f())
    } else {
        f()
    }
}

#[cfg(not(all(feature = "rayon", target_arch = "wasm32")))]
pub fn on_cpu_pool<R>(_: &Device, f: impl FnOnce() -> R) -> R {
    f()
}

/// Give the host's event loop a turn: in a browser worker a zero-delay timer, so messages (like
/// Cancel) arrive between batches even on the CPU backend, whose reads never wait. A no-op
/// natively.
pub async fn yield_now() {
    #[cfg(all(target_arch = "wasm32", feature = "web"))]
    {
        use js_sys::{Function, Promise};
        let promise = Promise::new(&mut |resolve, _| {
            let global = js_sys::global();
            let set_timeout: Function = js_sys::Reflect::get(&global, &"setTimeout".into()).unwrap().into();
            let _ = set_timeout.call2(&global, &resolve, &0.into());
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    }
}
