//! The download path against a local HTTP server on 127.0.0.1: plain, interrupted and resumed,
//! corrupted (always, and once), missing, and a full `fetch` of MNIST from ../shared.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use tnml_data::checksum::sha256_hex;
use tnml_data::dataset::{Checksum, RemoteFile};
use tnml_data::download::{download_verified, fetch, NoProgress};
use tnml_data::{DataError, Dataset};

/// How the server misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Good,
    /// The first response sends half the body, then closes.
    TruncateFirst,
    /// Every response has one byte flipped.
    CorruptAlways,
    /// The first response has one byte flipped.
    CorruptFirst,
    /// A body that never ends (no length, 1 MB chunks until the client hangs up).
    Endless,
}

struct Server {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.base.trim_start_matches("http://").trim_end_matches('/'));
    }
}

fn serve(files: HashMap<String, Vec<u8>>, mode: Mode) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (log, halt) = (requests.clone(), stop.clone());
    let served = AtomicUsize::new(0);
    thread::spawn(move || {
        for stream in listener.incoming() {
            if halt.load(Ordering::SeqCst) {
                break;
            }
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() || line.is_empty() {
                continue;
            }
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_string();
            let mut range_start = None;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range_start = v.trim().trim_end_matches('-').parse::<usize>().ok();
                }
            }
            log.lock().unwrap().push(format!("{path} range={range_start:?}"));
            let Some(body) = files.get(&path) else {
                let _ = stream
                    .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            };
            let n = served.fetch_add(1, Ordering::SeqCst);
            let mut body = body.clone();
            if mode == Mode::CorruptAlways || (mode == Mode::CorruptFirst && n == 0) {
                let mid = body.len() / 2;
                body[mid] ^= 0xff;
            }
            let (status, slice) = match range_start {
                Some(s) if s < body.len() => ("206 Partial Content", &body[s..]),
                _ => ("200 OK", &body[..]),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                slice.len()
            );
            if mode == Mode::Endless {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                let chunk = vec![0u8; 1 << 20];
                for _ in 0..400 {
                    if stream.write_all(&chunk).is_err() {
                        break;
                    }
                }
                continue;
            }
            let _ = stream.write_all(head.as_bytes());
            if mode == Mode::TruncateFirst && n == 0 {
                let _ = stream.write_all(&slice[..slice.len() / 2]);
            } else {
                let _ = stream.write_all(slice);
            }
            let _ = stream.flush();
        }
    });
    Server { base, requests, stop }
}

