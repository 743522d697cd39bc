//! The `download` command: fetch Microsoft's PetImages archive over HTTPS, check it, unpack it.
//!
//! The archive is ~787 MB, so the download is built to survive being interrupted and to never
//! hand a damaged file to the rest of the trainer:
//!
//! - **Bytes go to `<dest>.partial`, never to `dest`.** `dest` appears only by a rename, after
//!   the size and the SHA-256 have been checked, so anything at `dest` is a complete, verified
//!   archive (a reader never sees a half file there), and a file at `dest` means "done": a
//!   second run verifies it and downloads nothing.
//! - **An interrupted transfer is resumed, not restarted.** A dropped connection is an error
//!   (never a silently short file) and leaves the partial file where it is; the next run asks
//!   for the rest with `Range: bytes=N-`. A `206` answer is appended; a `200` (the server
//!   ignores ranges) starts again from zero; a `416` (nothing past byte N) with a partial that
//!   already has the full size goes straight to verification.
//! - **On resume the partial bytes are hashed again**, from disk, before the new bytes are
//!   appended. Hashing is incremental, but a hasher's state does not outlive the process, and
//!   re-reading the file means the checksum covers the bytes actually on disk, not what an
//!   earlier run believed it wrote.
//! - **A bad result keeps nothing.** A size or checksum mismatch deletes the partial file (a
//!   resume would only extend the damage) and the error names the file, the expected and the
//!   actual value. Redownloading is then a plain rerun.
//!
//! Extraction, under the same rules, is [`crate::extract`].
//!
//! (Over 400 lines because each way a transfer can end, a stall, a cut, a server without
//! ranges, a 416, a wrong size or checksum, is handled here beside the others, where one
//! reading shows that every path keeps the rules above; the checksums are in `checksum.rs`.)

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::checksum::{CHUNK, hash_file, hash_into, hex, parse_sha256};
use crate::progress::bytes_bar;

/// Microsoft's download of the Kaggle "Dogs vs. Cats" photos (`PetImages/Cat`, `PetImages/Dog`),
/// linked from <https://www.microsoft.com/en-us/download/details.aspx?id=54765>.
pub const PETIMAGES_URL: &str = "https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/kagglecatsanddogs_5340.zip";

/// Size of [`PETIMAGES_URL`] in bytes. Microsoft publishes no checksum; this value and
/// [`PETIMAGES_SHA256`] are the ones recorded by the Hugging Face `datasets` loader for this
/// exact URL (`datasets/cats_vs_dogs/dataset_infos.json`, `download_checksums`, after the move
/// from `kagglecatsanddogs_3367a.zip`, which was 824,894,548 bytes). The same SHA-256 is pinned
/// independently by GoMLX's Dogs-vs-Cats example (`examples/dogsvscats`, `DownloadChecksum`).
pub const PETIMAGES_SIZE: u64 = 824_887_076;

/// SHA-256 of [`PETIMAGES_URL`], lower-case hex; see [`PETIMAGES_SIZE`] for the sources.
pub const PETIMAGES_SHA256: &str =
    "b7974bd00a84a99921f36ee4403f089853777b5ae8d151c76a86e64900334af9";

/// How long a connection may stay silent (connecting, waiting for the answer, or between two
/// reads of the body) before the transfer counts as interrupted. No limit on the whole
/// transfer: 787 MB on a slow line takes as long as it takes.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What to download and how to check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub url: String,
    /// Where the verified file ends up; the transfer itself goes to [`partial_path`]`(dest)`.
    pub dest: PathBuf,
    /// Expected size in bytes; `None` trusts the server's `Content-Length`/`Content-Range`.
    pub expected_size: Option<u64>,
    /// Expected SHA-256, 64 hex digits (either case); `None` skips the check (the computed
    /// value is still returned).
    pub sha256: Option<String>,
}

impl Download {
    /// The PetImages archive, checked against [`PETIMAGES_SIZE`] and [`PETIMAGES_SHA256`].
    pub fn petimages(dest: impl Into<PathBuf>) -> Self {
        Self {
            url: PETIMAGES_URL.to_string(),
            dest: dest.into(),
            expected_size: Some(PETIMAGES_SIZE),
            sha256: Some(PETIMAGES_SHA256.to_string()),
        }
    }
}

