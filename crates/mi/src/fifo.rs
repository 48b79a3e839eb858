//! `mi_fifo`: requests written to a named pipe as `:<reply_name>:<json>` (one per line, or up
//! to EOF), answers written to `<reply_dir>/<reply_name>`, a FIFO the client made. An empty
//! reply name means no answer. A reply name with `/`, `\` or `.` is refused (it would leave
//! `reply_dir`). The empty open/close that clients use as a probe is harmless.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Mi;

/// `fifo_name`, `fifo_mode`, `reply_dir`.
#[derive(Debug, Clone)]
pub struct FifoConfig {
    pub path: PathBuf,
    pub mode: u32,
    pub reply_dir: PathBuf,
}

/// Largest request line (as OpenSIPS' line buffer).
const MAX_LINE: usize = 4096;

/// Creates the FIFO (replacing a stale file) and serves it until `stop`.
pub fn serve(config: FifoConfig, mi: Arc<Mi>, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    create(&config.path, config.mode)?;
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            // Blocks until a writer opens the FIFO; EOF when it closes.
            let Ok(mut f) = std::fs::File::open(&config.path) else {
                std::thread::sleep(std::time::Duration::from_millis(200));
                let _ = create(&config.path, config.mode);
                continue;
            };
            let mut data = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                match f.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => data.extend_from_slice(&chunk[..n]),
                }
                if data.len() > 16 * MAX_LINE {
                    break;
                }
            }
            for line in data.split(|b| *b == b'\n') {
                handle_line(line, &mi, &config.reply_dir);
            }
        }
        let _ = std::fs::remove_file(&config.path);
    });
    Ok(())
}

/// Unblocks the FIFO reader at shutdown (it waits for a writer).
pub fn wake(path: &Path) {
    let _ = std::fs::OpenOptions::new().write(true).open(path);
}

fn create(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.file_type().is_fifo() {
            return Ok(());
        }
        std::fs::remove_file(path)?;
    }
    // No unsafe code here: the mkfifo(1) utility makes the pipe.
    let status = std::process::Command::new("mkfifo")
        .arg("-m")
        .arg(format!("{mode:o}"))
        .arg(path)
        .status()?;
    if !status.success() {
        return Err(std::io::Error::other(format!(
            "mkfifo {} failed",
            path.display()
        )));
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn handle_line(line: &[u8], mi: &Mi, reply_dir: &Path) {
    let line = line.trim_ascii();
    if line.is_empty() {
        return;
    }
    let Some(rest) = line.strip_prefix(b":") else {
        return;
    };
    let Some(colon) = rest.iter().position(|b| *b == b':') else {
        return;
    };
    let (name, json) = (&rest[..colon], &rest[colon + 1..]);
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    if name.contains(['/', '\\', '.']) {
        return;
    }
    let answer = if json.len() > MAX_LINE {
        Some("request too large".to_owned())
    } else {
        mi.handle(json)
    };
    if name.is_empty() {
        return;
    }
    let Some(answer) = answer else { return };
    let path = reply_dir.join(name);
    // Opening a FIFO for writing waits for its reader: do it off the request loop.
    std::thread::spawn(move || {
        use std::os::unix::fs::FileTypeExt;
        if !std::fs::metadata(&path).is_ok_and(|m| m.file_type().is_fifo()) {
            return;
        }
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&path) {
            let _ = f.write_all(answer.as_bytes());
            let _ = f.write_all(b"\n");
        }
    });
}
