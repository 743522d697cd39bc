//! A training run end to end through the real binary: killed and resumed, a full disk,
//! then evaluation, prediction, the Kaggle submission, export and compare of what it trained.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{
    BIN, add_bad_files, fixture, kaggle_folder, model_file, predictions, run_ok, run_refused,
    scratch, train_args,
};

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
    let stderr = run_refused(&too_big);
    assert!(stderr.contains("preprocess.input_size is 1024"), "{stderr}");
    assert!(!never.exists());
    // Starting it again without --resume is refused rather than overwriting the run.
    let stderr = run_refused(&args);
    assert!(stderr.contains("--resume"), "{stderr}");

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
    let file = model_file(&out);
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
    // The four unusable files are counted, named with their reasons, and the report says where.
    assert_eq!(json["skipped"], 4);
    assert!(json["split"].is_null(), "{json}");
    let skipped_report = std::fs::read_to_string(report.join("skipped.tsv")).unwrap();
    assert_eq!(
        skipped_report, skipped,
        "evaluate's skipped.tsv is the run's"
    );
    assert!(
        stdout.contains("6 photos (4 skipped)") && stdout.contains("skipped.tsv"),
        "{stdout}"
    );
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
    let predicted = predictions(Path::new(model_s), &[Path::new(data_s)]);
    assert_eq!(predicted.len(), 10);
    let errors = predicted.iter().filter(|p| p["error"].is_string()).count();
    assert_eq!(errors, 4);
    for p in predicted.iter().filter(|p| p["label"].is_string()) {
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
        predictions(model, &[Path::new(data_s)])
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
