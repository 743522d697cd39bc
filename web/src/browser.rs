//! The browser calls the page needs: fetch with progress, file contents, dropped and pasted
//! files and folders (file system entries), thumbnails drawn by the browser, files offered to
//! save, object and data URLs, the offline cache, the query string, a clock and yielding
//! (a timer, or a `MessageChannel` between photos).
//!
//! Several APIs (`DataTransfer` and file system entries, `navigator.serviceWorker`, media
//! devices, `createImageBitmap`, `Blob` with a type, `MessageChannel`) are reached through
//! `js_sys::Reflect` instead of `web-sys` features on purpose: `web-sys` is shared with wgpu,
//! and adding a feature to it rebuilds all of Burn for wasm (about half an hour here).

use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, File, FileList, HtmlCanvasElement, ReadableStreamDefaultReader, Response, UrlSearchParams,
};

/// A JavaScript exception as readable text.
pub fn js_error(error: JsValue) -> String {
    error
        .as_string()
        .or_else(|| {
            error
                .dyn_ref::<js_sys::Error>()
                .map(|error| String::from(error.message()))
        })
        .unwrap_or_else(|| format!("{error:?}"))
}

/// `target[name]`, or `undefined`.
pub fn property(target: &JsValue, name: &str) -> JsValue {
    Reflect::get(target, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// Calls `target.method(...args)`.
pub fn call_method(target: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, String> {
    let function: Function = property(target, method)
        .dyn_into()
        .map_err(|_| format!("{method} is not available in this browser"))?;
    function
        .apply(target, &args.iter().collect::<Array>())
        .map_err(js_error)
}

/// Awaits a JavaScript promise.
pub async fn settle(promise: JsValue) -> Result<JsValue, String> {
    JsFuture::from(Promise::resolve(&promise))
        .await
        .map_err(js_error)
}

/// Fetches a URL (relative ones resolve against the page, so the site works from any
/// sub-path), reporting `(bytes received, total if known)` as the body arrives.
pub async fn fetch_with_progress(
    url: &str,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<Vec<u8>, String> {
    let window = web_sys::window().ok_or("no window")?;
    let response: Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|error| format!("{url}: {}", js_error(error)))?
        .dyn_into()
        .map_err(js_error)?;
    if !response.ok() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let total = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|length| length.parse::<u64>().ok());
    let body = response.body().ok_or_else(|| format!("{url}: no body"))?;
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut bytes = Vec::with_capacity(total.unwrap_or(0) as usize);
    progress(0, total);
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|error| format!("{url}: {}", js_error(error)))?;
        if property(&chunk, "done").is_truthy() {
            break;
        }
        bytes.extend(Uint8Array::new(&property(&chunk, "value")).to_vec());
        progress(bytes.len() as u64, total);
    }
    Ok(bytes)
}

