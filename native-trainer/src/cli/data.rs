//! `download` (Microsoft's PetImages zip, resumable and checked) and `inspect` (a dataset's
//! classes and a contact sheet).

use std::path::PathBuf;

use clap::Args;

use super::Error;
use crate::{download, evaluate};

#[derive(Args)]
pub struct DownloadArgs {
    /// Folder to put the zip and the unpacked photos in.
    #[arg(long, default_value = "data")]
    dir: PathBuf,
    #[arg(long, default_value = download::PETIMAGES_URL)]
    url: String,
    /// Expected SHA-256 of the zip (hex).
    #[arg(long)]
    sha256: Option<String>,
}

pub fn download(args: DownloadArgs) -> Result<(), Error> {
    let DownloadArgs { dir, url, sha256 } = args;
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
    let extracted = crate::extract::extract_zip(&zip, &dir.join("PetImages-unpacked"))?;
    println!(
        "unpacked {} files into {}; train with --data {}",
        extracted.files,
        extracted.dir.display(),
        extracted.dir.display()
    );
    Ok(())
}

#[derive(Args)]
pub struct InspectArgs {
    /// A folder or zip: Kaggle flat, PetImages or folder per class.
    data: PathBuf,
    #[arg(long, default_value = "inspect.png")]
    out: PathBuf,
    #[arg(long, default_value_t = 36)]
    samples: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub fn inspect(args: InspectArgs) -> Result<(), Error> {
    let InspectArgs {
        data,
        out,
        samples,
        seed,
    } = args;
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
    Ok(())
}
