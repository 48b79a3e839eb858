//! `mi_fifo`: requests written to a named pipe as `:<reply_name>:<json>` (newline or not),
//! answers written to `<reply_dir>/<reply_name>`, a FIFO the client made. An empty
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

/// Largest request (as OpenSIPS' line buffer).
const MAX_LINE: usize = 4096;
/// Pending bytes beyond which an unfinished request is cut and answered as it stands.
const MAX_PENDING: usize = 16 * MAX_LINE;
/// How often an idle reader looks at `stop` and at the FIFO file.
const TICK: std::time::Duration = std::time::Duration::from_millis(250);
/// How long an unfinished request may wait for its end before it is answered as it stands
/// (a JSON-RPC parse error, so the client is not left waiting).
const STALL: std::time::Duration = std::time::Duration::from_secs(1);

/// Creates the FIFO (replacing a stale file) and serves it until `stop`.
///
/// The server holds the FIFO open for reading and writing, as OpenSIPS does, so it never sees
/// an end of file between clients and never closes its read end under a client that has just
/// opened it. A request therefore ends where its JSON value ends (opensips-cli and
/// opensips-mi write `:name:{...}` with no newline), at a newline after a value that is no
/// object or array, or after [`STALL`] without more bytes.
pub fn serve(config: FifoConfig, mi: Arc<Mi>, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    let mut pipe = open(&config)?;
    std::thread::spawn(move || {
        let mut pending: Vec<u8> = Vec::new();
        let mut last_data = std::time::Instant::now();
        let mut chunk = vec![0u8; MAX_LINE];
        while !stop.load(Ordering::SeqCst) {
            let mut fds = [rustix::event::PollFd::new(
                &pipe,
                rustix::event::PollFlags::IN,
            )];
            let timeout = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: i64::from(TICK.subsec_nanos()),
            };
            let ready = rustix::event::poll(&mut fds, Some(&timeout)).unwrap_or(0) > 0;
            if ready {
                match pipe.read(&mut chunk) {
                    Ok(n) if n > 0 => {
                        pending.extend_from_slice(&chunk[..n]);
                        last_data = std::time::Instant::now();
                    }
                    _ => {}
                }
            } else {
                if !pending.is_empty() && last_data.elapsed() >= STALL {
                    let request = std::mem::take(&mut pending);
                    handle_line(&request, &mi, &config.reply_dir);
                }
                // The file removed or replaced under us: make it again and read the new one.
                if !same_file(&pipe, &config.path)
                    && let Ok(fresh) = open(&config)
                {
                    pipe = fresh;
                    pending.clear();
                }
            }
            loop {
                match frame(&pending) {
                    Frame::Request(end) => {
                        handle_line(&pending[..end], &mi, &config.reply_dir);
                        pending.drain(..end);
                    }
                    Frame::Junk(n) => {
                        pending.drain(..n);
                    }
                    Frame::Partial if pending.len() > MAX_PENDING => {
                        let request = std::mem::take(&mut pending);
                        handle_line(&request, &mi, &config.reply_dir);
                    }
                    Frame::Partial => break,
                }
            }
        }
        if same_file(&pipe, &config.path) {
            let _ = std::fs::remove_file(&config.path);
        }
    });
    Ok(())
}

/// Creates the FIFO with its owner and opens it for reading and writing (which on Linux does
/// not wait for a peer).
fn open(config: &FifoConfig) -> std::io::Result<std::fs::File> {
    create(&config.path, config.mode)?;
    if config.user.is_some() || config.group.is_some() {
        std::os::unix::fs::chown(&config.path, config.user, config.group)?;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&config.path)
}

