//! The catdog page as a library: the app ([`app::App`]) and its parts, one job per file, so a
//! component can be mounted and tested on its own; `main.rs` only mounts the app.
//!
//! - [`app`]: the layout and how the pieces meet;
//! - [`loaded_model`]: the model in use (shipped or the user's file), on WebGPU or the CPU;
//! - [`state`]: the photos and models the page holds, as signals;
//! - [`cards`], [`controls`], [`inputs`], [`library`], [`teach`]: the components;
//! - [`sorting`]: where each photo is sorted (its category), the summary, filters and orders;
//! - [`export`]: the CSV and the zip of sorted photos, made in the browser;
//! - [`browser`]: the browser APIs the page calls.

pub mod app;
pub mod browser;
pub mod cards;
pub mod controls;
pub mod export;
pub mod inputs;
pub mod library;
pub mod loaded_model;
pub mod sorting;
pub mod state;
pub mod teach;

/// Whether this build of the page has WebGPU code (the `webgpu` feature; README, "Two builds
/// of the page"): the one place the page asks it.
pub const WEBGPU: bool = cfg!(feature = "webgpu");

/// A build's name, as index.html, `sw.js` and the remembered choice call it.
pub const fn build_name(webgpu: bool) -> &'static str {
    if webgpu { "webgpu" } else { "cpu" }
}

/// This build's name.
pub const BUILD: &str = build_name(WEBGPU);

/// Mounts the page on `<body>`: what both of the page's builds run.
pub fn start() {
    console_error_panic_hook::set_once();
    browser::mark("catdog:started");
    leptos::mount::mount_to_body(app::App);
}
