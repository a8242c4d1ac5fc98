//! Downloads with resume, checksum verification and clean retry.
//!
//! A file is fetched into `<name>.part` next to its destination. An interrupted transfer keeps
//! the part file and the next attempt asks for the rest with an HTTP `Range` request (a server
//! that ignores it sends the whole file, which replaces the part). The complete file is verified
//! ([`Checksum`]) before it is renamed into place; a mismatch deletes it and starts once more from
//! scratch. Each mirror is tried in turn. Nothing unverified ever sits under the final name.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::read::GzDecoder;

use crate::checksum::{md5_hex, sha256_hex};
use crate::dataset::{Checksum, Dataset, RemoteFile};
use crate::error::{io_err, DataError, Result};

/// Receives download progress; the CLI draws a progress bar, libraries stay silent.
pub trait Progress {
    /// A transfer of `file` starts; `total` bytes if the server said, `already` bytes on disk.
    fn start(&mut self, file: &str, total: Option<u64>, already: u64);
    /// `bytes` more arrived.
    fn advance(&mut self, bytes: u64);
    /// The transfer ended (successfully or not).
    fn finish(&mut self);
    /// A note for the user (retry, skip, ...).
    fn note(&mut self, message: &str);
}

/// Ignores all progress.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _: &str, _: Option<u64>, _: u64) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
    fn note(&mut self, _: &str) {}
}

/// Transfer attempts per mirror before moving to the next (each resumes the last).
const ATTEMPTS_PER_MIRROR: usize = 3;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Verifies a complete file. Returns `Ok(None)` if it matches, `Ok(Some(found))` otherwise.
pub fn verify(path: &Path, checksum: Checksum) -> Result<Option<String>> {
    let raw = fs::read(path).map_err(io_err(path))?;
    let (expected, found) = match checksum {
        Checksum::Md5Archive(e) => (e, md5_hex(&raw)),
        Checksum::Sha256Raw(e) => {
            let content = if raw.starts_with(&[0x1f, 0x8b]) {
                let mut out = Vec::with_capacity(raw.len() * 6);
                match GzDecoder::new(&raw[..]).read_to_end(&mut out) {
                    Ok(_) => out,
                    Err(_) => return Ok(Some("(not a complete gzip stream)".into())),
                }
            } else {
                raw
            };
            (e, sha256_hex(&content))
        }
    };
    Ok(if found == expected { None } else { Some(found) })
}

fn algorithm(c: Checksum) -> &'static str {
    match c {
        Checksum::Sha256Raw(_) => "SHA-256 of the uncompressed data",
        Checksum::Md5Archive(_) => "MD5 of the archive",
    }
}

fn expected_digest(c: Checksum) -> &'static str {
    match c {
        Checksum::Sha256Raw(e) | Checksum::Md5Archive(e) => e,
    }
}

/// The most bytes one download may bring (CIFAR-10's archive, the largest, is 170 MB): a mirror
/// that sends an endless body is cut off here.
pub const MAX_DOWNLOAD: u64 = 256 << 20;

/// Why one HTTP transfer failed (retried, then reported per mirror in [`DataError::Download`]).
#[derive(Debug, thiserror::Error)]
enum TransferError {
    /// The part file is a symbolic link (planted in a shared data directory): never followed.
    #[error("{} is a symbolic link: remove it, tnml writes only regular files", .0.display())]
    SymlinkPart(PathBuf),
    /// The request failed before a status arrived (DNS, TLS, refused connection, ...).
    #[error("{0}")]
    Request(#[from] ureq::Error),
    /// A status other than 200, 206 or 416.
    #[error("HTTP {status} from {url}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The URL.
        url: String,
    },
    /// The server sent more than any file tnml fetches.
    #[error("{url} sent more than {MAX_DOWNLOAD} bytes, more than any file tnml fetches: stopped")]
    TooLong {
        /// The URL.
        url: String,
    },
    /// The body broke off.
    #[error("transfer from {url} broke off: {source}")]
    BrokeOff {
        /// The URL.
        url: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing the part file failed.
    #[error("{}: {source}", part.display())]
    Write {
        /// The part file.
        part: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// One HTTP transfer into `part`, resuming from its current length.
fn transfer(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    progress: &mut dyn Progress,
    name: &str,
) -> std::result::Result<(), TransferError> {
    // a part file planted as a symlink (in a shared data directory) is never followed
    if fs::symlink_metadata(part).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(TransferError::SymlinkPart(part.to_path_buf()));
    }
    let write_err = |source| TransferError::Write {
        part: part.to_path_buf(),
        source,
    };
    let already = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut req = agent.get(url);
    if already > 0 {
        req = req.header("Range", format!("bytes={already}-"));
    }
    let resp = req.call()?;
    let status = resp.status().as_u16();
    let length: Option<u64> = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok());
    let (mut file, start) = match status {
        206 => (
            OpenOptions::new().append(true).open(part).map_err(write_err)?,
            already,
        ),
        200 => {
            // a fresh start: the old part (if any) goes, the new one is created new
            let _ = fs::remove_file(part);
            let f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(part)
                .map_err(write_err)?;
            (f, 0)
        }
        416 if already > 0 => {
            // nothing left to send: the part file is complete (or wrong; the checksum decides)
            return Ok(());
        }
        status => {
            return Err(TransferError::Status {
                status,
                url: url.to_string(),
            })
        }
    };
    progress.start(name, length.map(|l| l + start), start);
    let mut reader = resp.into_body().into_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = start;
    let result = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) if total + n as u64 > MAX_DOWNLOAD => {
                let _ = fs::remove_file(part); // nothing worth resuming
                break Err(TransferError::TooLong { url: url.to_string() });
            }
            Ok(n) => {
                total += n as u64;
                if let Err(e) = file.write_all(&buf[..n]) {
                    break Err(write_err(e));
                }
                progress.advance(n as u64);
            }
            Err(source) => {
                break Err(TransferError::BrokeOff {
                    url: url.to_string(),
                    source,
                })
            }
        }
    };
    progress.finish();
    result?;
    file.sync_all().map_err(write_err)
}

