//! Whole-product tests and benchmarks of the built page in headless Chromium.
//!
//! `tests/browser.rs` serves the built site (`dist/`) under a sub-path on 127.0.0.1 and drives
//! headless Chromium through ChromeDriver: a real photo is chosen in the file input and a
//! prediction must appear, on WebGPU and forced to the CPU, with the same label.
//! `benches/page.rs` times the page classifying photos on the CPU, per shipped model.
//!
//! The fixture photos in `fixtures/` serve the model crate's tests and the page's wasm tests too.
#![cfg(not(target_family = "wasm"))]

pub mod webdriver;

use std::path::{Path, PathBuf};

/// The sub-path the site is served under; anything outside it is a 404, so an absolute URL
/// anywhere in the site fails the test.
pub const SUB_PATH: &str = "/hosted/under/catdog/";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The built site: `CATDOG_DIST`, or `dist/` at the workspace's root.
pub fn dist() -> PathBuf {
    let dist =
        std::env::var_os("CATDOG_DIST").map_or_else(|| workspace().join("dist"), PathBuf::from);
    assert!(
        dist.join("index.html").is_file(),
        "{} has no index.html: build the site first with `trunk build`",
        dist.display()
    );
    dist
}

/// Serves `dist` under [`SUB_PATH`] on an ephemeral 127.0.0.1 port, for the life of the test.
pub fn serve(dist: PathBuf) -> u16 {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = server.server_addr().to_ip().expect("an IP address").port();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let path = request
                .url()
                .split('?')
                .next()
                .unwrap_or_default()
                .to_string();
            let file = path
                .strip_prefix(SUB_PATH)
                .filter(|rest| !rest.split('/').any(|part| part == ".."))
                .map(|rest| if rest.is_empty() { "index.html" } else { rest })
                .and_then(|rest| {
                    std::fs::read(dist.join(rest))
                        .ok()
                        .map(|bytes| (rest.to_string(), bytes))
                });
            let response = match file {
                Some((name, bytes)) => {
                    let content_type = match name.rsplit('.').next() {
                        Some("html") => "text/html; charset=utf-8",
                        Some("js") => "text/javascript",
                        Some("wasm") => "application/wasm",
                        Some("css") => "text/css",
                        _ => "application/octet-stream",
                    };
                    let header =
                        tiny_http::Header::from_bytes("Content-Type", content_type).unwrap();
                    tiny_http::Response::from_data(bytes)
                        .with_header(header)
                        .boxed()
                }
                None => tiny_http::Response::empty(404).boxed(),
            };
            let _ = request.respond(response);
        }
    });
    port
}
