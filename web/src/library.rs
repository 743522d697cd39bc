//! The photos as a library to sort: progress with the time left, pause and cancel; the files
//! skipped as not photos; the summary line; filters and orders for the cards; the CSV and the
//! sorted zip to take home.

use leptos::prelude::*;

use crate::browser::revoke_object_url;
use crate::cards::PhotoCards;
use crate::export::{save_csv, save_zip};
use crate::sorting::{Category, Filter, Order, summary, summary_text};
use crate::state::{Models, Photos};

#[component]
pub fn Library(photos: Photos, models: Models) -> impl IntoView {
    let filter = RwSignal::new(Filter::All);
    let order = RwSignal::new(Order::NewestFirst);
    let any = move || photos.list.with(|list| !list.is_empty());
    // Cleared: the next photos are shown whatever they turn out to be.
    Effect::new(move || {
        if !any() {
            filter.set(Filter::All);
        }
    });
    view! {
        <Progress photos=photos models=models />
        <Skipped photos=photos />
        <section class="library" aria-label="sorting" hidden=move || !any()>
            <Summary photos=photos filter=filter />
            <div class="library-tools">
                <OrderChoice order=order />
                <Export photos=photos />
            </div>
        </section>
        <PhotoCards photos=photos filter=filter.read_only() order=order.read_only() />
    }
}

/// "Classified 40 of 240 photos, about 1 min 10 s left…", the bar, and pause, cancel, clear.
#[component]
fn Progress(photos: Photos, models: Models) -> impl IntoView {
    // One count of the photos per change, whichever of the parts below asks.
    let counts = Memo::new(move |_| photos.progress());
    let unfinished = move || {
        let (finished, total) = counts.get();
        finished < total
    };
    let text = move || {
        let (finished, total) = counts.get();
        if finished == total {
            return format!(
                "Classified {total} photo{}.",
                if total == 1 { "" } else { "s" }
            );
        }
        let done = format!("Classified {finished} of {total} photos");
        if photos.paused.get() {
            let halting = if photos.running.get() {
                " (pausing after this photo)"
            } else {
                ""
            };
            return format!("{done}: paused{halting}.");
        }
        let left = photos
            .ms_per_photo
            .get()
            .map(|ms| {
                format!(
                    ", about {} left",
                    duration_text(ms * (total - finished) as f64)
                )
            })
            .unwrap_or_default();
        format!("{done}{left}…")
    };
    let paused = photos.paused;
    view! {
        <div class="progress-count" hidden=move || counts.get().1 == 0>
            <p id="progress-count" role="status" data-finished=move || counts.get().0 data-total=move || counts.get().1
                data-paused=move || paused.get().to_string()
                data-running=move || photos.running.get().to_string()>{text}</p>
            <progress max=move || counts.get().1 value=move || counts.get().0 aria-hidden="true"></progress>
            <button type="button" id="pause" class="secondary" hidden=move || !unfinished()
                aria-pressed=move || paused.get().to_string()
                on:click=move |_| photos.set_paused(!paused.get_untracked(), models)>
                {move || if paused.get() { "Resume" } else { "Pause" }}
            </button>
            <button type="button" id="cancel" class="secondary" hidden=move || !unfinished()
                on:click=move |_| photos.cancel()>"Cancel the rest"</button>
            <button type="button" id="clear" class="secondary" on:click=move |_| photos.clear()>"Clear"</button>
        </div>
    }
}

/// "about 1 min 10 s", "about 40 s".
fn duration_text(ms: f64) -> String {
    let seconds = (ms / 1000.0).ceil() as u64;
    match seconds {
        0..60 => format!("{seconds} s"),
        _ => format!("{} min {} s", seconds / 60, seconds % 60),
    }
}

