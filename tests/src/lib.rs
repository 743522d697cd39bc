//! Whole-product tests live in `tests/`; this crate has no library code of its own.
//!
//! `tests/browser.rs` serves the built site (`dist/`) under a sub-path on 127.0.0.1 and drives
//! headless Chromium through ChromeDriver: a real photo is chosen in the file input and a
//! prediction must appear, on WebGPU and forced to the CPU, with the same label.
//!
//! The fixture photos in `fixtures/` serve the model crate's tests and the page's wasm tests too.
