//! Teaching a model the user's photos (`catdog_model::learn`), as the page's "Teach it" does.

use burn::tensor::Device;
use catdog_model::learn::{Example, FineTune, Lesson};
use catdog_model::{Classifier, Label, ModelFile};

use crate::{block_on, fixture, shipped};

/// Fixtures the shipped accurate model gets right: the lesson keeps its verdicts on the first
/// four, and must not turn them on the other three, which it never sees and is sure of.
/// (A verdict the model is unsure of may turn, as `cat-unsure.jpg`, a cat at 66 %, may.)
const OTHERS: [&str; 7] = [
    "cat.jpg",
    "dog-alpha.png",
    "cat-with-dolls.jpg",
    "dog-cmyk.jpg",
    "dog.jpg",
    "cat-grey.jpg",
    "cat-exif-rotated.jpg",
];

fn label(classifier: &Classifier, photo: &str) -> Label {
    block_on(classifier.classify(&fixture(photo)))
        .unwrap()
        .label
}

/// Runs every step of a lesson; returns the loss before each step and after the last.
fn teach(lesson: &mut FineTune) -> (Vec<f32>, f32) {
    let mut losses = Vec::new();
    while !lesson.is_done() {
        losses.push(block_on(lesson.step()).unwrap());
    }
    (losses, block_on(lesson.loss()).unwrap())
}

#[test]
fn a_lesson_fixes_the_photos_it_is_given_and_keeps_the_other_verdicts() {
    let device = Device::flex();
    let file = shipped("catdog.bpk");
    let classifier = Classifier::from_file(&file, &device).unwrap();
    // The shipped model calls this cat a dog and this dog a cat: what a user would correct.
    assert_eq!(label(&classifier, "cat-called-dog.jpg"), Label::Dog);
    assert_eq!(label(&classifier, "dog-called-cat.jpg"), Label::Cat);
    let (cat, dog) = (fixture("cat-called-dog.jpg"), fixture("dog-called-cat.jpg"));
    let examples = [
        Example::new(&cat, Label::Cat),
        Example::new(&dog, Label::Dog),
    ];
    let kept: Vec<Vec<u8>> = OTHERS[..4].iter().map(|name| fixture(name)).collect();
    let kept: Vec<&[u8]> = kept.iter().map(Vec::as_slice).collect();
    let mut lesson = FineTune::new(&classifier, &examples, &kept, Lesson::default()).unwrap();
    let (losses, after) = teach(&mut lesson);
    assert_eq!(losses.len(), Lesson::default().steps);
    assert!(
        after < losses[0] / 4.0,
        "the loss fell only from {} to {after} ({losses:?})",
        losses[0]
    );

    // The improved file is an ordinary weight file: stored as the original was, loadable by
    // anything that loads one, and its verdicts are the lesson's.
    let improved = block_on(lesson.improved_file(&file, &examples)).unwrap();
    let bytes = improved.to_bytes();
    let reparsed = ModelFile::parse(&bytes).unwrap();
    assert_eq!(reparsed.header.weights_dtype, file.header.weights_dtype);
    assert_eq!(reparsed.header.architecture, file.header.architecture);
    let notes = &reparsed.header.training.as_ref().unwrap().notes;
    assert!(
        notes.contains("fine-tuned on 2 labelled photos (1 cats, 1 dogs)"),
        "{notes}"
    );
    let taught = Classifier::load(&bytes, &device).unwrap();
    assert_eq!(label(&taught, "cat-called-dog.jpg"), Label::Cat);
    assert_eq!(label(&taught, "dog-called-cat.jpg"), Label::Dog);
    for (index, photo) in OTHERS.into_iter().enumerate() {
        let before = block_on(classifier.classify(&fixture(photo))).unwrap();
        assert!(index < 4 || before.is_sure(), "{photo}");
        assert_eq!(
            label(&taught, photo),
            before.label,
            "the lesson turned the verdict on {photo}"
        );
    }
}

#[test]
fn the_small_model_learns_from_one_photo() {
    let device = Device::flex();
    let file = shipped("catdog-small.bpk");
    let classifier = Classifier::from_file(&file, &device).unwrap();
    let photo = fixture("cat-unsure.jpg");
    let examples = [Example::new(&photo, Label::Cat)];
    let mut lesson = FineTune::new(&classifier, &examples, &[], Lesson::default()).unwrap();
    let before = block_on(lesson.loss()).unwrap();
    let (losses, after) = teach(&mut lesson);
    assert_eq!(losses[0], before);
    assert!(after < before, "the loss went from {before} to {after}");
    let improved = block_on(lesson.improved_file(&file, &examples)).unwrap();
    let taught = Classifier::load(&improved.to_bytes(), &device).unwrap();
    let cat = |classifier: &Classifier| block_on(classifier.classify(&photo)).unwrap().cat;
    assert!(cat(&taught) > cat(&classifier));
}

#[test]
fn a_photo_that_is_not_one_is_refused_before_learning() {
    let device = Device::flex();
    let classifier = Classifier::from_file(&shipped("catdog-small.bpk"), &device).unwrap();
    let examples = [Example::new(b"<html>not a photo</html>", Label::Dog)];
    assert!(FineTune::new(&classifier, &examples, &[], Lesson::default()).is_err());
}
