//! The model's controls: which model (a shipped one or the user's own weight file), which
//! backend, and the status line saying what is in use, what is loading and what failed.

use catdog_model::Backend;
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::{File, HtmlInputElement, HtmlSelectElement};

use crate::browser::{blob_bytes, file_list, now_ms, open_webgpu_build, remember_build};
use crate::loaded_model::{ModelSource, SHIPPED, ShippedModel, check_weights};
use crate::state::{Models, Phase};

/// What runs, where, and what the loader is doing.
#[component]
pub fn ModelStatus(models: Models, gpu_build_offered: ReadSignal<bool>) -> impl IntoView {
    let in_use = move || {
        models.current.with(|current| match current {
            None => None,
            Some(model) => {
                let place = if model.backend.is_gpu() {
                    "on your GPU (WebGPU)"
                } else {
                    "on your CPU"
                };
                // The build without WebGPU starts every visit that asked for nothing else; where
                // the browser has WebGPU, that is not a fallback, and "Runs on" offers the GPU.
                // Its own closure: the adapter's answer must not rebuild the line (and its
                // ready time).
                let reason = model.fallback.clone();
                let fallback = move || {
                    if gpu_build_offered.get() {
                        Some(
                            view! {
                                <span class="fallback">
                                    " This browser has WebGPU: “Runs on” loads the page's GPU build."
                                </span>
                            }
                            .into_any(),
                        )
                    } else {
                        reason.clone().map(|reason| {
                            view! { <span class="fallback">" No WebGPU here: " {reason}</span> }
                                .into_any()
                        })
                    }
                };
                // When the model became ready, in ms since navigation began (the page bench's
                // "navigation to ready").
                let ready_ms = format!("{:.0}", now_ms());
                Some(view! {
                    <p id="model-status" class="status ready" data-backend=model.backend.name()
                        data-model=model.source.name().to_string() data-ready-ms=ready_ms>
                        "Ready: " {model.source.describe()} ", running " {place} " with the "
                        <code>{model.backend.name()}</code> " backend." {fallback}
                    </p>
                })
            }
        })
    };
    let download = move || match models.phase.get() {
        Phase::Downloading {
            what,
            received,
            total,
        } => {
            let megabytes = |bytes: u64| format!("{:.1} MB", bytes as f64 / 1e6);
            // A compressed transfer's length is not the body's: then the bar cannot be exact.
            let total = total.filter(|&total| received <= total);
            let amount = match total {
                Some(total) => format!("{} of {}", megabytes(received), megabytes(total)),
                None => megabytes(received),
            };
            let bar = match total {
                Some(total) => view! {
                    <progress id="model-progress" max=total as f64 value=received as f64 aria-label="model download"></progress>
                }
                .into_any(),
                None => view! { <progress id="model-progress" aria-label="model download"></progress> }.into_any(),
            };
            Some(view! {
                <p id="model-phase" class="status" data-phase="downloading">
                    "Downloading the model, " {what} ": " {amount} {bar}
                </p>
            })
        }
        _ => None,
    };
    // Announced to screen readers: what is in use, starting, failed or refused; not every
    // downloaded chunk.
    let phase = move || match models.phase.get() {
        Phase::Idle | Phase::Downloading { .. } => ().into_any(),
        Phase::Starting(what) => {
            view! { <p id="model-phase" class="status" data-phase="starting">{what}</p> }.into_any()
        }
        Phase::Failed(error) => {
            let keeping = models
                .current
                .with(Option::is_some)
                .then_some(" The model in use stays.");
            view! {
                <p id="model-error" class="status error" data-phase="failed">
                    {error} {keeping} " "
                    <button type="button" class="secondary" on:click=move |_| models.load()>"Try again"</button>
                </p>
            }
            .into_any()
        }
    };
    let notice = move || {
        models
            .notice
            .get()
            .map(|notice| view! { <p id="model-notice" class="status error">{notice}</p> })
    };
    view! {
        <div aria-live="polite">
            {in_use}
            {phase}
            {notice}
        </div>
        {download}
    }
}

