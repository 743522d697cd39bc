//! Ways to give the page photos: the file picker (several at once), a whole folder (chosen or
//! dropped), dropping files anywhere on the page, pasting from the clipboard, and the camera
//! where the browser has one. A weight file (`.bpk`) given as a file becomes the model
//! instead; in a folder it is one of the files skipped as not photos.

use js_sys::{Array, Object};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsValue;
use web_sys::{Blob, File, HtmlInputElement};

use crate::browser::{
    call_method, draw_to_jpeg, dropped, event_files, file_list, folder_files, property,
    relative_path, settle,
};

/// The photos of a folder with their paths in it, and the paths of its other files (notes,
/// videos, `.DS_Store`), which are named once as skipped instead of each becoming an error card.
pub struct Folder {
    pub photos: Vec<(File, String)>,
    pub skipped: Vec<String>,
}

/// The extensions of the photos the page reads (the model crate's decoder reads these formats).
const PHOTO_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "webp", "gif", "bmp"];

/// Whether a file is a photo the page reads, by its name: other files in a folder (notes,
/// videos, `.DS_Store`, macOS's `._` copies) are listed once as skipped instead of becoming
/// cards.
fn is_photo_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    !name.starts_with('.')
        && name
            .rsplit_once('.')
            .is_some_and(|(_, extension)| PHOTO_EXTENSIONS.contains(&extension))
}

impl Folder {
    /// Sorted by path, so that a folder is classified in the same order however it was given.
    fn new(mut files: Vec<(File, String)>) -> Self {
        files.sort_by(|(_, a), (_, b)| a.cmp(b));
        let (photos, others): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|(file, _)| is_photo_name(&file.name()));
        Self {
            photos,
            skipped: others.into_iter().map(|(_, path)| path).collect(),
        }
    }
}

/// What the file dialog offers: the photos by type and extension, and weight files.
fn photo_input_accepts() -> String {
    let extensions = PHOTO_EXTENSIONS.map(|extension| format!(".{extension}"));
    format!(
        "image/jpeg,image/png,image/webp,image/gif,image/bmp,{},.bpk",
        extensions.join(",")
    )
}

/// The picker and the drop zone (which is also the picker's label, so a click or Enter on it
/// opens the file dialog). `on_files` gets every file given, photos and weight files alike;
/// `on_folder` the folders dropped, as one.
#[component]
pub fn PhotoPicker(
    on_files: impl Fn(Vec<File>) + Copy + 'static,
    on_folder: impl Fn(Folder) + Copy + 'static,
) -> impl IntoView {
    let on_change = move |event: leptos::ev::Event| {
        let input: HtmlInputElement = event_target(&event);
        if let Some(files) = input.files() {
            on_files(file_list(files));
        }
        // The same photo can be chosen again.
        input.set_value("");
    };
    let (dragging, set_dragging) = signal(false);
    // Files dropped anywhere on the page count, not only on the zone; the zone lights up.
    let _ = window_event_listener(leptos::ev::dragover, move |event| {
        event.prevent_default();
        set_dragging.set(true);
    });
    let _ = window_event_listener(leptos::ev::dragleave, move |_| set_dragging.set(false));
    let (folder_error, set_folder_error) = signal::<Option<String>>(None);
    let _ = window_event_listener(leptos::ev::drop, move |event| {
        event.prevent_default();
        set_dragging.set(false);
        let (files, folders) = dropped(&event);
        if !files.is_empty() {
            on_files(files);
        }
        if folders.is_empty() {
            return;
        }
        // Several folders dropped together are one folder given: one summary of what was
        // skipped, one batch.
        spawn_local(async move {
            let mut files = Vec::new();
            for folder in folders {
                match folder_files(folder).await {
                    Ok(found) => files.extend(found),
                    Err(error) => {
                        set_folder_error.set(Some(format!(
                            "The dropped folder could not be read: {error}"
                        )));
                        return;
                    }
                }
            }
            set_folder_error.set(None);
            on_folder(Folder::new(files));
        });
    });
    let _ = window_event_listener(leptos::ev::paste, move |event| {
        let files = event_files(&event);
        if !files.is_empty() {
            event.prevent_default();
            on_files(files);
        }
    });
    view! {
        <label id="drop-zone" class="drop-zone" class:dragging=move || dragging.get()>
            <input id="photo-input" class="visually-hidden" type="file" multiple=true
                accept=photo_input_accepts()
                on:change=on_change />
            <span class="drop-title">"Choose photos"</span>
            <span class="drop-hint">"or drop them (or a folder) here, or paste one (Ctrl+V). JPEG, PNG, WebP, GIF or BMP."</span>
        </label>
        {move || folder_error.get().map(|error| view! { <p class="error" role="alert">{error}</p> })}
    }
}