fn payload() -> Vec<u8> {
    (0..200_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect()
}

fn remote(name: &'static str, data: &[u8]) -> RemoteFile {
    RemoteFile {
        name,
        checksum: Checksum::Sha256Raw(Box::leak(sha256_hex(data).into_boxed_str())),
    }
}

fn files(name: &str, data: &[u8]) -> HashMap<String, Vec<u8>> {
    HashMap::from([(name.to_string(), data.to_vec())])
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn plain_download_verifies_and_lands_under_its_name() {
    let data = payload();
    let server = serve(files("blob.bin", &data), Mode::Good);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("blob.bin");
    download_verified(
        &[&server.base],
        &remote("blob.bin", &data),
        &dest,
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(leftovers(tmp.path()), vec!["blob.bin"]);
}

#[test]
fn interrupted_download_resumes_with_a_range_request() {
    let data = payload();
    let server = serve(files("blob.bin", &data), Mode::TruncateFirst);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("blob.bin");
    download_verified(
        &[&server.base],
        &remote("blob.bin", &data),
        &dest,
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let log = server.requests.lock().unwrap().clone();
    assert_eq!(
        log,
        vec![
            "blob.bin range=None".to_string(),
            format!("blob.bin range=Some({})", data.len() / 2)
        ]
    );
}

#[test]
fn corrupted_download_is_discarded_and_reported() {
    let data = payload();
    let server = serve(files("blob.bin", &data), Mode::CorruptAlways);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("blob.bin");
    let file = remote("blob.bin", &data);
    let err = download_verified(&[&server.base], &file, &dest, &mut NoProgress).unwrap_err();
    match &err {
        DataError::Checksum { expected, found, .. } => {
            assert_eq!(
                Checksum::Sha256Raw(expected.as_str().to_owned().leak()),
                file.checksum
            );
            assert_ne!(expected, found);
        }
        other => panic!("expected a checksum error, got {other}"),
    }
    assert!(err.to_string().contains("checksum mismatch: expected"), "{err}");
    assert!(
        leftovers(tmp.path()).is_empty(),
        "nothing unverified may stay: {:?}",
        leftovers(tmp.path())
    );
    // one clean retry, then give up
    assert_eq!(server.requests.lock().unwrap().len(), 2);
}

#[test]
fn a_corrupted_first_copy_is_replaced_by_a_clean_retry() {
    let data = payload();
    let server = serve(files("blob.bin", &data), Mode::CorruptFirst);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("blob.bin");
    download_verified(
        &[&server.base],
        &remote("blob.bin", &data),
        &dest,
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let log = server.requests.lock().unwrap().clone();
    assert_eq!(
        log,
        vec!["blob.bin range=None", "blob.bin range=None"],
        "the retry starts from scratch"
    );
}

#[test]
fn missing_on_every_mirror_names_each_failure() {
    let dead = serve(HashMap::new(), Mode::Good);
    let data = payload();
    let good = serve(files("blob.bin", &data), Mode::Good);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("blob.bin");
    // the first mirror 404s, the second delivers
    download_verified(
        &[&dead.base, &good.base],
        &remote("blob.bin", &data),
        &dest,
        &mut NoProgress,
    )
    .unwrap();
    std::fs::remove_file(&dest).unwrap();
    let err =
        download_verified(&[&dead.base], &remote("blob.bin", &data), &dest, &mut NoProgress).unwrap_err();
    assert!(matches!(err, DataError::Download { .. }), "{err}");
    assert!(err.to_string().contains("HTTP 404"), "{err}");
}

#[test]
fn fetch_mnist_from_a_local_mirror_and_repair_a_corrupt_file() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mnist");
    let names = Dataset::Mnist
        .remote_files()
        .iter()
        .map(|f| f.name)
        .collect::<Vec<_>>();
    if !names.iter().all(|n| shared.join(n).is_file()) {
        eprintln!("../shared/data/mnist not found: MNIST fetch test skipped");
        return;
    }
    let served: HashMap<String, Vec<u8>> = names
        .iter()
        .map(|n| (n.to_string(), std::fs::read(shared.join(n)).unwrap()))
        .collect();
    let server = serve(served, Mode::Good);
    let tmp = tempfile::tempdir().unwrap();
    let report = fetch(Dataset::Mnist, tmp.path(), &[&server.base], &mut NoProgress).unwrap();
    assert_eq!(report.downloaded.len(), 4);
    let test = tnml_data::load(Dataset::Mnist, tmp.path(), tnml_data::Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
    // a second fetch finds everything verified and downloads nothing
    let again = fetch(Dataset::Mnist, tmp.path(), &[&server.base], &mut NoProgress).unwrap();
    assert_eq!((again.downloaded.len(), again.present.len()), (0, 4));
    // a corrupted file on disk is detected and fetched again
    let labels = tmp.path().join("mnist/t10k-labels-idx1-ubyte.gz");
    std::fs::write(&labels, b"garbage").unwrap();
    let repaired = fetch(Dataset::Mnist, tmp.path(), &[&server.base], &mut NoProgress).unwrap();
    assert_eq!(repaired.downloaded, vec!["t10k-labels-idx1-ubyte.gz"]);
    assert_eq!(
        tnml_data::load(Dataset::Mnist, tmp.path(), tnml_data::Split::Test)
            .unwrap()
            .len(),
        10_000
    );
    // the shipped sample has nothing to fetch
    assert!(fetch(Dataset::MnistSample, tmp.path(), &[&server.base], &mut NoProgress).is_err());
}

#[test]
fn an_endless_body_is_cut_off_and_a_planted_symlink_is_not_followed() {
    let data = payload();
    let server = serve(files("blob.bin", &data), Mode::Endless);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("blob.bin");
    let err = download_verified(
        &[&server.base],
        &remote("blob.bin", &data),
        &dest,
        &mut NoProgress,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("more than any file tnml fetches"), "{err}");
    assert!(leftovers(tmp.path()).is_empty(), "{:?}", leftovers(tmp.path()));
    // a .part planted as a symlink to a file elsewhere: refused, the target untouched
    let good = serve(files("blob.bin", &data), Mode::Good);
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, b"keep me").unwrap();
    let part = tmp.path().join("blob.bin.part");
    let _ = std::fs::remove_file(&part);
    std::os::unix::fs::symlink(&victim, &part).unwrap();
    let err = download_verified(&[&good.base], &remote("blob.bin", &data), &dest, &mut NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is a symbolic link"), "{err}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
}
