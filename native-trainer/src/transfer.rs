//! Transfer learning from ImageNet-pretrained EfficientNet-Lite, made practical on a CPU.
//!
//! The backbone's trunk stays frozen and its outputs are cached ([`crate::features`]). A run
//! then trains either the head alone on the pooled features (seconds per epoch), or, with
//! `--unfreeze 1`, the last block and the 1x1 head convolution too, from the cached trunk
//! outputs (its batch-norms keep their ImageNet statistics, as Keras fine-tuning does).
//!
//! Every decision (the best epoch, early stopping, the calibration temperature, and `tune`'s
//! choice of hyper-parameters) looks at the validation split only. The test split is measured
//! once, at the end, through the exported file on the photos themselves, the way the page
//! runs it.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use catdog_model::efficientnet::{EfficientNetLite, Variant};
use catdog_model::network::{EfficientNetClassifier, Head, HeadConfig};
use catdog_model::{Backend, Label, ModelFile, Network};
use rand::Rng;
use rand::rngs::StdRng;

use crate::checkpoint::Progress;
use crate::config::{TrainConfig, TrainError, io_error};
use crate::distill::Teacher;
use crate::features::{self, TrunkOutputs, View};
use crate::fit::{Keeper, Lesson, Start};
use crate::pretrained::{self, ImagenetNetwork};
use crate::runlog::EpochRecord;
use crate::score::{Scores, scores_from_logits};
use crate::setup::{self, RunData};

/// The photos of a transfer run with the frozen backbone's outputs for each.
pub struct TransferData {
    pub run: RunData,
    pub backbone: EfficientNetLite,
    pub trunk: TrunkOutputs,
    /// The frozen tail's pooled features, `[photos * features]` per view: what a head-only
    /// (`--unfreeze 0`) run trains on; `None` when nothing will read them.
    pub pooled: Option<Vec<Vec<f32>>>,
    /// Length of one photo's pooled features (1280 for a whole backbone).
    pub features: usize,
    pub backend: Backend,
    pub device: Device,
}

/// A trained network and its history.
pub struct Fitted {
    pub network: EfficientNetClassifier,
    pub history: Vec<EpochRecord>,
    pub best_epoch: usize,
    pub best: Scores,
    pub stopped_early: bool,
}

/// The run's pretrained backbone.
pub(crate) fn variant(config: &TrainConfig) -> Variant {
    config
        .backbone
        .variant()
        .expect("a transfer run has a pretrained backbone")
}

fn pretrained_path(config: &TrainConfig) -> std::path::PathBuf {
    config
        .pretrained
        .clone()
        .unwrap_or_else(|| pretrained::default_path(variant(config)))
}

/// The pretrained backbone, ending where the run's head reads it.
fn load_backbone(config: &TrainConfig, device: &Device) -> Result<EfficientNetLite, TrainError> {
    Ok(
        ImagenetNetwork::load(&pretrained_path(config), variant(config), device)
            .map_err(|error| TrainError::Pretrained(error.to_string()))?
            .backbone
            .truncate(variant(config), config.head.depth()),
    )
}

/// The pretrained backbone with a fresh head, every weight trainable on `training` (an
/// autodiff device): where `--unfreeze all` starts.
pub fn pretrained_network(
    config: &TrainConfig,
    base: &Device,
    training: &Device,
) -> Result<Network, TrainError> {
    Ok(Network::EfficientNet(EfficientNetClassifier {
        backbone: load_backbone(config, base)?.train().fork(training),
        head: initial_head(config, base)?.train().fork(training),
    }))
}