/// The contents of a file or blob the user gave. It is read locally; nothing is uploaded.
pub async fn blob_bytes(blob: &Blob) -> Result<Vec<u8>, String> {
    let buffer = JsFuture::from(blob.array_buffer())
        .await
        .map_err(js_error)?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// The files a `drop` or `paste` event carries (`dataTransfer` or `clipboardData`).
pub fn event_files(event: &web_sys::Event) -> Vec<File> {
    let transfer = ["dataTransfer", "clipboardData"]
        .into_iter()
        .map(|name| property(event, name))
        .find(|transfer| transfer.is_object());
    transfer
        .map(|transfer| property(&transfer, "files"))
        .and_then(|files| files.dyn_into::<FileList>().ok())
        .map(file_list)
        .unwrap_or_default()
}

/// What a `drop` event carries: files, and folders (`FileSystemDirectoryEntry`s, read with
/// [`folder_files`]). Taken while the event lasts: the browser empties its `DataTransfer` after.
pub fn dropped(event: &web_sys::Event) -> (Vec<File>, Vec<JsValue>) {
    let items = property(&property(event, "dataTransfer"), "items");
    if !items.is_object() {
        return (event_files(event), Vec::new());
    }
    let (mut files, mut folders) = (Vec::new(), Vec::new());
    for item in Array::from(&items) {
        let entry = call_method(&item, "webkitGetAsEntry", &[]).unwrap_or(JsValue::NULL);
        if property(&entry, "isDirectory").is_truthy() {
            folders.push(entry);
        } else if let Ok(file) = call_method(&item, "getAsFile", &[]).and_then(|file| {
            file.dyn_into::<File>()
                .map_err(|_| "not a file".to_string())
        }) {
            files.push(file);
        }
    }
    (files, folders)
}

/// Every file under a dropped folder, with its path from the folder (`pets/dogs/a.jpg`).
pub async fn folder_files(folder: JsValue) -> Result<Vec<(File, String)>, String> {
    let mut found = Vec::new();
    let mut folders = vec![folder];
    while let Some(folder) = folders.pop() {
        let reader = call_method(&folder, "createReader", &[])?;
        // `readEntries` gives a folder's entries a batch at a time, then an empty batch.
        loop {
            let batch = callback_result(&reader, "readEntries").await?;
            let batch = Array::from(&batch);
            if batch.length() == 0 {
                break;
            }
            for entry in batch {
                if property(&entry, "isDirectory").is_truthy() {
                    folders.push(entry);
                } else {
                    let path = property(&entry, "fullPath").as_string().unwrap_or_default();
                    let file: File = callback_result(&entry, "file")
                        .await?
                        .dyn_into()
                        .map_err(|_| format!("{path}: not a file"))?;
                    found.push((file, path.trim_start_matches('/').to_string()));
                }
            }
        }
    }
    Ok(found)
}

/// Calls `target.method(onSuccess, onError)`, the file system entries' callback style, and
/// awaits the value given to either.
async fn callback_result(target: &JsValue, method: &str) -> Result<JsValue, String> {
    let mut called = Ok(());
    let promise = Promise::new(&mut |resolve, reject| {
        called = call_method(target, method, &[resolve.into(), reject.into()]).map(drop);
    });
    called?;
    settle(promise.into()).await
}

/// Where a file is in the folder the user chose (`holiday/IMG_1.jpg`), or its name.
pub fn relative_path(file: &File) -> String {
    property(file, "webkitRelativePath")
        .as_string()
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| file.name())
}

pub fn file_list(files: FileList) -> Vec<File> {
    (0..files.length()).filter_map(|i| files.get(i)).collect()
}

/// A `blob:` URL showing a local file (a thumbnail), never leaving the browser.
pub fn object_url(blob: &Blob) -> Option<String> {
    web_sys::Url::create_object_url_with_blob(blob).ok()
}

/// The longest side of a card's thumbnail in pixels: the card shows it at 104 CSS pixels
/// (208 on a phone's screen), "Why?" at the card's width.
const THUMBNAIL_SIDE: f64 = 320.0;

/// A photo's thumbnail being made: a small JPEG copy (upright, as the browser applies EXIF
/// orientation), or the file itself where it is small already or where the browser cannot
/// decode it. The browser decodes the photo on its own threads (`createImageBitmap`) from the
/// moment this is made, while the page classifies the photo.
pub struct Thumbnail {
    file: File,
    bitmap: Option<JsFuture>,
}

impl Thumbnail {
    pub fn start(file: &File) -> Self {
        let bitmap = web_sys::window()
            .and_then(|window| call_method(&window, "createImageBitmap", &[file.into()]).ok())
            .map(|promise| JsFuture::from(Promise::resolve(&promise)));
        Self {
            file: file.clone(),
            bitmap,
        }
    }

    /// The thumbnail's `blob:` URL.
    pub async fn finish(self) -> Option<String> {
        let bitmap = match self.bitmap {
            Some(bitmap) => bitmap.await.ok(),
            None => None,
        };
        match bitmap.map(shrink) {
            Some(small) => match small.await {
                Ok(Some(blob)) => object_url(&blob),
                Ok(None) | Err(_) => object_url(&self.file),
            },
            None => object_url(&self.file),
        }
    }
}

/// The small copy of a decoded photo, or `None` if the photo is no larger than one.
async fn shrink(bitmap: JsValue) -> Result<Option<Blob>, String> {
    let side = |name| property(&bitmap, name).as_f64().unwrap_or(0.0);
    let (width, height) = (side("width"), side("height"));
    let scale = THUMBNAIL_SIDE / width.max(height);
    let size = |side: f64| (side * scale).round().max(1.0) as u32;
    let jpeg = if scale < 1.0 {
        draw_to_jpeg(&bitmap, size(width), size(height))
            .await
            .map(Some)
    } else {
        Ok(None)
    };
    let _ = call_method(&bitmap, "close", &[]);
    jpeg
}

