//! A port for a database server a test starts.

#![allow(dead_code)]

/// A TCP port free on 127.0.0.1 below the kernel's ephemeral range (so no client socket takes
/// it before the server binds it), different for each call in this process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + (std::process::id() * 13) % 8_000;
    for _ in 0..1_000 {
        let port = (base + NEXT.fetch_add(1, Ordering::Relaxed) % 2_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port for a test database server");
}
