use burn::tensor::Device;
use catdog_model::efficientnet::Variant;
use catdog_model::network::PetFilter;
use catdog_model::weights::{FORMAT_VERSION, MAGIC, WeightsDtype};
use catdog_model::{
    Architecture, Classifier, ClassifyError, CnnConfig, Geometry, HeadConfig, ModelFile,
    ModelHeader, Normalization, Preprocess, Resample, WeightsError,
};

use crate::{block_on, fixture, fixture_logits, network_logits, small_model};

/// Logits of a cat and a dog photo through a classifier.
fn logits(classifier: &Classifier) -> Vec<f32> {
    fixture_logits(classifier, &["cat.jpg", "dog.jpg"])
}

/// The offset where the weights start, read from the file's own length fields.
fn weights_offset(bytes: &[u8]) -> usize {
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    16 + header_len + 12
}

#[test]
fn storing_as_f16_leaves_the_network_in_f32() {
    // Batch-norm running statistics are shared between clones of a module: narrowing the
    // stored copy must not narrow the network being trained (its next forward would fail on
    // mixed dtypes, and its predictions would change).
    let device = Device::flex();
    let file = small_model(&device);
    let network = file.load_network(&device).unwrap();
    let before = network_logits(&network, &file, &["cat.jpg", "dog.jpg"], &device);
    ModelFile::from_network(file.header.clone(), &network).unwrap();
    assert_eq!(
        network_logits(&network, &file, &["cat.jpg", "dog.jpg"], &device),
        before
    );
}

#[test]
fn round_trip_keeps_header_and_predictions() {
    let device = Device::flex();
    let file = small_model(&device);
    let bytes = file.to_bytes();
    assert_eq!(&bytes[..8], MAGIC);
    let parsed = ModelFile::parse(&bytes).unwrap();
    assert_eq!(parsed.header, file.header);
    assert_eq!(parsed.to_bytes(), bytes);

    // The same network stored as f32 and as f16 predicts nearly the same.
    let network = file.header.architecture.init(&device);
    let f16_header = file.header.clone();
    let f32_header = ModelHeader {
        weights_dtype: WeightsDtype::F32,
        ..f16_header.clone()
    };
    let classifier = |header: ModelHeader| {
        let bytes = ModelFile::from_network(header, &network)
            .unwrap()
            .to_bytes();
        Classifier::load(&bytes, &device).unwrap()
    };
    let f16 = logits(&classifier(f16_header));
    let f32 = logits(&classifier(f32_header));
    assert_eq!(f16.len(), 4);
    for (a, b) in f16.iter().zip(&f32) {
        assert!((a - b).abs() < 1e-2, "f16 logit {a} vs f32 {b}");
    }
}

#[test]
fn f16_file_is_about_half_the_f32_file() {
    let device = Device::flex();
    let architecture = Architecture::Cnn(CnnConfig::default());
    let network = architecture.init(&device);
    let header = ModelHeader::new(architecture, crate::small_model(&device).header.preprocess);
    let f16 = ModelFile::from_network(header.clone(), &network)
        .unwrap()
        .to_bytes();
    let f32_header = ModelHeader {
        weights_dtype: WeightsDtype::F32,
        ..header
    };
    let f32 = ModelFile::from_network(f32_header, &network)
        .unwrap()
        .to_bytes();
    let ratio = f16.len() as f64 / f32.len() as f64;
    assert!((0.45..0.6).contains(&ratio), "f16/f32 size ratio {ratio}");
}

#[test]
fn truncated_file_is_refused_at_every_length() {
    let bytes = small_model(&Device::flex()).to_bytes();
    for len in [
        0,
        4,
        8,
        10,
        14,
        20,
        weights_offset(&bytes) - 3,
        bytes.len() - 1,
    ] {
        let result = ModelFile::parse(&bytes[..len]);
        match result {
            Err(WeightsError::NotAModelFile) if len < 8 => {}
            Err(WeightsError::Truncated { .. }) => {}
            other => panic!("{len} of {} bytes gave {other:?}", bytes.len()),
        }
    }
    let message = ModelFile::parse(&bytes[..bytes.len() - 1])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("truncated") && message.contains("weights"),
        "{message}"
    );
}