/// An image source (a bitmap, a video's current frame) drawn at `width x height` and encoded
/// as a JPEG, through a canvas; nothing leaves the browser.
pub async fn draw_to_jpeg(source: &JsValue, width: u32, height: u32) -> Result<Blob, String> {
    if width == 0 || height == 0 {
        return Err("there is no picture to draw yet".into());
    }
    let canvas: HtmlCanvasElement = leptos::prelude::document()
        .create_element("canvas")
        .map_err(|_| "no canvas")?
        .unchecked_into();
    canvas.set_width(width);
    canvas.set_height(height);
    let context = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .ok_or("no 2D canvas in this browser")?;
    let _ = Reflect::set(&context, &"imageSmoothingQuality".into(), &"high".into());
    // JPEG has no transparency: a transparent PNG's background becomes white, not black.
    let _ = Reflect::set(&context, &"fillStyle".into(), &"white".into());
    call_method(
        &context,
        "fillRect",
        &[0.into(), 0.into(), width.into(), height.into()],
    )?;
    call_method(
        &context,
        "drawImage",
        &[
            source.clone(),
            0.into(),
            0.into(),
            width.into(),
            height.into(),
        ],
    )?;
    let blob = Promise::new(&mut |resolve, _| {
        let _ = call_method(
            &canvas,
            "toBlob",
            &[resolve.into(), "image/jpeg".into(), 0.9.into()],
        );
    });
    settle(blob.into())
        .await?
        .dyn_into::<Blob>()
        .map_err(|_| "the picture could not be encoded".into())
}

/// Offers `parts` (bytes and the user's own files, which are not read again) as a file named
/// `name` to save, as a link the page clicks; returns the `blob:` URL, which the caller frees
/// once it is no longer needed (a download started from it may still be reading it).
pub fn save_as(parts: &Array, mime: &str, name: &str) -> Result<String, String> {
    let url = blob_url(parts, mime)?;
    let link = leptos::prelude::document()
        .create_element("a")
        .map_err(js_error)?;
    link.set_attribute("href", &url).map_err(js_error)?;
    link.set_attribute("download", name).map_err(js_error)?;
    call_method(&link, "click", &[])?;
    Ok(url)
}

/// Bytes as a `data:` URL: for small generated images (a heatmap PNG is a few hundred bytes),
/// which then need no freeing.
pub fn data_url(mime: &str, bytes: &[u8]) -> Result<String, String> {
    // `btoa` takes a "binary string": one character per byte.
    let binary: String = bytes.iter().map(|&byte| char::from(byte)).collect();
    let window: JsValue = web_sys::window().ok_or("no window")?.into();
    let encoded = call_method(&window, "btoa", &[JsValue::from_str(&binary)])?;
    Ok(format!(
        "data:{mime};base64,{}",
        encoded.as_string().unwrap_or_default()
    ))
}

/// A `blob:` URL of bytes the page made (a taught model's weight file), for a download link.
pub fn bytes_object_url(bytes: &[u8]) -> Result<String, String> {
    blob_url(&Array::of1(&Uint8Array::from(bytes)), "")
}

/// A `blob:` URL of a file the page makes from `parts` (bytes, and the user's own files, which
/// are not read again), of type `mime` (none if empty).
fn blob_url(parts: &Array, mime: &str) -> Result<String, String> {
    let options = js_sys::Object::new();
    let _ = Reflect::set(&options, &"type".into(), &mime.into());
    let constructor: Function = property(&js_sys::global(), "Blob")
        .dyn_into()
        .map_err(|_| "this browser cannot make files")?;
    let blob: Blob = Reflect::construct(&constructor, &Array::of2(parts, &options))
        .map_err(js_error)?
        .unchecked_into();
    object_url(&blob).ok_or_else(|| "the browser gave no URL for the file".to_string())
}

pub fn revoke_object_url(url: &str) {
    let _ = web_sys::Url::revoke_object_url(url);
}

/// Registers `sw.js` (beside the page), which keeps the site and its models for offline use,
/// and resolves once it is active and has stored them.
pub async fn enable_offline_cache() -> Result<(), String> {
    let navigator: JsValue = web_sys::window().ok_or("no window")?.navigator().into();
    let workers = property(&navigator, "serviceWorker");
    if !workers.is_object() {
        return Err("this browser has no service workers (or the page is not on https)".into());
    }
    // The worker stores this build of the page's code, not the other (index.html, sw.js).
    let script = format!("./sw.js?build={}", crate::BUILD);
    settle(call_method(&workers, "register", &[script.into()])?).await?;
    settle(property(&workers, "ready")).await.map(drop)
}

