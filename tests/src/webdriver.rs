//! A minimal blocking WebDriver client for headless Chromium through ChromeDriver: just what
//! the page tests need, without an async runtime, over `ureq` (already a dependency).
//!
//! Why not a maintained client crate, measured on this project's 2-core machine (2026-12-02):
//! `fantoccini` 0.22, the lightest (no TLS; it needs `tokio`, `hyper` and the `webdriver`
//! crate), adds 36 crates to build, and its dependencies switch on features of crates the
//! whole workspace shares (`syn`, `serde`, `futures-util`, `smallvec`, ...): adding it to this
//! crate rebuilt 208 crates, Burn included, in 20.5 minutes on a warm target dir. A fresh CI
//! run already takes 54 minutes of its 60 (README, "How long a fresh machine takes"), and
//! every test here would become async. This file is ~330 lines of W3C WebDriver calls.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// The W3C key under which an element reference is returned.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    agent: ureq::Agent,
    driver_url: String,
    session: String,
    driver: Child,
    profile: PathBuf,
}

/// An element reference.
pub struct Element(String);

impl Browser {
    /// Starts ChromeDriver on a free port and a headless Chromium session with WebGPU enabled
    /// (SwiftShader where there is no GPU) and a fresh profile.
    pub fn start() -> Self {
        Self::start_with(true)
    }

    /// The same without `--enable-unsafe-webgpu`: Chromium on Linux then has `navigator.gpu`
    /// but offers no adapter, as most browsers without WebGPU do.
    pub fn without_webgpu() -> Self {
        Self::start_with(false)
    }