#[test]
fn other_format_version_is_refused() {
    let mut bytes = small_model(&Device::flex()).to_bytes();
    bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert_eq!(
        ModelFile::parse(&bytes).unwrap_err(),
        WeightsError::UnsupportedVersion {
            found: FORMAT_VERSION + 1
        }
    );
}

#[test]
fn other_architecture_is_refused_by_name() {
    let bytes = small_model(&Device::flex()).to_bytes();
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[16..16 + header_len]).unwrap();
    // Same length, so the rest of the file stays valid: only the kind differs.
    let foreign = header.replace("\"kind\":\"cnn\"", "\"kind\":\"vit\"");
    assert_ne!(foreign, header);
    let mut edited = bytes[..16].to_vec();
    edited.extend_from_slice(foreign.as_bytes());
    edited.extend_from_slice(&bytes[16 + header_len..]);
    let error = ModelFile::parse(&edited).unwrap_err();
    assert!(matches!(&error, WeightsError::UnknownArchitecture { found, .. } if found == "vit"));
    assert!(error.to_string().contains("'vit'"), "{error}");
}

#[test]
fn weights_of_another_shape_are_refused() {
    let device = Device::flex();
    let small = small_model(&device);
    // Writing a file whose header does not describe the network is refused...
    let mut header = small.header.clone();
    header.architecture = Architecture::Cnn(CnnConfig {
        channels: vec![8, 16, 32],
        dropout: 0.2,
    });
    let network = small.header.architecture.init(&device);
    assert!(ModelFile::from_network(header.clone(), &network).is_err());
    // ...so re-label a good file by hand, claiming a wider network than its weights hold.
    let good = small.to_bytes();
    let header_len = u32::from_le_bytes(good[12..16].try_into().unwrap()) as usize;
    let header = serde_json::to_vec(&header).unwrap();
    let mut bytes = good[..12].to_vec();
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&good[16 + header_len..]);
    // Parse succeeds, loading the weights must not.
    let file = ModelFile::parse(&bytes).unwrap();
    assert!(matches!(
        file.load_network(&device),
        Err(WeightsError::WeightsMismatch(_))
    ));
    // A flipped bit in the weights is caught by the checksum before any loading.
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    assert_eq!(
        ModelFile::parse(&bytes).unwrap_err(),
        WeightsError::ChecksumMismatch
    );
}

#[test]
fn weights_holding_nan_or_infinity_are_refused_at_load() {
    use burn::module::{Module, ModuleMapper, Param};
    use burn::tensor::Tensor;

    /// Sets the first vector parameter (a bias or batch-norm statistic: f16 in every stored
    /// form, so int8 storage cannot quantise the value away) to `value`.
    struct Poison {
        value: f32,
        done: bool,
    }
    impl ModuleMapper for Poison {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if D != 1 || self.done {
                return param;
            }
            self.done = true;
            param.map(|tensor| tensor.mul_scalar(0.0).add_scalar(self.value))
        }
    }

    let device = Device::flex();
    let small = small_model(&device);
    for value in [f32::NAN, f32::INFINITY] {
        for weights_dtype in [WeightsDtype::F32, WeightsDtype::F16, WeightsDtype::Int8] {
            let poisoned = small
                .load_network(&device)
                .unwrap()
                .map(&mut Poison { value, done: false });
            let header = ModelHeader {
                weights_dtype,
                ..small.header.clone()
            };
            // A file that is well formed (its checksum fits), so only its values are wrong.
            let bytes = ModelFile::from_network(header, &poisoned)
                .unwrap()
                .to_bytes();
            let file = ModelFile::parse(&bytes).unwrap();
            let error = file.load_network(&device).unwrap_err();
            assert_eq!(
                error,
                WeightsError::NotFinite,
                "{value} as {weights_dtype:?}"
            );
            assert!(error.to_string().contains("NaN or infinite"), "{error}");
            assert_eq!(
                Classifier::load(&bytes, &device).unwrap_err(),
                WeightsError::NotFinite
            );
        }
    }
    // Finite weights that overflow load, and the check the page runs at load on the CPU (the
    // smallest input) refuses them, as the warm-up does on the GPU.
    let overflowing = small.load_network(&device).unwrap().map(&mut Poison {
        value: 3e38,
        done: false,
    });
    let header = ModelHeader {
        weights_dtype: WeightsDtype::F32,
        ..small.header.clone()
    };
    let bytes = ModelFile::from_network(header, &overflowing)
        .unwrap()
        .to_bytes();
    let classifier = Classifier::load(&bytes, &device).unwrap();
    assert_eq!(
        block_on(classifier.check_outputs()),
        Err(ClassifyError::NotFinite)
    );
    assert_eq!(
        block_on(classifier.warm_up()),
        Err(ClassifyError::NotFinite)
    );
    let sound = Classifier::load(&small.to_bytes(), &device).unwrap();
    assert_eq!(block_on(sound.check_outputs()), Ok(()));
}

