//! The `download` command's library code against a real HTTP server on 127.0.0.1 (tiny_http in
//! a thread) serving a real zip of the fixture photos: full download, a transfer cut off and
//! resumed with a `Range` request, a server without range support, checksum and size
//! mismatches, and extraction, zip-slip included. (Over 400 lines: the fake server's
//! misbehaviours and a test for each, kept together.)

use std::io::{Cursor, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::common::{Scratch, fixture};
use catdog_trainer::download::{Download, DownloadError, download, partial_path};
use catdog_trainer::extract::{extract_zip, partial_extract_path};
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("download-{name}"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A zip of `(name, bytes)` entries, deflated like the real archive.
fn build_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// The PetImages layout in miniature.
fn petimages_zip() -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    writer.add_directory("PetImages/", options).unwrap();
    for (name, fixture_name) in [
        ("PetImages/Cat/1.jpg", "cat.jpg"),
        ("PetImages/Dog/1.jpg", "dog.jpg"),
    ] {
        writer.start_file(name, options).unwrap();
        writer.write_all(&fixture(fixture_name)).unwrap();
    }
    writer.start_file("readme.txt", options).unwrap();
    writer.write_all(b"cats and dogs\n").unwrap();
    writer.finish().unwrap().into_inner()
}

/// How the test server answers.
#[derive(Clone, Copy)]
struct Behaviour {
    /// Honour `Range: bytes=N-` with 206/416; otherwise always 200 with the whole file.
    ranges: bool,
    /// Cut the first response off after this many body bytes (then the connection closes).
    cut_first_at: Option<usize>,
    /// Send `Content-Length`; otherwise the body is chunked, with no length at all.
    content_length: bool,
}

const FULL_SERVICE: Behaviour = Behaviour {
    ranges: true,
    cut_first_at: None,
    content_length: true,
};

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    range: Option<String>,
    connection: Option<String>,
    status: u16,
}

struct TestServer {
    url: String,
    server: Arc<tiny_http::Server>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    fn start(body: Vec<u8>, behaviour: Behaviour) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let server = Arc::clone(&server);
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || serve(&server, &body, behaviour, &seen))
        };
        Self {
            url: format!("http://127.0.0.1:{port}/kagglecatsanddogs_5340.zip"),
            server,
            seen,
            thread: Some(thread),
        }
    }

    /// The requests answered so far. Each is recorded before its answer is sent, so once a
    /// `download` call has returned, its requests are all here.
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap()
}

fn serve(server: &tiny_http::Server, body: &[u8], behaviour: Behaviour, seen: &Mutex<Vec<Seen>>) {
    for (index, request) in server.incoming_requests().enumerate() {
        if request.url() != "/kagglecatsanddogs_5340.zip" {
            seen.lock().unwrap().push(Seen {
                range: None,
                connection: None,
                status: 404,
            });
            let _ = request.respond(tiny_http::Response::empty(404));
            continue;
        }
        let find = |name: &'static str| {
            request
                .headers()
                .iter()
                .find(|header| header.field.equiv(name))
                .map(|header| header.value.as_str().to_string())
        };
        let (range, connection) = (find("Range"), find("Connection"));
        let start = range
            .as_deref()
            .filter(|_| behaviour.ranges)
            .and_then(|value| value.strip_prefix("bytes="))
            .and_then(|value| value.strip_suffix('-'))
            .map(|start| start.parse::<usize>().unwrap());
        let len = body.len();
        let (status, mut headers, slice) = match start {
            Some(start) if start >= len => (
                416,
                vec![header("Content-Range", &format!("bytes */{len}"))],
                &body[..0],
            ),
            Some(start) => (
                206,
                vec![header(
                    "Content-Range",
                    &format!("bytes {start}-{}/{len}", len - 1),
                )],
                &body[start..],
            ),
            None => (200, Vec::new(), body),
        };
        headers.push(header("Content-Type", "application/zip"));
        if behaviour.ranges {
            headers.push(header("Accept-Ranges", "bytes"));
        }
        seen.lock().unwrap().push(Seen {
            range,
            connection,
            status,
        });
        // The announced length is the whole slice; a cut response just sends fewer bytes.
        let sent = match behaviour.cut_first_at {
            Some(cut) if index == 0 => &slice[..cut],
            _ => slice,
        };
        let length = behaviour.content_length.then_some(slice.len());
        let response = tiny_http::Response::new(
            tiny_http::StatusCode(status),
            headers,
            Cursor::new(sent.to_vec()),
            length,
            None,
        )
        // Always `Content-Length` when there is one (tiny_http chunks bodies over 32 KiB).
        .with_chunked_threshold(usize::MAX);
        // The client sends `Connection: close`, so tiny_http closes the socket once this
        // response is out: a cut response really ends in a closed connection.
        let _ = request.respond(response);
    }
}