/// The head a run starts from: fresh, or the one in `--head-from`'s file (on `device`).
/// That file must have been made for this run's backbone, head and preprocessing; its
/// "neither" check, if any, is left behind (a run trains the cat/dog head only).
pub(crate) fn initial_head(config: &TrainConfig, device: &Device) -> Result<Head, TrainError> {
    let fresh = config.head.init(config.head.depth().features(), device);
    let Some(path) = &config.head_from else {
        return Ok(fresh);
    };
    let refused = |reason: String| TrainError::HeadFrom {
        path: path.clone(),
        reason,
    };
    let file = ModelFile::parse(&std::fs::read(path).map_err(io_error(path))?)
        .map_err(|error| refused(error.to_string()))?;
    let header = &file.header;
    let variant = config
        .backbone
        .variant()
        .ok_or_else(|| refused("the run trains the CNN, which has no such head".into()))?;
    let described = |variant: Variant, head: &HeadConfig| {
        let end = head
            .last_stage
            .map_or(String::new(), |stage| format!(", ending at stage {stage}"));
        format!("{} with {} hidden units{end}", variant.name(), head.hidden)
    };
    let wanted = described(variant, &config.head);
    let found = match header.architecture.backbone() {
        Some((variant, head)) => described(variant, head),
        None => format!("a {} model", header.architecture.kind()),
    };
    if found != wanted {
        return Err(refused(format!(
            "it holds {found}, this run trains {wanted}"
        )));
    }
    if header.preprocess != config.preprocess() {
        return Err(refused(format!(
            "its preprocessing ({:?}) is not this run's ({:?})",
            header.preprocess,
            config.preprocess()
        )));
    }
    match file.load_network(device) {
        // The file's "neither" classifier, if it has one, lands nowhere in the fresh head.
        Ok(Network::EfficientNet(network)) => fresh
            .try_load_record(network.head.into_record().allow_unused(true))
            .map_err(|error| refused(error.to_string())),
        Ok(Network::Cnn(_)) => unreachable!("the header said EfficientNet"),
        Err(error) => Err(refused(error.to_string())),
    }
}

/// Packs and splits the photos, loads the pretrained backbone and computes (or reads) the
/// frozen outputs: everything a run or a `tune` search needs before training. `pooled`: also
/// the pooled features, which only head-only training reads (about 2 minutes for 44,000
/// trunk outputs on two cores).
pub fn prepare(config: &TrainConfig, pooled: bool) -> Result<TransferData, TrainError> {
    let run = setup::load_data(config)?;
    let (backend, device) = setup::choose_backend(config)?;
    let path = pretrained_path(config);
    let backbone = load_backbone(config, &device)?;
    // Both views always: the mirror image is what the test-time decision ([`mirror_pays`])
    // weighs on validation, whether or not training shows it (augmentation's flip).
    let views = &[View::Original, View::Mirrored];
    let weights_id = features::weights_id(&path).map_err(io_error(&path))?;
    let cache = config.cache.as_deref();
    let preprocess = config.preprocess();
    let shape = variant(config).trunk_shape(preprocess.input_size, config.head.depth());
    let source = features::Trunk {
        backbone: &backbone,
        weights_id,
        shape,
    };
    let trunk = features::trunk_outputs(&run.packed, &source, &preprocess, views, cache, &device)
        .map_err(io_error(cache.unwrap_or(Path::new("."))))?;
    let pooled = pooled.then(|| trunk.pooled(&backbone, &device));
    Ok(TransferData {
        run,
        backbone,
        trunk,
        pooled,
        features: config.head.depth().features(),
        backend,
        device,
    })
}

/// The network's logits for photos of the run, each in the given view: from pooled features
/// when only the head trains, from trunk outputs when the tail trains too.
fn logits(
    network: &EfficientNetClassifier,
    data: &TransferData,
    indices: &[usize],
    views: &[usize],
    unfreeze: bool,
    device: &Device,
) -> Tensor<2> {
    let n = indices.len();
    if unfreeze {
        let mut values = Vec::with_capacity(n * data.trunk.per_photo());
        for (&index, &view) in indices.iter().zip(views) {
            values.extend_from_slice(data.trunk.get(view, index));
        }
        network.forward_from_trunk(data.trunk.tensor(values, n, device))
    } else {
        let pooled = data
            .pooled
            .as_ref()
            .expect("pooled features are prepared for head-only training");
        let width = data.features;
        let mut values = Vec::with_capacity(n * width);
        for (&index, &view) in indices.iter().zip(views) {
            values.extend_from_slice(&pooled[view][index * width..(index + 1) * width]);
        }
        network.head.forward(Tensor::from_data(
            TensorData::new(values, [n, width]),
            device,
        ))
    }
}

/// (cat, dog) logits of a trained network for photos in view `view` (0: as they are, 1:
/// mirrored, where the run cached it).
pub fn evaluation_logits(
    network: &EfficientNetClassifier,
    data: &TransferData,
    indices: &[usize],
    view: usize,
    unfreeze: bool,
) -> Vec<[f32; 2]> {
    let mut out = Vec::with_capacity(indices.len());
    for chunk in indices.chunks(256) {
        let views = vec![view; chunk.len()];
        let values = features::floats(
            logits(network, data, chunk, &views, unfreeze, &data.device).into_data(),
        );
        out.extend(values.chunks_exact(2).map(|pair| [pair[0], pair[1]]));
    }
    out
}