#[test]
fn weights_stored_as_integers_are_refused_before_loading() {
    // A burnpack that declares a float tensor as integers of the same width (f16 as i16) keeps
    // its byte length and, with the checksum recomputed, passes every check of the framing;
    // loading it would give a float parameter integers, which panics in Burn.
    let device = Device::flex();
    let bytes = small_model(&device).to_bytes();
    let start = weights_offset(&bytes);
    let mut tensors =
        burn_pack::Reader::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes[start..].to_vec()))
            .unwrap()
            .into_tensors()
            .unwrap();
    let relabelled = &mut tensors[0];
    assert_eq!(relabelled.dtype, burn::tensor::DType::F16);
    relabelled.dtype = burn::tensor::DType::I16;
    let name = relabelled.name.clone();
    let weights = burn_pack::Writer::new(tensors).into_bytes().unwrap();
    let mut edited = bytes[..start - 12].to_vec();
    edited.extend_from_slice(&(weights.len() as u64).to_le_bytes());
    edited.extend_from_slice(&crc32fast::hash(&weights).to_le_bytes());
    edited.extend_from_slice(&weights);
    let file = ModelFile::parse(&edited).unwrap();
    let error = file.load_network(&device).unwrap_err();
    assert!(
        matches!(&error, WeightsError::WeightsMismatch(message)
            if message.contains(&name) && message.contains("I16")),
        "{error}"
    );
}

#[test]
fn foreign_file_is_refused() {
    assert_eq!(
        ModelFile::parse(&fixture("cat.jpg")).unwrap_err(),
        WeightsError::NotAModelFile
    );
}

#[test]
fn int8_storage_quarters_the_file_and_keeps_the_logits_close() {
    // EfficientNet-Lite0 with its head at a small input: convolution and dense weights go to
    // 8 bits, the rest to f16, and the network still computes what the f32 one does.
    let device = Device::flex();
    let architecture = Architecture::EfficientnetLite0(HeadConfig::default());
    let preprocess = Preprocess::squash(96, Normalization::IMAGENET);
    let network = architecture.init(&device);
    let stored = |weights_dtype| {
        let header = ModelHeader {
            weights_dtype,
            ..ModelHeader::new(architecture.clone(), preprocess)
        };
        ModelFile::from_network(header, &network)
            .unwrap()
            .to_bytes()
    };
    let (f32_bytes, int8_bytes) = (stored(WeightsDtype::F32), stored(WeightsDtype::Int8));
    let ratio = int8_bytes.len() as f64 / f32_bytes.len() as f64;
    assert!(ratio < 0.3, "int8 file is {ratio:.3} of the f32 one");
    let full = logits(&Classifier::load(&f32_bytes, &device).unwrap());
    let int8 = Classifier::load(&int8_bytes, &device).unwrap();
    assert_eq!(int8.header().weights_dtype, WeightsDtype::Int8);
    let int8 = logits(&int8);
    let scale = full.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
    for (a, b) in full.iter().zip(&int8) {
        assert!((a - b).abs() <= 0.05 * scale, "{full:?} vs {int8:?}");
    }
    assert_ne!(full, int8, "the weights really were narrowed");
}

