//! Detaching from the terminal, as OpenSIPS does unless it is given `-F` (or `-D` /
//! `debug_mode`): the command the operator ran checks the configuration, starts the server as a
//! process of its own in a new session, waits until that process serves (its sockets and MI
//! open, the pid file written) or has failed, and exits with that outcome. The server keeps
//! the working directory, so relative paths in the script still mean what they meant at the
//! check; stdin and stdout go to /dev/null; stderr stays where it was when the log goes there
//! (`stderror_enabled`, on by default), else it goes to /dev/null too.
//!
//! The server process is this program run again with the same arguments and `DAEMON_ENV` set
//! (a re-exec, not a fork: the Rust runtime has threads by then, and no `unsafe` is needed).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};

/// Set in the server process's environment by the launcher.
const DAEMON_ENV: &str = "RSIPS_DAEMON";

/// What the server writes on its stdout (a pipe to the launcher) once it serves.
const READY: &str = "ready";

/// Whether this process is the detached server started by `launch`.
pub fn is_daemon() -> bool {
    std::env::var_os(DAEMON_ENV).is_some()
}

/// In the command the operator ran: starts the server in the background and returns once it
/// serves (success) or has stopped (its exit status; its errors went to our stderr).
pub fn launch() -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot find the rsips executable to start the daemon: {e}");
            return ExitCode::from(1);
        }
    };
    let spawned = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(DAEMON_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot start the daemon: {e}");
            return ExitCode::from(1);
        }
    };
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        // Blocks until the server reports, or until its end of the pipe closes (it exited).
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if line.trim_end() == READY {
        return ExitCode::SUCCESS;
    }
    match child.wait() {
        Ok(status) => {
            let code = status.code().unwrap_or(1);
            ExitCode::from(u8::try_from(code).ok().filter(|c| *c != 0).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("error: the daemon did not start: {e}");
            ExitCode::from(1)
        }
    }
}

/// In the server process, first thing: leave the launcher's session and terminal, so that the
/// terminal's signals (Ctrl-C, hang-up) no longer reach it.
pub fn detach() -> Result<(), String> {
    rustix::process::setsid()
        .map(|_| ())
        .map_err(|e| format!("cannot start a new session: {e}"))
}

/// In the server process, once it serves: tells the launcher, then points stdout at /dev/null
/// (which closes the pipe), and stderr too unless the log goes there (`stderror_enabled`), so
/// that a daemon logging only to syslog holds nothing of the terminal that started it.
pub fn ready(keep_stderr: bool) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{READY}");
    let _ = out.flush();
    drop(out);
    let null = match std::fs::OpenOptions::new().write(true).open("/dev/null") {
        Ok(null) => null,
        Err(e) => {
            crate::logging::core(-1, &format!("cannot open /dev/null: {e}"));
            return;
        }
    };
    if let Err(e) = rustix::stdio::dup2_stdout(&null) {
        crate::logging::core(-1, &format!("cannot point stdout at /dev/null: {e}"));
    }
    if !keep_stderr && let Err(e) = rustix::stdio::dup2_stderr(&null) {
        crate::logging::core(-1, &format!("cannot point stderr at /dev/null: {e}"));
    }
}
