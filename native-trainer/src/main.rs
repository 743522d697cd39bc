//! `native-trainer`: parses the command line and hands each command to its module in the
//! `catdog_trainer::cli` library, where its arguments, defaults and printing live.

use std::process::ExitCode;

use catdog_trainer::cli::{Cli, Command, Error, bench, data, model_files, training, verdicts};
use clap::Parser;

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("native-trainer: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Download(args) => data::download(args),
        Command::Inspect(args) => data::inspect(args),
        Command::Train(args) => training::train(args),
        Command::Tune(args) => training::tune(args),
        Command::Compare(args) => training::compare(args),
        Command::Evaluate(args) => verdicts::evaluate(args),
        Command::Predict(args) => verdicts::predict(args),
        Command::Explain(args) => verdicts::explain(args),
        Command::PetFilter(args) => model_files::pet_filter(args),
        Command::Submission(args) => verdicts::submission(args),
        Command::FetchBackbone(args) => model_files::fetch_backbone(args),
        Command::ImagenetCheck(args) => model_files::imagenet_check(args),
        Command::Bench(args) => bench::bench(args),
        Command::ExportSafetensors(args) => model_files::export_safetensors(args),
        Command::Export(args) => model_files::export(args),
    }
}