/// Cached features through what trains: the head on pooled features, or with `--unfreeze 1`
/// the last block and the head on trunk outputs. Each training photo is shown in a view drawn
/// from the batch's seed: the photo as it is, or its mirror image when augmenting. With a
/// teacher, its probabilities of the photo as it is are learnt from in either view.
struct CachedLesson<'a> {
    data: &'a TransferData,
    unfreeze: bool,
    views: usize,
    labels: Vec<Label>,
    device: Device,
    teacher: Option<Teacher>,
}

impl Lesson for CachedLesson<'_> {
    type Network = EfficientNetClassifier;

    fn forward(
        &self,
        network: &EfficientNetClassifier,
        batch: &[usize],
        rng: &mut StdRng,
    ) -> (Tensor<2>, Vec<i64>) {
        let views: Vec<usize> = batch
            .iter()
            .map(|_| rng.random_range(0..self.views))
            .collect();
        let labels = self.data.run.packed.targets(batch);
        let logits = logits(
            network,
            self.data,
            batch,
            &views,
            self.unfreeze,
            &self.device,
        );
        (logits, labels)
    }

    fn loss(&self, logits: Tensor<2>, labels: &[i64], batch: &[usize]) -> Tensor<1> {
        Teacher::training_loss(self.teacher.as_ref(), logits, labels, batch)
    }

    fn validate(&self, network: &EfficientNetClassifier) -> Option<Scores> {
        let validation = &self.data.run.split.validation;
        let logits = evaluation_logits(network, self.data, validation, 0, self.unfreeze);
        Some(scores_from_logits(&logits, &self.labels))
    }
}

/// Keeps the best network in memory (a transfer run saves it once, calibrated) and asks the
/// caller after each epoch whether to go on.
struct BestInMemory<F> {
    best: Option<(Scores, usize, EfficientNetClassifier)>,
    keep_going: F,
}

impl<F: FnMut(&EpochRecord) -> bool> Keeper<EfficientNetClassifier> for BestInMemory<F> {
    fn best(
        &mut self,
        progress: &Progress,
        network: EfficientNetClassifier,
        scores: Option<Scores>,
    ) -> Result<(), TrainError> {
        let scores = scores.expect("a cached-feature lesson always validates");
        self.best = Some((scores, progress.epoch, network));
        Ok(())
    }

    fn epoch_done(&mut self, progress: &Progress) -> Result<bool, TrainError> {
        Ok((self.keep_going)(
            progress.history.last().expect("an epoch was recorded"),
        ))
    }
}

/// Trains the head (and the tail with `unfreeze`) and returns the epoch with the lowest
/// validation log loss. `keep_going` sees each epoch's record and may end the run (how
/// `tune` stops bad trials early).
pub fn fit(
    config: &TrainConfig,
    data: &TransferData,
    keep_going: impl FnMut(&EpochRecord) -> bool,
) -> Result<Fitted, TrainError> {
    let device = data.device.clone().autodiff();
    let unfreeze = config.unfreeze > 0;
    // The backbone's batch-norms stay in inference mode (`freeze`) even where its weights
    // train: fine-tuning from ImageNet statistics, as Keras does.
    let backbone = data
        .backbone
        .clone()
        .freeze()
        .set_require_grad(unfreeze)
        .train()
        .fork(&device);
    let network = EfficientNetClassifier {
        backbone,
        head: initial_head(config, &data.device)?.train().fork(&device),
    };
    let split = &data.run.split;
    let teacher = match &config.distill {
        Some(distill) => Some(Teacher::load(
            distill,
            &config.data,
            config.cache.as_deref(),
            &data.run.packed,
            [
                ("training", &split.train),
                ("validation", &split.validation),
            ],
            &data.device,
        )?),
        None => None,
    };
    let lesson = CachedLesson {
        data,
        unfreeze,
        // Training sees the mirrored copies only when augmenting; view 0 is the photo as it is.
        views: if config.augment.flip {
            data.trunk.views.len()
        } else {
            1
        },
        labels: data.run.packed.labels(&split.validation),
        device,
        teacher,
    };
    let mut keeper = BestInMemory {
        best: None,
        keep_going,
    };
    let start = Start {
        network,
        optimizer: setup::optimizer(config),
        progress: Progress::default(),
    };
    let progress = crate::fit::fit(config, &lesson, &split.train, start, &mut keeper)?;
    let (best, best_epoch, network) = keeper.best.expect("at least one epoch");
    Ok(Fitted {
        network,
        history: progress.history,
        best_epoch,
        best,
        stopped_early: progress.stopped_early,
    })
}
