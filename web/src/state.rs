//! The page's state: the model in use (and the one being loaded in its place), and the photos
//! with their verdicts, classified one after another.

use std::rc::Rc;

use catdog_model::{Backend, Label};
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::File;

use crate::browser::{blob_bytes, object_url, revoke_object_url, yield_to_browser};
use crate::loaded_model::{LoadedModel, ModelSource, Outcome, ShippedModel};

/// What the model loader is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Nothing: the model in use (if any) is the one asked for.
    Idle,
    Downloading {
        what: String,
        received: u64,
        total: Option<u64>,
    },
    /// Loading onto the backend (and, on WebGPU, warming up).
    Starting(String),
    /// The last load failed; the model before it, if any, is still in use.
    Failed(String),
}

/// The model the user asked for: a shipped one, or their own file's bytes.
#[derive(Clone)]
enum Wanted {
    Shipped(ShippedModel),
    Own(String, Rc<[u8]>),
}

/// A load as asked for: which one it is, what and on which backend.
struct Load {
    generation: u32,
    wanted: Wanted,
    backend: Option<Backend>,
}

/// The model in use, the one asked for, and the loader's phase.
#[derive(Clone, Copy)]
pub struct Models {
    /// Holds GPU handles that stay on this thread: local storage.
    pub current: RwSignal<Option<Rc<LoadedModel>>, LocalStorage>,
    pub phase: RwSignal<Phase>,
    /// A refusal that replaced nothing: a bad weight file or a bad `?model=`.
    pub notice: RwSignal<Option<String>>,
    wanted: StoredValue<Wanted, LocalStorage>,
    /// `None`: WebGPU where the browser has it, else the CPU.
    wanted_backend: StoredValue<Option<Backend>>,
    /// Bumped by every load, so a slow load that was overtaken is dropped.
    generation: StoredValue<u32>,
}

impl Models {
    pub fn new(model: ShippedModel, backend: Option<Backend>) -> Self {
        Self {
            current: RwSignal::new_local(None),
            phase: RwSignal::new(Phase::Idle),
            notice: RwSignal::new(None),
            wanted: StoredValue::new_local(Wanted::Shipped(model)),
            wanted_backend: StoredValue::new(backend),
            generation: StoredValue::new(0),
        }
    }

    /// Switches to a shipped model, on the backend asked for.
    pub fn use_shipped(self, model: ShippedModel) {
        self.wanted.set_value(Wanted::Shipped(model));
        self.load();
    }

    /// Switches to a weight file the user gave (already checked by `check_weights`).
    pub fn use_own(self, file_name: String, weights: Vec<u8>) {
        self.wanted
            .set_value(Wanted::Own(file_name, weights.into()));
        self.load();
    }

    /// Moves the model asked for to another backend.
    pub fn use_backend(self, backend: Backend) {
        self.wanted_backend.set_value(Some(backend));
        self.load();
    }

    /// Shows why something the user offered was refused; the model in use and any load under
    /// way carry on.
    pub fn refuse(self, error: String) {
        self.notice.set(Some(error));
    }

    /// Loads the model asked for on the backend asked for (downloading a shipped one unless it
    /// is the one in use) and, once ready, puts it in use. The model in use stays until
    /// then, and stays if the load fails. Also the "Try again" after a failure.
    pub fn load(self) {
        let load = self.begin_load();
        spawn_local(async move {
            self.finish_load(load).await;
        });
    }

    /// Puts a model the page taught in use ([`LoadedModel::teach`]), on the backend asked
    /// for, as the user's own model of that name; returns once it is in use (true) or has
    /// failed or been overtaken by another load (false).
    pub async fn use_taught(self, file_name: String, weights: Vec<u8>) -> bool {
        self.wanted
            .set_value(Wanted::Own(file_name, weights.into()));
        let load = self.begin_load();
        self.finish_load(load).await
    }