/// A freshly initialised network of `architecture`, stored as f32, parsed and loaded: the
/// loaded file declares the same architecture and predicts what the network it came from
/// predicts. Returns the header and the network, for what a test checks next.
fn round_trip(
    architecture: &Architecture,
    preprocess: Preprocess,
    device: &Device,
) -> (ModelHeader, catdog_model::Network) {
    let header = ModelHeader {
        weights_dtype: WeightsDtype::F32,
        ..ModelHeader::new(architecture.clone(), preprocess)
    };
    let network = architecture.init(device);
    let file = ModelFile::from_network(header.clone(), &network).unwrap();
    let loaded = Classifier::load(&file.to_bytes(), device).unwrap();
    assert_eq!(&loaded.header().architecture, architecture);
    let original = Classifier::from_file(&file, device).unwrap();
    assert_eq!(logits(&loaded), logits(&original));
    (header, network)
}

#[test]
fn an_efficientnet_file_round_trips_and_keeps_its_head() {
    // The backbone with a small MLP head, at a small input (the network takes any size):
    // stored, parsed and loaded, it predicts what the network it came from predicts.
    let device = Device::flex();
    let architecture = Architecture::EfficientnetLite0(HeadConfig {
        hidden: 16,
        dropout: 0.2,
        ..HeadConfig::default()
    });
    let preprocess = Preprocess::squash(96, Normalization::IMAGENET);
    round_trip(&architecture, preprocess, &device);

    // A CNN's weights do not load as an EfficientNet's.
    let cnn = ModelFile::from_network(
        ModelHeader::new(Architecture::Cnn(CnnConfig::default()), preprocess),
        &Architecture::Cnn(CnnConfig::default()).init(&device),
    )
    .unwrap()
    .to_bytes();
    let json_start = 16;
    let header_len = u32::from_le_bytes(cnn[12..16].try_into().unwrap()) as usize;
    let mut header: serde_json::Value =
        serde_json::from_slice(&cnn[json_start..json_start + header_len]).unwrap();
    header["architecture"] = serde_json::to_value(&architecture).unwrap();
    let header = serde_json::to_vec(&header).unwrap();
    let mut swapped = cnn[..12].to_vec();
    swapped.extend_from_slice(&(header.len() as u32).to_le_bytes());
    swapped.extend_from_slice(&header);
    swapped.extend_from_slice(&cnn[json_start + header_len..]);
    let error = Classifier::load(&swapped, &device).unwrap_err();
    assert!(matches!(error, WeightsError::WeightsMismatch(_)), "{error}");
}

#[test]
fn a_precision_is_named_as_the_header_stores_it() {
    for dtype in [WeightsDtype::F32, WeightsDtype::F16, WeightsDtype::Int8] {
        assert_eq!(
            serde_json::to_value(dtype).unwrap(),
            serde_json::Value::from(dtype.name())
        );
    }
}

#[test]
fn the_preprocessing_travels_in_the_header_and_old_files_mean_todays() {
    // A file written before the resampling and crop fields existed (the page's small model
    // until 2026-12-02) reads as what it was made with: the whole photo squashed, bilinear.
    let file = crate::small_cnn();
    let json = serde_json::to_value(file.header.preprocess).unwrap();
    assert_eq!(file.header.preprocess.resample, Resample::Bilinear);
    assert_eq!(file.header.preprocess.geometry, Geometry::Squash);
    assert!(json.get("resample").is_some());
    // A Lite1 file stores its backbone's preprocessing and gives it back.
    let device = Device::flex();
    let architecture = Architecture::efficientnet(Variant::Lite1, HeadConfig::default());
    let preprocess = Variant::Lite1.preprocess();
    assert_eq!(preprocess.input_size, 240);
    assert_eq!(
        preprocess.geometry,
        Geometry::CentreCrop {
            fraction: 240.0 / 272.0
        }
    );
    let header = ModelHeader::new(architecture.clone(), preprocess);
    let bytes = ModelFile::from_network(header, &architecture.init(&device))
        .unwrap()
        .to_bytes();
    let loaded = Classifier::load(&bytes, &device).unwrap();
    assert_eq!(loaded.header().architecture.kind(), "efficientnet_lite1");
    assert_eq!(loaded.header().preprocess, preprocess);
    let input = loaded.input(&fixture("dog.jpg")).unwrap();
    assert_eq!(input.batch_shape(), [1, 3, 240, 240]);
    assert_eq!(logits(&loaded).len(), 4);
}

