//! Picks where tensors live: a wgpu adapter (any GPU, or a software Vulkan such as lavapipe) or
//! Burn's `flex` CPU backend. A wgpu runtime can be initialised once per process, so the choice
//! is made once and cached; later calls get the same device and description.

use anyhow::{Result, bail};
use burn::prelude::*;
use std::sync::OnceLock;

/// Written `auto`, `wgpu`, `cpu` or `adapter:N` on the command line (N from [`adapters`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
pub enum DeviceChoice {
    /// A hardware wgpu adapter when one can be opened, otherwise the CPU backend.
    #[default]
    Auto,
    /// wgpu's default adapter (the high-performance GPU; fails when none can be opened).
    Wgpu,
    /// Burn's flex CPU backend.
    Cpu,
    /// The N-th wgpu adapter of [`adapters`] (machines with several GPUs).
    Adapter(usize),
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "wgpu" | "gpu" => Ok(DeviceChoice::Wgpu),
            "cpu" | "flex" => Ok(DeviceChoice::Cpu),
            other => other
                .strip_prefix("adapter:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Adapter)
                .ok_or_else(|| format!("unknown device {s:?}: use auto, wgpu, cpu or adapter:N (`memtrain devices` lists N)")),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Auto => write!(f, "auto"),
            DeviceChoice::Wgpu => write!(f, "wgpu"),
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Adapter(n) => write!(f, "adapter:{n}"),
        }
    }
}

/// Whether `device` compiles (and autotunes) kernels for every new tensor shape, so that work
/// of varying sizes should be padded to a few shapes: every wgpu device; not the CPU backend,
/// where padding would only add arithmetic.
pub fn compiles_per_shape(device: &Device) -> bool {
    device.clone().without_autodiff() != Device::flex()
}