/// "Choose a folder": every file in it and its subfolders.
#[component]
pub fn FolderPicker(on_folder: impl Fn(Folder) + Copy + 'static) -> impl IntoView {
    let on_change = move |event: leptos::ev::Event| {
        let input: HtmlInputElement = event_target(&event);
        if let Some(files) = input.files() {
            let files = file_list(files)
                .into_iter()
                .map(|file| {
                    let path = relative_path(&file);
                    (file, path)
                })
                .collect();
            on_folder(Folder::new(files));
        }
        input.set_value("");
    };
    view! {
        <label class="file-button folder-button">
            <input id="folder-input" class="visually-hidden" type="file" multiple=true prop:webkitdirectory=true
                on:change=on_change />
            "Choose a folder"
        </label>
    }
}

/// A live camera view with a shutter, shown only where the browser offers a camera.
#[component]
pub fn Camera(on_photo: impl Fn(File) + Copy + 'static) -> impl IntoView {
    let devices = web_sys::window()
        .map(|window| property(&window.navigator(), "mediaDevices"))
        .filter(|devices| property(devices, "getUserMedia").is_function());
    let Some(devices) = devices else {
        return ().into_any();
    };
    let (stream, set_stream) = signal_local::<Option<JsValue>>(None);
    let (error, set_error) = signal::<Option<String>>(None);
    let video = NodeRef::<leptos::html::Video>::new();
    // Keyboard focus follows the buttons that appear, instead of falling to the page.
    let (open_button, snap_button) = (
        NodeRef::<leptos::html::Button>::new(),
        NodeRef::<leptos::html::Button>::new(),
    );
    let focus = move |button: NodeRef<leptos::html::Button>| {
        request_animation_frame(move || {
            if let Some(button) = button.get_untracked() {
                let _ = button.focus();
            }
        });
    };
    let shots = StoredValue::new(0u32);

    let open = move |_| {
        let devices = devices.clone();
        spawn_local(async move {
            let constraints = Object::new();
            let wanted = Object::new();
            let _ = js_sys::Reflect::set(&wanted, &"facingMode".into(), &"environment".into());
            let _ = js_sys::Reflect::set(&constraints, &"video".into(), &wanted);
            let opened = match call_method(&devices, "getUserMedia", &[constraints.into()]) {
                Ok(promise) => settle(promise).await,
                Err(error) => Err(error),
            };
            match (opened, video.get_untracked()) {
                (Ok(media), Some(element)) => {
                    let _ = js_sys::Reflect::set(&element, &"srcObject".into(), &media);
                    let _ = element.play();
                    set_error.set(None);
                    set_stream.set(Some(media));
                    focus(snap_button);
                }
                (Err(reason), _) => {
                    set_error.set(Some(format!("The camera could not be opened: {reason}")))
                }
                (Ok(_), None) => {}
            }
        });
    };
    let close = move || {
        if let Some(media) = stream.get_untracked()
            && let Ok(tracks) = call_method(&media, "getTracks", &[])
        {
            for track in Array::from(&tracks) {
                let _ = call_method(&track, "stop", &[]);
            }
        }
        set_stream.set(None);
        focus(open_button);
    };
    let snap = move |_| {
        let Some(element) = video.get_untracked() else {
            return;
        };
        spawn_local(async move {
            shots.update_value(|shots| *shots += 1);
            let name = format!("camera-{}.jpg", shots.get_value());
            match video_frame_jpeg(&element).await {
                Ok(blob) => match File::new_with_blob_sequence(&Array::of1(&blob), &name) {
                    Ok(file) => on_photo(file),
                    Err(_) => set_error.set(Some("The camera frame could not be kept.".into())),
                },
                Err(reason) => set_error.set(Some(reason)),
            }
        });
    };
    let is_open = move || stream.with(Option::is_some);
    view! {
        <div class="camera">
            <button type="button" id="camera-open" node_ref=open_button on:click=open hidden=is_open>"Take a photo with the camera"</button>
            <video node_ref=video class="camera-view" hidden=move || !is_open() autoplay=true playsinline=true muted=true
                aria-label="camera view"></video>
            <div class="camera-buttons" hidden=move || !is_open()>
                <button type="button" id="camera-snap" node_ref=snap_button on:click=snap>"Snap"</button>
                <button type="button" class="secondary" on:click=move |_| close()>"Close the camera"</button>
            </div>
            {move || error.get().map(|error| view! { <p class="error" role="alert">{error}</p> })}
        </div>
    }
    .into_any()
}

/// The video's current frame as a JPEG blob (nothing leaves the browser).
async fn video_frame_jpeg(video: &web_sys::HtmlVideoElement) -> Result<Blob, String> {
    let (width, height) = (video.video_width(), video.video_height());
    if width == 0 || height == 0 {
        return Err("The camera has not shown a picture yet; try again in a moment.".into());
    }
    draw_to_jpeg(video.as_ref(), width, height).await
}