#[test]
fn a_model_that_averages_over_the_mirror_image_gives_the_mean_of_both_views() {
    // The shipped small model (real trained weights), once as it is and once told to average.
    let device = Device::flex();
    let file = crate::shipped("catdog-small.bpk");
    let plain = Classifier::from_file(&file, &device).unwrap();
    let mut header = file.header.clone();
    header.average_mirror = true;
    let network = file.load_network(&device).unwrap();
    let bytes = ModelFile::from_network(header, &network)
        .unwrap()
        .to_bytes();
    let averaged = Classifier::load(&bytes, &device).unwrap();
    assert!(averaged.header().average_mirror);
    let photo = fixture("cat-with-dolls.jpg");
    let input = plain.input(&photo).unwrap();
    // The same input flipped left to right, by hand.
    let size = input.size as usize;
    let mut mirrored = input.clone();
    for plane in 0..3 {
        for y in 0..size {
            for x in 0..size {
                mirrored.data[(plane * size + y) * size + x] =
                    input.data[(plane * size + y) * size + size - 1 - x];
            }
        }
    }
    let logits = |classifier: &Classifier, inputs: &[catdog_model::InputTensor]| {
        classifier
            .logits(inputs)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let (as_is, flipped) = (
        logits(&plain, std::slice::from_ref(&input)),
        logits(&plain, std::slice::from_ref(&mirrored)),
    );
    assert_ne!(as_is, flipped, "the photo is not symmetric");
    let mean = logits(&averaged, std::slice::from_ref(&input));
    for i in 0..2 {
        let expected = (as_is[i] + flipped[i]) / 2.0;
        assert!((mean[i] - expected).abs() < 1e-4, "{mean:?} vs {expected}");
    }
    // The verdict with its heatmap is the averaged one too.
    let explained = crate::block_on(averaged.explain(&photo)).unwrap();
    let classified = crate::block_on(averaged.classify(&photo)).unwrap();
    assert!((explained.prediction.cat - classified.cat).abs() < 1e-5);
    // Files that do not say so run each photo once.
    assert!(!crate::shipped("catdog.bpk").header.average_mirror);
}

#[test]
fn the_limits_count_the_network_a_header_declares_before_building_it() {
    use burn::module::Module;
    let device = Device::flex();
    for name in ["catdog.bpk", "catdog-small.bpk"] {
        let file = crate::shipped(name);
        let footprint = file
            .header
            .architecture
            .footprint(file.header.preprocess.input_size);
        let network = file.load_network(&device).unwrap();
        assert_eq!(footprint.parameters, network.num_params() as u64, "{name}");
        println!(
            "{name}: {} parameters, {:.1} MiB of activations per photo",
            footprint.parameters,
            footprint.activations as f64 * 4.0 / (1 << 20) as f64
        );
        assert!(footprint.parameters <= catdog_model::limits::MAX_PARAMETERS);
        assert!(footprint.activations * 4 <= catdog_model::limits::MAX_ACTIVATION_BYTES);
    }
    // A header may declare a network too big for a phone with fields each within range.
    let mut header = crate::shipped("catdog-small.bpk").header;
    header.architecture = Architecture::Cnn(CnnConfig {
        channels: vec![1024; 8],
        dropout: 0.3,
    });
    header.preprocess.input_size = 512;
    let error = ModelFile::parse(&raw_file(&header)).unwrap_err();
    assert!(
        matches!(error, WeightsError::OutOfRange { field, .. } if field == "architecture (parameters)"),
        "{error}"
    );
}

#[test]
fn a_backbone_that_ends_early_is_stored_loaded_and_limited() {
    // Lite0 ending after stage 5: the head reads its 112 pooled channels.
    let device = Device::flex();
    let architecture = Architecture::EfficientnetLite0(HeadConfig {
        hidden: 8,
        last_stage: Some(5),
        ..HeadConfig::default()
    });
    let preprocess = Preprocess::squash(64, Normalization::SYMMETRIC);
    let (header, network) = round_trip(&architecture, preprocess, &device);
    // Far fewer parameters than the whole backbone: stages 6 and 7 and the 1x1 head hold most.
    let whole = Architecture::EfficientnetLite0(HeadConfig {
        hidden: 8,
        ..HeadConfig::default()
    });
    let (early, all) = (architecture.footprint(64), whole.footprint(64));
    assert_eq!(early.parameters, {
        use burn::module::Module;
        network.num_params() as u64
    });
    assert!(
        early.parameters * 4 < all.parameters,
        "{early:?} vs {all:?}"
    );

    // Out of range, or with the "neither" check, which reads the whole backbone's features.
    let refused = |last_stage: usize, pet_filter: bool| {
        let mut header = header.clone();
        let head = header.architecture.head_mut().unwrap();
        head.last_stage = Some(last_stage);
        head.pet_filter = pet_filter.then_some(PetFilter {
            threshold: 0.1,
            rank: None,
        });
        match ModelFile::parse(&raw_file(&header)) {
            Err(WeightsError::OutOfRange { field, .. }) => field,
            other => panic!("last_stage {last_stage}: {other:?}"),
        }
    };
    assert_eq!(refused(0, false), "architecture.last_stage");
    assert_eq!(refused(7, false), "architecture.last_stage");
    assert_eq!(refused(6, true), "architecture.pet_filter");
}

#[test]
fn a_factored_neither_check_is_stored_loaded_and_limited() {
    // The ImageNet classifier through 16 dimensions: its two factors are stored, and the
    // loaded file gives the same verdicts and the same pet probability.
    let device = Device::flex();
    let architecture = Architecture::EfficientnetLite0(HeadConfig {
        pet_filter: Some(PetFilter {
            threshold: 0.1,
            rank: Some(16),
        }),
        ..HeadConfig::default()
    });
    let preprocess = Preprocess::squash(64, Normalization::SYMMETRIC);
    let (header, network) = round_trip(&architecture, preprocess, &device);
    let file = ModelFile::from_network(header.clone(), &network).unwrap();
    let pet = |classifier: &Classifier| {
        classifier
            .explain_blocking(&fixture("cat.jpg"))
            .unwrap()
            .pet
            .unwrap()
    };
    let loaded = Classifier::load(&file.to_bytes(), &device).unwrap();
    assert_eq!(
        pet(&loaded),
        pet(&Classifier::from_file(&file, &device).unwrap())
    );
    // Counted as Burn builds it: 1280 x 16 + 16 x 1000 + 1000 for the check, not 1,281,000.
    let whole = Architecture::EfficientnetLite0(HeadConfig {
        pet_filter: Some(PetFilter {
            threshold: 0.1,
            rank: None,
        }),
        ..HeadConfig::default()
    });
    let (factored, all) = (architecture.footprint(64), whole.footprint(64));
    assert_eq!(factored.parameters, {
        use burn::module::Module;
        network.num_params() as u64
    });
    assert_eq!(
        all.parameters - factored.parameters,
        1_281_000 - (1280 * 16 + 16 * 1000 + 1000)
    );
    for rank in [0, 1001] {
        let mut header = header.clone();
        let head = header.architecture.head_mut().unwrap();
        head.pet_filter = Some(PetFilter {
            threshold: 0.1,
            rank: Some(rank),
        });
        match ModelFile::parse(&raw_file(&header)) {
            Err(WeightsError::OutOfRange { field, .. }) => {
                assert_eq!(field, "architecture.pet_filter.rank")
            }
            other => panic!("rank {rank}: {other:?}"),
        }
    }
}

#[test]
fn a_crop_fraction_out_of_range_is_refused_for_either_crop() {
    let mut header = crate::shipped("catdog-small.bpk").header;
    for fraction in [0.0, 0.01, 1.5] {
        for geometry in [
            Geometry::CentreCrop { fraction },
            Geometry::SquashThenCrop { fraction },
        ] {
            header.preprocess.geometry = geometry;
            match ModelFile::parse(&raw_file(&header)) {
                Err(WeightsError::OutOfRange { field, .. }) => {
                    assert_eq!(field, "preprocess.geometry.fraction")
                }
                other => panic!("{geometry:?}: {other:?}"),
            }
        }
    }
}

/// A file of `header` with empty weights: enough for the header's checks, which come first.
fn raw_file(header: &ModelHeader) -> Vec<u8> {
    let json = serde_json::to_vec(header).unwrap();
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&json);
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&[]).to_le_bytes());
    bytes
}
