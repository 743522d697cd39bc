//! The trainer end to end on real photos (the fixtures under `tests/fixtures`): layouts,
//! folder and zip input, the skipped-files report, training, kill-and-resume, a full disk,
//! evaluation,
//! prediction, the Kaggle submission, export and compare, all through the real binary.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use catdog_model::{Label, Normalization, Preprocess, block_on};
use catdog_trainer::dataset::{PackedPhotos, Split, SplitSpec};
use catdog_trainer::photos::{Layout, PhotoSet};
use common::{BIN, CATS, DOGS, Scratch, fixture, fixtures, kaggle_folder, run_ok};

fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("trainer-{name}"))
}

fn add_bad_files(dir: &Path) -> Vec<&'static str> {
    let cat = fixture("cat.jpg");
    std::fs::write(dir.join("cat.900.jpg"), b"").unwrap();
    std::fs::write(dir.join("cat.901.jpg"), &cat[..cat.len() / 2]).unwrap();
    std::fs::write(dir.join("dog.902.jpg"), b"<html>not found</html>").unwrap();
    std::fs::write(dir.join("dog.903.png"), png_bomb(20_000)).unwrap();
    vec!["cat.900.jpg", "cat.901.jpg", "dog.902.jpg", "dog.903.png"]
}

/// A real PNG header claiming `side` x `side` pixels with no pixel data: a decompression bomb.
fn png_bomb(side: u32) -> Vec<u8> {
    let chunk = |png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]| {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    };
    let mut header = side.to_be_bytes().to_vec();
    header.extend_from_slice(&side.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &header);
    chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut png, b"IEND", &[]);
    png
}

fn preprocess(size: u32) -> Preprocess {
    Preprocess::squash(size, Normalization::IMAGENET)
}

#[test]
fn every_layout_from_a_folder_or_a_zip_gives_the_same_photos() {
    let dir = scratch("layouts");
    let zip_path = dir.join("PetImages.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (folder, files) in [("Cat", CATS), ("Dog", DOGS)] {
        for (i, file) in files.iter().enumerate() {
            zip.start_file(format!("PetImages/{folder}/{i}.jpg"), stored)
                .unwrap();
            zip.write_all(&fixture(file)).unwrap();
            let per_class = dir.join("per-class").join(folder.to_lowercase() + "s");
            std::fs::create_dir_all(&per_class).unwrap();
            std::fs::write(per_class.join(format!("{i}.jpg")), fixture(file)).unwrap();
        }
    }
    zip.start_file("PetImages/Cat/Thumbs.db", stored).unwrap();
    zip.write_all(b"\xd0\xcf\x11\xe0 not a photo").unwrap();
    zip.finish().unwrap();

    let kaggle = kaggle_folder("layouts-kaggle", 0);
    let cases = [
        (kaggle.to_path_buf(), Layout::KaggleFlat),
        (zip_path.clone(), Layout::PetImages),
        (dir.join("per-class"), Layout::FolderPerClass),
    ];
    for (path, layout) in cases {
        let set = PhotoSet::open_labelled(&path).unwrap();
        assert_eq!(set.layout, layout, "{}", path.display());
        let packed = PackedPhotos::load(&set, &preprocess(32), None).unwrap();
        let cats = packed
            .entries
            .iter()
            .filter(|e| e.label == Some(Label::Cat))
            .count();
        let dogs = packed
            .entries
            .iter()
            .filter(|e| e.label == Some(Label::Dog))
            .count();
        assert_eq!((cats, dogs), (3, 3), "{}", path.display());
    }
    // The zip's Thumbs.db is reported, not silently dropped.
    let set = PhotoSet::open_labelled(&zip_path).unwrap();
    let packed = PackedPhotos::load(&set, &preprocess(32), None).unwrap();
    assert_eq!(packed.skipped.len(), 1);
    assert!(
        packed.skipped[0]
            .path
            .ends_with("PetImages.zip!/PetImages/Cat/Thumbs.db")
    );
    assert!(
        packed.skipped[0].reason.contains("not an image"),
        "{:?}",
        packed.skipped
    );
}

