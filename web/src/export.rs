//! Taking the results home, made in the browser: a CSV of the verdicts and a zip of the photos
//! sorted into `cat/`, `dog/`, `not-sure/` and `neither/` folders.
//!
//! The zip is written by hand (stored entries, no compression: photos are compressed already)
//! rather than with the `zip` crate, because a zip writer needs every photo's bytes in wasm
//! memory at once (500 phone photos are about 2 GB, about half of what a wasm page can address),
//! while here the archive is a `Blob` of headers and the user's own `File`s: the browser copies
//! the photos from disk as the download is written, and the CRC-32s were taken when the photos
//! were read to be classified.

use std::collections::HashSet;

use js_sys::{Array, Uint8Array};
use leptos::prelude::*;

use crate::sorting::Category;
use crate::state::{Photo, PhotoState};

/// One photo in the zip.
#[derive(Debug, Clone, PartialEq)]
pub struct ZipEntry {
    /// Its path in the zip (`cat/holiday/IMG_1.jpg`).
    pub name: String,
    pub crc32: u32,
    pub size: u64,
    /// Its modification time, as MS-DOS time and date.
    pub dos_time: (u16, u16),
}

/// A piece of the zip: bytes made here, or the contents of entry `n`'s file.
#[derive(Debug, Clone, PartialEq)]
pub enum ZipPart {
    Bytes(Vec<u8>),
    File(usize),
}

/// Entries are stored uncompressed, UTF-8 names (general purpose flag bit 11).
const UTF8_NAMES: u16 = 1 << 11;
/// Version 1.0 of the format suffices to extract stored entries.
const VERSION: u16 = 10;

/// The zip of `entries` (stored, no ZIP64) as parts in file order. Refused beyond what a zip
/// without ZIP64 holds: 65,535 entries or 4 GiB (the largest values themselves mark ZIP64
/// fields, so they are refused too).
pub fn stored_zip(entries: &[ZipEntry]) -> Result<Vec<ZipPart>, String> {
    let too_big = || {
        "the sorted photos come to more than a zip holds (under 4 GiB and 65,535 photos): \
         clear some cards and download the rest in parts"
            .to_string()
    };
    let count = u16::try_from(entries.len())
        .ok()
        .filter(|count| *count < u16::MAX)
        .ok_or_else(too_big)?;
    let word = |value: u64| {
        u32::try_from(value)
            .ok()
            .filter(|value| *value < u32::MAX)
            .ok_or_else(too_big)
    };
    let mut parts = Vec::with_capacity(entries.len() * 2 + 1);
    let mut directory = Vec::new();
    let mut offset: u64 = 0;
    for (n, entry) in entries.iter().enumerate() {
        let name = entry.name.as_bytes();
        let size = word(entry.size)?;
        let at = word(offset)?;
        let name_length = u16::try_from(name.len())
            .map_err(|_| format!("a file name longer than a zip holds: {}", entry.name))?;
        // The fields the local and the central header share, from "version needed" on.
        let mut common = Vec::with_capacity(26);
        for half in [VERSION, UTF8_NAMES, 0, entry.dos_time.0, entry.dos_time.1] {
            common.extend(half.to_le_bytes());
        }
        for word in [entry.crc32, size, size] {
            common.extend(word.to_le_bytes());
        }
        common.extend(name_length.to_le_bytes());
        common.extend(0u16.to_le_bytes()); // no extra field

        let mut local = 0x0403_4b50u32.to_le_bytes().to_vec();
        local.extend(&common);
        local.extend(name);
        offset += local.len() as u64 + entry.size;
        parts.push(ZipPart::Bytes(local));
        parts.push(ZipPart::File(n));

        directory.extend(0x0201_4b50u32.to_le_bytes());
        directory.extend(VERSION.to_le_bytes()); // made by: MS-DOS, 1.0
        directory.extend(&common);
        // No comment, disk 0, no internal or external attributes, then where the entry starts.
        directory.extend([0u8; 10]);
        directory.extend(at.to_le_bytes());
        directory.extend(name);
    }
    let directory_at = word(offset)?;
    let directory_size = word(directory.len() as u64)?;
    directory.extend(0x0605_4b50u32.to_le_bytes());
    directory.extend([0u8; 4]); // this disk, the directory's disk
    directory.extend(count.to_le_bytes());
    directory.extend(count.to_le_bytes());
    directory.extend(directory_size.to_le_bytes());
    directory.extend(directory_at.to_le_bytes());
    directory.extend(0u16.to_le_bytes()); // no comment
    parts.push(ZipPart::Bytes(directory));
    Ok(parts)
}

