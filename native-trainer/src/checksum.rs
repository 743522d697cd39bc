//! SHA-256 checksums as downloads are checked against them: of a whole file (with a progress
//! bar), of a stream as it arrives, and in the lower-case hex they are written in.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use indicatif::ProgressBar;
use sha2::{Digest, Sha256};

use crate::progress::bytes_bar;

/// Read and write granularity while streaming and hashing.
pub(crate) const CHUNK: usize = 256 * 1024;

/// A checksum as given (64 hex digits, either case, spaces around allowed), lower-cased;
/// `None` if it is not one.
pub(crate) fn parse_sha256(value: &str) -> Option<String> {
    let trimmed = value.trim();
    (trimmed.len() == 64 && trimmed.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| trimmed.to_ascii_lowercase())
}

/// Size and SHA-256 of a whole file, with a progress bar (787 MB take a few seconds).
pub(crate) fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let name = path
        .file_name()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    let bar = bytes_bar(Some(len), &format!("checking {name}"));
    let mut hasher = Sha256::new();
    let bytes = hash_into(&mut file, &mut hasher, &bar)?;
    bar.finish_and_clear();
    Ok((bytes, hex(&hasher.finalize())))
}

pub(crate) fn hash_into(
    reader: &mut impl Read,
    hasher: &mut Sha256,
    bar: &ProgressBar,
) -> io::Result<u64> {
    let mut buffer = vec![0; CHUNK];
    let mut total = 0;
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        hasher.update(&buffer[..read]);
        total += read as u64;
        bar.inc(read as u64);
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|byte| {
            [
                DIGITS[usize::from(byte >> 4)],
                DIGITS[usize::from(byte & 0xf)],
            ]
        })
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download::PETIMAGES_SHA256;

    #[test]
    fn sha256_is_checked_and_normalised() {
        let upper = PETIMAGES_SHA256.to_ascii_uppercase();
        assert_eq!(parse_sha256(&upper).unwrap(), PETIMAGES_SHA256);
        assert_eq!(parse_sha256("abc"), None);
        assert_eq!(parse_sha256(&"g".repeat(64)), None);
    }

    #[test]
    fn hex_matches_a_known_digest() {
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
