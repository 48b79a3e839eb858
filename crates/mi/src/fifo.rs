//! `mi_fifo`: requests written to a named pipe as `:<reply_name>:<json>` (one per line, or up
//! to EOF), answers written to `<reply_dir>/<reply_name>`, a FIFO the client made. An empty
//! reply name means no answer. A reply name with `/`, `\` or `.` is refused (it would leave
//! `reply_dir`). The empty open/close that clients use as a probe is harmless.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Mi;

/// `fifo_name`, `fifo_mode`, `fifo_user`, `fifo_group`, `reply_dir`.
#[derive(Debug, Clone)]
pub struct FifoConfig {
    pub path: PathBuf,
    pub mode: u32,
    /// The owner (uid) and group (gid) the FIFO is given; `None` keeps the process's.
    pub user: Option<u32>,
    pub group: Option<u32>,
    pub reply_dir: PathBuf,
}

/// A user name or number as `fifo_user` takes it, looked up in /etc/passwd.
pub fn lookup_user(name: &str) -> Option<u32> {
    lookup_id(
        name,
        &std::fs::read_to_string("/etc/passwd").unwrap_or_default(),
    )
}

/// A group name or number as `fifo_group` takes it, looked up in /etc/group.
pub fn lookup_group(name: &str) -> Option<u32> {
    lookup_id(
        name,
        &std::fs::read_to_string("/etc/group").unwrap_or_default(),
    )
}

/// A number, or the third field of the `name:…` line of a passwd/group file.
fn lookup_id(name: &str, table: &str) -> Option<u32> {
    let name = name.trim();
    if let Ok(id) = name.parse::<u32>() {
        return Some(id);
    }
    table.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name)
            .then(|| fields.nth(1)?.parse().ok())
            .flatten()
    })
}

/// Largest request line (as OpenSIPS' line buffer).
const MAX_LINE: usize = 4096;

/// Creates the FIFO (replacing a stale file) and serves it until `stop`.
pub fn serve(config: FifoConfig, mi: Arc<Mi>, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    create(&config.path, config.mode)?;
    if config.user.is_some() || config.group.is_some() {
        std::os::unix::fs::chown(&config.path, config.user, config.group)?;
    }
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            // Blocks until a writer opens the FIFO; EOF when it closes.
            let Ok(mut f) = std::fs::File::open(&config.path) else {
                std::thread::sleep(std::time::Duration::from_millis(200));
                if create(&config.path, config.mode).is_ok()
                    && (config.user.is_some() || config.group.is_some())
                {
                    let _ = std::os::unix::fs::chown(&config.path, config.user, config.group);
                }
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
            // Closed before the replies go out: a client that got its reply and sends the next
            // request at once must find no reader (its open waits for the next one), not this
            // end about to close, which would lose its request (EPIPE, "Broken pipe").
            drop(f);
            for line in data.split(|b| *b == b'\n') {
                handle_line(line, &mi, &config.reply_dir);
            }
        }
        let _ = std::fs::remove_file(&config.path);
    });
    Ok(())
}

/// Unblocks the FIFO reader at shutdown (it waits for a writer).
/// Non-blocking: with no reader left (the loop already ended) the open fails at once.
pub fn wake(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
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

#[cfg(test)]
mod owner_tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
opensips:x:998:997::/var/run/opensips:/bin/false\n";

    #[test]
    fn owners_are_names_or_numbers() {
        assert_eq!(lookup_id("opensips", PASSWD), Some(998));
        assert_eq!(lookup_id("nobody", PASSWD), Some(65534));
        assert_eq!(lookup_id("1234", PASSWD), Some(1234));
        assert_eq!(lookup_id("opensip", PASSWD), None, "no prefix match");
        assert_eq!(lookup_id("ghost", PASSWD), None);
        assert_eq!(lookup_id("", PASSWD), None);
    }

    #[test]
    fn the_fifo_gets_the_owner_it_is_told() {
        use std::os::unix::fs::MetadataExt;
        // Giving a file away needs root; elsewhere only the lookup is checked.
        let Some(nobody) = lookup_user("nobody") else {
            return;
        };
        if std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(1)
            != 0
        {
            return;
        }
        let dir = std::env::temp_dir().join(format!("rsips-fifo-owner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fifo");
        let config = FifoConfig {
            path: path.clone(),
            mode: 0o600,
            user: Some(nobody),
            group: Some(nobody),
            reply_dir: dir.clone(),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mi = Arc::new(Mi::new());
        serve(config, mi, Arc::clone(&stop)).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (nobody, nobody));
        assert_eq!(meta.mode() & 0o777, 0o600);
        stop.store(true, Ordering::SeqCst);
        wake(&path);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod sequence_tests {
    use super::*;
    use std::time::Duration;

    /// One request over the server FIFO and its answer: `None` when the request could not be
    /// written (no reader, broken pipe) or no answer came within 5 s.
    fn ask(fifo: &Path, dir: &Path, n: usize) -> Option<String> {
        let name = format!("reply-{n}");
        create(&dir.join(&name), 0o600).ok()?;
        let mut w = std::fs::OpenOptions::new().write(true).open(fifo).ok()?;
        let request = format!(":{name}:{{\"jsonrpc\":\"2.0\",\"method\":\"nosuch\",\"id\":{n}}}\n");
        w.write_all(request.as_bytes()).ok()?;
        drop(w);
        let reply = dir.join(&name);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Ok(mut f) = std::fs::File::open(&reply) {
                let _ = f.read_to_string(&mut text);
            }
            let _ = tx.send(text);
        });
        let answer = rx.recv_timeout(Duration::from_secs(5)).ok();
        let _ = std::fs::remove_file(dir.join(&name));
        answer
    }

    /// A client that sends its next request as soon as it has the answer to the last one must
    /// never find the server's read end about to close (its request would be lost).
    #[test]
    fn back_to_back_requests_are_all_answered() {
        let dir = std::env::temp_dir().join(format!("rsips-fifo-seq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fifo");
        let config = FifoConfig {
            path: path.clone(),
            mode: 0o600,
            user: None,
            group: None,
            reply_dir: dir.clone(),
        };
        let stop = Arc::new(AtomicBool::new(false));
        serve(config, Arc::new(Mi::new()), Arc::clone(&stop)).unwrap();
        for n in 0..300 {
            let answer = ask(&path, &dir, n);
            assert!(
                answer
                    .as_deref()
                    .is_some_and(|a| a.contains(&format!("\"id\":{n}"))),
                "request {n}: {answer:?}"
            );
        }
        stop.store(true, Ordering::SeqCst);
        wake(&path);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
