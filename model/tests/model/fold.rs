use burn::tensor::Device;
use catdog_model::{Classifier, ModelFile, WeightsError};

use crate::{fixture_logits, network_logits, shipped};

const PHOTOS: [&str; 4] = ["cat.jpg", "dog.jpg", "cat-grey.jpg", "dog-alpha.png"];

#[test]
fn folding_batch_norms_keeps_the_shipped_models_logits() {
    let device = Device::flex();
    for name in ["catdog.bpk", "catdog-small.bpk"] {
        let file = shipped(name);
        let network = file.load_network(&device).unwrap();
        assert!(!network.is_folded());
        let unfolded = network_logits(&network, &file, &PHOTOS, &device);
        let classifier = Classifier::from_file(&file, &device).unwrap();
        assert!(classifier.network().is_folded(), "{name}");
        let folded = fixture_logits(&classifier, &PHOTOS);
        assert_eq!(folded.len(), unfolded.len());
        for (i, (a, b)) in folded.iter().zip(&unfolded).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{name} logit {i}: folded {a}, unfolded {b}"
            );
        }
    }
}

#[test]
fn a_folded_network_is_never_stored() {
    let device = Device::flex();
    let file = shipped("catdog-small.bpk");
    let classifier = Classifier::from_file(&file, &device).unwrap();
    let error = ModelFile::from_network(file.header.clone(), classifier.network()).unwrap_err();
    assert!(
        matches!(&error, WeightsError::Serialize(why) if why.contains("folded")),
        "{error}"
    );
}
