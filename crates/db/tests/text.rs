//! The text:// driver against files as OpenSIPS' db_text reads and writes them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use db::{Connection, DbError, Options, Value};
use proptest::prelude::*;

/// A fresh directory under the target dir for one test's database.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rsips-db-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn write(dir: &Path, table: &str, text: &str) {
    std::fs::write(dir.join(table), text).expect("write table");
}

fn open(dir: &Path) -> Arc<dyn Connection> {
    db::connect(&format!("text://{}", dir.display()), &Options::default()).expect("connect")
}

const DISPATCHER: &str = "id(int,auto) setid(int) destination(string) socket(string,null) \
state(int) probe_mode(int) weight(string) priority(int) attrs(string,null) description(string,null)\n\
1:1:sip\\:10.0.0.1\\:5060::0:0:1:0:'carrier':load balancer for OB\n\
\n\
7:2:sip\\:gw.example.com::1:1:5:2::\n";

#[test]
fn reads_a_dispatcher_table_with_escapes_nulls_and_blank_lines() {
    let d = dir("read");
    write(&d, "dispatcher", DISPATCHER);
    let db = open(&d);
    let rows = db
        .query(
            "dispatcher",
            &[
                "id",
                "destination",
                "socket",
                "weight",
                "attrs",
                "description",
            ],
            &[],
        )
        .expect("query");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][1], Value::Str("sip:10.0.0.1:5060".into()));
    assert_eq!(rows[0][2], Value::Null);
    assert_eq!(
        rows[0][4],
        Value::Str("'carrier'".into()),
        "quotes are data"
    );
    assert_eq!(rows[1][0], Value::Int(7));
    assert_eq!(rows[1][5], Value::Null, "an empty last field is NULL");
    let set2 = db
        .query("dispatcher", &["destination"], &[("setid", Value::Int(2))])
        .expect("filtered");
    assert_eq!(set2, vec![vec![Value::Str("sip:gw.example.com".into())]]);
}

#[test]
fn syntax_errors_name_line_and_column() {
    let cases: &[(&str, usize, usize, &str)] = &[
        ("a(int) b(str)\n1:x\\q\n", 2, 5, "escape"),
        ("a(int) b(str)\n1\n", 2, 2, "1 fields"),
        ("a(int) b(str)\n1:x:y\n", 2, 4, "more fields"),
        ("a(int) b(str)\nx1:y\n", 2, 1, "not an integer"),
        ("a(int) b(str)\n:y\n", 2, 1, "may not be NULL"),
        ("a(int) b(quux)\n", 1, 10, "unknown type"),
        ("a(int,auto) b(int,auto)\n", 1, 19, "auto"),
        ("a(int b(str)\n", 1, 7, "missing ')'"),
        ("a(double)\n1.2.3\n", 2, 1, "not a number"),
    ];
    for (text, line, col, what) in cases {
        let err = db::text::parse(Path::new("t"), text.as_bytes(), 4096)
            .expect_err(&format!("{text:?} must not parse"));
        match err {
            DbError::Syntax {
                line: l,
                col: c,
                what: w,
                ..
            } => {
                assert_eq!((l, c), (*line, *col), "{text:?}: {w}");
                assert!(w.contains(what), "{text:?}: {w}");
            }
            other => panic!("{text:?}: {other}"),
        }
    }
    let long = format!("a(str)\n{}\n", "x".repeat(20));
    let err = db::text::parse(Path::new("t"), long.as_bytes(), 10).expect_err("too long");
    assert!(err.to_string().contains("buffer_size 10"), "{err}");
}

#[test]
fn writes_stay_in_memory_until_dump_and_auto_ids_continue() {
    let d = dir("write");
    write(&d, "t", "id(int,auto) name(str) n(int,null)\n5:a:1\n");
    let db = open(&d);
    db.insert("t", &[("name", Value::Str("b:c\\d\n".into()))])
        .expect("insert");
    assert_eq!(
        db.update(
            "t",
            &[("name", Value::Str("a".into()))],
            &[("n", Value::Int(9))]
        )
        .expect("update"),
        1
    );
    let on_disk = std::fs::read_to_string(d.join("t")).expect("file");
    assert_eq!(on_disk, "id(int,auto) name(str) n(int,null)\n5:a:1\n");
    assert!(db::text::dump_all().expect("dump") >= 1);
    let on_disk = std::fs::read_to_string(d.join("t")).expect("file");
    assert_eq!(
        on_disk,
        "id(int,auto) name(str) n(int,null)\n5:a:9\n6:b\\:c\\\\d\\n:\n"
    );
    assert_eq!(db.delete("t", &[("id", Value::Int(5))]).expect("delete"), 1);
    let err = db
        .insert("t", &[("n", Value::Int(1))])
        .expect_err("name may not be NULL");
    assert!(err.to_string().contains("name may not be NULL"), "{err}");
    let err = db
        .insert(
            "t",
            &[
                ("name", Value::Str("x".into())),
                ("n", Value::Str("z".into())),
            ],
        )
        .expect_err("n is an int");
    assert!(err.to_string().contains("does not fit column n"), "{err}");
    let err = db.query("t", &["nope"], &[]).expect_err("no such column");
    assert!(matches!(err, DbError::NoColumn { .. }), "{err}");
}