/// Whether `path` still names the FIFO `pipe` has open.
fn same_file(pipe: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (pipe.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// What the front of the bytes read so far holds.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    /// A whole request in `[..end]`.
    Request(usize),
    /// Bytes that are no request: blank space, or a line that does not start with `:`.
    Junk(usize),
    /// Nothing, or the start of a request whose end has not arrived.
    Partial,
}

/// Finds the first request in `buf`: `:name:` then a JSON value, ending where an object or an
/// array closes (strings and escapes respected), or at the newline after any other value.
fn frame(buf: &[u8]) -> Frame {
    let start = buf
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(buf.len());
    if start > 0 {
        return Frame::Junk(start);
    }
    let line_end = |from: usize| {
        buf.get(from..)
            .and_then(|rest| rest.iter().position(|b| *b == b'\n'))
            .map(|i| from + i + 1)
    };
    match buf.first() {
        None => return Frame::Partial,
        Some(b':') => {}
        // Not a request: up to the end of its line, or to a `:` that may start one.
        Some(_) => {
            let end = buf
                .iter()
                .position(|b| *b == b':' || *b == b'\n')
                .map_or(buf.len(), |i| if buf[i] == b'\n' { i + 1 } else { i });
            return Frame::Junk(end);
        }
    }
    // The reply name runs to the next `:` on the same line.
    let Some(colon) = buf
        .iter()
        .skip(1)
        .position(|b| *b == b':' || *b == b'\n')
        .map(|i| i + 1)
    else {
        return Frame::Partial;
    };
    if buf.get(colon) == Some(&b'\n') {
        return Frame::Junk(colon + 1);
    }
    let Some(value) = buf
        .iter()
        .skip(colon + 1)
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| colon + 1 + i)
    else {
        return Frame::Partial;
    };
    if !matches!(buf.get(value), Some(b'{' | b'[')) {
        return line_end(value).map_or(Frame::Partial, Frame::Request);
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, b) in buf.iter().enumerate().skip(value) {
        // A broken request must not hold back the ones after it: a raw line end inside a
        // string (never valid JSON), or a line that starts a new `:name:` request, ends it
        // where it is, to be answered with a parse error.
        if *b == b'\n' && (in_string || buf.get(i + 1) == Some(&b':')) {
            return Frame::Request(i + 1);
        }
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Frame::Request(i + 1);
                }
            }
            _ => {}
        }
    }
    Frame::Partial
}

/// Wakes the FIFO reader at shutdown so it sees `stop` without waiting for its next tick.
/// Non-blocking: with no reader left the open fails at once.
pub fn wake(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        let _ = f.write_all(b"\n");
    }
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
mod frame_tests {
    use super::*;

    #[test]
    fn requests_end_where_their_json_ends() {
        let req = br#":r1:{"jsonrpc":"2.0","method":"uptime","id":1}"#;
        assert_eq!(frame(req), Frame::Request(req.len()), "no newline needed");
        let two = br#":a:{"x":"}"}:b:[1,[2]]"#;
        assert_eq!(frame(two), Frame::Request(12), "a brace inside a string");
        assert_eq!(frame(&two[12..]), Frame::Request(10));
        let escaped = br#":a:{"x":"\"}"}"#;
        assert_eq!(
            frame(escaped),
            Frame::Request(escaped.len()),
            "an escaped quote"
        );
        let multi = b":a:\n{\n \"id\": 1\n}\n";
        assert_eq!(
            frame(multi),
            Frame::Request(multi.len() - 1),
            "a value over lines"
        );
        assert_eq!(
            frame(b":a:\"text\"\n:b:"),
            Frame::Request(10),
            "another value: to the newline"
        );
    }

    #[test]
    fn a_broken_request_ends_where_the_next_one_starts() {
        let unterminated = b":a:{\"x\":\"no end\n:b:{}";
        assert_eq!(
            frame(unterminated),
            Frame::Request(16),
            "a line end inside a string"
        );
        let unbalanced = b":a:{\"x\":1\n:b:{}";
        assert_eq!(
            frame(unbalanced),
            Frame::Request(10),
            "a new request on the next line"
        );
        assert_eq!(frame(&unbalanced[10..]), Frame::Request(5));
        let pretty = b":a:{\n  \"x\": 1\n}";
        assert_eq!(
            frame(pretty),
            Frame::Request(pretty.len()),
            "pretty-printed JSON is one"
        );
    }

