//! The page's state: the model in use (and the one being loaded in its place), and the photos
//! with their verdicts, classified one after another.

use std::rc::Rc;

use catdog_model::{Backend, Label};
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::File;

use crate::browser::{
    Thumbnail, blob_bytes, now_ms, revoke_object_url, yield_to_browser, yield_to_events,
};
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
    /// Counts from 1 with each time photos were given (a folder is one batch).
    pub batch: u32,
    pub name: String,
    /// Where it is in the folder the user chose (`holiday/IMG_1.jpg`), or its name: the name
    /// in the CSV and, under its folder, in the zip.
    pub path: String,
    pub file: File,
    /// A `blob:` URL of a small copy the browser made (upright, EXIF orientation applied), or
    /// of the file itself if it is no larger, once the photo's turn came: hundreds of
    /// full-size photos shown at once would each hold their decoded pixels.
    pub thumbnail: RwSignal<Option<String>>,
    pub state: RwSignal<PhotoState>,
    /// The right answer, if the user gave one (to teach the model, and to sort the photo).
    pub truth: RwSignal<Option<Label>>,
    /// The file's CRC-32, taken when it was read to be classified: the zip of the sorted
    /// photos needs it and then does not read the photos again.
    pub crc32: StoredValue<Option<u32>>,
    /// The verdict of the model before, while the photo waits to be classified again by a
    /// taught model: what it keeps if that is cancelled.
    pub earlier: StoredValue<Option<PhotoState>>,
}

impl Photo {
    /// The same file, by its path, size and modification time.
    fn is_same_file(&self, file: &File, path: &str) -> bool {
        self.path == path
            && self.file.size() == file.size()
            && self.file.last_modified() == file.last_modified()
    }
}

/// The photos, classified in the order given, one at a time.
#[derive(Clone, Copy)]
pub struct Photos {
    /// `File`s stay on this thread: local storage.
    pub list: RwSignal<Vec<Photo>, LocalStorage>,
    /// Files of the last folder chosen or dropped that are not photos, by their path: said once.
    pub skipped: RwSignal<Vec<String>>,
    /// How many photos of the last folder given were on the page already (not added again).
    pub already_here: RwSignal<usize>,
    /// Whether the user paused the classifying (it stops after the photo under way).
    pub paused: RwSignal<bool>,
    /// Whether photos are being classified now.
    pub running: RwSignal<bool>,
    /// How long a photo has taken lately, in ms (a moving average): the time left.
    pub ms_per_photo: RwSignal<Option<f64>>,
    next_id: StoredValue<u32>,
    next_batch: StoredValue<u32>,
}

impl Default for Photos {
    fn default() -> Self {
        Self {
            list: RwSignal::new_local(Vec::new()),
            skipped: RwSignal::new(Vec::new()),
            already_here: RwSignal::new(0),
            paused: RwSignal::new(false),
            running: RwSignal::new(false),
            ms_per_photo: RwSignal::new(None),
            next_id: StoredValue::new(1),
            next_batch: StoredValue::new(1),
        }
    }
}

impl Photos {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a folder's photos, leaving out those already on the page (choosing a folder again
    /// after a cancel carries on where it stopped), and says which of its files are not photos
    /// and how many photos were there already.
    pub fn add_folder(self, files: Vec<(File, String)>, skipped: Vec<String>, models: Models) {
        let (new, held): (Vec<_>, Vec<_>) = self.list.with_untracked(|list| {
            files
                .into_iter()
                .partition(|(file, path)| !list.iter().any(|held| held.is_same_file(file, path)))
        });
        self.skipped.set(skipped);
        self.already_here.set(held.len());
        if !new.is_empty() {
            self.add(new, models);
        }
    }

    /// Adds photos, each with its path in the folder it came from (or its name), as waiting
    /// cards and starts classifying them.
    pub fn add(self, files: Vec<(File, String)>, models: Models) {
        let batch = self.next_batch.get_value();
        self.next_batch.set_value(batch + 1);
        let added: Vec<Photo> = files
            .into_iter()
            .map(|(file, path)| {
                let id = self.next_id.get_value();
                self.next_id.set_value(id + 1);
                Photo {
                    id,
                    batch,
                    name: file.name(),
                    path,
                    file,
                    thumbnail: RwSignal::new(None),
                    state: RwSignal::new(PhotoState::Waiting),
                    truth: RwSignal::new(None),
                    crc32: StoredValue::new(None),
                    earlier: StoredValue::new(None),
                }
            })
            .collect();
        self.list.update(|list| list.extend(added));
        self.run(models);
    }

    /// Removes every card and frees its thumbnail.
    pub fn clear(self) {
        self.remove(|_| true);
        self.skipped.set(Vec::new());
        self.already_here.set(0);
        self.paused.set(false);
    }

