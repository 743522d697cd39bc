//! The photos as cards: thumbnail, verdict, a confidence bar for cat against dog, the time the
//! model took and, on request, the heatmap of where the verdict came from; or the reason a
//! photo could not be classified.

use catdog_model::explain::Heatmap;
use catdog_model::{Label, Prediction};
use leptos::prelude::*;

use crate::browser::data_url;
use crate::loaded_model::Outcome;
use crate::sorting::{Category, Filter, Order};
use crate::state::{Photo, PhotoState, Photos};
use crate::teach::TruthButtons;

/// The cards that `filter` shows, in `order`.
#[component]
pub fn PhotoCards(
    photos: Photos,
    filter: ReadSignal<Filter>,
    order: ReadSignal<Order>,
) -> impl IntoView {
    let shown = move || {
        let filter = filter.get();
        let mut list = photos.list.with(|list| {
            list.iter()
                .filter(|photo| filter.shows(photo))
                .cloned()
                .collect::<Vec<_>>()
        });
        order.get().sort(&mut list);
        list
    };
    view! {
        <ul id="cards" class="cards">
            <For each=shown key=|photo| photo.id let:photo>
                <PhotoCard photo=photo />
            </For>
        </ul>
    }
}

#[component]
fn PhotoCard(photo: Photo) -> impl IntoView {
    let state = photo.state;
    let (thumbnail_failed, set_thumbnail_failed) = signal(false);
    let alt = format!("Your photo {}", photo.name);
    // A grey square until the photo's turn comes and the browser has made its small copy.
    let thumbnail = move || {
        match photo.thumbnail.get() {
        Some(url) => view! {
            <img class="thumb" src=url alt=alt.clone()
                class:hidden=move || thumbnail_failed.get() on:error=move |_| set_thumbnail_failed.set(true) />
        }
        .into_any(),
        None => view! { <span class="thumb" aria-hidden="true"></span> }.into_any(),
    }
    };
    let data_state = move || match state.get() {
        PhotoState::Waiting | PhotoState::Classifying => "waiting",
        PhotoState::Done(_) => "done",
        PhotoState::Failed(_) => "error",
    };
    let outcome = move || match state.get() {
        PhotoState::Done(outcome) => Some(outcome),
        _ => None,
    };
    let (why_photo, id, truth) = (photo.thumbnail, photo.id, photo.truth);
    let (for_truth, for_folder) = (photo.clone(), photo.clone());
    let data = move |read: fn(&Outcome) -> String| move || outcome().map(|outcome| read(&outcome));
    let body = move || match state.get() {
        PhotoState::Waiting => view! { <p class="verdict pending">"Waiting…"</p> }.into_any(),
        PhotoState::Classifying => view! { <p class="verdict pending">"Looking…"</p> }.into_any(),
        PhotoState::Failed(error) => view! {
            <p class="verdict">"Could not classify this file"</p>
            <p class="error">{error}</p>
        }
        .into_any(),
        PhotoState::Done(outcome) => view! { <Verdict outcome=outcome /> }.into_any(),
    };
    view! {
        <li class="card" id=format!("photo-{}", photo.id) data-file=photo.name.clone() data-state=data_state
            data-label=data(|o| o.explanation.prediction.label.name().into())
            data-sure=data(|o| o.explanation.prediction.is_sure().to_string())
            data-cat=data(|o| format!("{:.4}", o.explanation.prediction.cat))
            data-model=data(|o| o.model.clone())
            data-backend=data(|o| o.backend.name().into())
            data-ms=data(|o| format!("{:.1}", o.millis))
            data-heatmap=data(|o| heatmap_values(&o.explanation.heatmap))
            data-pet=data(|o| o.explanation.pet.map(|pet| pet.is_pet().to_string()).unwrap_or_default())
            data-truth=move || truth.get().map(Label::name)
            data-path=photo.path.clone()
            data-folder=move || for_folder.category().map(Category::name)
            aria-busy=move || (data_state() == "waiting").to_string()>
            {thumbnail}
            <div class="card-body">
                <p class="file">{photo.name.clone()}</p>
                {body}
            </div>
            {move || outcome().zip(why_photo.get()).map(|(outcome, url)| view! {
                <Why outcome=outcome photo=url id=id />
            })}
            {move || outcome().map(|_| view! { <TruthButtons photo=for_truth.clone() /> })}
        </li>
    }
}

