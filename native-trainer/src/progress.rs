//! Progress for long work: a bar with rate and ETA (of photos, or of bytes) on a terminal,
//! and a line every half minute where there is none (a log file, CI).

use indicatif::{ProgressBar, ProgressStyle};

/// Where there is no terminal for a bar (a log file, CI), a line with its figures every half
/// minute instead, so long work still shows its progress, rate and ETA.
pub fn log_when_hidden(bar: &ProgressBar, last: &mut std::time::Instant) {
    if bar.is_hidden() && last.elapsed().as_secs() >= 30 {
        eprintln!(
            "{}: {}/{}, {:.1}/s, ETA {:.0} s {}",
            bar.message(),
            bar.position(),
            bar.length().unwrap_or(0),
            bar.per_sec(),
            bar.eta().as_secs_f64(),
            bar.prefix()
        );
        *last = std::time::Instant::now();
    }
}

/// A progress bar with rate and ETA.
pub fn progress_bar(len: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>16} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {prefix}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

/// A progress bar in bytes (a download, a checksum), or a spinner when the total is unknown.
pub(crate) fn bytes_bar(total: Option<u64>, message: &str) -> ProgressBar {
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::new(total),
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        ),
        None => (
            ProgressBar::no_length(),
            "{msg} {spinner} {bytes} {bytes_per_sec}",
        ),
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}
