//! The progress bar a run draws on the terminal, fed by the run's own events.

use crate::node::event::{Event, EventSender};

/// Whether runs draw a progress bar on the terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TerminalProgress {
    /// When stdout is a terminal and `CI` is not set.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl TerminalProgress {
    /// Draws run `run`'s bar over `total` nodes until the run finishes, when `self` says
    /// to; the returned task ends once the bar is cleared. Subscribes only when drawing, so
    /// a run without a bar costs no event receiver.
    pub(super) fn start(
        self,
        events: &EventSender,
        run: u64,
        total: usize,
    ) -> Option<tokio::task::JoinHandle<()>> {
        use std::io::IsTerminal;
        let show = match self {
            TerminalProgress::Always => true,
            TerminalProgress::Never => false,
            TerminalProgress::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("CI").is_none()
            }
        };
        if !show {
            return None;
        }
        let mut events = events.subscribe();
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                match event {
                    Event::NodeStarted { run: r, name, .. } if r == run => {
                        bar.set_message(format!("running {name}"))
                    }
                    Event::NodeProgress {
                        run: r,
                        name,
                        message,
                        ..
                    } if r == run => bar.set_message(format!("{name}: {message}")),
                    Event::NodeCached { run: r, .. }
                    | Event::NodeFinished { run: r, .. }
                    | Event::NodeFailed { run: r, .. }
                    | Event::NodeSkipped { run: r, .. }
                        if r == run =>
                    {
                        bar.inc(1)
                    }
                    Event::RunFinished { run: r, .. } if r == run => break,
                    _ => {}
                }
            }
            bar.finish_and_clear();
        }))
    }
}
