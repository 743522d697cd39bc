//! The page's model: a shipped one fetched from beside the page, or a weight file the user
//! dropped in, loaded onto WebGPU when the browser has it and onto the CPU when not, and on
//! WebGPU warmed up before the first photo.

use std::rc::Rc;

use catdog_model::learn::{Example, FineTune, Lesson};
use catdog_model::{Backend, BackendError, Classifier, Device, Explanation, Label, ModelFile};

use crate::browser::{fetch_with_progress, mark, now_ms, query_param, yield_to_browser};

/// A model shipped with the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShippedModel {
    /// What `?model=` and the model menu call it.
    pub name: &'static str,
    /// Where it lives, relative to the page (so the site works from any sub-path).
    pub url: &'static str,
    pub description: &'static str,
}

/// The shipped models; the first is the default.
pub const SHIPPED: [ShippedModel; 2] = [
    ShippedModel {
        name: "accurate",
        url: "./model/catdog.bpk",
        description: "accurate (EfficientNet-Lite1, 5.6 MB)",
    },
    ShippedModel {
        name: "small",
        url: "./model/catdog-small.bpk",
        description: "small and fast (2.6 MB)",
    },
];

impl ShippedModel {
    pub fn named(name: &str) -> Result<Self, String> {
        SHIPPED
            .into_iter()
            .find(|model| model.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = SHIPPED.iter().map(|model| model.name).collect();
                format!("no model called '{name}' (there are: {})", known.join(", "))
            })
    }

    /// The model `?model=` names, or the default.
    pub fn requested() -> Result<Self, String> {
        query_param("model").map_or(Ok(SHIPPED[0]), |name| Self::named(&name))
    }

    /// Downloads the weights, reporting `(received, total)` bytes. The service worker answers
    /// from its cache on later visits, offline included.
    pub async fn download(
        self,
        progress: impl FnMut(u64, Option<u64>),
    ) -> Result<Rc<[u8]>, String> {
        let weights = fetch_with_progress(self.url, progress).await.map(Rc::from);
        mark("catdog:downloaded");
        weights
    }
}

/// Where a model's weights came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    Shipped(ShippedModel),
    /// A weight file the user gave the page, by its file name.
    Own(String),
}

impl ModelSource {
    /// A short name, as the model menu and the cards' `data-model` say it.
    pub fn name(&self) -> &str {
        match self {
            ModelSource::Shipped(model) => model.name,
            ModelSource::Own(_) => "own",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ModelSource::Shipped(model) => model.description.to_string(),
            ModelSource::Own(file_name) => format!("your own model, {file_name}"),
        }
    }
}

/// Checks a weight file the user gave before anything is replaced: a file that is not a
/// catdog model is refused with its name and the reason.
pub fn check_weights(file_name: &str, bytes: &[u8]) -> Result<(), String> {
    ModelFile::parse(bytes)
        .map(drop)
        .map_err(|error| format!("{file_name}: {error}"))
}

/// The backend `?backend=` names (`wgpu`, `gpu`, `cpu` or `flex`), if any.
pub fn requested_backend() -> Result<Option<Backend>, String> {
    query_param("backend")
        .map(|name| name.parse::<Backend>())
        .transpose()
}

/// Why the CPU runs the model where no backend was named, as the page says it.
fn fallback_reason(error: BackendError) -> String {
    if crate::WEBGPU {
        error.to_string()
    } else {
        // Where the browser offers an adapter, the page says so instead (`ModelStatus`): then
        // the reason is the missing adapter, not the missing code.
        "this browser offers no WebGPU adapter, so the page runs its smaller build without \
         GPU code."
            .into()
    }
}

/// A model ready to classify photos, and where it runs.
pub struct LoadedModel {
    classifier: Classifier,
    /// Kept to move the model to another backend without downloading it again.
    pub weights: Rc<[u8]>,
    pub source: ModelSource,
    pub backend: Backend,
    /// Why the GPU was not used, if the CPU was chosen in its place.
    pub fallback: Option<String>,
}

/// One classified photo, as shown to the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The verdict, where in the photo it came from and whether it is a pet at all.
    pub explanation: Explanation,
    pub model: String,
    pub backend: Backend,
    pub millis: f64,
}

