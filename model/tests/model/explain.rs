use burn::tensor::{Device, Distribution, Tensor, TensorData};
use catdog_model::explain::Heatmap;
use catdog_model::{Classifier, Geometry, Label, Network};

use crate::{fixture, shipped};

/// The kitten in `cat-with-dolls.jpg`, labelled by hand as fractions of the photo (x 25 to 215
/// and y 35 to 250 of its 499 x 254 pixels, a third of its area); the rest is two rag dolls.
const KITTEN: [f32; 4] = [25.0 / 499.0, 35.0 / 254.0, 215.0 / 499.0, 250.0 / 254.0];

#[test]
fn the_accurate_models_heatmap_lies_on_the_kitten_not_the_dolls() {
    let device = Device::flex();
    let classifier = Classifier::from_file(&shipped("catdog.bpk"), &device).unwrap();
    let explanation = classifier
        .explain_blocking(&fixture("cat-with-dolls.jpg"))
        .unwrap();
    assert_eq!(explanation.prediction.label, Label::Cat);
    let heatmap = &explanation.heatmap;
    // Lite1 at 272 px: its last block's 9 x 9 activations.
    assert_eq!((heatmap.width, heatmap.height), (9, 9));
    let inside = heatmap.mass_inside(KITTEN);
    assert!(
        inside > 0.5,
        "only {inside:.2} of the heat is on the kitten"
    );
}

/// The small model sees the centred 7/8 of each side of a photo squashed to a square (its
/// training photos had been squashed to 200 x 200 before it cropped them): on the wide photo
/// of the kitten and the dolls (499 x 254) its heatmap lies over that centred rectangle, and
/// the photo outside it is left as it is. The same network cropping a square from the photo
/// itself sees only the middle of the wide photo, and its heatmap lies over that square.
#[test]
fn a_cropping_models_heatmap_lies_over_the_part_it_saw() {
    let device = Device::flex();
    let file = shipped("catdog-small.bpk");
    let squashed_first_geometry = Geometry::SquashThenCrop { fraction: 0.875 };
    assert_eq!(file.header.preprocess.geometry, squashed_first_geometry);
    let bytes = fixture("cat-with-dolls.jpg");
    let photo = image::load_from_memory(&bytes).unwrap().to_rgb8();
    // round(499 * 0.875) = 437 by round(254 * 0.875) = 222, centred: x 31 to 468, y 16 to
    // 238; a square of 222 from the photo itself: x 138 to 360.
    let squashed_first = [31.0 / 499.0, 16.0 / 254.0, 468.0 / 499.0, 238.0 / 254.0];
    let square = [138.0 / 499.0, 16.0 / 254.0, 360.0 / 499.0, 238.0 / 254.0];
    let mut cropping = file.clone();
    cropping.header.preprocess.geometry = Geometry::CentreCrop { fraction: 0.875 };
    for (file, expected, outside) in [
        (
            &file,
            squashed_first,
            [(10, 100), (130, 10), (370, 240), (490, 250)],
        ),
        (
            &cropping,
            square,
            [(10, 100), (130, 100), (370, 100), (490, 250)],
        ),
    ] {
        let classifier = Classifier::from_file(file, &device).unwrap();
        let explanation = classifier.explain_blocking(&bytes).unwrap();
        let heatmap = &explanation.heatmap;
        for (got, want) in heatmap.area.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{:?}", heatmap.area);
        }
        assert!(heatmap.mass_inside(expected) > 0.999);
        let overlay = heatmap.overlay(&photo);
        for (x, y) in outside {
            assert_eq!(overlay.get_pixel(x, y), photo.get_pixel(x, y), "({x}, {y})");
        }
        // The kitten, at the photo's left edge, is seen whole when the photo is squashed
        // first (the square from the photo itself cuts it in half).
        if file.header.preprocess.geometry == squashed_first_geometry {
            assert_eq!(
                explanation.prediction.label,
                Label::Cat,
                "{:?}",
                explanation.prediction
            );
        }
    }
    // The same network squashing the whole photo covers all of it.
    let mut squashing = file.clone();
    squashing.header.preprocess.geometry = Geometry::Squash;
    let squashing = Classifier::from_file(&squashing, &device).unwrap();
    let whole = squashing.explain_blocking(&bytes).unwrap().heatmap.area;
    assert_eq!(whole, [0.0, 0.0, 1.0, 1.0]);
}

