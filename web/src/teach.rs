//! "Teach it": the user gives the right answer on some cards, and the model's last layer learns
//! from those photos here in the browser (keeping its verdicts on the other photos); the
//! taught model is then put in use and offered as a weight file to download.

use catdog_model::Label;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::browser::{blob_bytes, bytes_object_url, revoke_object_url};
use crate::state::{Models, Photo, PhotoState, Photos};

/// The name the taught model goes by, in the page and as a download.
const TAUGHT_FILE: &str = "catdog-taught.bpk";

/// At most this many unlabelled photos are kept to: each costs a pass through the network.
const MOST_KEPT: usize = 32;

/// Where a lesson is.
#[derive(Debug, Clone, PartialEq)]
enum LessonState {
    Idle,
    Reading,
    Learning {
        step: usize,
        steps: usize,
        loss: f32,
    },
    Starting,
    Done {
        before: f32,
        after: f32,
    },
    Failed(String),
}

/// The right answer for one card: cat or dog, pressed again to take it back.
#[component]
pub fn TruthButtons(photo: Photo) -> impl IntoView {
    let truth = photo.truth;
    let button = move |label: Label| {
        let pressed = move || truth.get() == Some(label);
        view! {
            <button type="button" class=format!("secondary truth-{}", label.name())
                aria-pressed=move || pressed().to_string()
                on:click=move |_| truth.update(|truth| {
                    *truth = if *truth == Some(label) { None } else { Some(label) }
                })>
                {label.name()}
            </button>
        }
    };
    view! {
        <p class="truth" role="group" aria-label=format!("The right answer for {}", photo.name)>
            <span class="truth-label">"Right answer:"</span> {button(Label::Cat)} " " {button(Label::Dog)}
        </p>
    }
}

/// The lesson: how many photos are labelled, the button, the loss as it falls, and the taught
/// model to download. Shown once a photo is labelled.
#[component]
pub fn Teach(photos: Photos, models: Models) -> impl IntoView {
    let state = RwSignal::new(LessonState::Idle);
    let download = RwSignal::new(None::<String>);
    let labelled = move || {
        photos.list.with(|list| {
            list.iter()
                .filter(|photo| photo.truth.get().is_some())
                .count()
        })
    };
    let busy = move || {
        matches!(
            state.get(),
            LessonState::Reading | LessonState::Learning { .. } | LessonState::Starting
        )
    };
    let start = move |_| {
        state.set(LessonState::Reading);
        spawn_local(async move {
            let result = lesson(photos, models, state).await;
            match result {
                Ok((before, after, url)) => {
                    if let Some(old) = download.get_untracked() {
                        revoke_object_url(&old);
                    }
                    download.set(Some(url));
                    state.set(LessonState::Done { before, after });
                }
                Err(error) => state.set(LessonState::Failed(error)),
            }
        });
    };
    let status = move || {
        match state.get() {
        LessonState::Idle => ().into_any(),
        LessonState::Reading => {
            view! { <p id="lesson-status" role="status">"Looking at your photos…"</p> }.into_any()
        }
        LessonState::Learning { step, steps, loss } => view! {
            <p id="lesson-status" role="status" data-step=step data-loss=format!("{loss:.4}")>
                {format!("Learning: step {step} of {steps}, loss {loss:.3}")}
            </p>
        }
        .into_any(),
        LessonState::Starting => view! {
            <p id="lesson-status" role="status">"Putting the taught model in use…"</p>
        }
        .into_any(),
        LessonState::Done { before, after } => view! {
            <p id="lesson-result" role="status" data-before=format!("{before:.4}") data-after=format!("{after:.4}")>
                {format!(
                    "Learned: the loss on your labelled photos went from {before:.3} to {after:.3}. \
                     The page now uses the taught model and has looked at your photos again."
                )}
            </p>
        }
        .into_any(),
        LessonState::Failed(error) => {
            view! { <p id="lesson-error" class="error" role="alert">{error}</p> }.into_any()
        }
    }
    };
    let download_link = move || {
        download.get().map(|url| {
            view! {
                <a id="download-model" class="button" href=url download=TAUGHT_FILE>
                    "Download the taught model (" {TAUGHT_FILE} ")"
                </a>
            }
        })
    };
    view! {
        <section class="teach" aria-label="teach the model" class:hidden=move || labelled() == 0 && download.get().is_none()>
            <h2>"Teach it your photos"</h2>
            <p class="note">
                {move || {
                    let count = labelled();
                    format!(
                        "{count} photo{} labelled. The model learns from {}; it keeps its verdicts on your other photos, so give it a few of those too.",
                        if count == 1 { "" } else { "s" },
                        if count == 1 { "it" } else { "them" },
                    )
                }}
            </p>
            <button type="button" id="teach-start" on:click=start disabled=move || busy() || labelled() == 0>
                "Teach the model"
            </button>
            {status}
            {download_link}
        </section>
    }
}

/// Reads the photos, runs the lesson on the model in use, puts the taught model in use and
/// classifies every photo again with it: `(loss before, loss after, download URL)`.
async fn lesson(
    photos: Photos,
    models: Models,
    state: RwSignal<LessonState>,
) -> Result<(f32, f32, String), String> {
    let model = models
        .current
        .get_untracked()
        .ok_or("there is no model to teach yet")?;
    let list = photos.list.get_untracked();
    let mut labelled = Vec::new();
    let mut unlabelled = Vec::new();
    for photo in &list {
        let classified = matches!(photo.state.get_untracked(), PhotoState::Done(_));
        let bytes = || async {
            blob_bytes(&photo.file)
                .await
                .map_err(|error| format!("{}: {error}", photo.name))
        };
        match photo.truth.get_untracked() {
            Some(label) => labelled.push((bytes().await?, label)),
            // Only photos the model could read, and not too many.
            None if classified && unlabelled.len() < MOST_KEPT => unlabelled.push(bytes().await?),
            None => {}
        }
    }
    if labelled.is_empty() {
        return Err("label a photo first: press cat or dog on its card".into());
    }
    let taught = model
        .teach(&labelled, &unlabelled, |step, steps, loss| {
            state.set(LessonState::Learning { step, steps, loss })
        })
        .await?;
    let url = bytes_object_url(&taught.weights)?;
    state.set(LessonState::Starting);
    if !models
        .use_taught(TAUGHT_FILE.to_string(), taught.weights)
        .await
    {
        revoke_object_url(&url);
        return Err("the taught model could not be put in use (see above)".into());
    }
    photos.reclassify(models);
    Ok((taught.before, taught.after, url))
}