/// The files of the folder chosen or dropped that are not photos, said once, and how many of
/// its photos were on the page already.
#[component]
fn Skipped(photos: Photos) -> impl IntoView {
    let already = move || {
        let count = photos.already_here.get();
        (count > 0).then(|| {
            let text = if count == 1 {
                "1 photo of the folder was here already: not added again.".to_string()
            } else {
                format!("{count} photos of the folder were here already: not added again.")
            };
            view! { <p id="already-here" class="note" data-count=count>{text}</p> }
        })
    };
    let skipped = move || {
        let skipped = photos.skipped.get();
        (!skipped.is_empty()).then(|| {
            let count = skipped.len();
            let files = if count == 1 { "file that is not a photo" } else { "files that are not photos" };
            view! {
                <details id="skipped" class="skipped note" data-count=count>
                    <summary>{format!("Skipped {count} {files} in the folder.")}</summary>
                    <ul>{skipped.into_iter().map(|path| view! { <li>{path}</li> }).collect_view()}</ul>
                </details>
            }
        })
    };
    view! { {skipped} {already} }
}

/// "312 cats, 170 dogs, 9 not sure, 3 neither" and, as buttons with their counts, the filters.
#[component]
fn Summary(photos: Photos, filter: RwSignal<Filter>) -> impl IntoView {
    let counts = Memo::new(move |_| photos.list.with(|list| summary(list)));
    let count_of = move |category: Category| {
        counts.with(|counts| {
            counts
                .iter()
                .find(|(c, _)| *c == category)
                .map_or(0, |(_, n)| *n)
        })
    };
    let button = move |shown: Filter, label: &'static str| {
        let pressed = move || filter.get() == shown;
        let (name, count) = match shown {
            Filter::All => ("all", None),
            Filter::Only(category) => (category.name(), Some(category)),
        };
        view! {
            <button type="button" class="secondary filter" data-filter=name
                hidden=move || count.is_some_and(|category| count_of(category) == 0 && !pressed())
                aria-pressed=move || pressed().to_string() on:click=move |_| filter.set(shown)>
                {label} {move || count.map(|category| format!(" ({})", count_of(category)))}
            </button>
        }
    };
    let data = move |category: Category| move || count_of(category);
    view! {
        <p id="summary" role="status" data-cat=data(Category::Cat) data-dog=data(Category::Dog)
            data-not-sure=data(Category::NotSure) data-neither=data(Category::Neither)
            data-unreadable=data(Category::Unreadable)>
            {move || counts.with(|counts| summary_text(counts))}
        </p>
        <div class="filters" role="group" aria-label="show">
            {button(Filter::All, "All")}
            {Category::ALL.map(|category| button(Filter::Only(category), category.label()))}
        </div>
    }
}

#[component]
fn OrderChoice(order: RwSignal<Order>) -> impl IntoView {
    let on_change = move |event: leptos::ev::Event| {
        let value = event_target_value(&event);
        if let Some(chosen) = Order::ALL.into_iter().find(|order| order.name() == value) {
            order.set(chosen);
        }
    };
    view! {
        <span class="control">
            <label for="order">"Order"</label>
            <select id="order" on:change=on_change>
                {Order::ALL.into_iter().map(|choice| view! {
                    <option value=choice.name() selected=move || order.get() == choice>{choice.describe()}</option>
                }).collect_view()}
            </select>
        </span>
    }
}

/// "Download CSV" and "Download sorted zip": made in the browser from the photos on the page.
#[component]
fn Export(photos: Photos) -> impl IntoView {
    let (error, set_error) = signal::<Option<String>>(None);
    // The last download's `blob:` URL, freed when the next one is made or the page is left
    // (the browser may still be writing it when the click returns).
    let last_url = StoredValue::new(None::<String>);
    let save = move |make: fn(&[crate::state::Photo]) -> Result<String, String>| {
        let made = untrack(|| photos.list.with(|list| make(list)));
        match made {
            Ok(url) => {
                if let Some(old) = last_url.get_value() {
                    revoke_object_url(&old);
                }
                last_url.set_value(Some(url));
                set_error.set(None);
            }
            Err(reason) => set_error.set(Some(format!("Could not make the file: {reason}"))),
        }
    };
    view! {
        <span class="export">
            <button type="button" id="save-csv" class="secondary" on:click=move |_| save(save_csv)>"Download CSV"</button>
            <button type="button" id="save-zip" class="secondary" on:click=move |_| save(save_zip)>"Download sorted zip"</button>
        </span>
        {move || error.get().map(|error| view! { <p class="error" role="alert">{error}</p> })}
    }
}
