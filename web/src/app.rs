//! The page's components. They never touch tensors: they call [`LoadedModel`], which calls the
//! model crate's prediction API.

use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::{File, HtmlInputElement};

use crate::browser::file_bytes;
use crate::model::{LoadedModel, Outcome};

/// The model as the page sees it: still loading, ready, or failed with a message.
type ModelSlot = Option<Result<Rc<LoadedModel>, String>>;

#[component]
pub fn App() -> impl IntoView {
    // The classifier holds GPU handles that stay on this thread: a local signal.
    let (model, set_model) = signal_local::<ModelSlot>(None);
    spawn_local(async move {
        set_model.set(Some(LoadedModel::load().await.map(Rc::new)));
    });

    let (outcome, set_outcome) = signal::<Option<Result<Outcome, String>>>(None);
    let (busy, set_busy) = signal(false);
    let on_file = move |file: File| {
        let Some(Ok(loaded)) = model.get_untracked() else {
            return;
        };
        set_busy.set(true);
        spawn_local(async move {
            let result = match file_bytes(&file).await {
                Ok(bytes) => loaded.classify(file.name(), &bytes).await,
                Err(error) => Err(format!("{}: {error}", file.name())),
            };
            set_outcome.set(Some(result));
            set_busy.set(false);
        });
    };
    let ready = Signal::derive(move || matches!(model.get(), Some(Ok(_))) && !busy.get());

    view! {
        <main>
            <h1>"Cat or dog?"</h1>
            <p class="tagline">"Pick a photo. It is classified right here in your browser and never uploaded."</p>
            <ModelStatus model=model />
            <PhotoPicker ready=ready on_file=on_file />
            <PredictionView outcome=outcome busy=busy />
        </main>
    }
}

/// Where the model runs, or why it does not.
#[component]
fn ModelStatus(model: ReadSignal<ModelSlot, LocalStorage>) -> impl IntoView {
    move || {
        match model.get() {
        None => view! { <p id="model-status" class="status">"Loading the model…"</p> }.into_any(),
        Some(Err(error)) => {
            view! { <p id="model-status" class="status error">"The model could not be loaded: " {error}</p> }
                .into_any()
        }
        Some(Ok(loaded)) => {
            let where_ = if loaded.backend.is_gpu() { "on your GPU (WebGPU)" } else { "on your CPU" };
            let fallback = loaded
                .fallback
                .clone()
                .map(|reason| view! { <span class="fallback">" — no WebGPU here: " {reason}</span> });
            view! {
                <p id="model-status" class="status ready" data-backend=loaded.backend.name() data-model=loaded.model.name>
                    "Model ready (" {loaded.model.description} "), running " {where_} " with the "
                    <code>{loaded.backend.name()}</code> " backend." {fallback}
                </p>
            }
            .into_any()
        }
    }
    }
}

/// The file picker; hands the chosen photo to `on_file`.
#[component]
fn PhotoPicker<F>(ready: Signal<bool>, on_file: F) -> impl IntoView
where
    F: Fn(File) + 'static,
{
    let on_change = move |event: leptos::ev::Event| {
        let input: HtmlInputElement = event_target(&event);
        if let Some(file) = input.files().and_then(|files| files.get(0)) {
            on_file(file);
        }
    };
    view! {
        <label class="picker" class:disabled=move || !ready.get()>
            <span>"Choose a photo"</span>
            <input id="photo-input" type="file" accept="image/*" disabled=move || !ready.get() on:change=on_change />
        </label>
    }
}

/// The verdict, with both probabilities, the backend and the time taken.
#[component]
fn PredictionView(
    outcome: ReadSignal<Option<Result<Outcome, String>>>,
    busy: ReadSignal<bool>,
) -> impl IntoView {
    move || {
        if busy.get() {
            return view! { <p id="prediction" class="busy">"Looking…"</p> }.into_any();
        }
        match outcome.get() {
            None => ().into_any(),
            Some(Err(error)) => view! { <p id="prediction" class="error">{error}</p> }.into_any(),
            Some(Ok(outcome)) => {
                let label = outcome.prediction.label.name();
                let percent = |p: f32| format!("{:.1}%", p * 100.0);
                view! {
                    <section id="prediction" class="result" data-label=label data-backend=outcome.backend.name()
                        data-file=outcome.file_name.clone() data-ms=format!("{:.1}", outcome.millis)>
                        <p class="verdict">"It's a " <strong>{label}</strong> "!"</p>
                        <p class="file">{outcome.file_name.clone()}</p>
                        <dl class="probabilities">
                            <dt>"cat"</dt><dd id="p-cat">{percent(outcome.prediction.cat)}</dd>
                            <dt>"dog"</dt><dd id="p-dog">{percent(outcome.prediction.dog)}</dd>
                        </dl>
                        <p class="timing">
                            {format!("{:.0} ms on ", outcome.millis)} <code>{outcome.backend.name()}</code>
                        </p>
                    </section>
                }
                .into_any()
            }
        }
    }
}
