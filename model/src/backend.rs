//! The compute backends, chosen at run time: one Burn `Device` type serves them all.

use std::fmt;
use std::str::FromStr;
#[cfg(feature = "wgpu")]
use std::sync::OnceLock;

use burn::tensor::Device;

/// A compute backend the model can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The GPU through wgpu: Vulkan, Metal or DX12 natively, WebGPU in the browser.
    Wgpu,
    /// Burn's pure-Rust CPU backend, `burn-flex`.
    Flex,
    /// Burn's older CPU backend, `burn-ndarray` (deprecated upstream, kept by request): natively
    /// only. The page leaves it out (it was five times slower than flex there, and about a
    /// tenth of the page's code; README, "What the page's code is made of").
    #[cfg(not(target_family = "wasm"))]
    NdArray,
}

/// Why a backend could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {backend} backend is not available: {reason}")]
pub struct BackendError {
    pub backend: Backend,
    pub reason: String,
}

impl Backend {
    /// The backends this build has: wgpu with the `wgpu` feature, ndarray natively.
    pub const ALL: &[Backend] = &[
        #[cfg(feature = "wgpu")]
        Backend::Wgpu,
        Backend::Flex,
        #[cfg(not(target_family = "wasm"))]
        Backend::NdArray,
    ];

    /// The CPU backend used when none is named: flex, measured faster than ndarray (training a
    /// 128 px CNN on this project's 2-core machine: flex about 14 images/s, ndarray about 0.6,
    /// whose convolution backward pass is a slow fallback).
    pub const DEFAULT_CPU: Backend = Backend::Flex;

    pub fn name(self) -> &'static str {
        match self {
            Backend::Wgpu => "wgpu",
            Backend::Flex => "flex",
            #[cfg(not(target_family = "wasm"))]
            Backend::NdArray => "ndarray",
        }
    }

    pub fn is_gpu(self) -> bool {
        self == Backend::Wgpu
    }

    /// The backend's device. For wgpu this acquires the GPU once per process and fails with a
    /// clear error where there is none.
    #[cfg(not(target_family = "wasm"))]
    pub fn device(self) -> Result<Device, BackendError> {
        match self {
            #[cfg(not(feature = "wgpu"))]
            Backend::Wgpu => Err(self.error(NO_WGPU.into())),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => WGPU
                .get_or_init(|| {
                    Device::wgpu_options()
                        .init_with_setup()
                        .map(|(device, setup)| {
                            let info = setup.adapter.get_info();
                            let _ = WGPU_ADAPTER.set(GpuAdapter {
                                name: info.name,
                                software: info.device_type
                                    == burn::tensor::wgpu::wgpu::DeviceType::Cpu,
                            });
                            device
                        })
                        .map_err(|error| error.to_string())
                })
                .clone()
                .map_err(|reason| self.error(reason)),
            cpu => Ok(cpu_device(cpu)),
        }
    }

    /// The backend's device, asynchronously: in a browser WebGPU can only be acquired this way.
    pub async fn device_async(self) -> Result<Device, BackendError> {
        match self {
            #[cfg(not(feature = "wgpu"))]
            Backend::Wgpu => Err(self.error(NO_WGPU.into())),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => {
                if let Some(device) = WGPU.get() {
                    return device.clone().map_err(|reason| self.error(reason));
                }
                let device = Device::wgpu_options()
                    .init_async()
                    .await
                    .map_err(|error| error.to_string());
                WGPU.get_or_init(|| device)
                    .clone()
                    .map_err(|reason| self.error(reason))
            }
            cpu => Ok(cpu_device(cpu)),
        }
    }

    /// The backend to run on: exactly `requested` if one is named, else the GPU when there is
    /// one and the default CPU backend when not (the reason kept, to show the user).
    pub async fn acquire(requested: Option<Backend>) -> Result<Acquired, BackendError> {
        if let Some(backend) = requested {
            let device = backend.device_async().await?;
            return Ok(Acquired {
                backend,
                device,
                fallback: None,
            });
        }
        match Backend::Wgpu.device_async().await {
            Ok(device) => Ok(Acquired {
                backend: Backend::Wgpu,
                device,
                fallback: None,
            }),
            Err(error) => Ok(Acquired {
                backend: Backend::DEFAULT_CPU,
                device: Backend::DEFAULT_CPU.device_async().await?,
                fallback: Some(error),
            }),
        }
    }

    fn error(self, reason: String) -> BackendError {
        BackendError {
            backend: self,
            reason,
        }
    }
}

/// A started backend and its device.
#[derive(Debug, Clone)]
pub struct Acquired {
    pub backend: Backend,
    pub device: Device,
    /// Why the GPU was not used, when the CPU was chosen in its place.
    pub fallback: Option<BackendError>,
}

/// Why wgpu is refused in a build without it.
#[cfg(not(feature = "wgpu"))]
const NO_WGPU: &str = "this build has no GPU code (built without the `wgpu` feature)";

/// The wgpu runtime can be initialised only once per process; its outcome is kept.
#[cfg(feature = "wgpu")]
static WGPU: OnceLock<Result<Device, String>> = OnceLock::new();
#[cfg(all(feature = "wgpu", not(target_family = "wasm")))]
static WGPU_ADAPTER: OnceLock<GpuAdapter> = OnceLock::new();

/// The adapter wgpu chose natively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuAdapter {
    pub name: String,
    /// A CPU implementation of the graphics API (lavapipe, llvmpipe, SwiftShader, WARP):
    /// correct, but far slower than a CPU backend for training.
    pub software: bool,
}

/// The adapter behind the native wgpu device, starting wgpu if it is not yet started.
#[cfg(all(feature = "wgpu", not(target_family = "wasm")))]
pub fn gpu_adapter() -> Result<GpuAdapter, BackendError> {
    Backend::Wgpu.device()?;
    Ok(WGPU_ADAPTER
        .get()
        .cloned()
        .expect("a started wgpu runtime recorded its adapter"))
}

fn cpu_device(backend: Backend) -> Device {
    match backend {
        Backend::Flex => Device::flex(),
        #[cfg(not(target_family = "wasm"))]
        #[allow(deprecated)] // offered by request; flex is the default
        Backend::NdArray => Device::ndarray(),
        Backend::Wgpu => unreachable!("wgpu is not a CPU backend"),
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.to_ascii_lowercase().as_str() {
            "wgpu" | "gpu" | "webgpu" => Ok(Backend::Wgpu),
            "flex" | "cpu" => Ok(Backend::Flex),
            #[cfg(not(target_family = "wasm"))]
            "ndarray" => Ok(Backend::NdArray),
            other => {
                let known: Vec<&str> = Backend::ALL.iter().map(|backend| backend.name()).collect();
                Err(format!(
                    "unknown backend '{other}': expected {}",
                    known.join(", ")
                ))
            }
        }
    }
}
