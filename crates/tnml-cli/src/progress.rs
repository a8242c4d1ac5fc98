//! Progress bars (indicatif) behind the libraries' silent progress interfaces.

use indicatif::{ProgressBar, ProgressStyle};
use tnml_data::download::Progress;

/// A byte-count progress bar for downloads, drawn on stderr.
#[derive(Default)]
pub struct DownloadBar {
    bar: Option<ProgressBar>,
}

impl Progress for DownloadBar {
    fn start(&mut self, file: &str, total: Option<u64>, already: u64) {
        let bar = match total {
            Some(t) => ProgressBar::new(t).with_style(
                ProgressStyle::with_template(
                    "{msg:32} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner(),
        };
        bar.set_message(file.to_string());
        bar.set_position(already);
        self.bar = Some(bar);
    }
    fn advance(&mut self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish();
        }
    }
    fn note(&mut self, message: &str) {
        match &self.bar {
            Some(b) => b.println(message),
            None => eprintln!("{message}"),
        }
    }
}

/// The step bar of a training loop (steps of a sweep, batches of an epoch): drawn by rank 0 of a
/// distributed run only, hidden on the other ranks.
pub fn step_bar(cluster: &crate::cluster::Cluster) -> ProgressBar {
    if !cluster.is_root() {
        return ProgressBar::hidden();
    }
    ProgressBar::new(1).with_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    )
}