/// A verified file at [`Download::dest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub path: PathBuf,
    pub bytes: u64,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: String,
    /// Bytes kept from an earlier, interrupted run (0 for a fresh download).
    pub resumed_from: u64,
    /// `dest` was already there and verified: nothing was downloaded.
    pub already_present: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{url}: request failed: {source}")]
    Request {
        url: String,
        source: Box<ureq::Error>,
    },
    #[error("{url}: the server answered HTTP {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("{url}: the server has {actual} bytes, expected {expected}; not downloading")]
    ServerSize {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "{url}: transfer interrupted after {received} bytes ({source}); {partial} is kept and the \
         next run resumes it"
    )]
    Interrupted {
        url: String,
        partial: PathBuf,
        received: u64,
        source: io::Error,
    },
    #[error(
        "{path}: size mismatch: expected {expected} bytes, got {actual}; the download was deleted"
    )]
    SizeMismatch {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: sha256 mismatch: expected {expected}, got {actual}; the download was deleted")]
    ChecksumMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(
        "{path} already exists but its {what} is {actual}, expected {expected}; delete it to \
         download again"
    )]
    ExistingMismatch {
        path: PathBuf,
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("{value:?} is not a sha256 checksum (64 hex digits)")]
    InvalidSha256 { value: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a readable zip archive: {source}")]
    BadZip {
        path: PathBuf,
        source: zip::result::ZipError,
    },
    #[error("{zip}: entry {name:?} is damaged: {source}")]
    BadEntry {
        zip: PathBuf,
        name: String,
        source: io::Error,
    },
    #[error("{zip}: refusing to extract entry {name:?}: {reason}; nothing was extracted")]
    UnsafeEntry {
        zip: PathBuf,
        name: String,
        reason: &'static str,
    },
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> DownloadError + use<> {
    let path = path.to_path_buf();
    move |source| DownloadError::Io { path, source }
}

/// `<path>.partial`: where [`download`] keeps the bytes until they are verified.
pub fn partial_path(dest: &Path) -> PathBuf {
    with_suffix(dest, ".partial")
}

pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Downloads `spec.url` to `spec.dest`, resuming an earlier partial transfer, and verifies the
/// size and SHA-256 before the file appears at `dest`. An existing `dest` is verified and
/// returned without any network access.
pub fn download(spec: &Download) -> Result<Downloaded, DownloadError> {
    let expected_sha256 = spec
        .sha256
        .as_deref()
        .map(|value| {
            parse_sha256(value).ok_or_else(|| DownloadError::InvalidSha256 {
                value: value.to_string(),
            })
        })
        .transpose()?;
    if let Some(existing) = verify_existing(spec, expected_sha256.as_deref())? {
        return Ok(existing);
    }
    if let Some(dir) = spec.dest.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let partial = partial_path(&spec.dest);
    let fetched = fetch(spec, &partial)?;

    if let Some(expected) = spec.expected_size
        && fetched.bytes != expected
    {
        discard(&partial)?;
        return Err(DownloadError::SizeMismatch {
            path: spec.dest.clone(),
            expected,
            actual: fetched.bytes,
        });
    }
    if let Some(expected) = expected_sha256
        && fetched.sha256 != expected
    {
        discard(&partial)?;
        return Err(DownloadError::ChecksumMismatch {
            path: spec.dest.clone(),
            expected,
            actual: fetched.sha256,
        });
    }
    fs::rename(&partial, &spec.dest).map_err(io_error(&spec.dest))?;
    Ok(Downloaded {
        path: spec.dest.clone(),
        bytes: fetched.bytes,
        sha256: fetched.sha256,
        resumed_from: fetched.resumed_from,
        already_present: false,
    })
}

/// Lower-cases and checks a user-supplied checksum, so a typo fails before 787 MB are fetched.
/// `Some` when `dest` exists and passes the checks; an error when it exists and fails them (it
/// is left alone: it may be someone's file, and a rerun after deleting it is cheap to ask for).
fn verify_existing(
    spec: &Download,
    expected_sha256: Option<&str>,
) -> Result<Option<Downloaded>, DownloadError> {
    let metadata = match fs::metadata(&spec.dest) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(&spec.dest)(error)),
    };
    if !metadata.is_file() {
        return Err(io_error(&spec.dest)(io::Error::other(
            "exists and is not a file",
        )));
    }
    if let Some(expected) = spec.expected_size
        && metadata.len() != expected
    {
        return Err(DownloadError::ExistingMismatch {
            path: spec.dest.clone(),
            what: "size",
            expected: format!("{expected} bytes"),
            actual: format!("{} bytes", metadata.len()),
        });
    }
    let (bytes, sha256) = hash_file(&spec.dest).map_err(io_error(&spec.dest))?;
    if let Some(expected) = expected_sha256
        && sha256 != expected
    {
        return Err(DownloadError::ExistingMismatch {
            path: spec.dest.clone(),
            what: "sha256",
            expected: expected.to_string(),
            actual: sha256,
        });
    }
    Ok(Some(Downloaded {
        path: spec.dest.clone(),
        bytes,
        sha256,
        resumed_from: 0,
        already_present: true,
    }))
}