    /// The part of a load that happens at once, when it is asked for: it overtakes any load
    /// under way, clears the last refusal (so a refusal said right after, as `App` does for a
    /// bad `?model=`, stays) and takes what is wanted now.
    fn begin_load(self) -> Load {
        self.generation.update_value(|generation| *generation += 1);
        self.notice.set(None);
        Load {
            generation: self.generation.get_value(),
            wanted: self.wanted.get_value(),
            backend: self.wanted_backend.get_value(),
        }
    }

    /// The rest of a load: download, start (warming up on WebGPU) and put in use; whether it did.
    async fn finish_load(self, load: Load) -> bool {
        let Load {
            generation,
            wanted,
            backend,
        } = load;
        let (source, weights) = match wanted {
            Wanted::Own(file_name, weights) => (ModelSource::Own(file_name), weights),
            Wanted::Shipped(model) => {
                let source = ModelSource::Shipped(model);
                let in_use = self.current.with_untracked(|current| {
                    current
                        .as_ref()
                        .filter(|current| current.source == source)
                        .map(|current| current.weights.clone())
                });
                let weights = match in_use {
                    Some(weights) => Ok(weights),
                    None => {
                        model
                            .download(self.download_progress(generation, model))
                            .await
                    }
                };
                match weights {
                    Ok(weights) => (source, weights),
                    Err(error) => {
                        self.fail(generation, error);
                        return false;
                    }
                }
            }
        };
        if !self.is_current(generation) {
            return false;
        }
        let automatic = if crate::WEBGPU {
            "WebGPU or the CPU"
        } else {
            "the CPU"
        };
        let place = backend.map_or(automatic, Backend::name);
        self.phase.set(Phase::Starting(format!(
            "Starting {} on {place}…",
            source.describe()
        )));
        // Let the status paint before a CPU backend takes the thread.
        yield_to_browser().await;
        if !self.is_current(generation) {
            return false;
        }
        match LoadedModel::load(source, weights, backend).await {
            Ok(model) if self.is_current(generation) => {
                self.current.set(Some(Rc::new(model)));
                self.phase.set(Phase::Idle);
                true
            }
            Ok(_) => false,
            Err(error) => {
                self.fail(generation, error);
                false
            }
        }
    }

    fn download_progress(
        self,
        generation: u32,
        model: ShippedModel,
    ) -> impl FnMut(u64, Option<u64>) {
        move |received, total| {
            if self.is_current(generation) {
                self.phase.set(Phase::Downloading {
                    what: model.description.to_string(),
                    received,
                    total,
                });
            }
        }
    }

    fn fail(self, generation: u32, error: String) {
        if self.is_current(generation) {
            self.phase.set(Phase::Failed(error));
        }
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
    /// The right answer, if the user gave one to teach the model.
    pub truth: RwSignal<Option<Label>>,
}

/// The photos, classified in the order given, one at a time.
#[derive(Clone, Copy)]
pub struct Photos {
    /// `File`s stay on this thread: local storage.
    pub list: RwSignal<Vec<Photo>, LocalStorage>,
    next_id: StoredValue<u32>,
    running: StoredValue<bool>,
}

impl Default for Photos {
    fn default() -> Self {
        Self {
            list: RwSignal::new_local(Vec::new()),
            next_id: StoredValue::new(1),
            running: StoredValue::new(false),
        }
    }
}

impl Photos {
    pub fn new() -> Self {
        Self::default()
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
                    truth: RwSignal::new(None),
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

    /// Classifies every classified photo again, with the model now in use.
    pub fn reclassify(self, models: Models) {
        for photo in self.list.get_untracked() {
            if matches!(photo.state.get_untracked(), PhotoState::Done(_)) {
                photo.state.set(PhotoState::Waiting);
            }
        }
        self.run(models);
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
                // Yielding lets the user clear the cards meanwhile: then skip this one.
                yield_to_browser().await;
                if !self
                    .list
                    .with_untracked(|list| list.iter().any(|p| p.id == photo.id))
                {
                    continue;
                }
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
