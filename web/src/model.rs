//! The page's model: fetched at run time from beside the page, loaded onto WebGPU when the
//! browser has it and onto the CPU when not.

use catdog_model::{Backend, Classifier, Prediction};

use crate::browser::{fetch_bytes, now_ms, query_param};

/// A model shipped with the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShippedModel {
    /// What `?model=` calls it.
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
        description: "EfficientNet-Lite0 with a cat/dog head",
    },
    ShippedModel {
        name: "small",
        url: "./model/catdog-small.bpk",
        description: "small CNN, trained from scratch",
    },
];

impl ShippedModel {
    /// The model `?model=` names, or the default.
    fn requested() -> Result<Self, String> {
        match query_param("model") {
            None => Ok(SHIPPED[0]),
            Some(name) => SHIPPED
                .into_iter()
                .find(|model| model.name == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = SHIPPED.iter().map(|model| model.name).collect();
                    format!("no model called '{name}' (there are: {})", known.join(", "))
                }),
        }
    }
}

/// A model ready to classify photos, and where it runs.
pub struct LoadedModel {
    classifier: Classifier,
    pub model: ShippedModel,
    pub backend: Backend,
    /// Why the GPU was not used, if the CPU was chosen in its place.
    pub fallback: Option<String>,
}

/// One classified photo, as shown to the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub file_name: String,
    pub prediction: Prediction,
    pub backend: Backend,
    pub millis: f64,
}

impl LoadedModel {
    /// Fetches and loads a shipped model: the default, or the one `?model=` names.
    /// `?backend=cpu` (or `flex`, `ndarray`, `wgpu`) in the page's address picks the backend;
    /// otherwise the GPU is tried first.
    pub async fn load() -> Result<Self, String> {
        let model = ShippedModel::requested()?;
        let requested = match query_param("backend") {
            Some(name) => Some(name.parse::<Backend>()?),
            None => None,
        };
        let acquired = Backend::acquire(requested)
            .await
            .map_err(|error| error.to_string())?;
        let bytes = fetch_bytes(model.url).await?;
        let classifier = Classifier::load(&bytes, &acquired.device)
            .map_err(|error| format!("{}: {error}", model.url))?;
        Ok(Self {
            classifier,
            model,
            backend: acquired.backend,
            fallback: acquired.fallback.map(|error| error.to_string()),
        })
    }

    /// Classifies a photo's bytes, timing decode, preprocessing and the network together.
    pub async fn classify(&self, file_name: String, photo: &[u8]) -> Result<Outcome, String> {
        let start = now_ms();
        let prediction = self
            .classifier
            .classify(photo)
            .await
            .map_err(|error| format!("{file_name}: {error}"))?;
        Ok(Outcome {
            file_name,
            prediction,
            backend: self.backend,
            millis: now_ms() - start,
        })
    }
}