/// The model menu, and the user's own weight file (which can also be dropped on the page).
#[component]
pub fn ModelChoice(models: Models, initial: ShippedModel) -> impl IntoView {
    let on_change = move |event: leptos::ev::Event| {
        let select: HtmlSelectElement = event_target(&event);
        match ShippedModel::named(&select.value()) {
            Ok(model) => models.use_shipped(model),
            Err(error) => models.refuse(error),
        }
    };
    let on_file = move |event: leptos::ev::Event| {
        let input: HtmlInputElement = event_target(&event);
        if let Some(file) = input
            .files()
            .map(file_list)
            .and_then(|files| files.into_iter().next())
        {
            use_weight_file(models, file);
        }
        input.set_value("");
    };
    // The menu follows the model in use ("own" once the user's file is loaded), and goes back
    // to it when a switch fails (hence the phase is read too).
    let selected = move || {
        models.phase.track();
        models.current.with(|current| {
            current.as_ref().map_or(initial.name.to_string(), |model| {
                model.source.name().to_string()
            })
        })
    };
    let own_loaded = move || selected() == "own";
    view! {
        <div class="control">
            <label for="model-choice">"Model"</label>
            <select id="model-choice" on:change=on_change>
                {SHIPPED.map(|model| view! {
                    <option value=model.name prop:selected=move || selected() == model.name>{model.description}</option>
                })}
                <option value="own" disabled=true hidden=move || !own_loaded() prop:selected=own_loaded>
                    "your own model"
                </option>
            </select>
            <label class="file-button">
                "Use your own model file (.bpk)…"
                <input id="model-file" class="visually-hidden" type="file" accept=".bpk" on:change=on_file />
            </label>
        </div>
    }
}

/// The menu entry of the build without WebGPU that loads the build with it.
const LOAD_WEBGPU_BUILD: &str = "load-webgpu";

/// The backend menu. Automatic choice happens on first load; this moves the model (or, if
/// none could be loaded, tries the model asked for there), and the choice is remembered for
/// the next visit (index.html starts the build that has it). In the build without WebGPU, where
/// the browser offers WebGPU, the GPU entry opens the page again with its WebGPU build.
#[component]
pub fn BackendChoice(models: Models, gpu_build_offered: ReadSignal<bool>) -> impl IntoView {
    let on_change = move |event: leptos::ev::Event| {
        let select: HtmlSelectElement = event_target(&event);
        let value = select.value();
        if value == LOAD_WEBGPU_BUILD {
            // The model in use comes along where it is a shipped one (the user's own file
            // cannot travel in an address).
            let model = models.current.with_untracked(|current| {
                current.as_ref().and_then(|model| match &model.source {
                    ModelSource::Shipped(shipped) => Some(shipped.name),
                    ModelSource::Own(_) => None,
                })
            });
            if let Err(error) = open_webgpu_build(remember_build(true), model) {
                select.set_value(Backend::DEFAULT_CPU.name());
                models.refuse(format!("The page's GPU build could not be opened: {error}"));
            }
            return;
        }
        match value.parse::<Backend>() {
            Ok(backend) => {
                remember_build(backend.is_gpu());
                models.use_backend(backend);
            }
            Err(error) => models.refuse(error),
        }
    };
    let selected = move || {
        models.phase.track();
        models.current.with(|current| {
            current
                .as_ref()
                .map_or(String::new(), |model| model.backend.name().to_string())
        })
    };
    let label = |backend: Backend| match backend {
        Backend::Wgpu => "GPU (WebGPU)",
        Backend::Flex => "CPU",
    };
    view! {
        <div class="control">
            <label for="backend-choice">"Runs on"</label>
            <select id="backend-choice" on:change=on_change>
                {Backend::ALL.iter().map(|&backend| view! {
                    <option value=backend.name() prop:selected=move || selected() == backend.name()>{label(backend)}</option>
                }).collect::<Vec<_>>()}
                {move || gpu_build_offered.get().then(|| view! {
                    <option value=LOAD_WEBGPU_BUILD>"GPU (WebGPU): reloads the page"</option>
                })}
            </select>
        </div>
    }
}

/// Reads a weight file the user gave and switches to it, or says why it was refused; the
/// model in use stays until the new one is ready.
pub fn use_weight_file(models: Models, file: File) {
    spawn_local(async move {
        let name = file.name();
        let checked = blob_bytes(&file)
            .await
            .map_err(|error| format!("{name}: the file could not be read: {error}"))
            .and_then(|bytes| check_weights(&name, &bytes).map(|()| bytes));
        match checked {
            Ok(bytes) => models.use_own(name, bytes),
            Err(error) => models.refuse(error),
        }
    });
}
