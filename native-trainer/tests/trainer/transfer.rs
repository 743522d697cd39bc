//! Transfer learning from the real pretrained EfficientNet-Lite0 on real photos: a run caches
//! the frozen trunk's outputs (and reuses them), trains the last block and the head, calibrates,
//! and stores the result three ways; `tune` ranks its trials on the validation split only.

use std::path::Path;
use std::time::SystemTime;

use crate::common::{CATS, DOGS, Scratch, fixture, model_file, run_ok, run_refused};
use burn::tensor::{Device, Tensor, TensorData};
use catdog_model::efficientnet::{EfficientNetLite, Variant};
use catdog_model::weights::WeightsDtype;
use catdog_model::{ModelFile, Network};
use catdog_trainer::pretrained::ImagenetNetwork;
use serde_json::Value;

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every cached trunk shard with its modification time.
fn shards(cache: &Path) -> Vec<(String, SystemTime)> {
    let mut found = Vec::new();
    for dir in std::fs::read_dir(cache).unwrap().flatten() {
        if dir.file_name().to_string_lossy().starts_with("trunk-") {
            for shard in std::fs::read_dir(dir.path()).unwrap().flatten() {
                let modified = shard.metadata().unwrap().modified().unwrap();
                found.push((shard.path().display().to_string(), modified));
            }
        }
    }
    found.sort();
    found
}

/// The six fixture photos, each also mirrored and turned a quarter either way: 24 real photos
/// whose perceptual hashes differ, so none is dropped from the held-out splits as a copy.
fn photo_folder(name: &str) -> Scratch {
    let dir = Scratch::new(&format!("transfer-{name}"));
    for (label, files) in [("cat", CATS), ("dog", DOGS)] {
        for (i, file) in files.iter().enumerate() {
            let photo = image::load_from_memory(&fixture(file)).unwrap().to_rgb8();
            let views = [
                photo.clone(),
                image::imageops::flip_horizontal(&photo),
                image::imageops::rotate90(&photo),
                image::imageops::rotate270(&photo),
            ];
            for (v, view) in views.iter().enumerate() {
                view.save(dir.join(format!("{label}.{i}{v}.png"))).unwrap();
            }
        }
    }
    dir
}

fn pretrained() -> String {
    crate::common::shared_weights("efficientnet-lite0")
        .display()
        .to_string()
}

/// The backbone's trunk and tail outputs on a fixed photo-like input: what tells which parts of
/// it a run trained.
fn backbone_outputs(backbone: &EfficientNetLite) -> (Vec<f32>, Vec<f32>) {
    let values: Vec<f32> = (0..3 * 224 * 224)
        .map(|i| (i as f32 * 0.0007).sin())
        .collect();
    let input = Tensor::from_data(TensorData::new(values, [1, 3, 224, 224]), &Device::flex());
    let trunk = backbone.trunk(input);
    let floats = |data: TensorData| data.convert::<f32>().try_to_vec::<f32>().unwrap();
    let tail = floats(backbone.tail(trunk.clone()).into_data());
    (floats(trunk.into_data()), tail)
}

fn trained_backbone(model: &Path) -> (Vec<f32>, Vec<f32>) {
    let file = model_file(model);
    match file.load_network(&Device::flex()).unwrap() {
        Network::EfficientNet(network) => backbone_outputs(&network.backbone),
        Network::Cnn(_) => panic!("{} holds a CNN", model.display()),
    }
}

fn pretrained_backbone() -> (Vec<f32>, Vec<f32>) {
    let network =
        ImagenetNetwork::load(Path::new(&pretrained()), Variant::Lite0, &Device::flex()).unwrap();
    backbone_outputs(&network.backbone)
}

/// The transfer options shared by the tests: two epochs of batch 4, a third of each class for
/// validation and a third for test, the cache in `cache`.
fn transfer_args<'a>(
    data: &'a str,
    run: &'a str,
    cache: &'a str,
    weights: &'a str,
) -> Vec<&'a str> {
    vec![
        "--backbone",
        "efficientnet-lite0",
        "--pretrained",
        weights,
        "--data",
        data,
        "--run",
        run,
        "--cache",
        cache,
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--validation",
        "0.34",
        "--test",
        "0.34",
        "--backend",
        "flex",
    ]
}