/// `n` rounded up to a quarter-octave step (…, 320, 384, 448, 512, 640, …; at least 16):
/// at most 25 % padding, four shapes per doubling of length.
pub fn shape_bucket(n: usize) -> usize {
    let n = n.max(16);
    let step = n.next_power_of_two() / 8;
    n.div_ceil(step) * step
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

/// Environment variable that sets Burn's fusion search width (`max_blocks`); Burn's own
/// default (5, or what a `burn.toml` says) applies otherwise.
pub const FUSION_BLOCKS_ENV: &str = "MEMTRAIN_FUSION_MAX_BLOCKS";

/// Sets Burn's fusion search width once per process, before the first tensor op reads Burn's
/// configuration, when [`FUSION_BLOCKS_ENV`] asks for one. Returns the width in force, or `None`
/// when Burn's configuration was already read (then nothing changes).
///
/// Why a knob and no default of ours: at Burn 0.22.1's width 5 the search builds block orders
/// for a decode layer that fail its own lifetime check and runs those segments unfused (5,356
/// kernel launches for a 2-layer batch-64 decode on lavapipe, 4,048 at width 3). Yet on a real
/// GPU width 3 was not faster: batch-64 decode of SmolLM2-135M on an H200 ran 1,324 tok/s at 3
/// and 1,676 at 5 (`docs/bench/h200-2026-11-27.md`), so Burn's default stays.
pub fn configure_fusion() -> Option<usize> {
    use burn_std::config::{BurnConfig, RuntimeConfig};
    let loaded = BurnConfig::from_current_dir().override_from_env();
    let mut value = serde_json::to_value(&loaded).ok()?;
    let blocks = match std::env::var(FUSION_BLOCKS_ENV).ok().and_then(|v| v.parse::<usize>().ok()) {
        Some(n) => n.max(1),
        None => loaded.fusion().beam_search.max_blocks,
    };
    value["fusion"]["beam_search"]["max_blocks"] = blocks.into();
    let config: BurnConfig = serde_json::from_value(value).ok()?;
    BurnConfig::try_set(config).then_some(blocks)
}

/// The wgpu device, opened on first use.
pub fn wgpu() -> Result<(Device, DeviceInfo)> {
    let opened = WGPU.get_or_init(|| {
        configure_fusion();
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

/// One wgpu adapter this machine has, as [`DeviceChoice::Adapter`] numbers it.
#[derive(Clone, Debug)]
pub struct Adapter {
    pub index: usize,
    pub device: Device,
    pub info: DeviceInfo,
}

static ADAPTERS: OnceLock<Vec<Adapter>> = OnceLock::new();

/// Every wgpu adapter (Burn's `Device::enumerate`, which opens each one: done once, then kept).
/// A driver that panics while being asked counts as no adapters.
pub fn adapters() -> &'static [Adapter] {
    ADAPTERS.get_or_init(|| {
        std::panic::catch_unwind(|| {
            Device::enumerate(burn::tensor::DeviceType::Wgpu)
                .iter()
                .enumerate()
                .map(|(index, device)| {
                    let identity = device.identity();
                    let name = identity.as_ref().map_or_else(|| format!("wgpu adapter {index}"), |i| i.name.clone());
                    // No card behind it: a software rasterizer or a CPU.
                    let kind = if identity.as_ref().is_some_and(|i| i.physical.is_some()) { "GPU" } else { "CPU" };
                    Adapter { index, device: device.clone(), info: DeviceInfo { name, backend: "wgpu".into(), kind: kind.into() } }
                })
                .collect()
        })
        .unwrap_or_default()
    })
}

/// Resolves a choice to a device. `Auto` takes a hardware GPU and otherwise the CPU backend,
/// saying why on stderr: a software adapter (lavapipe, llvmpipe, WARP) runs the same work
/// several times slower than flex and compiles a kernel per new shape.
pub fn select(choice: DeviceChoice) -> Result<(Device, DeviceInfo)> {
    match choice {
        DeviceChoice::Cpu => Ok(cpu()),
        DeviceChoice::Wgpu => wgpu(),
        DeviceChoice::Adapter(n) => match adapters().get(n) {
            Some(a) => Ok((a.device.clone(), a.info.clone())),
            None => bail!("there is no wgpu adapter {n}: this machine has {} (see `memtrain devices`)", adapters().len()),
        },
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

/// What `--f16` (generation) changes on a device ([`use_f16`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HalfPrecision {
    /// wgpu: every float tensor in f16.
    Tensors,
    /// The CPU: the decode kernels' copy of the weights in f16
    /// ([`crate::model::packed::PanelPrecision::F16`]); the model, its activations and KV cache
    /// stay f32 (flex's f16 arithmetic is not where a CPU decode step waits: it streams weights).
    DecodePanels,
}

/// Half precision for generation on `device`. On wgpu, every float tensor created on `device`
/// from now on is f16 (weights converted at load, activations, KV cache): half the memory and
/// bandwidth of f32. Must come before the first tensor on that device, and holds for the whole
/// process (Burn keeps one setting per device). On the CPU nothing is set here: the caller packs
/// the decode kernels' weights in f16 ([`HalfPrecision::DecodePanels`]).
///
/// Not for training: gradients and AdamW's moments in f16 lose small updates; `memtrain train`
/// stays f32.
pub fn use_f16(device: &Device, info: &DeviceInfo) -> Result<HalfPrecision> {
    use burn::tensor::FloatDType;
    if !compiles_per_shape(device) {
        return Ok(HalfPrecision::DecodePanels);
    }
    let mut device = device.clone();
    match device.configure(FloatDType::F16) {
        Ok(()) => Ok(HalfPrecision::Tensors),
        Err(_) if device.settings().float_dtype == FloatDType::F16 => Ok(HalfPrecision::Tensors),
        Err(e) => bail!("cannot run {info} in f16: {e:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_choices_read_back_what_they_print() {
        for c in [DeviceChoice::Auto, DeviceChoice::Wgpu, DeviceChoice::Cpu, DeviceChoice::Adapter(3)] {
            assert_eq!(c.to_string().parse::<DeviceChoice>(), Ok(c));
            let ron_text = ron::to_string(&c).unwrap();
            assert_eq!(ron::from_str::<DeviceChoice>(&ron_text).unwrap(), c, "{ron_text}");
        }
        assert_eq!(" GPU ".parse::<DeviceChoice>(), Ok(DeviceChoice::Wgpu));
        let err = "adapter:x".parse::<DeviceChoice>().unwrap_err();
        assert!(err.contains("adapter:N"), "{err}");
    }

    /// Every listed adapter opens under its number, with the same description; a number past
    /// the list is refused with the count (lavapipe gives one adapter where Mesa is installed).
    #[test]
    fn adapters_open_by_number_and_a_missing_one_is_named() {
        let list = adapters();
        for a in list {
            let (_, info) = select(DeviceChoice::Adapter(a.index)).unwrap();
            assert_eq!(info, a.info);
            assert!(!info.name.is_empty());
        }
        let err = select(DeviceChoice::Adapter(list.len() + 7)).unwrap_err().to_string();
        assert!(err.contains(&format!("has {}", list.len())), "{err}");
    }

    /// f16 on the CPU means the decode panels: the device itself stays f32.
    #[test]
    fn f16_on_the_cpu_packs_the_decode_panels_and_leaves_tensors_f32() {
        let (device, info) = cpu();
        assert_eq!(use_f16(&device, &info).unwrap(), HalfPrecision::DecodePanels);
        assert_eq!(Tensor::<1>::zeros([2], &device).dtype(), burn::tensor::DType::F32);
    }
}
