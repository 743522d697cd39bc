//! The EfficientNet-Lite0 import, on the real pretrained file (`weights/`) and the real fixture
//! photos: the ImageNet classes alone must tell the cats from the dogs, and weights that are
//! not this network's are refused with the file and the reason.

mod common;

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use catdog_trainer::pretrained::{self, ImagenetNetwork, PretrainedError, imagenet_check};
use common::{Scratch, fixture};

fn pretrained_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(pretrained::DEFAULT_PRETRAINED)
}

/// The fixture photos under Kaggle names, so their labels are known.
fn labelled_fixtures() -> Scratch {
    let dir = Scratch::new("pretrained-fixtures");
    let photos = [
        ("cat", "cat.jpg"),
        ("cat", "cat-grey.jpg"),
        ("cat", "cat-exif-rotated.jpg"),
        ("dog", "dog.jpg"),
        ("dog", "dog-cmyk.jpg"),
        ("dog", "dog-alpha.png"),
    ];
    for (i, (label, file)) in photos.iter().enumerate() {
        let extension = file.rsplit('.').next().unwrap();
        std::fs::write(dir.join(format!("{label}.{i}.{extension}")), fixture(file)).unwrap();
    }
    dir
}

#[test]
fn the_imagenet_classes_alone_tell_the_fixture_cats_from_the_dogs() {
    let photos = labelled_fixtures();
    let check = imagenet_check(&pretrained_file(), &photos, &Device::flex()).unwrap();
    assert_eq!((check.n, check.skipped), (6, 0));
    assert_eq!(
        check.correct, 6,
        "the pretrained network, imported right, gets every fixture right: {check:?}"
    );
}

#[test]
fn the_import_computes_what_an_independent_numpy_forward_pass_computes() {
    // `scripts/efficientnet-reference.py tests/fixtures/dog-224.png` (numpy, written from the
    // architecture description alone) gives these top-5 ImageNet logits. A 224 px PNG, so no
    // resizing stands between the two.
    const REFERENCE: [(usize, f32); 5] = [
        (262, 7.3645),
        (243, 5.9926),
        (182, 5.7607),
        (260, 5.7319),
        (179, 5.2138),
    ];
    let device = Device::flex();
    let network = ImagenetNetwork::load(&pretrained_file(), &device).unwrap();
    let input = pretrained::PREPROCESS
        .apply(&fixture("dog-224.png"))
        .unwrap();
    let images = Tensor::<4>::from_data(
        TensorData::new(input.data.clone(), input.batch_shape()),
        &device,
    );
    let logits = network
        .forward(images)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let mut ranked: Vec<usize> = (0..logits.len()).collect();
    ranked.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    for (rank, (class, logit)) in REFERENCE.iter().enumerate() {
        assert_eq!(ranked[rank], *class, "class at rank {rank}");
        assert!(
            (logits[*class] - logit).abs() < 2e-3,
            "class {class}: logit {} here, {logit} in the reference",
            logits[*class]
        );
    }
}

/// A safetensors file with the given tensors (all zeros, f32).
fn safetensors(tensors: &[(&str, &[usize])]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0;
    for (name, shape) in tensors {
        let bytes = 4 * shape.iter().product::<usize>();
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let header = serde_json::to_vec(&header).unwrap();
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&header);
    file.resize(file.len() + offset, 0);
    file
}

#[test]
fn weights_of_another_network_or_format_are_refused_with_the_reason() {
    let dir = Scratch::new("pretrained-refused");
    let device = Device::flex();
    let refused = |name: &str, bytes: &[u8]| -> String {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let error = ImagenetNetwork::load(&path, &device).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        match error {
            PretrainedError::UnknownFormat { .. } => "format".into(),
            PretrainedError::PytorchFile { .. } => "pth".into(),
            PretrainedError::WrongWeights { reason, .. } => reason,
            PretrainedError::Read { reason, .. } => panic!("unexpected read error: {reason}"),
        }
    };

    // Only the stem: every other tensor is missing.
    let stem_only = safetensors(&[("_conv_stem.weight", &[32, 3, 3, 3])]);
    let reason = refused("stem-only.safetensors", &stem_only);
    assert!(reason.contains("no tensor for"), "{reason}");

    // Not weights at all, and a catdog model file instead of the pretrained one.
    assert_eq!(refused("photo.safetensors", &fixture("cat.jpg")), "format");
    let model =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../www/model/catdog.bpk"))
            .unwrap();
    assert_eq!(refused("catdog.bpk", &model), "format");
    // A PyTorch zip checkpoint gets the conversion command.
    assert_eq!(refused("lite0.pth", b"PK\x03\x04 archive/data.pkl"), "pth");
}
