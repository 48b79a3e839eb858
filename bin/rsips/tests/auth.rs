//! Digest authentication end to end with a real client: `sipsak` registers through a
//! registrar script that challenges (`www_challenge`) and checks (`www_authorize` against a
//! db_text subscriber table) as the OpenSIPS residential script does with USE_AUTH.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::{Path, PathBuf};

fn config(port: u16, db: &Path) -> String {
    format!(
        r#"socket=udp:127.0.0.1:{port}
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "signaling.so"
loadmodule "sipmsgops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "db_text.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
modparam("auth_db", "db_url", "text://{db}")
route {{
    if (is_method("REGISTER")) {{
        if (!www_authorize("example.com", "subscriber")) {{
            www_challenge("example.com", "auth");
            exit;
        }}
        # Another user's credentials only where the uri table maps them.
        if ($au != $tU && !db_is_to_authorized("uri")) {{
            sl_send_reply(403, "Forbidden auth ID");
            exit;
        }}
        consume_credentials();
        if (!save("location"))
            sl_reply_error();
        exit;
    }}
    if (is_method("OPTIONS") && db_get_auth_id("uri", "sip:$rU@example.com", $var(id), $var(realm))) {{
        append_to_reply("X-Auth-Id: $var(id)@$var(realm)\r\n");
        sl_send_reply(200, "OK");
        exit;
    }}
    sl_send_reply(404, "Not here");
}}
"#,
        db = db.display()
    )
}

struct Server {
    _child: common::Kill,
    port: u16,
    dir: PathBuf,
}

fn start() -> Server {
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-auth-e2e-{}-{port}", std::process::id()));
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(
        db.join("subscriber"),
        format!(
            "id(int,auto) username(string) domain(string) password(string) ha1(string) \
             ha1_sha256(string,null) ha1_sha512t256(string,null)\n\
             :alice:example.com:secret:{}::\n:bob:example.com:bobpass:{}::\n",
            common::md5_hex("alice:example.com:secret"),
            common::md5_hex("bob:example.com:bobpass")
        ),
    )
    .unwrap();
    std::fs::write(
        db.join("version"),
        "table_name(str) table_version(int)\nsubscriber:8\n",
    )
    .unwrap();
    // bob may register the shared "pbx" user (the uri table maps SIP users to auth users).
    std::fs::write(
        db.join("uri"),
        "id(int,auto) username(string) domain(string) uri_user(string)\n:bob:example.com:pbx\n",
    )
    .unwrap();
    std::fs::write(dir.join("rsips.cfg"), config(port, &db)).unwrap();
    let child = common::spawn_rsips(&dir, "rsips.cfg", |log| log.contains("listening on udp:"));
    Server {
        _child: child,
        port,
        dir,
    }
}

/// sipsak registers `user`'s contact, authenticating as `auth_user` with `password`: its
/// exit status (0: a 200 came back) and output.
fn sipsak_register(server: &Server, user: &str, auth_user: &str, password: &str) -> (bool, String) {
    let out = common::installed("sipsak", "-V", "apt-get install sipsak")
        .args(["-U", "-i", "-H", "127.0.0.1", "-x", "60", "-vvv"])
        .arg("-C")
        .arg(format!("sip:{user}@127.0.0.1:17999"))
        .arg("-s")
        .arg(format!("sip:{user}@127.0.0.1:{}", server.port))
        .args(["-u", auth_user, "-a", password])
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}\nrsips:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(server.dir.join("rsips.log")).unwrap_or_default()
        ),
    )
}

#[test]
fn sipsak_registers_after_the_challenge_and_wrong_credentials_are_refused() {
    let server = start();
    let (ok, out) = sipsak_register(&server, "alice", "alice", "secret");
    assert!(ok, "{out}");
    assert!(
        out.contains("SIP/2.0 401 Unauthorized") && out.contains("SIP/2.0 200 OK"),
        "{out}"
    );
    let (ok, out) = sipsak_register(&server, "alice", "alice", "wrong");
    assert!(!ok, "{out}");
    // bob's own credentials do not register alice.
    let (ok, out) = sipsak_register(&server, "alice", "bob", "bobpass");
    assert!(!ok && out.contains("403 Forbidden auth ID"), "{out}");
    // They register "pbx", which the uri table gives him (db_is_to_authorized).
    let (ok, out) = sipsak_register(&server, "pbx", "bob", "bobpass");
    assert!(ok, "{out}");
    // alice's do not.
    let (ok, out) = sipsak_register(&server, "pbx", "alice", "secret");
    assert!(!ok && out.contains("403 Forbidden auth ID"), "{out}");
    // db_get_auth_id: the authentication user the uri table gives a SIP user.
    let options = |user: &str| {
        let out = common::installed("sipsak", "-V", "apt-get install sipsak")
            .args(["-vv", "-s"])
            .arg(format!("sip:{user}@127.0.0.1:{}", server.port))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = options("pbx");
    assert!(out.contains("X-Auth-Id: bob@example.com"), "{out}");
    assert!(options("nobody").contains("404 Not here"));
}

#[test]
fn auth_db_on_a_database_rsips_cannot_open_stops_the_start() {
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-auth-bad-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = config(port, Path::new("/nonexistent")).replace(
        "text:///nonexistent",
        "postgres://opensips:opensipsrw@localhost/opensips",
    );
    std::fs::write(dir.join("rsips.cfg"), cfg).unwrap();
    let (code, text) = common::run_to_exit(&dir, "rsips.cfg");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("auth_db") && text.contains("db_postgres"),
        "{text}"
    );
}