/// The partial file once the transfer has ended cleanly (not yet checked against the spec).
struct Fetched {
    bytes: u64,
    sha256: String,
    resumed_from: u64,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        // 206, 416 and the error statuses are answers to look at, not transport failures.
        .http_status_as_error(false)
        // Byte ranges and the checksum are about the file's own bytes: no content coding.
        .accept_encoding("identity")
        .user_agent(concat!("catdog-trainer/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(STALL_TIMEOUT))
        .timeout_recv_response(Some(STALL_TIMEOUT))
        .timeout_per_read(Some(STALL_TIMEOUT))
        .build()
        .new_agent()
}

/// Gets the rest of the file into `partial`: at most two requests, a `Range` request when a
/// partial file exists and, if the answer shows that file cannot be continued, one from zero.
fn fetch(spec: &Download, partial: &Path) -> Result<Fetched, DownloadError> {
    let url = spec.url.as_str();
    let agent = agent();
    let mut offset = match fs::metadata(partial) {
        Ok(metadata) => metadata.len(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => 0,
        Err(error) => return Err(io_error(partial)(error)),
    };
    if spec.expected_size.is_some_and(|expected| offset > expected) {
        discard(partial)?;
        offset = 0;
    }
    loop {
        // One request per agent: nothing to keep alive. (The tests' server also relies on it to
        // close the connection after a body it cuts short.)
        let mut request = agent.get(url).header("Connection", "close");
        if offset > 0 {
            request = request.header("Range", format!("bytes={offset}-"));
        }
        let response = request.call().map_err(|source| DownloadError::Request {
            url: url.to_string(),
            source: Box::new(source),
        })?;
        let content_range = response
            .headers()
            .get("content-range")
            .and_then(|value| value.to_str().ok())
            .and_then(ContentRange::parse);
        match response.status().as_u16() {
            206 if offset > 0 => {
                let Some(range) = content_range.filter(|range| range.start == Some(offset)) else {
                    // Some other range than the one asked for: start over rather than guess.
                    discard(partial)?;
                    offset = 0;
                    continue;
                };
                let total = range.total.or_else(|| {
                    let remaining = response.body().content_length()?;
                    Some(offset + remaining)
                });
                check_server_size(spec, total)?;
                return receive(response, url, partial, offset, total.or(spec.expected_size));
            }
            200 => {
                let total = response.body().content_length();
                check_server_size(spec, total)?;
                return receive(response, url, partial, 0, total.or(spec.expected_size));
            }
            416 if offset > 0 => {
                let total = content_range
                    .and_then(|range| range.total)
                    .or(spec.expected_size);
                if total == Some(offset) {
                    // Everything arrived last time; only the verification was missing.
                    let (bytes, sha256) = hash_file(partial).map_err(io_error(partial))?;
                    return Ok(Fetched {
                        bytes,
                        sha256,
                        resumed_from: offset,
                    });
                }
                discard(partial)?;
                offset = 0;
            }
            status => {
                return Err(DownloadError::HttpStatus {
                    url: url.to_string(),
                    status,
                });
            }
        }
    }
}

/// Refuses before the transfer when the server's idea of the size contradicts the spec.
fn check_server_size(spec: &Download, server_total: Option<u64>) -> Result<(), DownloadError> {
    match (spec.expected_size, server_total) {
        (Some(expected), Some(actual)) if expected != actual => Err(DownloadError::ServerSize {
            url: spec.url.clone(),
            expected,
            actual,
        }),
        _ => Ok(()),
    }
}

/// Streams the body into `partial` from byte `offset` (re-hashing the first `offset` bytes
/// already there), hashing as it goes. A read error is [`DownloadError::Interrupted`] and
/// leaves every byte received so far in `partial`.
fn receive(
    response: ureq::http::Response<ureq::Body>,
    url: &str,
    partial: &Path,
    offset: u64,
    total: Option<u64>,
) -> Result<Fetched, DownloadError> {
    // Named after the file being downloaded, not its `.partial` stand-in.
    let name = partial
        .file_stem()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    let bar = bytes_bar(total, &name);
    let mut hasher = Sha256::new();
    let mut file = if offset > 0 {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(partial)
            .map_err(io_error(partial))?;
        bar.set_message(format!("checking {name}"));
        let hashed = hash_into(&mut (&mut file).take(offset), &mut hasher, &bar)
            .map_err(io_error(partial))?;
        if hashed != offset {
            return Err(io_error(partial)(io::Error::other(format!(
                "shrank from {offset} to {hashed} bytes while being read"
            ))));
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(io_error(partial))?;
        bar.set_message(name.clone());
        bar.reset_eta();
        file
    } else {
        File::create(partial).map_err(io_error(partial))?
    };

    let mut body = response.into_body().into_reader();
    let mut buffer = vec![0; CHUNK];
    let mut received = offset;
    let interrupted = |received, source| DownloadError::Interrupted {
        url: url.to_string(),
        partial: partial.to_path_buf(),
        received,
        source,
    };
    loop {
        let read = match body.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                bar.abandon();
                // Keep what arrived: it is a correct prefix and the next run resumes from it.
                file.sync_all().map_err(io_error(partial))?;
                return Err(interrupted(received, error));
            }
        };
        file.write_all(&buffer[..read]).map_err(io_error(partial))?;
        hasher.update(&buffer[..read]);
        received += read as u64;
        bar.set_position(received);
    }
    file.sync_all().map_err(io_error(partial))?;
    drop(file);
    if let Some(total) = total
        && received < total
    {
        // A body without a length (or a shorter range) that ended early: resumable too.
        bar.abandon();
        let source = io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the body ended at byte {received} of {total}"),
        );
        return Err(interrupted(received, source));
    }
    bar.finish_and_clear();
    Ok(Fetched {
        bytes: received,
        sha256: hex(&hasher.finalize()),
        resumed_from: offset,
    })
}

/// Deletes a partial download that must not be resumed.
fn discard(partial: &Path) -> Result<(), DownloadError> {
    match fs::remove_file(partial) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error(partial)(error)),
    }
}

