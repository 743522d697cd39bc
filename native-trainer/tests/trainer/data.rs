//! Photos in: every layout from a folder or a zip, unusable files skipped and reported, the
//! packed cache reused, the seeded, stratified split without copies of training photos.

use std::io::Write;

use catdog_model::Label;
use catdog_trainer::dataset::PackedPhotos;
use catdog_trainer::photos::{Layout, PhotoSet};
use catdog_trainer::split::{Split, SplitSpec};

use crate::common::{CATS, DOGS, add_bad_files, fixture, kaggle_folder, preprocess, scratch};

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
