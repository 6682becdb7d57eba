//! Human or JSON output. With `--json` every command prints exactly one JSON object.

use std::process::ExitCode;

use serde_json::{Value, json};

pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Prints the result of a command: `human` as text, or `data` as JSON.
    pub fn done(&self, human: impl std::fmt::Display, data: Value) {
        if self.json {
            println!("{data}");
        } else {
            println!("{human}");
        }
    }

    /// Prints like [`Output::done`], then exits 1: what was printed says what failed, so no
    /// second message follows.
    pub fn done_failing(&self, human: impl std::fmt::Display, data: Value) -> ! {
        self.done(human, data);
        exit(1)
    }

    /// One-line reason, non-zero exit.
    pub fn fail(&self, error: &anyhow::Error) -> ExitCode {
        let reason = format!("{error:#}");
        if self.json {
            println!("{}", json!({ "ok": false, "error": reason }));
        } else {
            eprintln!("Error: {reason}");
        }
        ExitCode::FAILURE
    }
}

/// Exits with `code` once standard output and standard error are flushed.
pub fn exit(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code)
}
