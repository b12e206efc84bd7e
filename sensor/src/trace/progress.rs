//! A one-line progress bar on stderr, drawn only when stderr is a terminal.

use std::{
    io::{IsTerminal as _, Write as _},
    time::{Duration, Instant},
};

const REDRAW: Duration = Duration::from_millis(150);
const WIDTH: u64 = 30;

#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    total: u64,
    /// 1 or 2.
    pass: u8,
    /// Bytes of files already finished in this pass.
    done: u64,
    last: Option<Instant>,
}

impl Progress {
    pub fn new(total: u64) -> Self {
        Self { enabled: std::io::stderr().is_terminal() && total > 0, total, pass: 1, done: 0, last: None }
    }

    /// Position within the current file.
    pub fn at(&mut self, offset: u64) {
        if !self.enabled || self.last.is_some_and(|l| l.elapsed() < REDRAW) {
            return;
        }
        self.last = Some(Instant::now());
        let pos = (self.done + offset).min(self.total);
        let filled = pos * WIDTH / self.total;
        let bar: String = (0..WIDTH).map(|i| if i < filled { '#' } else { '-' }).collect();
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let mut e = std::io::stderr().lock();
        let _ = write!(
            e,
            "\rsensor trace: pass {}/2 [{bar}] {:5.1}%  {:.1}/{:.1} MiB ",
            self.pass,
            pos as f64 * 100.0 / self.total as f64,
            mib(pos),
            mib(self.total)
        );
        let _ = e.flush();
    }

    pub fn file_done(&mut self, len: u64) {
        self.done += len;
    }

    /// Starts the second pass.
    pub fn next_pass(&mut self) {
        self.pass = 2;
        self.done = 0;
    }

    /// Clears the line.
    pub fn finish(&mut self) {
        if self.enabled && self.last.is_some() {
            let _ = write!(std::io::stderr().lock(), "\r{:80}\r", "");
        }
        self.enabled = false;
    }
}
