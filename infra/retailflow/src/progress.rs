//! Progress of the long runs (`chaos`, the benchmarks) on a terminal: a
//! bar on stderr that says how far a run of minutes has got. Nothing is
//! drawn when stderr is not a terminal (a file, a pipe, CI), so reports
//! stay clean there.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar for `total` units of `what` (e.g. "orders"), drawn at most ten
/// times a second.
pub fn bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(10));
    // A fixed template, checked by the test that draws it.
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{{elapsed_precise}} [{{wide_bar}}] {{pos}}/{{len}} {what} ({{percent}}%) {{msg}}"
    )) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
