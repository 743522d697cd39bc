//! Sorting a library of photos: which folder each photo goes to (the model's verdict, or the
//! right answer the user gave), the summary line, the filters and the orders of the cards.
//! One place for these rules: the cards, the summary, the CSV and the zip all ask here.

use catdog_model::Label;
use leptos::prelude::*;

use crate::loaded_model::Outcome;
use crate::state::{Photo, PhotoState};

/// Where a finished photo is sorted: also the folder names in the zip and the labels in the
/// CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Cat,
    Dog,
    NotSure,
    Neither,
    /// The file could not be classified (not a photo the model can read); never in the zip.
    Unreadable,
}

impl Category {
    /// In the order the summary line says them.
    pub const ALL: [Category; 5] = [
        Category::Cat,
        Category::Dog,
        Category::NotSure,
        Category::Neither,
        Category::Unreadable,
    ];

    /// The folder name in the zip and the label in the CSV.
    pub fn name(self) -> &'static str {
        match self {
            Category::Cat => "cat",
            Category::Dog => "dog",
            Category::NotSure => "not-sure",
            Category::Neither => "neither",
            Category::Unreadable => "unreadable",
        }
    }

    /// Its filter button's label.
    pub fn label(self) -> &'static str {
        match self {
            Category::Cat => "Cats",
            Category::Dog => "Dogs",
            Category::NotSure => "Not sure",
            Category::Neither => "Neither",
            Category::Unreadable => "Could not be read",
        }
    }

    /// "312 cats", "9 not sure", as the summary line says it.
    pub fn count_text(self, count: usize) -> String {
        let plural = count != 1;
        match self {
            Category::Cat => format!("{count} cat{}", if plural { "s" } else { "" }),
            Category::Dog => format!("{count} dog{}", if plural { "s" } else { "" }),
            Category::NotSure => format!("{count} not sure"),
            Category::Neither => format!("{count} neither"),
            Category::Unreadable => format!("{count} could not be read"),
        }
    }

    /// The model's verdict: "neither" when its pet check says so, "not sure" below
    /// [`catdog_model::Prediction::SURE`].
    pub fn of_verdict(outcome: &Outcome) -> Category {
        let prediction = &outcome.explanation.prediction;
        if outcome.explanation.is_neither() {
            Category::Neither
        } else if !prediction.is_sure() {
            Category::NotSure
        } else {
            Category::of_label(prediction.label)
        }
    }

    fn of_label(label: Label) -> Category {
        match label {
            Label::Cat => Category::Cat,
            Label::Dog => Category::Dog,
        }
    }
}

impl Photo {
    /// The model's verdict on this photo, once finished (reactive).
    pub fn verdict(&self) -> Option<Category> {
        self.state.with(|state| match state {
            PhotoState::Done(outcome) => Some(Category::of_verdict(outcome)),
            PhotoState::Failed(_) => Some(Category::Unreadable),
            PhotoState::Waiting | PhotoState::Classifying => None,
        })
    }

    /// Where the photo is sorted, once finished (reactive): the right answer the user gave
    /// ("Right answer" buttons) over the model's verdict.
    pub fn category(&self) -> Option<Category> {
        let verdict = self.verdict()?;
        match (verdict, self.truth.get()) {
            (Category::Unreadable, _) | (_, None) => Some(verdict),
            (_, Some(label)) => Some(Category::of_label(label)),
        }
    }

    /// The probability of the likelier label, for sorting by confidence (reactive).
    fn confidence(&self) -> Option<f32> {
        self.state.with(|state| match state {
            PhotoState::Done(outcome) => Some(outcome.explanation.prediction.confidence()),
            _ => None,
        })
    }
}

/// How many finished photos went where (reactive): the summary line.
pub fn summary(photos: &[Photo]) -> Vec<(Category, usize)> {
    let mut counts = [0; Category::ALL.len()];
    for category in photos.iter().filter_map(Photo::category) {
        counts[category as usize] += 1;
    }
    Category::ALL.into_iter().zip(counts).collect()
}

/// "312 cats, 170 dogs, 9 not sure, 3 neither" (categories with none are left out).
pub fn summary_text(counts: &[(Category, usize)]) -> String {
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|(category, count)| category.count_text(*count))
        .collect();
    parts.join(", ")
}

/// Which cards are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    All,
    Only(Category),
}

impl Filter {
    pub fn shows(self, photo: &Photo) -> bool {
        match self {
            Filter::All => true,
            Filter::Only(category) => photo.category() == Some(category),
        }
    }
}

/// The order of the cards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    NewestFirst,
    MostConfidentFirst,
    LeastConfidentFirst,
}

impl Order {
    pub const ALL: [Order; 3] = [
        Order::NewestFirst,
        Order::MostConfidentFirst,
        Order::LeastConfidentFirst,
    ];

    /// The value in the page's menu.
    pub fn name(self) -> &'static str {
        match self {
            Order::NewestFirst => "newest",
            Order::MostConfidentFirst => "most-confident",
            Order::LeastConfidentFirst => "least-confident",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Order::NewestFirst => "newest first",
            Order::MostConfidentFirst => "most confident first",
            Order::LeastConfidentFirst => "least confident first",
        }
    }

    /// Sorts photos given in order (reactive). Newest first: the photos given last come first,
    /// those given together (a folder) in the order given, which is the order they are
    /// classified in, so a folder shows its verdicts as they come rather than a page of
    /// "Waiting…" (and without reading every photo's state, which would sort again at each
    /// verdict). By confidence: photos still waiting come last, after files that could not be
    /// read; ties keep the newest first.
    pub fn sort(self, photos: &mut [Photo]) {
        let most_first = match self {
            Order::NewestFirst => {
                photos.sort_by_key(|photo| (std::cmp::Reverse(photo.batch), photo.id));
                return;
            }
            Order::MostConfidentFirst => true,
            Order::LeastConfidentFirst => false,
        };
        photos.reverse();
        photos.sort_by_cached_key(|photo| {
            let waiting = photo.verdict().is_none();
            // Confidences are in [0.5, 1]: as integers they order as the floats do.
            let rank = photo.confidence().map_or(i64::MAX, |confidence| {
                let key = (confidence * 1e6) as i64;
                if most_first { -key } else { key }
            });
            (waiting, rank)
        });
    }
}
