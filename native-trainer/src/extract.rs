//! Unpacking a downloaded zip (the PetImages archive) safely.
//!
//! It follows the download's rule that nothing half-done ever looks done: entries are
//! unpacked into `<into>.partial-extract`, which is renamed to `into` only when every entry is
//! out, so an interrupted extraction never looks complete; an existing `into` is taken as
//! already extracted. Entry names go through [`zip::read::ZipFile::enclosed_name`] and the
//! whole archive is refused, before anything is written, if any entry would land outside
//! `into` ("zip-slip") or is a symbolic link.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, Write};

use std::path::{Path, PathBuf};

use indicatif::ProgressBar;

use crate::checksum::CHUNK;
use crate::download::{DownloadError, io_error, with_suffix};

/// An unpacked archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub dir: PathBuf,
    /// Regular files under `dir`.
    pub files: usize,
    /// Their total size.
    pub bytes: u64,
    /// `dir` existed already and was left as it was.
    pub already_extracted: bool,
}

/// `<into>.partial-extract`: where [`extract_zip`] unpacks before the final rename.
pub fn partial_extract_path(into: &Path) -> PathBuf {
    with_suffix(into, ".partial-extract")
}

/// Unpacks `zip` into the directory `into` (the archive's paths are kept, so PetImages ends up
/// as `into/PetImages/Cat/…`). Returns `into` untouched if it exists already.
pub fn extract_zip(zip: &Path, into: &Path) -> Result<Extracted, DownloadError> {
    match fs::metadata(into) {
        Ok(metadata) if metadata.is_dir() => {
            let (files, bytes) = count_tree(into)?;
            return Ok(Extracted {
                dir: into.to_path_buf(),
                files,
                bytes,
                already_extracted: true,
            });
        }
        Ok(_) => {
            return Err(io_error(into)(io::Error::other(
                "exists and is not a directory",
            )));
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_error(into)(error)),
    }

    let file = File::open(zip).map_err(io_error(zip))?;
    let bad_zip = |source| DownloadError::BadZip {
        path: zip.to_path_buf(),
        source,
    };
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(bad_zip)?;

    // Every name is checked before anything is written: a hostile archive is refused whole.
    let mut targets = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let entry = archive.by_index_data(index).map_err(bad_zip)?;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let unsafe_entry = |reason| DownloadError::UnsafeEntry {
            zip: zip.to_path_buf(),
            name: name.clone(),
            reason,
        };
        if entry.is_symlink() {
            return Err(unsafe_entry("it is a symbolic link"));
        }
        let Some(relative) = entry.enclosed_name() else {
            return Err(unsafe_entry("its path leads outside the extraction folder"));
        };
        if relative.as_os_str().is_empty() && !entry.is_dir() {
            return Err(unsafe_entry("it has no file name"));
        }
        targets.push((name, relative, entry.is_dir()));
    }

    let staging = partial_extract_path(into);
    match fs::remove_dir_all(&staging) {
        // Left by an interrupted run: its contents are unknown, so start clean.
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_error(&staging)(error)),
    }
    fs::create_dir_all(&staging).map_err(io_error(&staging))?;

    let bar = crate::progress::progress_bar(targets.len() as u64, "extracting");
    let unpacked = unpack(&mut archive, zip, &staging, &targets, &bar);
    let (files, bytes) = match unpacked {
        Ok(counts) => counts,
        Err(error) => {
            bar.abandon();
            // Best effort: a later run clears the folder anyway.
            let _ = fs::remove_dir_all(&staging);
            return Err(error);
        }
    };
    bar.finish_and_clear();
    fs::rename(&staging, into).map_err(io_error(into))?;
    Ok(Extracted {
        dir: into.to_path_buf(),
        files,
        bytes,
        already_extracted: false,
    })
}

fn unpack<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    zip: &Path,
    staging: &Path,
    targets: &[(String, PathBuf, bool)],
    bar: &ProgressBar,
) -> Result<(usize, u64), DownloadError> {
    let mut files = 0;
    let mut bytes = 0;
    let mut buffer = vec![0; CHUNK];
    for (index, (name, relative, is_dir)) in targets.iter().enumerate() {
        let out = staging.join(relative);
        if *is_dir {
            fs::create_dir_all(&out).map_err(io_error(&out))?;
            bar.inc(1);
            continue;
        }
        if let Some(dir) = out.parent() {
            fs::create_dir_all(dir).map_err(io_error(dir))?;
        }
        let mut entry = archive
            .by_index(index)
            .map_err(|source| DownloadError::BadZip {
                path: zip.to_path_buf(),
                source,
            })?;
        let mut file = File::create(&out).map_err(io_error(&out))?;
        // Read errors (bad deflate data, CRC mismatch at the end) are the archive's fault,
        // write errors the disk's: they get different errors.
        loop {
            let read = match entry.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(DownloadError::BadEntry {
                        zip: zip.to_path_buf(),
                        name: name.clone(),
                        source,
                    });
                }
            };
            file.write_all(&buffer[..read]).map_err(io_error(&out))?;
            bytes += read as u64;
        }
        files += 1;
        bar.inc(1);
    }
    Ok((files, bytes))
}

/// Regular files and their total size under `dir`, for an already extracted folder.
fn count_tree(dir: &Path) -> Result<(usize, u64), DownloadError> {
    let mut files = 0;
    let mut bytes = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).map_err(io_error(&dir))? {
            let entry = entry.map_err(io_error(&dir))?;
            let kind = entry.file_type().map_err(io_error(&entry.path()))?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files += 1;
                bytes += entry.metadata().map_err(io_error(&entry.path()))?.len();
            }
        }
    }
    Ok((files, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_staging_folder_keeps_the_whole_name() {
        assert_eq!(
            partial_extract_path(Path::new("data/petimages")),
            Path::new("data/petimages.partial-extract")
        );
    }
}