#[test]
fn db_mode_1_rereads_a_changed_file_but_never_over_unwritten_changes() {
    let d = dir("reread");
    write(&d, "t", "a(int)\n1\n");
    let url = format!("text://{}", d.display());
    let mut options = Options::default();
    options.text.reread = true;
    let db = db::connect(&url, &options).expect("connect");
    assert_eq!(db.query("t", &["a"], &[]).expect("q").len(), 1);
    // A new modification time (set explicitly: file systems can be coarse).
    write(&d, "t", "a(int)\n1\n2\n");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(d.join("t"))
        .and_then(|f| f.set_modified(later))
        .expect("touch");
    assert_eq!(db.query("t", &["a"], &[]).expect("q").len(), 2);
    db.insert("t", &[("a", Value::Int(3))]).expect("insert");
    write(&d, "t", "a(int)\n");
    let later = later + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(d.join("t"))
        .and_then(|f| f.set_modified(later))
        .expect("touch");
    assert_eq!(db.query("t", &["a"], &[]).expect("q").len(), 3);
}

#[test]
fn reload_keeps_the_old_rows_when_the_file_is_broken() {
    let d = dir("reload");
    write(&d, "t", "a(int)\n1\n");
    let db = db::text::open("text://x", &d, &Default::default());
    assert_eq!(db.query("t", &["a"], &[]).expect("q").len(), 1);
    write(&d, "t", "a(int)\n1\n2\n");
    db.reload(Some("t")).expect("reload");
    assert_eq!(db.query("t", &["a"], &[]).expect("q").len(), 2);
    write(&d, "t", "a(int)\nbroken\n");
    let err = db.reload(None).expect_err("broken file");
    assert!(err.to_string().contains(":2:1:"), "{err}");
    assert_eq!(db.query("t", &["a"], &[]).expect("q").len(), 2);
    assert!(matches!(
        db.reload(Some("never_read")),
        Err(DbError::NoTable { .. })
    ));
}

#[test]
fn urls_versions_and_table_names() {
    let d = dir("urls");
    write(
        &d,
        "version",
        "table_name(str) table_version(int)\ndispatcher:9\n",
    );
    let db = open(&d);
    db::check_version(db.as_ref(), "dispatcher", 9).expect("version 9");
    let err = db::check_version(db.as_ref(), "dispatcher", 8).expect_err("not 8");
    assert!(err.to_string().contains("version 9"), "{err}");
    let err = db::check_version(db.as_ref(), "location", 1013).expect_err("no row");
    assert!(err.to_string().contains("no row"), "{err}");
    for bad in ["../version", "a/b", ""] {
        assert!(
            matches!(db.query(bad, &["x"], &[]), Err(DbError::NoTable { .. })),
            "{bad:?}"
        );
    }
    let err = db::connect("oracle://u:p@localhost/opensips", &Options::default())
        .expect_err("no oracle driver");
    assert!(
        err.to_string().contains("db_oracle") && !err.to_string().contains(":p@"),
        "{err}"
    );
    assert!(matches!(
        db::connect("localhost/opensips", &Options::default()),
        Err(DbError::BadUrl(_))
    ));
    // A relative text:// URL is under the config's directory.
    let parent = d.parent().expect("parent").to_owned();
    let rel = d.file_name().expect("name").to_string_lossy().into_owned();
    let options = Options {
        cfg_dir: parent,
        ..Options::default()
    };
    let db = db::connect(&format!("text://{rel}"), &options).expect("relative");
    assert_eq!(
        db.query("version", &["table_name"], &[]).expect("q").len(),
        1
    );
}

proptest! {
    /// Whatever a string column holds survives a write and a read.
    #[test]
    fn strings_round_trip_through_the_file(s in "[^\u{0}]{1,40}", n in any::<i64>(), x in -1e9f64..1e9) {
        let columns = "a(string) b(long) c(double)\n";
        let t = db::text::parse(Path::new("t"), columns.as_bytes(), 4096).expect("header");
        let mut t = t;
        t.rows.push(vec![Value::Str(s.clone()), Value::Int(n), Value::Double(x)]);
        let text = db::text::print(&t);
        let back = db::text::parse(Path::new("t"), text.as_bytes(), 4096).expect("reads back");
        prop_assert_eq!(&back.rows[0][0], &Value::Str(s));
        prop_assert_eq!(&back.rows[0][1], &Value::Int(n));
        prop_assert_eq!(&back.rows[0][2], &Value::Double(x));
    }
}

#[test]
fn text_matches_without_case_and_empty_strings_stay_strings() {
    let d = dir("case");
    write(
        &d,
        "t",
        "id(int,auto) name(str) ua(str) note(str,null)\n:Alice:x:\n",
    );
    let db = open(&d);
    let rows = db
        .query(
            "t",
            &["id", "note"],
            &[("name", Value::Str("alice".into()))],
        )
        .expect("query");
    assert_eq!(rows, vec![vec![Value::Int(1), Value::Null]]);
    // A REGISTER without User-Agent: an empty string in a column that takes no NULL.
    db.insert(
        "t",
        &[
            ("name", Value::Str("bob".into())),
            ("ua", Value::Str(String::new())),
        ],
    )
    .expect("an empty string is a value");
    db::text::dump_all().expect("dump");
    let again = db::text::parse(
        &d.join("t"),
        &std::fs::read(d.join("t")).expect("file"),
        4096,
    )
    .expect("the written file reads back");
    assert_eq!(again.rows[1][2], Value::Str(String::new()));
}