    #[test]
    fn unfinished_requests_wait_and_junk_is_skipped() {
        assert_eq!(frame(b""), Frame::Partial);
        assert_eq!(frame(b":r1"), Frame::Partial);
        assert_eq!(frame(b":r1:"), Frame::Partial);
        assert_eq!(frame(br#":r1:{"a":[1,"#), Frame::Partial);
        assert_eq!(
            frame(b":a:42"),
            Frame::Partial,
            "a bare value waits for its newline"
        );
        assert_eq!(frame(b"\n\n  :a:{}"), Frame::Junk(4));
        assert_eq!(frame(b"hello\n:a:{}"), Frame::Junk(6));
        assert_eq!(frame(b"hello"), Frame::Junk(5));
        assert_eq!(
            frame(b"\0:a:{}"),
            Frame::Junk(1),
            "a stray byte before a request"
        );
        assert_eq!(frame(b":name without colon\n:a:{}"), Frame::Junk(20));
    }
}

#[cfg(test)]
mod sequence_tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A served FIFO in a directory of its own; stopped (and the directory removed) on drop.
    struct Served {
        dir: PathBuf,
        path: PathBuf,
        stop: Arc<AtomicBool>,
    }

    impl Drop for Served {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            wake(&self.path);
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn served(tag: &str) -> Served {
        let dir = std::env::temp_dir().join(format!("rsips-fifo-{tag}-{}", std::process::id()));
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
        Served { dir, path, stop }
    }

    /// Writes `request` (`{name}` replaced by a fresh reply FIFO's name) as opensips-cli does —
    /// an empty open and close as a probe, then one open and write — and returns the answer:
    /// `None` when the request could not be written or no answer came within 5 s.
    fn ask(served: &Served, n: usize, request: &str) -> Option<String> {
        let name = format!("reply-{n}");
        create(&served.dir.join(&name), 0o600).ok()?;
        drop(
            std::fs::OpenOptions::new()
                .write(true)
                .open(&served.path)
                .ok()?,
        );
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&served.path)
            .ok()?;
        w.write_all(request.replace("{name}", &name).as_bytes())
            .ok()?;
        drop(w);
        let reply = served.dir.join(&name);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Ok(mut f) = std::fs::File::open(&reply) {
                let _ = f.read_to_string(&mut text);
            }
            let _ = tx.send(text);
        });
        let answer = rx.recv_timeout(Duration::from_secs(5)).ok();
        let _ = std::fs::remove_file(served.dir.join(&name));
        answer
    }

    fn request(n: usize) -> String {
        format!(":{{name}}:{{\"jsonrpc\":\"2.0\",\"method\":\"nosuch\",\"id\":{n}}}")
    }

    /// A client that probes the FIFO and sends its request at once, and sends the next as soon
    /// as it has an answer, must never lose a request (no newline, as opensips-cli writes it).
    #[test]
    fn back_to_back_requests_are_all_answered() {
        let served = served("seq");
        for n in 0..300 {
            let answer = ask(&served, n, &request(n));
            assert!(
                answer
                    .as_deref()
                    .is_some_and(|a| a.contains(&format!("\"id\":{n}"))),
                "request {n}: {answer:?}"
            );
        }
    }

    /// A request whose JSON never ends is answered with a parse error once it stalls, and the
    /// requests after it are served.
    #[test]
    fn a_request_cut_short_gets_a_parse_error() {
        let served = served("cut");
        let answer = ask(&served, 1, ":{name}:{\"jsonrpc\":\"2.0\",\"method\":");
        assert!(
            answer.as_deref().is_some_and(|a| a.contains("-32700")),
            "{answer:?}"
        );
        let answer = ask(&served, 2, &format!("{}\n", request(2)));
        assert!(
            answer.as_deref().is_some_and(|a| a.contains("\"id\":2")),
            "{answer:?}"
        );
    }

    /// A request whose JSON is cut short, followed at once by a good one (no pause for the
    /// stall timer): both are answered, the first with a parse error.
    #[test]
    fn a_broken_request_does_not_hold_back_the_next() {
        let served = served("broken");
        create(&served.dir.join("reply-b1"), 0o600).unwrap();
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&served.path)
            .unwrap();
        w.write_all(b":reply-b1:{\"jsonrpc\":\"2.0\",\"method\":\"x\n")
            .unwrap();
        drop(w);
        let answer = ask(&served, 2, &request(2));
        assert!(
            answer.as_deref().is_some_and(|a| a.contains("\"id\":2")),
            "{answer:?}"
        );
        let mut first = String::new();
        std::fs::File::open(served.dir.join("reply-b1"))
            .unwrap()
            .read_to_string(&mut first)
            .unwrap();
        assert!(first.contains("-32700"), "{first}");
    }

    /// Removed from under the server, the FIFO comes back and is served.
    #[test]
    fn a_removed_fifo_is_made_again() {
        use std::os::unix::fs::FileTypeExt;
        let served = served("gone");
        std::fs::remove_file(&served.path).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::metadata(&served.path).is_ok_and(|m| m.file_type().is_fifo()) {
            assert!(Instant::now() < deadline, "the FIFO did not come back");
            std::thread::sleep(Duration::from_millis(20));
        }
        let answer = ask(&served, 3, &request(3));
        assert!(
            answer.as_deref().is_some_and(|a| a.contains("\"id\":3")),
            "{answer:?}"
        );
    }

    /// On stop the server removes its FIFO.
    #[test]
    fn stop_removes_the_fifo() {
        let served = served("stop");
        served.stop.store(true, Ordering::SeqCst);
        wake(&served.path);
        let deadline = Instant::now() + Duration::from_secs(5);
        while served.path.exists() {
            assert!(Instant::now() < deadline, "the FIFO outlived the stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