fn spec(url: &str, dest: &Path, body: &[u8]) -> Download {
    Download {
        url: url.to_string(),
        dest: dest.to_path_buf(),
        expected_size: Some(body.len() as u64),
        sha256: Some(sha256_hex(body)),
    }
}

#[test]
fn full_download_is_verified_and_extracts_the_photos() {
    let dir = scratch("full");
    let zip = petimages_zip();
    let server = TestServer::start(zip.clone(), FULL_SERVICE);
    let dest = dir.join("data/kagglecatsanddogs_5340.zip");

    let downloaded = download(&spec(&server.url, &dest, &zip)).unwrap();
    assert_eq!(downloaded.path, dest);
    assert_eq!(downloaded.bytes, zip.len() as u64);
    assert_eq!(downloaded.sha256, sha256_hex(&zip));
    assert_eq!(downloaded.resumed_from, 0);
    assert!(!downloaded.already_present);
    assert_eq!(std::fs::read(&dest).unwrap(), zip);
    assert!(!partial_path(&dest).exists());

    // A second run verifies the file and asks the server nothing.
    let again = download(&spec(&server.url, &dest, &zip)).unwrap();
    assert!(again.already_present);
    assert_eq!(again.sha256, downloaded.sha256);
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].range, None);

    let into = dir.join("data/unpacked");
    let extracted = extract_zip(&dest, &into).unwrap();
    assert_eq!(extracted.dir, into);
    assert_eq!(extracted.files, 3);
    assert!(!extracted.already_extracted);
    assert_eq!(
        std::fs::read(into.join("PetImages/Cat/1.jpg")).unwrap(),
        fixture("cat.jpg")
    );
    assert_eq!(
        std::fs::read(into.join("PetImages/Dog/1.jpg")).unwrap(),
        fixture("dog.jpg")
    );
    assert_eq!(
        std::fs::read(into.join("readme.txt")).unwrap(),
        b"cats and dogs\n"
    );
    let total = fixture("cat.jpg").len() + fixture("dog.jpg").len() + b"cats and dogs\n".len();
    assert_eq!(extracted.bytes, total as u64);
    assert!(!partial_extract_path(&into).exists());

    // Already extracted: left as it is.
    let again = extract_zip(&dest, &into).unwrap();
    assert!(again.already_extracted);
    assert_eq!(
        (again.files, again.bytes),
        (extracted.files, extracted.bytes)
    );
}

#[test]
fn interrupted_transfer_fails_then_resumes_with_a_range_request() {
    let dir = scratch("resume");
    let zip = petimages_zip();
    let cut = zip.len() / 2;
    let server = TestServer::start(
        zip.clone(),
        Behaviour {
            cut_first_at: Some(cut),
            ..FULL_SERVICE
        },
    );
    let dest = dir.join("kagglecatsanddogs_5340.zip");
    let partial = partial_path(&dest);

    let error = download(&spec(&server.url, &dest, &zip)).unwrap_err();
    let DownloadError::Interrupted {
        url,
        partial: kept,
        received,
        ..
    } = &error
    else {
        panic!("expected an interrupted transfer, got {error}");
    };
    assert_eq!(url, &server.url);
    assert_eq!(kept, &partial);
    assert!(*received > 0 && (*received as usize) <= cut, "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&server.url) && message.contains("resumes"),
        "{message}"
    );
    assert!(!dest.exists(), "a half file must never appear at dest");
    let kept_bytes = std::fs::read(&partial).unwrap();
    assert_eq!(kept_bytes.len() as u64, *received);
    assert_eq!(kept_bytes, zip[..kept_bytes.len()]);

    let downloaded = download(&spec(&server.url, &dest, &zip)).unwrap();
    assert_eq!(downloaded.resumed_from, *received);
    assert!(downloaded.resumed_from > 0);
    assert_eq!(downloaded.sha256, sha256_hex(&zip));
    assert_eq!(std::fs::read(&dest).unwrap(), zip);
    assert!(!partial.exists());

    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range, None);
    // Without it tiny_http keeps the cut connection open and only the client's stall timeout
    // (a minute) ends the first call.
    assert_eq!(seen[0].connection.as_deref(), Some("close"), "{seen:?}");
    assert_eq!(
        seen[1].range.as_deref(),
        Some(format!("bytes={received}-").as_str())
    );
    assert_eq!(seen[1].status, 206);
}