#[test]
fn explaining_gives_the_verdict_that_classifying_gives() {
    let device = Device::flex();
    for name in ["catdog.bpk", "catdog-small.bpk"] {
        let classifier = Classifier::from_file(&shipped(name), &device).unwrap();
        for photo in ["cat.jpg", "dog.jpg", "cat-unsure.jpg"] {
            let bytes = fixture(photo);
            let explanation = classifier.explain_blocking(&bytes).unwrap();
            let input = classifier.input(&bytes).unwrap();
            let classified = classifier.classify_inputs(&[input]).unwrap()[0];
            assert_eq!(
                explanation.prediction.label, classified.label,
                "{name} {photo}"
            );
            assert!((explanation.prediction.dog - classified.dog).abs() < 1e-5);
            let heatmap = &explanation.heatmap;
            assert_eq!(heatmap.values.len(), heatmap.width * heatmap.height);
            let hottest = heatmap.values.iter().copied().fold(0.0, f32::max);
            assert_eq!(
                hottest, 1.0,
                "{name} {photo}: the hottest cell is scaled to 1"
            );
        }
    }
}

/// The head's gradient is written out by hand (so Grad-CAM needs no autodiff in the page):
/// check it against central differences of the head itself, along the gradient and along
/// random directions.
#[test]
fn the_heads_closed_form_gradient_matches_finite_differences() {
    let device = Device::flex();
    let file = shipped("catdog.bpk");
    let Network::EfficientNet(network) = file.load_network(&device).unwrap() else {
        panic!("the accurate model is an EfficientNet-Lite");
    };
    let input = file.header.preprocess.apply(&fixture("dog.jpg")).unwrap();
    let shape = input.batch_shape();
    let images = Tensor::<4>::from_data(TensorData::new(input.data, shape), &device);
    let features = network
        .backbone
        .pool_features(network.backbone.last_activations(images));
    let log_odds = |features: Tensor<2>| {
        let logits: Vec<f32> = network
            .head
            .forward(features)
            .into_data()
            .try_to_vec()
            .unwrap();
        f64::from(logits[1]) - f64::from(logits[0])
    };
    let gradient = network.head.log_odds_gradient(features.clone());
    let norm: f32 = gradient.clone().powf_scalar(2.0).sum().sqrt().into_scalar();
    let along_gradient = gradient.clone() / norm;
    let random = (0..3).map(|_| {
        let direction =
            Tensor::<2>::random(features.dims(), Distribution::Normal(0.0, 1.0), &device);
        let norm: f32 = direction
            .clone()
            .powf_scalar(2.0)
            .sum()
            .sqrt()
            .into_scalar();
        direction / norm
    });
    let step = 1e-2;
    for direction in std::iter::once(along_gradient).chain(random) {
        let expected: f32 = (gradient.clone() * direction.clone()).sum().into_scalar();
        let expected = f64::from(expected);
        let numeric = (log_odds(features.clone() + direction.clone() * step)
            - log_odds(features.clone() - direction * step))
            / (2.0 * step);
        assert!(
            (numeric - expected).abs() <= 2e-2 * expected.abs().max(0.1),
            "directional derivative {expected} by hand, {numeric} by finite differences"
        );
    }
}

