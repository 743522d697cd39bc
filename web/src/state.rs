//! The page's state: the model in use (and the one being loaded in its place), and the photos
//! with their verdicts, classified one after another.

use std::rc::Rc;

use catdog_model::Backend;
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::File;

use crate::browser::{blob_bytes, object_url, revoke_object_url, yield_to_browser};
use crate::model::{LoadedModel, ModelSource, Outcome, ShippedModel};

/// What the model loader is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Nothing: the current model (if any) is the one asked for.
    Idle,
    Downloading {
        what: String,
        received: u64,
        total: Option<u64>,
    },
    /// Loading onto the backend and warming up.
    Starting(String),
    /// The last switch failed; the model before it, if any, is still in use.
    Failed(String),
}

/// The model in use and the loader's phase.
#[derive(Clone, Copy)]
pub struct Models {
    /// Holds GPU handles that stay on this thread: local storage.
    pub current: RwSignal<Option<Rc<LoadedModel>>, LocalStorage>,
    pub phase: RwSignal<Phase>,
    /// Bumped by every switch, so a slow load that was overtaken is dropped.
    generation: StoredValue<u32>,
}

impl Models {
    pub fn new() -> Self {
        Self {
            current: RwSignal::new_local(None),
            phase: RwSignal::new(Phase::Idle),
            generation: StoredValue::new(0),
        }
    }

    /// The backend new models go to: the one in use, so a model switch keeps it.
    fn backend_in_use(self) -> Option<Backend> {
        self.current
            .with_untracked(|current| current.as_ref().map(|model| model.backend))
    }

    /// Downloads a shipped model (with progress) and switches to it. `backend`: where to run
    /// it; `None` keeps the backend in use, or picks WebGPU or the CPU on first load.
    pub fn use_shipped(self, model: ShippedModel, backend: Option<Backend>) {
        let backend = backend.or_else(|| self.backend_in_use());
        let generation = self.next_generation();
        spawn_local(async move {
            let progress = move |received, total| {
                if self.is_current(generation) {
                    self.phase.set(Phase::Downloading {
                        what: model.description.to_string(),
                        received,
                        total,
                    });
                }
            };
            match model.download(progress).await {
                Ok(weights) => {
                    self.finish(generation, ModelSource::Shipped(model), weights, backend)
                        .await
                }
                Err(error) => self.fail(generation, error),
            }
        });
    }

    /// Switches to a weight file the user gave (already checked by `check_weights`).
    pub fn use_own(self, file_name: String, weights: Vec<u8>) {
        let generation = self.next_generation();
        let backend = self.backend_in_use();
        spawn_local(async move {
            self.finish(
                generation,
                ModelSource::Own(file_name),
                weights.into(),
                backend,
            )
            .await;
        });
    }

    /// Moves the model in use to another backend.
    pub fn use_backend(self, backend: Backend) {
        let Some(current) = self.current.get_untracked() else {
            return;
        };
        let generation = self.next_generation();
        spawn_local(async move {
            self.finish(
                generation,
                current.source.clone(),
                current.weights.clone(),
                Some(backend),
            )
            .await;
        });
    }

    async fn finish(
        self,
        generation: u32,
        source: ModelSource,
        weights: Rc<[u8]>,
        backend: Option<Backend>,
    ) {
        let place = backend.map_or("WebGPU or the CPU".to_string(), |backend| {
            backend.name().to_string()
        });
        self.phase.set(Phase::Starting(format!(
            "Starting {} on {place} and warming it up…",
            source.describe()
        )));
        // Let the status paint before the CPU backends take the thread.
        yield_to_browser().await;
        match LoadedModel::load(source, weights, backend).await {
            Ok(model) if self.is_current(generation) => {
                self.current.set(Some(Rc::new(model)));
                self.phase.set(Phase::Idle);
            }
            Ok(_) => {}
            Err(error) => self.fail(generation, error),
        }
    }

    fn fail(self, generation: u32, error: String) {
        if self.is_current(generation) {
            self.phase.set(Phase::Failed(error));
        }
    }