    fn start_with(webgpu: bool) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or("/usr/bin/chromedriver".into());
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("{chromedriver}: {error}"));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        let profile =
            std::env::temp_dir().join(format!("catdog-chromium-{}-{port}", std::process::id()));
        let mut browser = Browser {
            agent,
            driver_url: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            driver,
            profile,
        };
        browser.wait_until(Duration::from_secs(30), "ChromeDriver to start", |b| {
            b.call("GET", "/status", None)
                .ok()
                .filter(|status| status["ready"] == true)
        });
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1000,800",
            // The folder test collects garbage before it measures the heap.
            "--js-flags=--expose-gc",
            "--enable-precise-memory-info",
            // A fake camera (a test pattern) that needs no permission prompt.
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("--user-data-dir={}", browser.profile.display()));
        if webgpu {
            args.push("--enable-unsafe-webgpu".into());
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "timeouts": {"pageLoad": 120_000},
            // Navigation returns at once; the tests then wait for what they need on the page.
            // Waiting for the load event has timed out with Chromium busy on the 74 MB module.
            "pageLoadStrategy": "none",
            // Every network event of the page, to prove what it did not send.
            "goog:loggingPrefs": {"performance": "ALL"},
            "goog:chromeOptions": {
                "binary": std::env::var("CHROME_BIN").unwrap_or("/usr/bin/chromium".into()),
                "args": args,
            }
        }}});
        let session = browser
            .call("POST", "/session", Some(capabilities))
            .expect("a Chromium session");
        browser.session = session["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        browser
    }

    /// One WebDriver command: the `value` of its answer, or the error it reported.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.driver_url);
        let response = match method {
            "POST" => self.agent.post(&url).send_json(body.unwrap_or(json!({}))),
            "GET" => self.agent.get(&url).call(),
            _ => self.agent.delete(&url).call(),
        };
        let answer: Value = response
            .map_err(|error| error.to_string())?
            .body_mut()
            .read_json()
            .map_err(|error| error.to_string())?;
        match answer["value"].get("error") {
            Some(error) => Err(format!("{error}: {}", answer["value"]["message"])),
            None => Ok(answer["value"].clone()),
        }
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Navigates and waits for the page to load; the error says why it did not.
    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.session_call("POST", "/url", Some(json!({ "url": url })))
            .map(|_| ())
            .map_err(|error| format!("{url}: {error}"))
    }

    fn find(&self, css: &str) -> Option<Element> {
        let found = self
            .session_call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .ok()?;
        Some(Element(found[ELEMENT_KEY].as_str()?.to_string()))
    }

    /// Waits until an element matching `css` is in the page (the page renders asynchronously).
    pub fn wait_for_element(&self, css: &str, timeout: Duration) -> Element {
        self.wait_until(timeout, &format!("an element matching {css}"), |b| {
            b.find(css)
        })
    }

    /// Chooses a file in an `<input type=file>`, as a user would in the file dialog.
    pub fn set_file(&self, input: &Element, path: &Path) {
        self.set_files(input, &[path.to_path_buf()]);
    }

    /// Chooses several files at once in an `<input type=file multiple>`.
    pub fn set_files(&self, input: &Element, paths: &[PathBuf]) {
        let text = absolute(paths);
        self.session_call(
            "POST",
            &format!("/element/{}/value", input.0),
            Some(json!({ "text": text.join("\n") })),
        )
        .expect("setting the file input");
    }

    /// Every element matching `css`, now.
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        self.session_call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .ok()
        .and_then(|found| found.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|found| found[ELEMENT_KEY].as_str())
        .map(|id| Element(id.to_string()))
        .collect()
    }

    pub fn click(&self, element: &Element) {
        self.session_call("POST", &format!("/element/{}/click", element.0), None)
            .expect("clicking");
    }

    /// Runs a script in the page (`arguments[0]`... are `args`) and returns what it returns;
    /// a returned promise is awaited.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .unwrap_or_else(|error| panic!("script failed: {error}\n{script}"))
    }

    /// Waits until `script` (run as [`Browser::execute`]) returns something truthy, and
    /// returns that.
    pub fn wait_for_script(&self, what: &str, script: &str, timeout: Duration) -> Value {
        self.wait_until(timeout, what, |b| {
            b.session_call(
                "POST",
                "/execute/sync",
                Some(json!({"script": script, "args": []})),
            )
            .ok()
            .filter(|value| {
                !(value.is_null()
                    || *value == json!(false)
                    || *value == json!(0)
                    || *value == json!(""))
            })
        })
    }

    /// The DevTools network events (`Network.*`) the page produced since the last call, as
    /// `(method, params)`.
    pub fn network_events(&self) -> Vec<(String, Value)> {
        let entries = self
            .session_call("POST", "/se/log", Some(json!({"type": "performance"})))
            .expect("the performance log");
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| serde_json::from_str::<Value>(entry["message"].as_str()?).ok())
            .map(|message| message["message"].clone())
            .filter_map(|message| {
                let method = message["method"].as_str()?.to_string();
                method
                    .starts_with("Network.")
                    .then(|| (method, message["params"].clone()))
            })
            .collect()
    }

    /// Presses and releases one key on whatever has the focus (`"\u{E004}"` is Tab).
    pub fn press_key(&self, key: &str) {
        let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}
        ]}]});
        self.session_call("POST", "/actions", Some(actions))
            .expect("pressing a key");
    }

    /// Resizes the window (CSS pixels), e.g. to a phone's width.
    pub fn set_window_size(&self, width: u32, height: u32) {
        self.session_call(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .expect("resizing the window");
    }

    pub fn attribute(&self, element: &Element, name: &str) -> String {
        self.session_call(
            "GET",
            &format!("/element/{}/attribute/{name}", element.0),
            None,
        )
        .expect("reading an attribute")
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    pub fn text(&self, element: &Element) -> String {
        self.session_call("GET", &format!("/element/{}/text", element.0), None)
            .expect("reading text")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's visible text, for failure messages.
    fn page_text(&self) -> String {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": "return document.body.innerText", "args": []})),
        )
        .map(|text| text.as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|error| error)
    }

    /// A Chrome DevTools Protocol command through ChromeDriver (`goog/cdp/execute`): its result.
    pub fn cdp(&self, command: &str, params: Value) -> Value {
        self.session_call(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": command, "params": params})),
        )
        .unwrap_or_else(|error| panic!("{command}: {error}"))
    }

    /// Drags files or folders from the desktop onto the page and drops them there, as a user
    /// would (Chromium's `Input.dispatchDragEvent`: the page gets real file system entries).
    pub fn drop_paths(&self, paths: &[PathBuf]) {
        let files = absolute(paths);
        for kind in ["dragEnter", "dragOver", "drop"] {
            self.cdp(
                "Input.dispatchDragEvent",
                json!({"type": kind, "x": 200, "y": 200,
                       "data": {"items": [], "files": files, "dragOperationsMask": 1}}),
            );
        }
    }

    /// Files the page offers for download are saved into `dir` from now on.
    pub fn save_downloads_in(&self, dir: &Path) {
        self.cdp(
            "Browser.setDownloadBehavior",
            json!({"behavior": "allow", "downloadPath": dir.to_str().expect("a UTF-8 path")}),
        );
    }

    /// A PNG screenshot of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self
            .session_call("GET", "/screenshot", None)
            .expect("a screenshot");
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("base64 text"))
            .expect("WebDriver's screenshot is base64")
    }

    /// Polls `probe` every 100 ms until it gives a value; after `timeout`, fails with the page's
    /// text so the reason is visible.
    fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut probe: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(value) = probe(self) {
                return value;
            }
            if start.elapsed() > timeout {
                panic!(
                    "waited {timeout:?} for {what}; the page says: {}",
                    self.page_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Paths as absolute UTF-8 strings: ChromeDriver refuses paths with `..` in them.
fn absolute(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|path| {
            let path = path
                .canonicalize()
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            path.to_str().expect("a UTF-8 path").to_string()
        })
        .collect()
}
