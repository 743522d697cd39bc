//! Where photos come from: a folder or a zip, in any of the layouts people download.
//!
//! - Kaggle flat: `train/cat.123.jpg`, `train/dog.7.jpg` (the label is the name's prefix);
//! - PetImages (Microsoft's zip): `PetImages/Cat/1.jpg`, `PetImages/Dog/1.jpg`;
//! - folder per class: `cat/*.jpg`, `dog/*.jpg` (also `cats/`, `dogs/`, any case);
//! - unlabelled: anything else (what `predict` and `submission` read, e.g. Kaggle's `test1/`).
//!
//! Every file under a class folder is listed, whatever its name or extension: a `Thumbs.db`
//! or a text file posing as a `.jpg` must show up in the skipped-files report, not vanish.

use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use catdog_model::Label;

/// A folder or a zip file of photos.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhotoSource {
    Folder(PathBuf),
    Zip(PathBuf),
}

impl PhotoSource {
    pub fn path(&self) -> &Path {
        match self {
            PhotoSource::Folder(path) | PhotoSource::Zip(path) => path,
        }
    }
}

/// How the photos of a source are labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    KaggleFlat,
    PetImages,
    FolderPerClass,
    Unlabelled,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::KaggleFlat => "Kaggle flat (cat.N.jpg / dog.N.jpg)",
            Layout::PetImages => "PetImages (PetImages/Cat, PetImages/Dog)",
            Layout::FolderPerClass => "folder per class (cat/, dog/)",
            Layout::Unlabelled => "unlabelled photos",
        })
    }
}

/// One photo of a source: its path inside the source (`/`-separated) and its label if the
/// layout gives one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoRef {
    pub name: String,
    pub label: Option<Label>,
}

/// The photos of one source, sorted by name.
#[derive(Debug, Clone)]
pub struct PhotoSet {
    pub source: PhotoSource,
    pub layout: Layout,
    pub photos: Vec<PhotoRef>,
}

#[derive(Debug, thiserror::Error)]
pub enum PhotosError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable zip file: {reason}")]
    BadZip { path: PathBuf, reason: String },
    #[error(
        "{path}: no labelled photos found; expected cat.N.jpg/dog.N.jpg files, \
         PetImages/Cat and PetImages/Dog, or cat/ and dog/ folders"
    )]
    NoLabels { path: PathBuf },
    #[error("{path}: no files found")]
    Empty { path: PathBuf },
}

