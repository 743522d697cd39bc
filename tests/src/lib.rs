//! Whole-product tests and benchmarks of the built page in headless Chromium.
//!
//! `tests/browser.rs` serves the built site (`dist/`) under a sub-path on 127.0.0.1 and drives
//! headless Chromium through ChromeDriver: a real photo is chosen in the file input and a
//! prediction must appear, on WebGPU and forced to the CPU, with the same label.
//! `benches/page.rs` times the page classifying photos on the CPU, per shipped model.
//!
//! The fixture photos in `fixtures/` serve the model crate's tests and the page's wasm tests too.
#![cfg(not(target_family = "wasm"))]

pub mod hostile;
pub mod webdriver;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The sub-path the site is served under; anything outside it is a 404, so an absolute URL
/// anywhere in the site fails the test.
pub const SUB_PATH: &str = "/hosted/under/catdog/";

/// Which of the page's builds index.html started (`webgpu` or `cpu`), and the wasm files the
/// page downloaded (their names).
pub fn page_code(browser: &webdriver::Browser) -> (String, Vec<String>) {
    let found = browser.execute(
        "return [document.documentElement.dataset.build, \
                 performance.getEntriesByType('resource').filter(e => e.name.endsWith('.wasm')) \
                   .map(e => e.name.split('/').pop())]",
        serde_json::json!([]),
    );
    let wasm = found[1]
        .as_array()
        .expect("the wasm downloads")
        .iter()
        .map(|name| name.as_str().unwrap().to_string())
        .collect();
    (found[0].as_str().unwrap_or_default().to_string(), wasm)
}

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

/// The median of some timings (the mean of the middle two for an even count); NaN for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// A request the test server received: what a page sent, recorded to prove what it did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub method: String,
    pub url: String,
    pub body_bytes: usize,
}

/// The built site served under [`SUB_PATH`] on an ephemeral 127.0.0.1 port, recording every
/// request, until [`Site::stop`] or the end of the test.
pub struct Site {
    pub port: u16,
    stopped: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<Received>>>,
    /// Files of the site answered 404 for now, by their path in it.
    hidden: Arc<Mutex<Vec<String>>>,
}

impl Site {
    /// The page's address, with an optional query string (`"?backend=cpu"`).
    pub fn url(&self, query: &str) -> String {
        format!("http://127.0.0.1:{}{SUB_PATH}{query}", self.port)
    }

    /// Answers 404 for the site's file `path` (`manifest.webmanifest`) until [`Site::unhide`],
    /// as a server would after a bad deployment.
    pub fn hide(&self, path: &str) {
        self.hidden.lock().unwrap().push(path.to_string());
    }

    pub fn unhide(&self, path: &str) {
        self.hidden.lock().unwrap().retain(|hidden| hidden != path);
    }

    /// Every request so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Stops serving and closes the port: from now on a connection is refused, as for a
    /// visitor who is offline.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and closes the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// Serves `dist` (see [`Site`]). A minimal HTTP/1.1 server: one request per connection
/// (`Connection: close`), so that once stopped nothing is answered on a kept-alive one.
///
/// Not `tiny_http` (which the trainer's download tests use) on purpose: the offline test needs
/// every request after [`Site::stop`] to fail as a network error, and tiny_http keeps
/// connections alive whatever the response says (it drops a `Connection` header from
/// responses, tiny_http 0.12 `Response::add_header`), while a request on a kept-alive
/// connection after the server is dropped waits unanswered, and one dropped unanswered is
/// answered 500, a response the page's service worker does not treat as being offline.
pub fn serve(dist: PathBuf) -> Site {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("an address").port();
    let stopped = Arc::new(AtomicBool::new(false));
    let received = Arc::new(Mutex::new(Vec::new()));
    let hidden = Arc::new(Mutex::new(Vec::new()));
    let (stop, log, hide) = (stopped.clone(), received.clone(), hidden.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let (Ok(stream), dist, log, hide) = (stream, dist.clone(), log.clone(), hide.clone())
            else {
                continue;
            };
            std::thread::spawn(move || answer(stream, &dist, &log, &hide));
        }
    });
    Site {
        port,
        stopped,
        received,
        hidden,
    }
}

/// Reads one request, records it and answers it with a file of `dist` or a 404.
fn answer(stream: TcpStream, dist: &Path, log: &Mutex<Vec<Received>>, hidden: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut body_bytes = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            body_bytes = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; body_bytes];
    let _ = reader.read_exact(&mut body);
    let mut parts = request_line.split_whitespace();
    let (method, url) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    log.lock().unwrap().push(Received {
        method: method.to_string(),
        url: url.to_string(),
        body_bytes,
    });
    let path = url.split('?').next().unwrap_or_default();
    let file = path
        .strip_prefix(SUB_PATH)
        .filter(|rest| !rest.split('/').any(|part| part == ".."))
        .map(|rest| if rest.is_empty() { "index.html" } else { rest })
        .filter(|rest| !hidden.lock().unwrap().iter().any(|hidden| hidden == rest))
        .and_then(|rest| {
            std::fs::read(dist.join(rest))
                .ok()
                .map(|bytes| (rest, bytes))
        });
    let (status, content_type, bytes) = match file {
        Some((name, bytes)) => {
            let content_type = match name.rsplit('.').next() {
                Some("html") => "text/html; charset=utf-8",
                Some("js" | "mjs") => "text/javascript",
                Some("wasm") => "application/wasm",
                Some("css") => "text/css",
                Some("webmanifest") => "application/manifest+json",
                Some("png") => "image/png",
                Some("svg") => "image/svg+xml",
                _ => "application/octet-stream",
            };
            ("200 OK", content_type, bytes)
        }
        None => ("404 Not Found", "text/plain", b"not found".to_vec()),
    };
    let mut stream = &stream;
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    );
    let _ = stream.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = stream.write_all(&bytes);
    }
    let _ = stream.flush();
}
