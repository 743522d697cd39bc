//! The page: its layout and how the pieces meet. Components never touch tensors: they call
//! [`crate::loaded_model::LoadedModel`], which calls the model crate's prediction API.

use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::File;

use crate::browser::{self, enable_offline_cache, relative_path};
use crate::controls::{BackendChoice, ModelChoice, ModelStatus, use_weight_file};
use crate::inputs::{Camera, Folder, FolderPicker, PhotoPicker};
use crate::library::Library;
use crate::loaded_model::{SHIPPED, ShippedModel, requested_backend};
use crate::state::{Models, Photos};
use crate::teach::Teach;

#[component]
pub fn App() -> impl IntoView {
    let photos = Photos::new();
    // A bad `?model=` or `?backend=` is said, and the default is loaded all the same.
    let model = ShippedModel::requested();
    let backend = requested_backend();
    let initial = model.clone().unwrap_or(SHIPPED[0]);
    let models = Models::new(initial, backend.clone().unwrap_or(None));
    models.load();
    if let Some(error) = model.err().or(backend.err()) {
        models.refuse(error);
    }
    // The build without WebGPU offers to load the one with it where the browser offers WebGPU
    // (index.html asks beside the start, not before it); the WebGPU build has nothing to offer.
    let (gpu_build_offered, set_gpu_build_offered) = signal(false);
    if !crate::WEBGPU {
        spawn_local(async move { set_gpu_build_offered.set(browser::webgpu_offered().await) });
    }
    // Photos given before the model is ready wait for it.
    Effect::new(move || {
        if models.current.with(Option::is_some) {
            photos.run(models);
        }
    });
    // Weight files become the model; everything else is a photo (a card, with an error if it
    // is not one).
    let on_files = move |files: Vec<File>| {
        let (weights, photo_files): (Vec<File>, Vec<File>) = files
            .into_iter()
            .partition(|file| file.name().to_lowercase().ends_with(".bpk"));
        if let Some(file) = weights.into_iter().last() {
            use_weight_file(models, file);
        }
        if !photo_files.is_empty() {
            let named = photo_files
                .into_iter()
                .map(|file| {
                    let path = relative_path(&file);
                    (file, path)
                })
                .collect();
            photos.add(named, models);
        }
    };
    // A folder's photos become cards; its other files are named once.
    let on_folder = move |folder: Folder| photos.add_folder(folder.photos, folder.skipped, models);
    view! {
        <main>
            <header>
                <h1>"Cat or dog?"</h1>
                <p class="tagline">
                    "Give it photos and it tells cats from dogs. "
                    <strong>"Your photos never leave this device:"</strong>
                    " the model runs here, in your browser, and nothing you give it is uploaded."
                </p>
            </header>
            <section class="controls" aria-label="model">
                <ModelChoice models=models initial=initial />
                <BackendChoice models=models gpu_build_offered=gpu_build_offered />
            </section>
            <ModelStatus models=models gpu_build_offered=gpu_build_offered />
            <section class="inputs" aria-label="photos">
                <PhotoPicker on_files=on_files on_folder=on_folder />
                <FolderPicker on_folder=on_folder />
                <Camera on_photo=move |file| on_files(vec![file]) />
            </section>
            <Teach photos=photos models=models />
            <Library photos=photos models=models />
            <footer>
                <OfflineStatus />
            </footer>
        </main>
    }
}

/// Registers the offline cache and says whether the page will work without a network.
#[component]
fn OfflineStatus() -> impl IntoView {
    let (offline, set_offline) = signal::<Option<Result<(), String>>>(None);
    spawn_local(async move { set_offline.set(Some(enable_offline_cache().await)) });
    move || {
        match offline.get() {
        None => view! { <p id="offline-status" class="note">"Preparing offline use…"</p> }.into_any(),
        Some(Ok(())) => view! {
            <p id="offline-status" class="note" data-ready="true">
                "This page and its models are kept on this device: next time it works offline."
            </p>
        }
        .into_any(),
        Some(Err(error)) => view! {
            <p id="offline-status" class="note" data-ready="false">"Offline use is not available: " {error}</p>
        }
        .into_any(),
    }
    }
}
