//! Choosing where to compute: wgpu (Vulkan, Metal, DX12; WebGPU in the browser) by default,
//! burn's CPU backend (flex) as the fallback or on request.

use burn::tensor::Device;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// wgpu when an adapter is found, else the CPU with a notice.
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

/// The device picked, and a line for the user saying which and why.
pub struct Selected {
    pub device: Device,
    pub description: String,
}

pub fn cpu() -> Selected {
    Selected { device: Device::flex(), description: "CPU (burn flex backend)".into() }
}

/// Pick a native device. `Gpu` fails when no adapter is found; `Auto` falls back to the CPU.
#[cfg(feature = "native")]
pub fn select_native(choice: DeviceChoice) -> Result<Selected, String> {
    if choice == DeviceChoice::Cpu {
        return Ok(cpu());
    }
    match Device::wgpu_options().init() {
        Ok(device) => Ok(Selected { device, description: "GPU (wgpu)".into() }),
        Err(e) if choice == DeviceChoice::Auto => {
            let mut s = cpu();
            s.description = format!("CPU (burn flex backend): no GPU adapter was found ({e})");
            Ok(s)
        }
        Err(e) => Err(format!("no GPU adapter was found ({e}); use --device cpu, or install a Vulkan/Metal/DX12 driver")),
    }
}