#[test]
fn chunked_body_that_ends_early_is_caught_by_the_expected_size() {
    let dir = scratch("chunked");
    let zip = petimages_zip();
    let cut = zip.len() / 3;
    let server = TestServer::start(
        zip.clone(),
        Behaviour {
            cut_first_at: Some(cut),
            content_length: false,
            ..FULL_SERVICE
        },
    );
    let dest = dir.join("archive.zip");

    // No length on the wire: the body may even end "cleanly"; the expected size says otherwise.
    let error = download(&spec(&server.url, &dest, &zip)).unwrap_err();
    let DownloadError::Interrupted { received, .. } = error else {
        panic!("expected an interrupted transfer, got {error}");
    };
    assert!(received > 0 && received as usize <= cut);

    let downloaded = download(&spec(&server.url, &dest, &zip)).unwrap();
    assert_eq!(downloaded.resumed_from, received);
    assert_eq!(std::fs::read(&dest).unwrap(), zip);
}

#[test]
fn server_without_range_support_restarts_from_zero() {
    let dir = scratch("no-ranges");
    let zip = petimages_zip();
    let server = TestServer::start(
        zip.clone(),
        Behaviour {
            ranges: false,
            cut_first_at: Some(zip.len() / 2),
            content_length: true,
        },
    );
    let dest = dir.join("kagglecatsanddogs_5340.zip");

    assert!(matches!(
        download(&spec(&server.url, &dest, &zip)),
        Err(DownloadError::Interrupted { .. })
    ));
    assert!(partial_path(&dest).exists());

    let downloaded = download(&spec(&server.url, &dest, &zip)).unwrap();
    assert_eq!(downloaded.resumed_from, 0, "a 200 answer restarts the file");
    assert_eq!(downloaded.sha256, sha256_hex(&zip));
    assert_eq!(std::fs::read(&dest).unwrap(), zip);

    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[1].range.is_some(), "the client asked for the rest");
    assert_eq!(seen[1].status, 200);
}

#[test]
fn complete_partial_is_verified_after_a_416() {
    let dir = scratch("416");
    let zip = petimages_zip();
    let server = TestServer::start(zip.clone(), FULL_SERVICE);
    let dest = dir.join("kagglecatsanddogs_5340.zip");
    // Killed after the last byte but before the rename.
    std::fs::write(partial_path(&dest), &zip).unwrap();

    let downloaded = download(&spec(&server.url, &dest, &zip)).unwrap();
    assert_eq!(downloaded.resumed_from, zip.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), zip);
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].status, 416);
}

#[test]
fn wrong_checksum_names_the_file_and_keeps_nothing() {
    let dir = scratch("checksum");
    let zip = petimages_zip();
    let server = TestServer::start(zip.clone(), FULL_SERVICE);
    let dest = dir.join("kagglecatsanddogs_5340.zip");
    let wrong = "0".repeat(64);
    let request = Download {
        sha256: Some(wrong.clone()),
        ..spec(&server.url, &dest, &zip)
    };

    let error = download(&request).unwrap_err();
    let DownloadError::ChecksumMismatch {
        path,
        expected,
        actual,
    } = &error
    else {
        panic!("expected a checksum mismatch, got {error}");
    };
    assert_eq!(path, &dest);
    assert_eq!(expected, &wrong);
    assert_eq!(actual, &sha256_hex(&zip));
    let message = error.to_string();
    for part in [dest.display().to_string(), wrong, sha256_hex(&zip)] {
        assert!(message.contains(&part), "{message} lacks {part}");
    }
    assert!(!dest.exists());
    assert!(
        !partial_path(&dest).exists(),
        "a bad download must not be resumed"
    );
}

#[test]
fn wrong_size_is_refused_before_the_transfer() {
    let dir = scratch("size");
    let zip = petimages_zip();
    let server = TestServer::start(zip.clone(), FULL_SERVICE);
    let dest = dir.join("kagglecatsanddogs_5340.zip");
    let request = Download {
        expected_size: Some(zip.len() as u64 + 1),
        ..spec(&server.url, &dest, &zip)
    };

    let error = download(&request).unwrap_err();
    assert!(
        matches!(error, DownloadError::ServerSize { expected, actual, .. }
            if expected == zip.len() as u64 + 1 && actual == zip.len() as u64),
        "{error}"
    );
    assert!(error.to_string().contains(&server.url));
    assert!(!dest.exists());
}