/// Whether the browser offers a WebGPU adapter, as index.html asked it beside the start
/// (`window.catdogWebgpu`, a promise of a boolean); false where the page was started without
/// index.html's loader (the wasm tests).
pub async fn webgpu_offered() -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    let answer = property(&window.into(), "catdogWebgpu");
    if answer.is_undefined() {
        return false;
    }
    settle(answer)
        .await
        .is_ok_and(|offered| offered.as_bool() == Some(true))
}

/// Where the build the visitor last chose under "Runs on" is kept (`webgpu` or `cpu`), for
/// index.html to start on the next visit.
const CHOSEN_BUILD: &str = "catdog-build";

/// Remembers the build the visitor chose; false where the browser refuses storage (some
/// private modes), and the next visit then starts as a first one does.
pub fn remember_build(webgpu: bool) -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    let storage = property(&window.into(), "localStorage");
    let build = crate::build_name(webgpu);
    call_method(&storage, "setItem", &[CHOSEN_BUILD.into(), build.into()]).is_ok()
}

/// Opens the page again with its WebGPU build, with `model` (a shipped model's name) if given.
/// Where the choice was `remembered`, the address asks for no backend, so the WebGPU build
/// falls back to the CPU where WebGPU cannot run the model, and a later choice of the CPU
/// holds on reload; where storage was refused, `backend=gpu` asks for the build instead.
pub fn open_webgpu_build(remembered: bool, model: Option<&str>) -> Result<(), String> {
    let location = web_sys::window().ok_or("no window")?.location();
    let before = location.search().map_err(js_error)?;
    let query = UrlSearchParams::new_with_str(&before).map_err(js_error)?;
    query.delete("backend");
    if !remembered {
        query.set("backend", "gpu");
    }
    if let Some(model) = model {
        query.set("model", model);
    }
    let search = String::from(query.to_string());
    // Setting the same query string again is not a new load everywhere: reload instead.
    if before.trim_start_matches('?') == search {
        location.reload().map_err(js_error)
    } else {
        location.set_search(&search).map_err(js_error)
    }
}

/// A parameter of the page's query string, such as `backend` in `?backend=cpu`.
pub fn query_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    UrlSearchParams::new_with_str(&search).ok()?.get(name)
}

/// Milliseconds from a monotonic clock.
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|window| window.performance())
        .map_or(0.0, |performance| performance.now())
}

/// Names a moment of the page's start on the browser's performance timeline
/// (`performance.getEntriesByName`), where the page bench reads where the time to "ready" went.
pub fn mark(name: &str) {
    if let Some(performance) = web_sys::window().and_then(|window| window.performance()) {
        let _ = performance.mark(name);
    }
}

/// Lets the browser paint and handle input before the next piece of work: the CPU backends
/// run on the page's only thread.
pub async fn yield_to_browser() {
    let promise = Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback(&resolve);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Lets the browser handle input, and paint a frame that is due, before the next photo of a
/// batch: through a message the page posts to itself rather than a timer, because Chromium
/// runs a hidden tab's timers at most once a second (once a minute after five minutes), which
/// would stretch a folder sorted in a background tab from 0.1 s a photo to seconds; messages
/// are not throttled. Falls back to a timer without `MessageChannel`.
pub async fn yield_to_events() {
    let channel = property(&js_sys::global(), "MessageChannel")
        .dyn_into::<Function>()
        .ok()
        .and_then(|constructor| Reflect::construct(&constructor, &Array::new()).ok());
    let Some(channel) = channel else {
        return yield_to_browser().await;
    };
    let promise = Promise::new(&mut |resolve, _| {
        let _ = Reflect::set(&property(&channel, "port1"), &"onmessage".into(), &resolve);
        let _ = call_method(
            &property(&channel, "port2"),
            "postMessage",
            &[JsValue::NULL],
        );
    });
    let _ = JsFuture::from(promise).await;
}

/// The wasm module's linear memory in bytes, as `window.wasmBindings.wasm_memory_bytes()`: the
/// folder test reads it to show that a second folder of photos reuses what the first one
/// grew (wasm memory grows and is never given back, so growth batch after batch is a leak).
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn wasm_memory_bytes() -> f64 {
    wasm_bindgen::memory()
        .unchecked_into::<js_sys::WebAssembly::Memory>()
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as f64
}
