use catdog_model::{Backend, Classifier};

use crate::{block_on, fixture, fixture_logits, small_model};

const PHOTOS: [&str; 4] = ["cat.jpg", "dog.jpg", "cat-grey.jpg", "dog-alpha.png"];

/// The logits of the fixture photos on one backend, for the same weight file.
fn logits_on(backend: Backend, bytes: &[u8]) -> Vec<f32> {
    let device = backend.device().unwrap();
    let classifier = Classifier::load(bytes, &device).unwrap();
    fixture_logits(&classifier, &PHOTOS)
}

#[test]
fn every_backend_gives_the_same_logits() {
    let bytes = small_model(&Backend::Flex.device().unwrap()).to_bytes();
    let reference = logits_on(Backend::Flex, &bytes);
    assert_eq!(reference.len(), 2 * PHOTOS.len());
    assert!(reference.iter().all(|x| x.is_finite()));
    for backend in [Backend::NdArray, Backend::Wgpu] {
        let logits = logits_on(backend, &bytes);
        for (i, (a, b)) in logits.iter().zip(&reference).enumerate() {
            assert!(
                (a - b).abs() < 1e-4,
                "{backend} logit {i} is {a}, flex gives {b}"
            );
        }
    }
}

#[test]
fn a_network_on_any_backend_exports_and_loads() {
    for &backend in Backend::ALL {
        let device = backend.device().unwrap();
        let bytes = small_model(&device).to_bytes();
        let classifier = Classifier::load(&bytes, &device).unwrap();
        assert_eq!(
            fixture_logits(&classifier, &["cat.jpg"]).len(),
            2,
            "{backend}"
        );
    }
}

#[test]
fn classify_gives_probabilities_and_label() {
    let device = Backend::Flex.device().unwrap();
    let classifier = Classifier::load(&small_model(&device).to_bytes(), &device).unwrap();
    let photo = fixture("dog.jpg");
    let prediction = block_on(classifier.classify(&photo)).unwrap();
    assert!((prediction.cat + prediction.dog - 1.0).abs() < 1e-5);
    let expected = if prediction.dog > prediction.cat {
        "dog"
    } else {
        "cat"
    };
    assert_eq!(prediction.label.name(), expected);
    let batch = classifier
        .classify_inputs(&[classifier.input(&photo).unwrap()])
        .unwrap();
    assert!((batch[0].dog - prediction.dog).abs() < 1e-6);
}

#[test]
fn warm_up_runs_the_network_and_changes_nothing() {
    let device = Backend::Flex.device().unwrap();
    let classifier = Classifier::load(&small_model(&device).to_bytes(), &device).unwrap();
    let photo = fixture("cat.jpg");
    let before = block_on(classifier.classify(&photo)).unwrap();
    block_on(classifier.warm_up()).unwrap();
    assert_eq!(block_on(classifier.classify(&photo)).unwrap(), before);
}

#[test]
fn a_verdict_is_sure_only_from_the_threshold_up() {
    use catdog_model::Prediction;
    // Logit gaps chosen around the threshold: p = 1 / (1 + e^-gap).
    let sure_gap = (Prediction::SURE / (1.0 - Prediction::SURE)).ln();
    for (gap, sure) in [
        (0.0, false),
        (sure_gap - 0.01, false),
        (sure_gap + 0.01, true),
        (4.0, true),
    ] {
        for prediction in [
            Prediction::from_logits(0.0, gap),
            Prediction::from_logits(gap, 0.0),
        ] {
            assert_eq!(prediction.is_sure(), sure, "{prediction:?}");
            assert!((prediction.confidence() - prediction.cat.max(prediction.dog)).abs() < 1e-7);
        }
    }
}

#[test]
fn backend_names_parse() {
    for &backend in Backend::ALL {
        assert_eq!(backend.name().parse::<Backend>(), Ok(backend));
    }
    assert_eq!("cpu".parse::<Backend>(), Ok(Backend::DEFAULT_CPU));
    assert!("tpu".parse::<Backend>().unwrap_err().contains("tpu"));
}