impl PhotoSet {
    /// Lists a folder (recursively) or a zip and detects its layout.
    pub fn open(path: &Path) -> Result<Self, PhotosError> {
        let io = |source| PhotosError::Io {
            path: path.to_path_buf(),
            source,
        };
        let metadata = std::fs::metadata(path).map_err(io)?;
        let (source, names) = if metadata.is_dir() {
            let mut names = Vec::new();
            list_folder(path, "", &mut names).map_err(io)?;
            (PhotoSource::Folder(path.to_path_buf()), names)
        } else {
            let archive = open_zip(path)?;
            let mut names = Vec::new();
            for name in archive.file_names() {
                let name = name.map_err(|error| PhotosError::BadZip {
                    path: path.to_path_buf(),
                    reason: error.to_string(),
                })?;
                if !name.ends_with('/') {
                    names.push(name.into_owned());
                }
            }
            (PhotoSource::Zip(path.to_path_buf()), names)
        };
        if names.is_empty() {
            return Err(PhotosError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(Self::from_names(source, names))
    }

    /// Like [`PhotoSet::open`], but refuses a source without labels (training, evaluation).
    pub fn open_labelled(path: &Path) -> Result<Self, PhotosError> {
        let set = Self::open(path)?;
        if set.layout == Layout::Unlabelled {
            return Err(PhotosError::NoLabels {
                path: path.to_path_buf(),
            });
        }
        Ok(set)
    }

    /// Labels a listing. A class folder wins over a name prefix; in a labelled source, files
    /// with no label (a README beside the class folders) are left out.
    fn from_names(source: PhotoSource, mut names: Vec<String>) -> Self {
        names.sort();
        let labelled: Vec<(String, Option<(Label, Layout)>)> = names
            .into_iter()
            .map(|name| {
                let label = label_of(&name);
                (name, label)
            })
            .collect();
        let layouts: Vec<Layout> = labelled
            .iter()
            .filter_map(|(_, label)| label.map(|(_, layout)| layout))
            .collect();
        let layout = [
            Layout::PetImages,
            Layout::FolderPerClass,
            Layout::KaggleFlat,
        ]
        .into_iter()
        .max_by_key(|candidate| layouts.iter().filter(|l| *l == candidate).count())
        .filter(|_| !layouts.is_empty())
        .unwrap_or(Layout::Unlabelled);
        let photos = labelled
            .into_iter()
            .filter(|(_, label)| layout == Layout::Unlabelled || label.is_some())
            .map(|(name, label)| PhotoRef {
                name,
                label: label.map(|(label, _)| label),
            })
            .collect();
        Self {
            source,
            layout,
            photos,
        }
    }

    /// How many photos of each class (cats, dogs).
    pub fn class_counts(&self) -> (usize, usize) {
        let count = |label| {
            self.photos
                .iter()
                .filter(|photo| photo.label == Some(label))
                .count()
        };
        (count(Label::Cat), count(Label::Dog))
    }

    /// A reader for this source; each thread opens its own (a zip reader is stateful).
    pub fn reader(&self) -> Result<PhotoReader, PhotosError> {
        Ok(match &self.source {
            PhotoSource::Folder(dir) => PhotoReader::Folder(dir.clone()),
            PhotoSource::Zip(path) => PhotoReader::Zip(path.clone(), Box::new(open_zip(path)?)),
        })
    }

    /// The photo's location for messages and reports: a file path, or `archive.zip!/name`.
    pub fn display_name(&self, photo: &PhotoRef) -> String {
        match &self.source {
            PhotoSource::Folder(dir) => dir.join(&photo.name).display().to_string(),
            PhotoSource::Zip(path) => format!("{}!/{}", path.display(), photo.name),
        }
    }
}

/// Reads photo bytes from a source.
pub enum PhotoReader {
    Folder(PathBuf),
    Zip(PathBuf, Box<zip::ZipArchive<BufReader<File>>>),
}

impl PhotoReader {
    pub fn read(&mut self, photo: &PhotoRef) -> std::io::Result<Vec<u8>> {
        match self {
            PhotoReader::Folder(dir) => std::fs::read(dir.join(&photo.name)),
            PhotoReader::Zip(_, archive) => {
                let mut entry = archive
                    .by_name(&photo.name)
                    .map_err(std::io::Error::other)?;
                let mut bytes = Vec::with_capacity(entry.size().min(64 << 20) as usize);
                entry.read_to_end(&mut bytes)?;
                Ok(bytes)
            }
        }
    }
}

fn open_zip(path: &Path) -> Result<zip::ZipArchive<BufReader<File>>, PhotosError> {
    let file = File::open(path).map_err(|source| PhotosError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    zip::ZipArchive::new(BufReader::new(file)).map_err(|error| PhotosError::BadZip {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })
}

/// Every file under `dir`, as `/`-separated paths relative to the listing's root. Hidden
/// folders (our own caches, `.git`) are not photos.
fn list_folder(dir: &Path, prefix: &str, names: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = format!("{prefix}{name}");
        if entry.file_type()?.is_dir() {
            if !name.starts_with('.') {
                list_folder(&entry.path(), &format!("{relative}/"), names)?;
            }
        } else {
            names.push(relative);
        }
    }
    Ok(())
}

/// The label a path gives and the layout it suggests: its nearest class folder, else a
/// `cat.`/`dog.` file-name prefix.
pub fn label_of(name: &str) -> Option<(Label, Layout)> {
    let mut parts: Vec<&str> = name.split('/').collect();
    let file = parts.pop()?;
    let pet_images = parts
        .iter()
        .any(|part| part.eq_ignore_ascii_case("PetImages"));
    if let Some(folder) = parts.last() {
        let class = match folder.to_ascii_lowercase().as_str() {
            "cat" | "cats" => Some(Label::Cat),
            "dog" | "dogs" => Some(Label::Dog),
            _ => None,
        };
        if let Some(label) = class {
            let layout = if pet_images {
                Layout::PetImages
            } else {
                Layout::FolderPerClass
            };
            return Some((label, layout));
        }
    }
    let file = file.to_ascii_lowercase();
    if file.starts_with("cat.") {
        Some((Label::Cat, Layout::KaggleFlat))
    } else if file.starts_with("dog.") {
        Some((Label::Dog, Layout::KaggleFlat))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout_of(names: &[&str]) -> (Layout, Vec<(String, Option<Label>)>) {
        let set = PhotoSet::from_names(
            PhotoSource::Folder(PathBuf::from("x")),
            names.iter().map(|n| n.to_string()).collect(),
        );
        let photos = set.photos.into_iter().map(|p| (p.name, p.label)).collect();
        (set.layout, photos)
    }

    #[test]
    fn detects_each_layout() {
        let (layout, photos) = layout_of(&["train/cat.1.jpg", "train/dog.2.jpg", "README"]);
        assert_eq!(layout, Layout::KaggleFlat);
        assert_eq!(
            photos,
            vec![
                ("train/cat.1.jpg".into(), Some(Label::Cat)),
                ("train/dog.2.jpg".into(), Some(Label::Dog)),
            ]
        );
        let (layout, photos) = layout_of(&[
            "PetImages/Cat/1.jpg",
            "PetImages/Cat/Thumbs.db",
            "PetImages/Dog/1.jpg",
            "readme[1].txt",
        ]);
        assert_eq!(layout, Layout::PetImages);
        assert_eq!(photos.len(), 3, "Thumbs.db is listed, to be reported");
        let (layout, _) = layout_of(&["cats/a.png", "Dogs/b.webp"]);
        assert_eq!(layout, Layout::FolderPerClass);
        let (layout, photos) = layout_of(&["test1/1.jpg", "test1/2.jpg"]);
        assert_eq!(layout, Layout::Unlabelled);
        assert!(photos.iter().all(|(_, label)| label.is_none()));
    }
}
