//! Picks where tensors live: a wgpu adapter (any GPU, or a software Vulkan such as lavapipe) or
//! Burn's `flex` CPU backend. A wgpu runtime can be initialised once per process, so the choice
//! is made once and cached; later calls get the same device and description.

use anyhow::{Result, bail};
use burn::prelude::*;
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum, Default)]
pub enum DeviceChoice {
    /// A hardware wgpu adapter when one can be opened, otherwise the CPU backend.
    #[default]
    Auto,
    /// A wgpu adapter (fails when none can be opened).
    Wgpu,
    /// Burn's flex CPU backend.
    Cpu,
}

/// What runs the model, in words for the CLI and the app.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    /// Adapter name, e.g. "NVIDIA H100" or "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// "wgpu/Vulkan", "wgpu/Metal", … or "flex".
    pub backend: String,
    /// "GPU" or "CPU" (a software adapter is a CPU).
    pub kind: String,
}

impl std::fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}, {}]", self.name, self.backend, self.kind)
    }
}

static WGPU: OnceLock<std::result::Result<(Device, DeviceInfo), String>> = OnceLock::new();

/// The flex CPU device.
pub fn cpu() -> (Device, DeviceInfo) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    (Device::flex(), DeviceInfo { name: format!("CPU ({threads} threads)"), backend: "flex".into(), kind: "CPU".into() })
}

/// The wgpu device, opened on first use.
pub fn wgpu() -> Result<(Device, DeviceInfo)> {
    let opened = WGPU.get_or_init(|| {
        // A panic inside a driver must not take the app down: treat it as "no adapter".
        let result = std::panic::catch_unwind(|| Device::wgpu_options().init_with_setup());
        match result {
            Ok(Ok((device, setup))) => {
                let info = setup.adapter.get_info();
                let kind = match info.device_type {
                    burn::tensor::wgpu::wgpu::DeviceType::Cpu => "CPU",
                    _ => "GPU",
                };
                Ok((device, DeviceInfo { name: info.name.clone(), backend: format!("wgpu/{:?}", info.backend), kind: kind.into() }))
            }
            Ok(Err(e)) => Err(format!("no usable wgpu adapter: {e}")),
            Err(_) => Err("the wgpu driver panicked while opening an adapter".to_string()),
        }
    });
    match opened {
        Ok(pair) => Ok(pair.clone()),
        Err(e) => bail!("{e}"),
    }
}

/// Resolves a choice to a device. `Auto` takes a hardware GPU and otherwise the CPU backend,
/// saying why on stderr: a software adapter (lavapipe, llvmpipe, WARP) runs the same work
/// several times slower than flex and compiles a kernel per new shape.
pub fn select(choice: DeviceChoice) -> Result<(Device, DeviceInfo)> {
    match choice {
        DeviceChoice::Cpu => Ok(cpu()),
        DeviceChoice::Wgpu => wgpu(),
        DeviceChoice::Auto => match wgpu() {
            Ok((_, info)) if info.kind == "CPU" => {
                eprintln!("note: the only wgpu adapter is a software one ({}); using the CPU backend, which is faster", info.name);
                Ok(cpu())
            }
            Ok(pair) => Ok(pair),
            Err(e) => {
                eprintln!("note: {e}; using the CPU");
                Ok(cpu())
            }
        },
    }
}