#[test]
fn unusable_files_are_skipped_and_reported_and_the_cache_is_reused() {
    let dir = kaggle_folder("skipped", 0);
    let bad = add_bad_files(&dir);
    let cache = scratch("skipped-cache");
    let set = PhotoSet::open_labelled(&dir).unwrap();
    let packed = PackedPhotos::load(&set, &preprocess(32), Some(&cache)).unwrap();
    assert_eq!(packed.len(), 6);
    let mut reported: Vec<&str> = packed
        .skipped
        .iter()
        .map(|s| s.path.rsplit('/').next().unwrap())
        .collect();
    reported.sort();
    assert_eq!(reported, bad);
    let reason = |name: &str| {
        packed
            .skipped
            .iter()
            .find(|s| s.path.ends_with(name))
            .unwrap()
            .reason
            .clone()
    };
    assert!(reason("cat.900.jpg").contains("empty"));
    assert!(reason("cat.901.jpg").contains("truncated"));
    assert!(reason("dog.902.jpg").contains("not an image"));
    assert!(reason("dog.903.png").contains("over the limit"));

    // The second load reads the pack: same photos, same pixels, same report.
    let cached = PackedPhotos::load(&set, &preprocess(32), Some(&cache)).unwrap();
    assert_eq!(cached.entries, packed.entries);
    assert_eq!(cached.skipped, packed.skipped);
    assert_eq!(cached.pixels(5), packed.pixels(5));
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    // Another crop or filter at the same size is another pack, never the squashed pixels.
    let cropped = catdog_model::Preprocess {
        geometry: catdog_model::Geometry::CentreCrop { fraction: 0.5 },
        resample: catdog_model::Resample::Bicubic,
        ..preprocess(32)
    };
    let other = PackedPhotos::load(&set, &cropped, Some(&cache)).unwrap();
    assert_ne!(other.pixels(5), packed.pixels(5));
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    // A changed folder is not served from the stale pack.
    std::fs::remove_file(dir.join("cat.900.jpg")).unwrap();
    let set = PhotoSet::open_labelled(&dir).unwrap();
    let fresh = PackedPhotos::load(&set, &preprocess(32), Some(&cache)).unwrap();
    assert_eq!(fresh.skipped.len(), 3);
}

#[test]
fn the_split_is_stratified_seeded_and_drops_copies_of_training_photos() {
    let dir = kaggle_folder("split", 0);
    // An exact copy of a cat under another name: wherever the split puts the two, they must
    // not end up on both sides.
    std::fs::write(dir.join("cat.50.jpg"), fixture("cat.jpg")).unwrap();
    let set = PhotoSet::open_labelled(&dir).unwrap();
    let packed = PackedPhotos::load(&set, &preprocess(32), None).unwrap();
    for seed in 0..8 {
        let spec = SplitSpec {
            validation_fraction: 0.5,
            test_fraction: 0.0,
            limit: None,
            seed,
        };
        let split = Split::new(&packed, spec);
        assert_eq!(split, Split::new(&packed, spec), "seeded");
        assert!(split.test.is_empty());
        let held_out = split.validation.len() + split.duplicates.len();
        assert_eq!(held_out, 4, "half of 4 cats and half of 3 dogs, rounded");
        let hashes: Vec<u64> = split
            .train
            .iter()
            .map(|&i| packed.entries[i].hash)
            .collect();
        for &i in &split.validation {
            assert!(!hashes.contains(&packed.entries[i].hash));
        }
        // With a test split: three disjoint parts, the test photos taken first.
        let three = Split::new(
            &packed,
            SplitSpec {
                test_fraction: 0.25,
                ..spec
            },
        );
        let mut all: Vec<usize> = [
            &three.train,
            &three.validation,
            &three.test,
            &three.duplicates,
        ]
        .into_iter()
        .flatten()
        .copied()
        .collect();
        all.sort_unstable();
        assert_eq!(all, (0..packed.len()).collect::<Vec<_>>());
        assert!(!three.test.is_empty());
    }
}