/// "Why?": a toggle that shows the photo with its Grad-CAM heatmap laid over it.
#[component]
fn Why(outcome: Outcome, photo: String, id: u32) -> impl IntoView {
    let (shown, set_shown) = signal(false);
    let heatmap = &outcome.explanation.heatmap;
    let heat = data_url("image/png", &heatmap.to_png()).ok();
    // Over the part of the photo the network saw: all of it, or a cropping model's centre.
    let [left, top, right, bottom] = heatmap.area.map(|fraction| fraction * 100.0);
    let placed = format!(
        "left: {left}%; top: {top}%; width: {}%; height: {}%",
        right - left,
        bottom - top
    );
    let label = outcome.explanation.prediction.label.name();
    let figure_id = format!("why-{id}");
    view! {
        <button type="button" class="secondary why-toggle" aria-expanded=move || shown.get().to_string()
            aria-controls=figure_id.clone() on:click=move |_| set_shown.update(|shown| *shown = !*shown)>
            {move || if shown.get() { "Hide why" } else { "Why?" }}
        </button>
        <figure class="why" id=figure_id class:hidden=move || !shown.get()>
            <div class="why-picture">
                <img class="why-photo" src=photo alt="" />
                <img class="why-heat" src=heat style=placed alt=format!("Heatmap of where the model saw a {label}") />
            </div>
            <figcaption>
                {format!("Warm colours: what made the model say {label} (Grad-CAM).")}
            </figcaption>
        </figure>
    }
}

/// The heatmap as `width x height: v, v, ...` for tests to compare with the trainer's.
fn heatmap_values(heatmap: &Heatmap) -> String {
    let values: Vec<String> = heatmap.values.iter().map(|v| format!("{v:.4}")).collect();
    format!("{}x{}: {}", heatmap.width, heatmap.height, values.join(","))
}

/// The verdict (as [`Category::of_verdict`] sorts it: "neither", "not sure", or cat or dog),
/// the bar and the timing.
#[component]
fn Verdict(outcome: Outcome) -> impl IntoView {
    let Prediction { cat, dog, label } = outcome.explanation.prediction;
    let name = label.name();
    let verdict = match Category::of_verdict(&outcome) {
        Category::Neither => view! {
            <p class="verdict neither">"Neither a cat nor a dog, it seems"</p>
            <p class="neither-note">{format!("(If it is one, more likely a {name}.)")}</p>
        }
        .into_any(),
        Category::NotSure => view! {
            <p class="verdict unsure">"Not sure: " <strong>"maybe a " {name}</strong></p>
        }
        .into_any(),
        Category::Cat | Category::Dog | Category::Unreadable => {
            view! { <p class="verdict">"It's a " <strong>{name}</strong> "!"</p> }.into_any()
        }
    };
    let percent = |p: f32| format!("{:.1} %", p * 100.0);
    let (cat_text, dog_text) = (percent(cat), percent(dog));
    let likelier = |which: Label| if label == which { "likelier" } else { "" };
    view! {
        {verdict}
        <div class="bar" role="img" aria-label=format!("cat {cat_text}, dog {dog_text}")>
            <span class=format!("bar-cat {}", likelier(Label::Cat)) style=format!("width: {:.2}%", cat * 100.0)></span>
            <span class=format!("bar-dog {}", likelier(Label::Dog)) style=format!("width: {:.2}%", dog * 100.0)></span>
        </div>
        <p class="bar-legend" aria-hidden="true">
            <span>"cat " {cat_text.clone()}</span>
            <span>"dog " {dog_text.clone()}</span>
        </p>
        <p class="timing">
            {format!("{:.0} ms, {} model on ", outcome.millis, outcome.model)}
            <code>{outcome.backend.name()}</code>
        </p>
    }
}
