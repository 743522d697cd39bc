//! The page's model: fetched at run time from beside the page, loaded onto WebGPU when the
//! browser has it and onto the CPU when not.

use catdog_model::{Backend, Classifier, Prediction};

use crate::browser::{fetch_bytes, now_ms, query_param};

/// Where the shipped model lives, relative to the page.
pub const MODEL_URL: &str = "./model/catdog.bpk";

/// A model ready to classify photos, and where it runs.
pub struct LoadedModel {
    classifier: Classifier,
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
    /// Fetches and loads the shipped model. `?backend=cpu` (or `flex`, `ndarray`, `wgpu`) in
    /// the page's address picks the backend; otherwise the GPU is tried first.
    pub async fn load() -> Result<Self, String> {
        let requested = match query_param("backend") {
            Some(name) => Some(name.parse::<Backend>()?),
            None => None,
        };
        let acquired = Backend::acquire(requested)
            .await
            .map_err(|error| error.to_string())?;
        let bytes = fetch_bytes(MODEL_URL).await?;
        let classifier = Classifier::load(&bytes, &acquired.device)
            .map_err(|error| format!("{MODEL_URL}: {error}"))?;
        Ok(Self {
            classifier,
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