/// MS-DOS time and date (two-second steps, years 1980–2107, local time) of a time in ms
/// since 1970, as the browser gives a file's `lastModified`.
pub fn dos_time(millis: f64) -> (u16, u16) {
    let date = js_sys::Date::new(&millis.into());
    let year = (date.get_full_year() as u16).clamp(1980, 2107);
    let time = ((date.get_hours() as u16) << 11)
        | ((date.get_minutes() as u16) << 5)
        | (date.get_seconds() as u16 / 2);
    let day =
        ((year - 1980) << 9) | (((date.get_month() + 1) as u16) << 5) | date.get_date() as u16;
    (time, day)
}

/// A name not yet in `taken` (and now taken): `a.jpg`, else `a (2).jpg`, `a (3).jpg`, ...
fn unique(name: String, taken: &mut HashSet<String>) -> String {
    let mut candidate = name.clone();
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() && !stem.ends_with('/') => {
            (stem.to_string(), format!(".{extension}"))
        }
        _ => (name.clone(), String::new()),
    };
    let mut n = 1;
    while !taken.insert(candidate.clone()) {
        n += 1;
        candidate = format!("{stem} ({n}){extension}");
    }
    candidate
}

/// The CSV's columns: the photo's path, the model's verdict and probabilities, the model, the
/// right answer if the user gave one, and the folder the photo is sorted into (empty for a file
/// that could not be read, whose reason is the last column).
const CSV_HEADER: &str = "file,label,cat,dog,model,right_answer,folder,error";

/// The verdicts as CSV (RFC 4180), one row per finished card in the order the photos were given;
/// UTF-8 with a byte-order mark, which spreadsheets need to read non-ASCII file names.
pub fn csv(photos: &[Photo]) -> String {
    let mut out = format!("\u{feff}{CSV_HEADER}\r\n");
    for photo in photos {
        let (Some(verdict), Some(category)) = (photo.verdict(), photo.category()) else {
            continue;
        };
        let truth = photo.truth.get_untracked().map(|label| label.name());
        let row: Vec<String> = photo.state.with_untracked(|state| match state {
            PhotoState::Done(outcome) => {
                let prediction = &outcome.explanation.prediction;
                vec![
                    photo.path.clone(),
                    verdict.name().into(),
                    format!("{:.4}", prediction.cat),
                    format!("{:.4}", prediction.dog),
                    outcome.model.clone(),
                    truth.unwrap_or_default().into(),
                    category.name().into(),
                    String::new(),
                ]
            }
            PhotoState::Failed(error) => vec![
                photo.path.clone(),
                verdict.name().into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                error.clone(),
            ],
            PhotoState::Waiting | PhotoState::Classifying => unreachable!("finished above"),
        });
        let fields: Vec<String> = row.iter().map(|field| csv_field(field)).collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// Saves the CSV of `photos`; returns the download's `blob:` URL.
pub fn save_csv(photos: &[Photo]) -> Result<String, String> {
    let bytes = Uint8Array::from(csv(photos).as_bytes());
    crate::browser::save_as(&Array::of1(&bytes), "text/csv", "catdog-verdicts.csv")
}

/// Saves the zip of the classified photos, each in its category's folder; returns the
/// download's `blob:` URL.
pub fn save_zip(photos: &[Photo]) -> Result<String, String> {
    let mut taken = HashSet::new();
    let mut files = Vec::new();
    let mut entries = Vec::new();
    for photo in photos {
        let (Some(category), Some(crc32)) = (photo.category(), photo.crc32.get_value()) else {
            continue;
        };
        if category == Category::Unreadable {
            continue;
        }
        entries.push(ZipEntry {
            name: unique(format!("{}/{}", category.name(), photo.path), &mut taken),
            crc32,
            size: photo.file.size() as u64,
            dos_time: dos_time(photo.file.last_modified()),
        });
        files.push(photo.file.clone());
    }
    if entries.is_empty() {
        return Err("no photo is classified yet".into());
    }
    let parts: Array = stored_zip(&entries)?
        .into_iter()
        .map(|part| match part {
            ZipPart::Bytes(bytes) => Uint8Array::from(bytes.as_slice()).into(),
            ZipPart::File(n) => wasm_bindgen::JsValue::from(files[n].clone()),
        })
        .collect();
    crate::browser::save_as(&parts, "application/zip", "catdog-sorted.zip")
}
