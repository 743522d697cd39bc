//! `native-trainer`: parses arguments and calls the `catdog_trainer` library.

use std::path::PathBuf;
use std::process::ExitCode;

use catdog_model::{Backend, CnnConfig};
use catdog_trainer::train::{self, TrainConfig};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Train, evaluate and export the catdog cats-vs-dogs model"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the from-scratch CNN on a Kaggle-layout folder and write the web weight file.
    Train {
        /// Folder of cat.N.jpg / dog.N.jpg photos.
        #[arg(long)]
        data: PathBuf,
        /// Weight file to write (atomically).
        #[arg(long, default_value = "www/model/catdog.bpk")]
        out: PathBuf,
        /// Square input size in pixels.
        #[arg(long, default_value_t = 64)]
        input_size: u32,
        /// Output channels of each convolution block, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = CnnConfig::default().channels)]
        channels: Vec<usize>,
        #[arg(long, default_value_t = CnnConfig::default().dropout)]
        dropout: f64,
        #[arg(long, default_value_t = 3)]
        epochs: usize,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long, default_value_t = 1e-3)]
        learning_rate: f64,
        /// Use at most this many photos, half of each class.
        #[arg(long)]
        limit: Option<usize>,
        /// Fraction of each class held out for validation.
        #[arg(long, default_value_t = 0.1)]
        validation: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// wgpu, flex or ndarray.
        #[arg(long, default_value_t = Backend::DEFAULT_CPU)]
        backend: Backend,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train {
            data,
            out,
            input_size,
            channels,
            dropout,
            epochs,
            batch_size,
            learning_rate,
            limit,
            validation,
            seed,
            backend,
        } => train::run(&TrainConfig {
            data,
            out: out.clone(),
            cnn: CnnConfig { channels, dropout },
            input_size,
            epochs,
            batch_size,
            learning_rate,
            limit,
            validation_fraction: validation,
            seed,
            backend,
        })
        .map(|report| {
            println!(
                "wrote {} ({} bytes): {} training and {} validation photos, {} skipped, \
                 validation accuracy {}",
                out.display(),
                report.file_bytes,
                report.summary.train_images,
                report.summary.validation_images,
                report.skipped,
                report
                    .summary
                    .validation_accuracy
                    .map_or("not measured".into(), |a| format!("{:.2}%", a * 100.0)),
            );
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("native-trainer: {error}");
            ExitCode::FAILURE
        }
    }
}
