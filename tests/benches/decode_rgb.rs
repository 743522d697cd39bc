//! Writes each photo as the model crate decodes it (`preprocess::decode_photo`: the format's
//! decoder, its EXIF orientation, 8-bit RGB), for `bench/decode_parity.py` to compare with the
//! browser's own decoder: `OUT_DIR/<file name>.rgb` holds `WIDTHxHEIGHT\n`, then the RGB bytes.
//!
//!     cargo bench -p catdog-tests --bench decode_rgb -- OUT_DIR PHOTO...

use std::path::{Path, PathBuf};

use catdog_model::preprocess::decode_photo;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` adds `--bench` to the arguments.
    let mut args = std::env::args_os().skip(1).filter(|arg| arg != "--bench");
    let out = PathBuf::from(args.next().ok_or("usage: decode_rgb OUT_DIR PHOTO...")?);
    for photo in args.map(PathBuf::from) {
        let bytes =
            std::fs::read(&photo).map_err(|error| format!("{}: {error}", photo.display()))?;
        let rgb = decode_photo(&bytes).map_err(|error| format!("{}: {error}", photo.display()))?;
        let mut data = format!("{}x{}\n", rgb.width(), rgb.height()).into_bytes();
        data.extend_from_slice(rgb.as_raw());
        let name = Path::new(&photo)
            .file_name()
            .ok_or("a photo path names a file")?;
        std::fs::write(out.join(format!("{}.rgb", name.to_string_lossy())), data)?;
    }
    Ok(())
}