#[test]
fn a_transfer_run_caches_the_trunk_calibrates_and_stores_each_way() {
    let data = photo_folder("run");
    let weights = pretrained();
    let work = Scratch::new("transfer-work");
    let cache = work.join("cache");
    let (run, out) = (work.join("run"), work.join("model.bpk"));
    let (data_s, cache_s) = (data.to_str().unwrap(), cache.to_str().unwrap());
    let mut args = vec!["train"];
    args.extend(transfer_args(
        data_s,
        run.to_str().unwrap(),
        cache_s,
        &weights,
    ));
    args.extend(["--unfreeze", "1", "--out", out.to_str().unwrap()]);
    run_ok(&args);

    let summary = json(&run.join("summary.json"));
    let figures = &summary["transfer"];
    let temperature = figures["temperature"].as_f64().unwrap();
    assert!(temperature > 0.05 && temperature < 20.0, "{figures}");
    // The temperature is fitted on the validation split: there it can only lower the loss.
    let before = figures["validation_before_calibration"]["log_loss"]
        .as_f64()
        .unwrap();
    let after = figures["validation_after_calibration"]["log_loss"]
        .as_f64()
        .unwrap();
    assert!(after <= before + 1e-6, "{before} -> {after}");
    let test_photos = figures["test_photos"].as_u64().unwrap();
    assert!(test_photos >= 4, "{figures}");
    let storage = figures["storage"].as_array().unwrap();
    let stored: Vec<(&str, u64)> = storage
        .iter()
        .map(|s| (s["dtype"].as_str().unwrap(), s["bytes"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        stored.iter().map(|s| s.0).collect::<Vec<_>>(),
        ["f32", "f16", "int8"]
    );
    assert!(
        stored[2].1 < stored[1].1 && stored[1].1 < stored[0].1,
        "{stored:?}"
    );
    for s in storage {
        let accuracy = s["test"]["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&accuracy), "{s}");
    }

    // `evaluate` on the run's test split through the f32 file: the photos and figures the run
    // measured; through the same weights seen at another input size, the same photos.
    let best = run.join("best.bpk");
    let evaluated = |model: &Path, split: &str| -> Value {
        let printed = run_ok(&[
            "evaluate",
            "--model",
            model.to_str().unwrap(),
            "--run",
            run.to_str().unwrap(),
            "--split",
            split,
            "--cache",
            cache_s,
            "--report",
            work.join("report").to_str().unwrap(),
            "--json",
        ]);
        assert!(
            printed.contains(&format!(
                "{split} photos of the run (0 files in its data folder skipped"
            )),
            "{printed}"
        );
        serde_json::from_str(printed.lines().last().unwrap()).unwrap()
    };
    let measured = evaluated(&best, "test");
    assert_eq!(measured["split"], "test");
    let f32_test = &storage[0]["test"];
    assert_eq!(measured["n"].as_u64().unwrap(), test_photos);
    for figure in ["accuracy", "log_loss"] {
        let (a, b) = (
            measured[figure].as_f64().unwrap(),
            f32_test[figure].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() < 1e-9,
            "{figure}: {a} evaluated, {b} in the summary"
        );
    }
    let larger = work.join("larger.bpk");
    let printed = run_ok(&[
        "export",
        "--model",
        best.to_str().unwrap(),
        "--out",
        larger.to_str().unwrap(),
        "--precision",
        "f32",
        "--input-size",
        "256",
    ]);
    assert!(printed.contains("0.00e0"), "{printed}");
    let validation_photos = figures["validation_photos"].as_u64().unwrap();
    assert_eq!(
        evaluated(&larger, "validation")["n"].as_u64(),
        Some(validation_photos)
    );
    assert_eq!(evaluated(&larger, "test")["n"].as_u64(), Some(test_photos));

    // The page's file: int8 by default, the fine-tuned network, under the 6 MB bar.
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes.len() < 6_000_000, "{} bytes", bytes.len());
    let file = ModelFile::parse(&bytes).unwrap();
    assert_eq!(file.header.weights_dtype, WeightsDtype::Int8);
    assert_eq!(file.header.architecture.kind(), "efficientnet_lite0");
    // The backbone's own preprocessing travels in the header.
    assert_eq!(file.header.preprocess, Variant::Lite0.preprocess());
    // Whether the page averages over the mirror image was decided on validation, by the
    // one rule, from the figures the summary reports.
    let score = |name: &str| {
        let scores = &figures[name];
        (
            scores["log_loss"].as_f64().unwrap(),
            scores["accuracy"].as_f64().unwrap(),
        )
    };
    let (plain, mirrored) = (
        score("validation_as_they_are"),
        score("validation_with_mirror"),
    );
    let pays = mirrored.0 < plain.0 && mirrored.1 >= plain.1;
    assert_eq!(figures["average_mirror"].as_bool(), Some(pays), "{figures}");
    assert_eq!(file.header.average_mirror, pays);
    let notes = file.header.training.unwrap().notes;
    assert!(notes.contains("temperature"), "{notes}");

    // Both views of every photo are cached; a second run reads them instead of computing.
    let cached = shards(&cache);
    assert_eq!(cached.len(), 2, "one shard per view: {cached:?}");
    let again = work.join("again");
    let mut args = vec!["train"];
    args.extend(transfer_args(
        data_s,
        again.to_str().unwrap(),
        cache_s,
        &weights,
    ));
    run_ok(&args);
    assert_eq!(shards(&cache), cached, "the cache was rewritten");
    // --resume on a cached-feature run trains again from the cache, with the saved settings.
    run_ok(&["train", "--resume", "--run", run.to_str().unwrap()]);
    assert_eq!(shards(&cache), cached, "resuming recomputed the trunk");
    let resumed = json(&run.join("summary.json"));
    assert_eq!(resumed["transfer"]["test_photos"], figures["test_photos"]);

    // --unfreeze 1 trained the last block and left the trunk as it was; without it the whole
    // backbone is ImageNet's.
    let (trunk, tail) = pretrained_backbone();
    let (tuned_trunk, tuned_tail) = trained_backbone(&run.join("best.bpk"));
    assert_eq!(tuned_trunk, trunk, "the frozen trunk changed");
    assert_ne!(tuned_tail, tail, "--unfreeze 1 did not train the tail");
    assert_eq!(trained_backbone(&again.join("best.bpk")), (trunk, tail));
}

#[test]
fn a_backbone_that_ends_early_is_its_first_blocks_stored_without_the_rest() {
    let data = photo_folder("early");
    let weights = pretrained();
    let work = Scratch::new("transfer-early-work");
    let (run, out) = (work.join("run"), work.join("model.bpk"));
    let cache = work.join("cache");
    let data_s = data.to_str().unwrap();
    let mut args = vec!["train"];
    args.extend(transfer_args(
        data_s,
        run.to_str().unwrap(),
        cache.to_str().unwrap(),
        &weights,
    ));
    args.extend(["--last-stage", "6", "--input-size", "64"]);
    args.extend(["--no-mirror-average", "--precision", "f32"]);
    args.extend(["--out", out.to_str().unwrap()]);
    run_ok(&args);

    let file = model_file(&out);
    let (_, head) = file.header.architecture.backbone().unwrap();
    assert_eq!(head.last_stage, Some(6));
    assert_eq!(file.header.preprocess.input_size, 64);
    // Never averaged when told not to, whatever validation says.
    assert!(!file.header.average_mirror);
    assert_eq!(
        json(&run.join("summary.json"))["transfer"]["average_mirror"],
        false
    );
    // Its backbone is the pretrained one's first 15 blocks, unchanged: the same stage-6
    // output, pooled, as the whole pretrained network computes on the way.
    let device = Device::flex();
    let Network::EfficientNet(network) = file.load_network(&device).unwrap() else {
        panic!("an EfficientNet file");
    };
    let photo = Tensor::<4>::from_data(
        TensorData::new(
            (0..3 * 64 * 64)
                .map(|i| ((i % 97) as f32 / 48.0) - 1.0)
                .collect(),
            [1, 3, 64, 64],
        ),
        &device,
    );
    let whole = ImagenetNetwork::load(Path::new(&weights), Variant::Lite0, &device)
        .unwrap()
        .backbone
        .truncate(Variant::Lite0, head.depth());
    let values = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
    let (stored, pretrained) = (
        values(network.backbone.features(photo.clone())),
        values(whole.features(photo)),
    );
    assert_eq!(stored.len(), 192);
    let scale = pretrained.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (a, b) in stored.iter().zip(&pretrained) {
        assert!((a - b).abs() <= 1e-5 * scale, "{a} vs {b} (scale {scale})");
    }

    // Refused before a run folder is made: without a pretrained backbone, and past stage 6.
    for (extra, says) in [
        (vec!["--last-stage", "6"], "--last-stage"),
        (
            vec!["--backbone", "efficientnet-lite0", "--last-stage", "7"],
            "stage 1 to 6",
        ),
    ] {
        let refused_run = work.join(format!("refused-{}", extra.len()));
        let mut args = vec!["train", "--data", data_s, "--run"];
        args.extend([refused_run.to_str().unwrap(), "--pretrained", &weights]);
        args.extend(extra);
        let stderr = run_refused(&args);
        assert!(stderr.contains(says), "{stderr}");
        assert!(!refused_run.exists(), "{}", refused_run.display());
    }
}

/// The first epoch's validation log loss of a run (`log.json`).
fn first_validation_loss(run: &Path) -> f64 {
    json(&run.join("log.json"))[0]["validation_loss"]
        .as_f64()
        .unwrap()
}

#[test]
fn a_run_starts_its_head_from_a_frozen_runs_file() {
    let data = photo_folder("head-from");
    let weights = pretrained();
    let work = Scratch::new("transfer-head-from-work");
    let cache = work.join("cache");
    let (data_s, cache_s) = (data.to_str().unwrap(), cache.to_str().unwrap());
    let train = |run: &Path, extra: &[&str]| -> Vec<String> {
        let mut args = vec!["train"];
        args.extend(transfer_args(
            data_s,
            run.to_str().unwrap(),
            cache_s,
            &weights,
        ));
        args.extend(extra);
        args.into_iter().map(String::from).collect()
    };
    let frozen = work.join("frozen");
    // Not mirror-averaged, so that the file's folded temperature is the one fitted to each
    // photo as it is.
    run_ok(&train(&frozen, &["--no-mirror-average"]));
    let source = frozen.join("best.bpk");
    let source_s = source.to_str().unwrap();
    let calibrated =
        json(&frozen.join("summary.json"))["transfer"]["validation_as_they_are"]["log_loss"]
            .as_f64()
            .unwrap();

    // At a learning rate too small to move anything, the tail and the head trained together
    // from the file's head score the validation split as the file does; from a fresh head
    // they do not.
    let still = ["--unfreeze", "1", "--learning-rate", "1e-9"];
    let (started, fresh) = (work.join("started"), work.join("fresh"));
    let mut args = train(&started, &still);
    args.extend(["--head-from".into(), source_s.into()]);
    run_ok(&args);
    run_ok(&train(&fresh, &still));
    let (from_file, from_fresh) = (
        first_validation_loss(&started),
        first_validation_loss(&fresh),
    );
    assert!(
        (from_file - calibrated).abs() < 1e-4,
        "{from_file} vs the file's {calibrated}"
    );
    assert!(
        (from_fresh - calibrated).abs() > 1e-3,
        "a fresh head scored {from_fresh}"
    );

    // A file with the "neither" check gives the same head (the check is left behind).
    let checked = work.join("checked.bpk");
    let non_pets = crate::common::fixtures().join("non-pets");
    run_ok(&[
        "pet-filter",
        "--model",
        source_s,
        "--pretrained",
        &weights,
        "--data",
        data_s,
        "--non-pets",
        non_pets.to_str().unwrap(),
        "-o",
        checked.to_str().unwrap(),
    ]);
    let from_checked = work.join("from-checked");
    let mut args = train(&from_checked, &still);
    args.extend(["--head-from".into(), checked.to_str().unwrap().into()]);
    run_ok(&args);
    let loss = first_validation_loss(&from_checked);
    assert!((loss - from_file).abs() < 1e-6, "{loss} vs {from_file}");

    // A file of another head or preprocessing is refused, naming it, before a run folder is
    // made; so is --head-from without a pretrained backbone.
    for (extra, says) in [
        (vec!["--hidden", "8"], "8 hidden units"),
        (vec!["--geometry", "squash"], "preprocessing"),
    ] {
        let refused_run = work.join(format!("refused-{}", says.len()));
        let mut args = train(&refused_run, &extra);
        args.extend(["--head-from".into(), source_s.into()]);
        let stderr = run_refused(&args);
        assert!(
            stderr.contains(source_s) && stderr.contains(says),
            "{stderr}"
        );
        assert!(!refused_run.exists(), "{}", refused_run.display());
    }
    let stderr = run_refused(&["train", "--data", data_s, "--head-from", source_s]);
    assert!(stderr.contains("--head-from"), "{stderr}");
}

#[test]
fn unfreeze_all_fine_tunes_every_layer_from_the_photos() {
    let data = photo_folder("all");
    let work = Scratch::new("transfer-all-work");
    let (run, out, cache) = (work.join("run"), work.join("model.bpk"), work.join("cache"));
    let weights = pretrained();
    let mut args = vec!["train"];
    args.extend(transfer_args(
        data.to_str().unwrap(),
        run.to_str().unwrap(),
        cache.to_str().unwrap(),
        &weights,
    ));
    args.extend(["--unfreeze", "all", "--out", out.to_str().unwrap()]);
    run_ok(&args);
    let (trunk, _) = pretrained_backbone();
    let (tuned_trunk, _) = trained_backbone(&run.join("best.bpk"));
    assert_ne!(
        tuned_trunk, trunk,
        "--unfreeze all left the trunk as it was"
    );
    assert!(run.join("checkpoint.ckpt").is_file(), "a resumable run");
    let file = model_file(&out);
    assert_eq!(file.header.weights_dtype, WeightsDtype::Int8);
}

#[test]
fn tune_ranks_trials_on_validation_and_saves_the_best() {
    let data = photo_folder("tune");
    let weights = pretrained();
    let work = Scratch::new("tune-work");
    let run = work.join("search");
    let cache = work.join("cache");
    let mut args = vec!["tune"];
    args.extend(transfer_args(
        data.to_str().unwrap(),
        run.to_str().unwrap(),
        cache.to_str().unwrap(),
        &weights,
    ));
    args.extend([
        "--trials",
        "3",
        "--grace-epochs",
        "1",
        "--unfreeze-choices",
        "0,1",
    ]);
    let stdout = run_ok(&args);
    assert!(
        stdout.contains("native-trainer train --backbone efficientnet-lite0"),
        "{stdout}"
    );

    let board = json(&run.join("leaderboard.json"));
    let trials = board["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 3);
    let losses: Vec<f64> = trials
        .iter()
        .map(|t| t["validation_loss"].as_f64().unwrap())
        .collect();
    assert!(
        losses.windows(2).all(|w| w[0] <= w[1]),
        "best first: {losses:?}"
    );
    let mut numbers: Vec<u64> = trials
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(json(&run.join("best.json")), trials[0]["params"]);
    assert!(board["test_photos_left_untouched"].as_u64().unwrap() >= 4);
    let table = std::fs::read_to_string(run.join("leaderboard.md")).unwrap();
    assert_eq!(table.lines().count(), 2 + 3, "{table}");
    let plot = image::open(run.join("leaderboard.png")).unwrap();
    assert!(plot.width() >= 640, "a readable chart");
}