    /// Stops classifying: the photos never classified are removed, the others stay (those
    /// waiting for a taught model with the verdict they had).
    pub fn cancel(self) {
        self.remove(|photo| {
            if photo.state.with_untracked(PhotoState::is_finished) {
                return false;
            }
            match photo.earlier.try_update_value(Option::take).flatten() {
                Some(earlier) => {
                    photo.state.set(earlier);
                    false
                }
                None => true,
            }
        });
        self.paused.set(false);
    }

    /// Pauses after the photo under way, or resumes.
    pub fn set_paused(self, paused: bool, models: Models) {
        self.paused.set(paused);
        if !paused {
            self.run(models);
        }
    }

    /// Removes the photos `which` picks and frees their thumbnails.
    fn remove(self, which: impl Fn(&Photo) -> bool) {
        self.list.update(|list| {
            list.retain(|photo| {
                let removed = which(photo);
                if removed {
                    free_thumbnail(photo);
                }
                !removed
            })
        });
    }

    /// Classifies every classified photo again, with the model now in use.
    pub fn reclassify(self, models: Models) {
        for photo in self.list.get_untracked() {
            let state = photo.state.get_untracked();
            if matches!(state, PhotoState::Done(_)) {
                photo.earlier.set_value(Some(state));
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
        if self.running.get_untracked() {
            return;
        }
        self.running.set(true);
        spawn_local(async move {
            while let Some(model) = models.current.get_untracked() {
                let next = self.list.with_untracked(|list| {
                    list.iter()
                        .find(|photo| photo.state.get_untracked() == PhotoState::Waiting)
                        .cloned()
                });
                let Some(photo) = next else {
                    // A pause asked for during the last photo has nothing left to hold.
                    self.paused.set(false);
                    break;
                };
                if self.paused.get_untracked() {
                    break;
                }
                let started = now_ms();
                photo.state.set(PhotoState::Classifying);
                // Yielding lets the user clear, cancel or pause meanwhile: then skip this one.
                yield_to_events().await;
                if !self.is_classifying(&photo) {
                    continue;
                }
                if self.paused.get_untracked() {
                    photo.state.set(PhotoState::Waiting);
                    break;
                }
                // Once: a photo classified again (another model) keeps its thumbnail. The
                // browser decodes it while the model runs.
                let thumbnail = photo
                    .thumbnail
                    .with_untracked(Option::is_none)
                    .then(|| Thumbnail::start(&photo.file));
                let result = match blob_bytes(&photo.file).await {
                    Ok(bytes) => {
                        photo.crc32.set_value(Some(crc32fast::hash(&bytes)));
                        model.classify(&bytes).await
                    }
                    Err(error) => Err(format!("the file could not be read: {error}")),
                };
                if let Some(thumbnail) = thumbnail {
                    photo.thumbnail.set(thumbnail.finish().await);
                }
                if !self.holds(&photo) {
                    // Removed while it was classified: its thumbnail is not shown anywhere.
                    free_thumbnail(&photo);
                    continue;
                }
                if !self.is_classifying(&photo) {
                    continue;
                }
                let still_current = models.current.with_untracked(|current| {
                    current.as_ref().is_some_and(|c| Rc::ptr_eq(c, &model))
                });
                if !still_current {
                    // The model changed meanwhile (a lesson ended): this photo waits for it too.
                    photo.state.set(PhotoState::Waiting);
                    continue;
                }
                photo.earlier.set_value(None);
                photo.state.set(match result {
                    Ok(outcome) => PhotoState::Done(outcome),
                    Err(error) => PhotoState::Failed(error),
                });
                let took = now_ms() - started;
                self.ms_per_photo.update(|average| {
                    *average = Some(average.map_or(took, |average| 0.8 * average + 0.2 * took))
                });
                yield_to_events().await;
            }
            self.running.set(false);
        });
    }

    /// Whether `photo` is still on the page and still this loop's to classify: not cleared,
    /// cancelled, or given back its earlier verdict by a cancel.
    fn is_classifying(self, photo: &Photo) -> bool {
        self.holds(photo)
            && photo
                .state
                .with_untracked(|state| *state == PhotoState::Classifying)
    }

    /// Whether `photo` is still on the page (not cleared or cancelled).
    fn holds(self, photo: &Photo) -> bool {
        self.list
            .with_untracked(|list| list.iter().any(|held| held.id == photo.id))
    }
}

/// Revokes a photo's thumbnail URL, once: it is taken out of the photo as it is freed.
fn free_thumbnail(photo: &Photo) {
    if let Some(url) = photo.thumbnail.try_update_untracked(Option::take).flatten() {
        revoke_object_url(&url);
    }
}