#[test]
fn a_heatmap_keeps_the_predicted_side_and_spreads_smoothly() {
    // Dog-minus-cat values: the right column speaks for a dog, the left for a cat.
    let map = [-2.0, 0.0, 1.0, -4.0, 0.0, 2.0];
    let dog = Heatmap::from_log_odds_map(3, 2, &map, true);
    assert_eq!(dog.values, [0.0, 0.0, 0.5, 0.0, 0.0, 1.0]);
    let cat = Heatmap::from_log_odds_map(3, 2, &map, false);
    assert_eq!(cat.values, [0.5, 0.0, 0.0, 1.0, 0.0, 0.0]);
    assert!(cat.mass_inside([0.0, 0.0, 1.0 / 3.0, 1.0]) > 0.75);
    assert!(cat.mass_inside([2.0 / 3.0, 0.0, 1.0, 1.0]) < 0.01);
    // Enlarged, it takes the cells' values at their centres and blends in between.
    let big = cat.resized(30, 20);
    assert_eq!(big.len(), 600);
    assert!((big[15 * 30 + 4] - 1.0).abs() < 1e-6);
    assert!(big[10 * 30 + 5] > 0.5 && big[10 * 30 + 5] < 1.0);
    // Nothing for the verdict: an all-cold map, not a division by zero.
    let none = Heatmap::from_log_odds_map(3, 2, &map.map(|v: f32| -v.abs()), true);
    assert!(none.values.iter().all(|&v| v == 0.0));
    // Laid over the right half of a photo (where a cropping model looked), the same map
    // fills that half and leaves the rest cold.
    let right_half = cat.clone().over([0.5, 0.0, 1.0, 1.0]);
    let wide = right_half.resized(60, 20);
    assert!(
        (0..20).all(|y| (0..30).all(|x| wide[y * 60 + x] == 0.0)),
        "heat outside the area"
    );
    let half = cat.resized(30, 20);
    assert!(
        wide[30..60]
            .iter()
            .zip(&half[..30])
            .all(|(a, b)| (a - b).abs() < 1e-5),
        "{wide:?}"
    );
    assert!(right_half.mass_inside([0.5, 0.0, 1.0, 1.0]) > 0.99);
    // Over a photo it only tints: the picture keeps its size.
    let photo = image::RgbImage::from_pixel(40, 20, image::Rgb([128, 128, 128]));
    let overlay = cat.overlay(&photo);
    assert_eq!(overlay.dimensions(), (40, 20));
    assert_ne!(overlay.get_pixel(5, 15), overlay.get_pixel(35, 15));
}

#[test]
fn the_accurate_model_turns_most_non_pets_away_and_keeps_the_pets() {
    let device = Device::flex();
    let classifier = Classifier::from_file(&shipped("catdog.bpk"), &device).unwrap();
    for photo in [
        "cat.jpg",
        "dog.jpg",
        "cat-grey.jpg",
        "dog-cmyk.jpg",
        "dog-alpha.png",
        "cat-exif-rotated.jpg",
        "cat-unsure.jpg",
        "cat-with-dolls.jpg",
    ] {
        let explanation = classifier.explain_blocking(&fixture(photo)).unwrap();
        let pet = explanation
            .pet
            .expect("the accurate model has the pet check");
        assert!(pet.is_pet(), "{photo}: {pet:?}");
    }
    let folder = format!("{}/../tests/fixtures/non-pets", env!("CARGO_MANIFEST_DIR"));
    let mut photos: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "jpg"))
        .collect();
    photos.sort();
    assert!(photos.len() >= 50, "{} non-pet photos", photos.len());
    let neither: Vec<_> = photos
        .iter()
        .filter(|path| {
            let bytes = std::fs::read(path).unwrap();
            classifier.explain_blocking(&bytes).unwrap().is_neither()
        })
        .collect();
    assert!(
        neither.len() * 2 > photos.len(),
        "only {} of {} non-pet photos turned away",
        neither.len(),
        photos.len()
    );
    // The small model has no such check: it always answers cat or dog.
    let small = Classifier::from_file(&shipped("catdog-small.bpk"), &device).unwrap();
    let explanation = small
        .explain_blocking(&std::fs::read(&photos[0]).unwrap())
        .unwrap();
    assert_eq!(explanation.pet, None);
}