impl LoadedModel {
    /// Loads weights onto `backend` (or, if none is named, WebGPU where the browser has it and
    /// the CPU where not, or where WebGPU fails to run the model); on WebGPU it runs the
    /// network once so that the first photo does not wait for its kernels to compile.
    pub async fn load(
        source: ModelSource,
        weights: Rc<[u8]>,
        backend: Option<Backend>,
    ) -> Result<Self, String> {
        let acquired = Backend::acquire(backend)
            .await
            .map_err(|error| error.to_string())?;
        let (backend_used, classifier, fallback) =
            match start(&source, &weights, acquired.backend, &acquired.device).await {
                Ok(classifier) => (
                    acquired.backend,
                    classifier,
                    acquired.fallback.map(fallback_reason),
                ),
                Err(error) if backend.is_none() && acquired.backend.is_gpu() => {
                    let cpu = Backend::DEFAULT_CPU;
                    let device = cpu.device_async().await.map_err(|e| e.to_string())?;
                    let classifier = start(&source, &weights, cpu, &device).await?;
                    let reason = format!("WebGPU could not run the model: {error}");
                    (cpu, classifier, Some(reason))
                }
                Err(error) => return Err(error),
            };
        Ok(Self {
            classifier,
            weights,
            source,
            backend: backend_used,
            fallback,
        })
    }

    /// Classifies a photo's bytes and explains the verdict (one pass through the network),
    /// timing decode, preprocessing and the network together.
    pub async fn classify(&self, photo: &[u8]) -> Result<Outcome, String> {
        let start = now_ms();
        let explanation = self
            .classifier
            .explain(photo)
            .await
            .map_err(|error| error.to_string())?;
        Ok(Outcome {
            explanation,
            model: self.source.name().to_string(),
            backend: self.backend,
            millis: now_ms() - start,
        })
    }
}

/// What a lesson made: the taught model's weight file and how the loss on the labelled photos
/// went.
#[derive(Debug, Clone, PartialEq)]
pub struct Taught {
    pub weights: Vec<u8>,
    /// The loss before the first step.
    pub before: f32,
    /// The loss after the last step.
    pub after: f32,
}

impl LoadedModel {
    /// Fine-tunes the model's last layer on the photos the user labelled, keeping its verdicts
    /// on `unlabelled` photos, on the device the model runs on; `on_step(step, steps, loss)`
    /// hears each step. The browser gets to paint between steps.
    pub async fn teach(
        &self,
        labelled: &[(Vec<u8>, Label)],
        unlabelled: &[Vec<u8>],
        mut on_step: impl FnMut(usize, usize, f32),
    ) -> Result<Taught, String> {
        let examples: Vec<Example> = labelled
            .iter()
            .map(|(photo, label)| Example::new(photo, *label))
            .collect();
        let kept: Vec<&[u8]> = unlabelled.iter().map(Vec::as_slice).collect();
        let failed = |error: &dyn std::fmt::Display| format!("the lesson failed: {error}");
        let mut lesson = FineTune::new(&self.classifier, &examples, &kept, Lesson::default())
            .map_err(|error| failed(&error))?;
        let steps = lesson.lesson().steps;
        let mut before = None;
        while !lesson.is_done() {
            let loss = lesson.step().await.map_err(|error| failed(&error))?;
            before.get_or_insert(loss);
            on_step(lesson.steps_taken(), steps, loss);
            yield_to_browser().await;
        }
        let after = lesson.loss().await.map_err(|error| failed(&error))?;
        let file = ModelFile::parse(&self.weights).map_err(|error| failed(&error))?;
        let taught = lesson
            .improved_file(&file, &examples)
            .await
            .map_err(|error| failed(&error))?;
        Ok(Taught {
            weights: taught.to_bytes(),
            // A lesson of no steps changed nothing.
            before: before.unwrap_or(after),
            after,
        })
    }
}

/// Loads weights onto a backend's device and checks that the network's outputs are numbers
/// (on the GPU by warming it up); errors name the file.
async fn start(
    source: &ModelSource,
    weights: &[u8],
    backend: Backend,
    device: &Device,
) -> Result<Classifier, String> {
    let named = |error: &dyn std::fmt::Display| match source {
        ModelSource::Shipped(model) => format!("{}: {error}", model.url),
        ModelSource::Own(file_name) => format!("{file_name}: {error}"),
    };
    mark("catdog:loading");
    let classifier = Classifier::load(weights, device).map_err(|error| named(&error))?;
    mark("catdog:loaded");
    // On WebGPU the first run compiles the kernels, seconds that the first photo should not
    // wait for. On the CPU there is nothing to compile: a whole blank photo first only delayed
    // "ready" by one pass (0.3-0.7 s of the accurate model's 1.6-1.9 s in the page), so the
    // check that the model's outputs are numbers runs on the smallest input instead.
    let checked = if backend.is_gpu() {
        classifier.warm_up().await
    } else {
        classifier.check_outputs().await
    };
    checked.map_err(|error| named(&error))?;
    mark("catdog:ready");
    Ok(classifier)
}
