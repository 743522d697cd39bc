//! `bench`: decode and training speed per backend, as a table.

use std::path::PathBuf;

use catdog_model::{Backend, CnnConfig};
use clap::Args;

use super::{Error, parse_backend};

#[derive(Args)]
pub struct BenchArgs {
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
}

pub fn bench(args: BenchArgs) -> Result<(), Error> {
    let BenchArgs {
        data,
        photos,
        input_size,
        channels,
        batch_size,
        steps,
        backends,
        json,
    } = args;
    let (rows, failures) = crate::bench::run(&crate::bench::BenchConfig {
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
    print!("{}", crate::bench::table(&rows));
    if let Some(path) = json {
        crate::bench::write_json(&path, &rows)?;
    }
    for failure in failures {
        println!("not measured: {failure}");
    }
    Ok(())
}