    /// Shows an error about a model the user offered, keeping the model in use.
    pub fn refuse(self, error: String) {
        let _ = self.next_generation();
        self.phase.set(Phase::Failed(error));
    }

    fn next_generation(self) -> u32 {
        self.generation.update_value(|generation| *generation += 1);
        self.generation.get_value()
    }

    fn is_current(self, generation: u32) -> bool {
        self.generation.get_value() == generation
    }
}

/// Where one photo is.
#[derive(Debug, Clone, PartialEq)]
pub enum PhotoState {
    Waiting,
    Classifying,
    Done(Outcome),
    Failed(String),
}

impl PhotoState {
    pub fn is_finished(&self) -> bool {
        matches!(self, PhotoState::Done(_) | PhotoState::Failed(_))
    }
}

/// A photo the user gave, and what became of it.
#[derive(Clone)]
pub struct Photo {
    /// Counts from 1 in the order photos were given; the card's id is `photo-{id}`.
    pub id: u32,
    pub name: String,
    pub file: File,
    /// A `blob:` URL of the file itself: the browser shows it upright (EXIF orientation).
    pub thumbnail: Option<String>,
    pub state: RwSignal<PhotoState>,
}

/// The photos, classified in the order given, one at a time.
#[derive(Clone, Copy)]
pub struct Photos {
    /// `File`s stay on this thread: local storage.
    pub list: RwSignal<Vec<Photo>, LocalStorage>,
    next_id: StoredValue<u32>,
    running: StoredValue<bool>,
}

impl Photos {
    pub fn new() -> Self {
        Self {
            list: RwSignal::new_local(Vec::new()),
            next_id: StoredValue::new(1),
            running: StoredValue::new(false),
        }
    }

    /// Adds photos as waiting cards and starts classifying them.
    pub fn add(self, files: Vec<File>, models: Models) {
        let added: Vec<Photo> = files
            .into_iter()
            .map(|file| {
                let id = self.next_id.get_value();
                self.next_id.set_value(id + 1);
                Photo {
                    id,
                    name: file.name(),
                    thumbnail: object_url(&file),
                    file,
                    state: RwSignal::new(PhotoState::Waiting),
                }
            })
            .collect();
        self.list.update(|list| list.extend(added));
        self.run(models);
    }

    /// Removes every card and frees its thumbnail.
    pub fn clear(self) {
        for photo in self.list.get_untracked() {
            if let Some(url) = &photo.thumbnail {
                revoke_object_url(url);
            }
        }
        self.list.set(Vec::new());
    }

    /// `(finished, total)`, reactively.
    pub fn progress(self) -> (usize, usize) {
        self.list.with(|list| {
            let finished = list
                .iter()
                .filter(|photo| photo.state.with(PhotoState::is_finished))
                .count();
            (finished, list.len())
        })
    }

    /// Classifies waiting photos one after another with the model in use, yielding to the
    /// browser between photos so the page keeps painting and answering. Without a model yet,
    /// photos wait; call again once one is ready.
    pub fn run(self, models: Models) {
        if self.running.get_value() {
            return;
        }
        self.running.set_value(true);
        spawn_local(async move {
            while let Some(model) = models.current.get_untracked() {
                let next = self.list.with_untracked(|list| {
                    list.iter()
                        .find(|photo| photo.state.get_untracked() == PhotoState::Waiting)
                        .cloned()
                });
                let Some(photo) = next else { break };
                photo.state.set(PhotoState::Classifying);
                yield_to_browser().await;
                let result = match blob_bytes(&photo.file).await {
                    Ok(bytes) => model.classify(&bytes).await,
                    Err(error) => Err(format!("the file could not be read: {error}")),
                };
                photo.state.set(match result {
                    Ok(outcome) => PhotoState::Done(outcome),
                    Err(error) => PhotoState::Failed(error),
                });
                yield_to_browser().await;
            }
            self.running.set_value(false);
        });
    }
}
