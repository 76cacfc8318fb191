//! `-v` progress: an indicatif bar on a terminal, plain lines (one per 10 %)
//! when stderr is a log or a serial console, nothing without `-v`.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};
use liminix_flash::{NoProgress, Progress, Stage};

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Hashing => "hashing image",
        Stage::Comparing => "comparing",
        Stage::Writing => "writing",
        Stage::Verifying => "reading back",
    }
}

/// The reporter for `verbose`: a bar, lines, or nothing.
pub fn reporter(verbose: bool) -> Box<dyn Progress> {
    match (verbose, std::io::stderr().is_terminal()) {
        (false, _) => Box::new(NoProgress),
        (true, true) => Box::new(Bar { bar: None }),
        (true, false) => Box::new(Lines::new(Box::new(std::io::stderr()))),
    }
}

struct Bar {
    bar: Option<ProgressBar>,
}

impl Progress for Bar {
    fn begin(&mut self, stage: Stage, total: u64) {
        if let Some(b) = self.bar.take() {
            b.finish();
        }
        let bar = ProgressBar::new(total);
        let style = ProgressStyle::with_template(
            "{msg:22} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .expect("static template")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(stage_name(stage));
        self.bar = Some(bar);
    }

    fn advance(&mut self, done: u64) {
        if let Some(b) = &self.bar {
            b.set_position(done);
        }
    }

    fn note(&mut self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish();
        }
    }
}

/// Line-per-step progress for non-terminals.
pub struct Lines {
    out: Box<dyn Write>,
    stage: &'static str,
    total: u64,
    next_pct: u64,
}

impl Lines {
    /// Progress lines written to `out`.
    pub fn new(out: Box<dyn Write>) -> Self {
        Lines {
            out,
            stage: "",
            total: 0,
            next_pct: 0,
        }
    }
}

impl Progress for Lines {
    fn begin(&mut self, stage: Stage, total: u64) {
        self.stage = stage_name(stage);
        self.total = total;
        self.next_pct = 10;
        let _ = writeln!(self.out, "{}: {total} bytes", self.stage);
    }

    fn advance(&mut self, done: u64) {
        let pct = (done * 100).checked_div(self.total).unwrap_or(100);
        if pct >= self.next_pct {
            // Whole tens, so logs (and tests waiting for a line) see a steady 10, 20, … 100.
            let tens = pct / 10 * 10;
            let _ = writeln!(self.out, "{}: {tens}% ({done}/{})", self.stage, self.total);
            self.next_pct = tens + 10;
        }
    }

    fn note(&mut self, msg: &str) {
        let _ = writeln!(self.out, "{msg}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_every_ten_percent() {
        let buf = Shared::default();
        let mut p = Lines::new(Box::new(buf.clone()));
        p.begin(Stage::Writing, 1000);
        for d in (0..=1000).step_by(50) {
            p.advance(d);
        }
        p.note("bad block at 0x60000 skipped");
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let pct_lines = text.lines().filter(|l| l.contains("%")).count();
        assert_eq!(pct_lines, 10, "{text}");
        assert!(text.contains("writing: 100% (1000/1000)"), "{text}");
        assert!(text.ends_with("skipped\n"));
    }
}