#[test]
fn existing_file_that_fails_the_check_is_reported_not_used() {
    let dir = scratch("existing");
    let zip = petimages_zip();
    let dest = dir.join("kagglecatsanddogs_5340.zip");
    std::fs::write(&dest, b"not the archive").unwrap();
    // No server: an existing file is judged without the network.
    let request = spec("http://127.0.0.1:9/unused.zip", &dest, &zip);
    let error = download(&request).unwrap_err();
    assert!(
        matches!(error, DownloadError::ExistingMismatch { what: "size", .. }),
        "{error}"
    );
    assert!(error.to_string().contains(&dest.display().to_string()));

    // The right size but other bytes: the checksum catches it; the file is left for the user.
    std::fs::write(&dest, vec![0; zip.len()]).unwrap();
    let error = download(&request).unwrap_err();
    assert!(
        matches!(
            error,
            DownloadError::ExistingMismatch { what: "sha256", .. }
        ),
        "{error}"
    );
    assert!(error.to_string().contains(&sha256_hex(&zip)), "{error}");
    assert_eq!(std::fs::read(&dest).unwrap().len(), zip.len());
}

#[test]
fn http_error_status_names_the_url() {
    let dir = scratch("status");
    let server = TestServer::start(petimages_zip(), FULL_SERVICE);
    let missing = format!("{}-missing", server.url);
    let dest = dir.join("x.zip");
    let error = download(&Download {
        url: missing.clone(),
        dest: dest.clone(),
        expected_size: None,
        sha256: None,
    })
    .unwrap_err();
    assert!(
        matches!(error, DownloadError::HttpStatus { status: 404, .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&missing) && message.contains("404"),
        "{message}"
    );
    assert!(!dest.exists());
}

#[test]
fn zip_slip_entry_is_refused_and_nothing_is_written() {
    let dir = scratch("zip-slip");
    let zip_path = dir.join("evil.zip");
    std::fs::write(
        &zip_path,
        build_zip(&[("PetImages/Cat/1.jpg", b"cat"), ("../evil.txt", b"gotcha")]),
    )
    .unwrap();
    let into = dir.join("out/unpacked");

    let error = extract_zip(&zip_path, &into).unwrap_err();
    let DownloadError::UnsafeEntry { zip, name, .. } = &error else {
        panic!("expected the entry to be refused, got {error}");
    };
    assert_eq!(zip, &zip_path);
    assert_eq!(name, "../evil.txt");
    assert!(error.to_string().contains("../evil.txt"));
    for path in [
        dir.join("out/evil.txt"),
        dir.join("evil.txt"),
        into.clone(),
        partial_extract_path(&into),
    ] {
        assert!(!path.exists(), "{} was written", path.display());
    }
}

#[test]
fn leftovers_of_an_interrupted_extraction_are_cleared() {
    let dir = scratch("extract-again");
    let zip_path = dir.join("photos.zip");
    std::fs::write(&zip_path, build_zip(&[("PetImages/Dog/1.jpg", b"dog")])).unwrap();
    let into = dir.join("unpacked");
    let staging = partial_extract_path(&into);
    std::fs::create_dir_all(staging.join("PetImages/Cat")).unwrap();
    std::fs::write(staging.join("PetImages/Cat/half.jpg"), b"ha").unwrap();

    let extracted = extract_zip(&zip_path, &into).unwrap();
    assert_eq!((extracted.files, extracted.bytes), (1, 3));
    assert_eq!(
        std::fs::read(into.join("PetImages/Dog/1.jpg")).unwrap(),
        b"dog"
    );
    assert!(!into.join("PetImages/Cat").exists());
    assert!(!staging.exists());
}

#[test]
fn damaged_zip_is_reported_with_its_path() {
    let dir = scratch("bad-zip");
    let zip_path = dir.join("broken.zip");
    std::fs::write(&zip_path, b"this is not a zip archive").unwrap();
    let into = dir.join("unpacked");
    let error = extract_zip(&zip_path, &into).unwrap_err();
    assert!(matches!(error, DownloadError::BadZip { .. }), "{error}");
    assert!(error.to_string().contains(&zip_path.display().to_string()));
    assert!(!into.exists());
}