/// A `Content-Range` value: `bytes START-END/TOTAL`, `bytes START-END/*` or `bytes */TOTAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ContentRange {
    start: Option<u64>,
    total: Option<u64>,
}

impl ContentRange {
    fn parse(value: &str) -> Option<Self> {
        let (range, total) = value.trim().strip_prefix("bytes")?.trim().split_once('/')?;
        let total = match total.trim() {
            "*" => None,
            total => Some(total.parse().ok()?),
        };
        let start = match range.trim() {
            "*" => None,
            range => Some(range.split_once('-')?.0.trim().parse().ok()?),
        };
        Some(Self { start, total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        assert_eq!(
            ContentRange::parse("bytes 100-199/200"),
            Some(ContentRange {
                start: Some(100),
                total: Some(200)
            })
        );
        assert_eq!(
            ContentRange::parse("bytes 100-199/*"),
            Some(ContentRange {
                start: Some(100),
                total: None
            })
        );
        assert_eq!(
            ContentRange::parse("bytes */200"),
            Some(ContentRange {
                start: None,
                total: Some(200)
            })
        );
        assert_eq!(ContentRange::parse("items 1-2/3"), None);
        assert_eq!(ContentRange::parse("bytes 1-2"), None);
    }

    #[test]
    fn suffixes_keep_the_whole_name() {
        assert_eq!(
            partial_path(Path::new("data/kagglecatsanddogs_5340.zip")),
            Path::new("data/kagglecatsanddogs_5340.zip.partial")
        );
    }
}