/// Downloads `file` from the first mirror that delivers a verified copy into `dest`.
///
/// # Errors
/// [`DataError::Checksum`] if every copy failed verification, [`DataError::Download`] if no
/// mirror delivered a complete file.
pub fn download_verified(
    mirrors: &[&str],
    file: &RemoteFile,
    dest: &Path,
    progress: &mut dyn Progress,
) -> Result<()> {
    let part = PathBuf::from(format!("{}.part", dest.display()));
    let agent = agent();
    let mut failures = Vec::new();
    let mut mismatch = None;
    for base in mirrors {
        let url = format!("{base}{}", file.name);
        let mut clean_retry_left = true;
        let mut attempt = 0;
        while attempt < ATTEMPTS_PER_MIRROR {
            attempt += 1;
            if let Err(e) = transfer(&agent, &url, &part, progress, file.name) {
                let e = format!("{url}: {e}");
                if attempt < ATTEMPTS_PER_MIRROR {
                    progress.note(&format!("{e}; retrying"));
                }
                if failures.last() != Some(&e) {
                    failures.push(e);
                }
                continue;
            }
            match verify(&part, file.checksum)? {
                None => {
                    fs::rename(&part, dest).map_err(io_err(dest))?;
                    return Ok(());
                }
                Some(found) => {
                    let _ = fs::remove_file(&part);
                    progress.note(&format!(
                        "{}: checksum mismatch (found {found}), download discarded",
                        file.name
                    ));
                    mismatch = Some(found);
                    if !clean_retry_left {
                        break;
                    }
                    clean_retry_left = false;
                    attempt = ATTEMPTS_PER_MIRROR - 1; // exactly one clean retry
                }
            }
        }
    }
    if let Some(found) = mismatch {
        return Err(DataError::Checksum {
            file: dest.to_path_buf(),
            algorithm: algorithm(file.checksum),
            expected: expected_digest(file.checksum).to_string(),
            found,
        });
    }
    Err(DataError::Download {
        file: file.name.to_string(),
        reason: failures.join("; "),
    })
}

/// What `fetch` did with each file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReport {
    /// Where the dataset now is.
    pub dir: PathBuf,
    /// Files downloaded now.
    pub downloaded: Vec<String>,
    /// Files already present and verified.
    pub present: Vec<String>,
}

/// Makes sure `dataset` is in `root/<subdir>`: verifies what is there, downloads what is missing
/// or corrupt (from `mirrors`, normally [`Dataset::mirrors`]), and unpacks CIFAR-10's archive.
///
/// # Errors
/// The shipped sample cannot be fetched; download, checksum and I/O errors.
pub fn fetch(
    dataset: Dataset,
    root: &Path,
    mirrors: &[&str],
    progress: &mut dyn Progress,
) -> Result<FetchReport> {
    if dataset.remote_files().is_empty() {
        return Err(DataError::NothingToFetch {
            dataset: dataset.display_name(),
            subdir: dataset.subdir(),
        });
    }
    let dir = if dataset == Dataset::Cifar10 {
        root.to_path_buf()
    } else {
        root.join(dataset.subdir())
    };
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let mut report = FetchReport {
        dir: root.join(dataset.subdir()),
        downloaded: vec![],
        present: vec![],
    };
    for file in dataset.remote_files() {
        let dest = dir.join(file.name);
        if dest.is_file() && verify(&dest, file.checksum)?.is_none() {
            report.present.push(file.name.to_string());
            continue;
        }
        if dest.is_file() {
            progress.note(&format!("{} is corrupt; downloading it again", dest.display()));
            fs::remove_file(&dest).map_err(io_err(&dest))?;
        }
        download_verified(mirrors, file, &dest, progress)?;
        report.downloaded.push(file.name.to_string());
    }
    if dataset == Dataset::Cifar10 {
        let archive = dir.join(dataset.remote_files()[0].name);
        unpack_cifar(&archive, root)?;
    }
    Ok(report)
}

/// Unpacks the `.bin` batches of the CIFAR-10 binary archive into `root/cifar-10-batches-bin`.
fn unpack_cifar(archive: &Path, root: &Path) -> Result<()> {
    let out = root.join(Dataset::Cifar10.subdir());
    fs::create_dir_all(&out).map_err(io_err(&out))?;
    let f = File::open(archive).map_err(io_err(archive))?;
    let mut tar = tar::Archive::new(GzDecoder::new(f));
    for entry in tar.entries().map_err(io_err(archive))? {
        let mut entry = entry.map_err(io_err(archive))?;
        let path = entry.path().map_err(io_err(archive))?.into_owned();
        // only plain file names we expect, never a path that could climb out of `out`
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if !(name.ends_with(".bin") || name.ends_with(".txt")) || name.contains("..") {
            continue;
        }
        let dest = out.join(&name);
        let tmp = out.join(format!(".{name}.tmp-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let mut w = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        // a CIFAR batch is 30 MB; an entry claiming more is not one
        let copied = std::io::copy(&mut (&mut entry).take(MAX_DOWNLOAD), &mut w).map_err(io_err(archive));
        if copied.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        copied?;
        fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
    }
    Ok(())
}