fn train_args<'a>(data: &'a str, run: &'a str, out: &'a str, batch: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        data,
        "--run",
        run,
        "--out",
        out,
        "--input-size",
        "32",
        "--channels",
        "8,16",
        "--epochs",
        "3",
        "--batch-size",
        batch,
        "--validation",
        "0.25",
        "--backend",
        "flex",
        "--no-cache",
        "--checkpoint-minutes",
        "0",
    ]
}

#[test]
fn a_killed_run_resumes_and_finishes_with_the_same_number_of_epochs() {
    let data = kaggle_folder("resume", 1);
    let base = scratch("resume-run");
    let run = base.join("run");
    let out = run.with_file_name("model.bpk");
    let (data_s, run_s, out_s) = (
        data.to_str().unwrap(),
        run.to_str().unwrap(),
        out.to_str().unwrap(),
    );

    // Start a run and kill it (SIGKILL, no chance to clean up) mid-way through epoch 2.
    let args = train_args(data_s, run_s, out_s, "1");
    let mut child = Command::new(BIN)
        .args(&args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let kill_now = line.starts_with("checkpoint saved (epoch 2, batch 2)");
        seen.push(line);
        if kill_now {
            child.kill().unwrap();
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the run was killed, it did not finish:\n{}",
        seen.join("\n")
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("checkpoint saved (epoch 2, batch 2)")),
        "the run never reached epoch 2:\n{}",
        seen.join("\n")
    );
    assert!(!out.exists(), "a killed run exported nothing");
    // Settings whose model no page could load are refused before anything is written.
    let never = base.join("never-made");
    let mut too_big = train_args(data_s, never.to_str().unwrap(), out_s, "1");
    let size = too_big
        .iter()
        .position(|arg| *arg == "--input-size")
        .unwrap();
    too_big[size + 1] = "1024";
    let refused = Command::new(BIN).args(&too_big).output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("preprocess.input_size is 1024"), "{stderr}");
    assert!(!never.exists());
    // Starting it again without --resume is refused rather than overwriting the run.
    let refused = Command::new(BIN).args(&args).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--resume"));

    // A full disk: resumed under a file-size limit of one block (512 or 1,024 bytes, by shell) (SIGXFSZ ignored, so a write
    // past it fails with EFBIG as on a full disk), its next checkpoint cannot be written. The
    // run stops saying which file failed, and the last good checkpoint and best model are
    // left exactly as they were, with no half-written file beside them.
    let kept = |name: &str| std::fs::read(run.join(name)).unwrap();
    let (checkpoint, best) = (kept("checkpoint.ckpt"), kept("best.bpk"));
    let full = Command::new("sh")
        .args(["-c", "trap '' XFSZ; ulimit -f 1; exec \"$@\"", "sh", BIN])
        .args(["train", "--resume", "--run", run_s])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&full.stderr);
    assert!(!full.status.success(), "{stderr}");
    assert!(
        stderr.contains("checkpoint.ckpt") && stderr.contains("File too large"),
        "the run should say which write failed:\n{stderr}"
    );
    assert!(
        kept("checkpoint.ckpt") == checkpoint,
        "the checkpoint changed"
    );
    assert!(kept("best.bpk") == best, "the best model changed");
    let left: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("partial"))
        .collect();
    assert!(left.is_empty(), "half-written files left: {left:?}");

    // Once there is room, --resume continues.
    let resumed = Command::new(BIN)
        .args(["train", "--resume", "--run", run_s])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    // It continues from the last checkpoint written before the kill: epoch 2, batch 2 or a
    // moment later; not from the start.
    let position = stderr
        .lines()
        .find_map(|l| {
            l.split_once(" at epoch ")
                .filter(|_| l.starts_with("resuming"))
        })
        .map(|(_, at)| at.to_string())
        .unwrap_or_else(|| panic!("no resume line:\n{stderr}"));
    let (epoch, batch) = position.split_once(", batch ").unwrap();
    let (epoch, batch): (usize, usize) = (epoch.parse().unwrap(), batch.trim().parse().unwrap());
    assert!(
        (epoch, batch) >= (2, 2) && epoch <= 3,
        "resumed at {position}"
    );

    let log: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(run.join("log.json")).unwrap()).unwrap();
    let epochs: Vec<u64> = log.iter().map(|r| r["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, [1, 2, 3]);
    let csv = std::fs::read_to_string(run.join("log.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4);
    let curves = image::open(run.join("curves.png")).unwrap();
    assert!(
        curves.width() > curves.height(),
        "loss and accuracy side by side"
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["epochs"], 3);
    // The exported web file loads and carries its training summary.
    let file = catdog_model::ModelFile::parse(&std::fs::read(&out).unwrap()).unwrap();
    let summary = file.header.training.unwrap();
    assert!(summary.validation_accuracy.is_some());
    assert_eq!(file.header.preprocess.input_size, 32);
}

#[test]
fn evaluate_predict_submission_export_and_compare_work_on_a_trained_model() {
    let data = kaggle_folder("results", 0);
    add_bad_files(&data);
    let base = scratch("results-run");
    let run = base.join("run");
    let model = base.join("model.bpk");
    let (data_s, run_s, model_s) = (
        data.to_str().unwrap(),
        run.to_str().unwrap(),
        model.to_str().unwrap(),
    );
    let mut args = train_args(data_s, run_s, model_s, "2");
    args.extend(["--early-stopping", "1"]);
    run_ok(&args);
    let skipped = std::fs::read_to_string(run.join("skipped.tsv")).unwrap();
    assert_eq!(
        skipped.lines().count(),
        5,
        "header and four files:\n{skipped}"
    );

    // evaluate --json: the last line is one JSON object with the figures.
    let report = base.join("evaluation");
    let stdout = run_ok(&[
        "evaluate",
        "--model",
        model_s,
        "--data",
        data_s,
        "--report",
        report.to_str().unwrap(),
        "--no-cache",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(json["n"], 6);
    let accuracy = json["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy));
    assert!(json["log_loss"].as_f64().unwrap() > 0.0);
    let confusion: u64 = json["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()))
        .sum();
    assert_eq!(confusion, 6);
    let correct =
        json["confusion"][0][0].as_u64().unwrap() + json["confusion"][1][1].as_u64().unwrap();
    assert!((correct as f64 / 6.0 - accuracy).abs() < 1e-9);
    image::open(report.join("confusion.png")).unwrap();
    image::open(report.join("mistakes.png")).unwrap();

    // predict --json: every file, with probabilities or the reason it has none.
    let stdout = run_ok(&["predict", "--model", model_s, "--json", data_s]);
    let predictions: Vec<serde_json::Value> = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(predictions.len(), 10);
    let errors = predictions
        .iter()
        .filter(|p| p["error"].is_string())
        .count();
    assert_eq!(errors, 4);
    for p in predictions.iter().filter(|p| p["label"].is_string()) {
        let sum = p["cat"].as_f64().unwrap() + p["dog"].as_f64().unwrap();
        assert!((sum - 1.0).abs() < 1e-5);
    }

    // submission: Kaggle's id,label for N.jpg test photos, clipped, sorted by id.
    let test = scratch("results-test");
    for (id, file) in [(10, "dog.jpg"), (2, "cat.jpg"), (1, "cat-grey.jpg")] {
        std::fs::write(test.join(format!("{id}.jpg")), fixture(file)).unwrap();
    }
    let csv_path = base.join("submission.csv");
    run_ok(&[
        "submission",
        "--model",
        model_s,
        "--data",
        test.to_str().unwrap(),
        "--out",
        csv_path.to_str().unwrap(),
    ]);
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "id,label");
    let ids: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(ids, ["1", "2", "10"]);
    for line in &lines[1..] {
        let p: f64 = line.split(',').nth(1).unwrap().parse().unwrap();
        assert!((0.005..=0.995).contains(&p), "{line}");
    }

    // export: f32 and f16 files of the run's best model; f16 is about half the size.
    let f32_path = base.join("best-f32.bpk");
    let f16_path = base.join("best-f16.bpk");
    let best = run.join("best.bpk");
    run_ok(&[
        "export",
        "--model",
        best.to_str().unwrap(),
        "--out",
        f32_path.to_str().unwrap(),
        "--precision",
        "f32",
    ]);
    run_ok(&[
        "export",
        "--model",
        best.to_str().unwrap(),
        "--out",
        f16_path.to_str().unwrap(),
    ]);
    // The weights part (the header, the same in both, is a fixed cost on a tiny network).
    let weights_len = |path: &Path| {
        let bytes = std::fs::read(path).unwrap();
        let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        let at = 16 + header_len;
        u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
    };
    let (big, small) = (weights_len(&f32_path), weights_len(&f16_path));
    // Burnpack's per-tensor names and shapes weigh a lot next to this tiny network's values.
    assert!(
        small < big * 3 / 4,
        "f16 weights {small} bytes vs f32 {big}"
    );
    // Both predict the same.
    let probabilities = |model: &Path| -> Vec<f64> {
        let stdout = run_ok(&[
            "predict",
            "--model",
            model.to_str().unwrap(),
            "--json",
            data_s,
        ]);
        let predictions: Vec<serde_json::Value> = serde_json::from_str(stdout.trim()).unwrap();
        predictions
            .iter()
            .filter_map(|p| p["dog"].as_f64())
            .collect()
    };
    let (full, half) = (probabilities(&f32_path), probabilities(&f16_path));
    assert_eq!(full.len(), 6);
    for (a, b) in full.iter().zip(&half) {
        assert!((a - b).abs() < 1e-2, "f32 {a} vs f16 {b}");
    }

    // compare: a row per run and a picture.
    let compare_png = base.join("compare.png");
    let stdout = run_ok(&[
        "compare",
        run_s,
        run_s,
        "--out",
        compare_png.to_str().unwrap(),
    ]);
    assert_eq!(stdout.lines().filter(|l| l.starts_with(run_s)).count(), 2);
    image::open(&compare_png).unwrap();

    // inspect: class counts and a contact sheet.
    let sheet = base.join("inspect.png");
    let stdout = run_ok(&[
        "inspect",
        data_s,
        "--out",
        sheet.to_str().unwrap(),
        "--samples",
        "8",
    ]);
    assert!(stdout.contains("5 cats, 5 dogs"), "{stdout}");
    image::open(&sheet).unwrap();
}

#[test]
fn bench_prints_its_table_and_writes_the_same_rows_as_json() {
    let data = kaggle_folder("bench", 1);
    let out = scratch("bench-json");
    let json = out.join("bench.json");
    let table = run_ok(&[
        "bench",
        "--data",
        data.to_str().unwrap(),
        "--photos",
        "12",
        "--input-size",
        "32",
        "--channels",
        "4,8",
        "--batch-size",
        "4",
        "--steps",
        "2",
        "--backends",
        "flex",
        "--json",
        json.to_str().unwrap(),
    ]);
    let rows: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[0]["what"]
            .as_str()
            .unwrap()
            .starts_with("decode + preprocess")
    );
    assert!(
        rows[1]["what"]
            .as_str()
            .unwrap()
            .starts_with("train on flex")
    );
    // 12 usable photos decoded; 2 steps of 4 trained.
    assert_eq!(rows[0]["images"], 12);
    assert_eq!(rows[1]["images"], 8);
    for row in rows {
        let (images, seconds) = (
            row["images"].as_f64().unwrap(),
            row["seconds"].as_f64().unwrap(),
        );
        let rate = row["images_per_second"].as_f64().unwrap();
        assert!(
            seconds > 0.0 && (rate - images / seconds).abs() < 1e-6 * rate,
            "{row:?}"
        );
        assert!(table.contains(row["what"].as_str().unwrap()), "{table}");
    }
}

#[test]
fn export_safetensors_writes_pytorch_layout_and_the_header() {
    let out = scratch("safetensors");
    let file = out.join("small.safetensors");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www/model/catdog-small.bpk");
    run_ok(&[
        "export-safetensors",
        "--model",
        shipped.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
    ]);
    // safetensors: an 8-byte little-endian header length, then the JSON header.
    let bytes = std::fs::read(&file).unwrap();
    let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + length]).unwrap();
    let model: serde_json::Value =
        serde_json::from_str(header["__metadata__"]["catdog_header"].as_str().unwrap()).unwrap();
    assert_eq!(model["architecture"]["kind"], "cnn", "{model}");
    assert_eq!(model["preprocess"]["input_size"], 64, "{model}");
    // PyTorch's conventions: the dense weight is [out, in]; norms have weight/bias/running_*.
    assert_eq!(header["head.weight"]["shape"], serde_json::json!([2, 256]));
    for name in ["weight", "bias", "running_mean", "running_var"] {
        assert_eq!(
            header[format!("blocks.0.norm.{name}")]["shape"],
            serde_json::json!([32]),
            "{name}"
        );
    }
    assert_eq!(
        header["blocks.0.conv.weight"]["shape"],
        serde_json::json!([32, 3, 3, 3])
    );
    assert!(!out.join("small.safetensors.partial").exists());
}

#[test]
fn explain_writes_the_photo_with_its_heatmap_and_names_a_bad_photo() {
    let out = scratch("explain");
    let heat = out.join("heat.png");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www/model/catdog.bpk");
    let photo = fixtures().join("cat-with-dolls.jpg");
    let printed = run_ok(&[
        "explain",
        "--model",
        shipped.to_str().unwrap(),
        photo.to_str().unwrap(),
        "-o",
        heat.to_str().unwrap(),
    ]);
    assert!(printed.contains("cat-with-dolls.jpg: cat ("), "{printed}");
    assert!(printed.contains("heat.png"), "{printed}");
    // The photo at its own size, tinted where the heat is: not the photo unchanged.
    let written = image::open(&heat).unwrap().to_rgb8();
    let original = image::open(&photo).unwrap().to_rgb8();
    assert_eq!(written.dimensions(), original.dimensions());
    let changed = written
        .pixels()
        .zip(original.pixels())
        .filter(|(a, b)| a.0.iter().zip(b.0).any(|(x, y)| x.abs_diff(y) > 24))
        .count();
    let pixels = (original.width() * original.height()) as usize;
    assert!(
        changed > pixels / 10,
        "only {changed} of {pixels} pixels tinted"
    );

    // A photo that is not one: refused with its name, and nothing written.
    let bad = out.join("notes.jpg");
    std::fs::write(&bad, b"<html>not a photo</html>").unwrap();
    let refused = Command::new(BIN)
        .args([
            "explain",
            "--model",
            shipped.to_str().unwrap(),
            bad.to_str().unwrap(),
        ])
        .args(["-o", out.join("bad.png").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("notes.jpg") && stderr.contains("not an image"),
        "{stderr}"
    );
    assert!(!out.join("bad.png").exists());
}

#[test]
fn pet_filter_gives_a_model_the_neither_answer_and_reports_its_rates() {
    let out = scratch("pet-filter");
    let data = kaggle_folder("pet-filter", 1);
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www/model/catdog.bpk");
    let model = out.join("with-filter.bpk");
    let non_pets = fixtures().join("non-pets");
    let pretrained = common::shared_weights("efficientnet-lite0");
    let printed = run_ok(&[
        "pet-filter",
        "--model",
        shipped.to_str().unwrap(),
        "--pretrained",
        pretrained.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--non-pets",
        non_pets.to_str().unwrap(),
        "--validation",
        "0.25",
        "--test",
        "0.25",
        "--keep",
        "0.9",
        "--no-cache",
        "-o",
        model.to_str().unwrap(),
    ]);
    for line in [
        "training photos",
        "validation photos passing:",
        "test photos passing:",
        "non-pet photos turned away:",
    ] {
        assert!(printed.contains(line), "{printed}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("with-filter.pet-filter.json")).unwrap())
            .unwrap();
    let threshold = report["threshold"].as_f64().unwrap();
    assert!(threshold > 0.0 && threshold < 1.0, "{report}");
    assert_eq!(report["non_pets"]["photos"], 52, "{report}");
    assert!(
        report["calibration"]["rate"].as_f64().unwrap() >= 0.9,
        "{report}"
    );

    // The written model says "neither" for a photo of a man with a camera, a verdict for a cat.
    let explain = |photo: &Path| {
        run_ok(&[
            "explain",
            "--model",
            model.to_str().unwrap(),
            photo.to_str().unwrap(),
            "-o",
            out.join("heat.png").to_str().unwrap(),
        ])
    };
    let person = explain(&non_pets.join("scikit-image-camera.jpg"));
    assert!(person.contains("neither a cat nor a dog"), "{person}");
    let cat = explain(&fixtures().join("cat.jpg"));
    assert!(cat.contains("cat.jpg: cat ("), "{cat}");

    // A CNN has no ImageNet classifier to borrow: refused with the file and the reason.
    let small = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www/model/catdog-small.bpk");
    let refused = Command::new(BIN)
        .args(["pet-filter", "--model", small.to_str().unwrap()])
        .args(["--data", data.to_str().unwrap(), "--no-cache"])
        .args(["-o", out.join("small.bpk").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("catdog-small.bpk") && stderr.contains("needs an EfficientNet-Lite model"),
        "{stderr}"
    );
    assert!(!out.join("small.bpk").exists());
}

#[test]
fn a_model_taught_as_the_page_teaches_it_is_read_by_the_trainer() {
    use catdog_model::learn::{Example, FineTune, Lesson};
    use catdog_model::{Classifier, Device, ModelFile};

    // The lesson the page gives (`catdog_model::learn`), run here on the CPU: the two photos
    // the shipped model gets wrong, with their right answers.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www/model/catdog.bpk");
    let file = ModelFile::parse(&std::fs::read(&shipped).unwrap()).unwrap();
    let classifier = Classifier::from_file(&file, &Device::flex()).unwrap();
    let (cat, dog) = (fixture("cat-called-dog.jpg"), fixture("dog-called-cat.jpg"));
    let examples = [
        Example::new(&cat, Label::Cat),
        Example::new(&dog, Label::Dog),
    ];
    let others = [fixture("cat.jpg"), fixture("dog.jpg")];
    let others: Vec<&[u8]> = others.iter().map(Vec::as_slice).collect();
    let mut lesson = FineTune::new(&classifier, &examples, &others, Lesson::default()).unwrap();
    while !lesson.is_done() {
        block_on(lesson.step()).unwrap();
    }
    let taught = block_on(lesson.improved_file(&file, &examples)).unwrap();
    let out = scratch("taught");
    let path = out.join("catdog-taught.bpk");
    std::fs::write(&path, taught.to_bytes()).unwrap();

    // The trainer's predict reads it and gives the right answers.
    let photos = out.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in ["cat-called-dog.jpg", "dog-called-cat.jpg"] {
        std::fs::copy(fixtures().join(name), photos.join(name)).unwrap();
    }
    let stdout = run_ok(&[
        "predict",
        "--model",
        path.to_str().unwrap(),
        "--json",
        photos.to_str().unwrap(),
    ]);
    let predictions: Vec<serde_json::Value> = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(predictions.len(), 2, "{stdout}");
    for prediction in &predictions {
        let name = prediction["path"].as_str().unwrap();
        let truth = if name.contains("cat-called-dog") {
            "cat"
        } else {
            "dog"
        };
        assert_eq!(prediction["label"], truth, "{prediction}");
    }
}

/// Knowledge distillation end to end: the teacher (the shipped small model, a real weight
/// file) runs once over the photos, its logits are cached and read back by the next run, and
/// the student trains and exports; a run that cannot learn from a teacher, or a teacher that
/// is not a model, is refused before anything is written.
#[test]
fn a_student_learns_from_a_teachers_cached_logits() {
    let data = kaggle_folder("distill", 1);
    let base = scratch("distill-runs");
    let cache = base.join("cache");
    let teacher = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www/model/catdog-small.bpk");
    let (data_s, cache_s, teacher_s) = (
        data.to_str().unwrap(),
        cache.to_str().unwrap(),
        teacher.to_str().unwrap(),
    );
    // The tests' usual tiny run, on a shared photo cache instead of none, with `extra`.
    let distilled = |run: &Path, extra: &[&str]| {
        let out = run.with_extension("bpk");
        let mut args = train_args(data_s, run.to_str().unwrap(), out.to_str().unwrap(), "4");
        args.retain(|arg| *arg != "--no-cache");
        args.extend(["--cache", cache_s]);
        args.extend(extra);
        let output = Command::new(BIN).args(args).output().unwrap();
        (out, output)
    };
    let student = |run: &str| {
        let run = base.join(run);
        let (out, output) = distilled(&run, &["--teacher", teacher_s, "--distill-weight", "0.7"]);
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(output.status.success(), "{stderr}");
        let line = stderr
            .lines()
            .find(|line| line.starts_with("teacher "))
            .unwrap_or_else(|| panic!("no teacher line:\n{stderr}"))
            .to_string();
        (run, out, line)
    };

    let (run, out, first) = student("first");
    assert!(
        first.contains("of the training photos") && first.contains("weight 0.7"),
        "{first}"
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["distill"]["teacher"], teacher_s);
    assert_eq!(config["distill"]["temperature"], 2.0);
    // Held out like the teacher's own run: a test split by default.
    assert_eq!(config["test_fraction"], 0.1);
    let file = catdog_model::ModelFile::parse(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(file.header.preprocess.input_size, 32);

    // The teacher's logits are cached: replace them with a teacher sure that every photo is
    // a dog, and the next run's teacher is right on exactly the dogs (half the photos).
    let shards: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("teacher-")
        })
        .collect();
    assert_eq!(shards.len(), 1, "{shards:?}");
    let shard = shards[0].join("shard-00000.f16");
    let bytes = std::fs::read(&shard).unwrap();
    let photos = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    assert_eq!(photos, 12, "every photo of the folder, in one shard");
    let mut doggy = bytes[..12].to_vec();
    for _ in 0..photos {
        doggy.extend_from_slice(&burn::tensor::f16::from_f32(0.0).to_le_bytes());
        doggy.extend_from_slice(&burn::tensor::f16::from_f32(8.0).to_le_bytes());
    }
    std::fs::write(&shard, doggy).unwrap();
    let (_, _, second) = student("second");
    assert!(
        second.contains("right on 50.00 % of the training photos"),
        "{second}"
    );

    // A frozen backbone learns from cached features, not from photos: refused up front.
    let frozen = base.join("frozen");
    let refused = Command::new(BIN)
        .args([
            "train",
            "--data",
            data_s,
            "--run",
            frozen.to_str().unwrap(),
            "--backbone",
            "efficientnet-lite0",
            "--teacher",
            teacher_s,
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--unfreeze all"));
    assert!(!frozen.exists(), "nothing written for a refused run");

    // A teacher that is not a weight file is named, and no student trains.
    let bad = base.join("teacher.bpk");
    std::fs::write(&bad, &std::fs::read(&teacher).unwrap()[..100]).unwrap();
    let (_, output) = distilled(&base.join("bad"), &["--teacher", bad.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("teacher.bpk: not a usable teacher"),
        "{stderr}"
    );
    assert!(
        !base.join("bad").exists(),
        "nothing written for a refused run"
    );
}

/// The run's seed seeds Burn's random numbers too (weight initialisation, dropout): the same
/// command gives the same losses, epoch by epoch. (Unseeded, two runs of this command ended
/// epoch 2 at training losses 0.79 and 0.58.)
#[test]
fn the_same_command_trains_the_same_network() {
    let data = kaggle_folder("same", 1);
    let base = scratch("same-runs");
    let losses = |name: &str| {
        let run = base.join(name);
        let out = base.join(format!("{name}.bpk"));
        run_ok(&train_args(
            data.to_str().unwrap(),
            run.to_str().unwrap(),
            out.to_str().unwrap(),
            "4",
        ));
        let log: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(run.join("log.json")).unwrap()).unwrap();
        log.iter()
            .map(|epoch| {
                (
                    epoch["train_loss"].clone(),
                    epoch["validation_loss"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let first = losses("first");
    assert_eq!(first.len(), 3);
    assert_eq!(first, losses("second"));
}
