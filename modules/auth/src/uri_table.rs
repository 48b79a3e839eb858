//! auth_db's `uri` table: which SIP users (From/To URI users) may use which authentication
//! user. `db_is_to_authorized`/`db_is_from_authorized` check the credentials `www_authorize`
//! or `proxy_authorize` accepted for this request against the To/From user;
//! `db_get_auth_id` finds the authentication user and realm of a URI. Columns: the
//! authentication user (`uri_user_column`, "username"), its domain (`uri_domain_column`,
//! "domain") and the SIP user (`uri_uriuser_column`, "uri_user").

use engine::{FnCtx, Value};
use sip::HeaderName;

use crate::verify::{column, uri_rows, verified};

fn text(args: &[Value], i: usize) -> String {
    args.get(i)
        .map(|v| v.to_text().trim().to_owned())
        .unwrap_or_default()
}

fn columns(f: &FnCtx<'_>) -> [String; 3] {
    [
        column(f.script, "uri_user_column", "username"),
        column(f.script, "uri_domain_column", "domain"),
        column(f.script, "uri_uriuser_column", "uri_user"),
    ]
}

fn check(f: &mut FnCtx<'_>, args: &[Value], name: HeaderName) -> i64 {
    let Some((auth_user, auth_domain)) = verified(f) else {
        f.log.log(
            -1,
            "auth_db: no authorized credentials (authorize the request first)\n",
        );
        return -1;
    };
    let sip_user = f
        .msg
        .msg
        .header(name)
        .and_then(|v| sip::NameAddr::parse(v).ok())
        .and_then(|na| na.uri().user().map(str::to_owned));
    let Some(sip_user) = sip_user else {
        return -1;
    };
    let [user_col, domain_col, uriuser_col] = columns(f);
    let filter = [
        (user_col.as_str(), auth_user),
        (domain_col.as_str(), auth_domain),
        (uriuser_col.as_str(), sip_user),
    ];
    match uri_rows(&text(args, 0), &filter, &[user_col.as_str()]) {
        Ok(rows) if !rows.is_empty() => 1,
        Ok(_) => -1,
        Err(e) => {
            f.log.log(-1, &format!("auth_db: {e}\n"));
            -1
        }
    }
}

/// `db_is_to_authorized(table)`.
pub fn db_is_to_authorized(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    check(f, args, HeaderName::To)
}

/// `db_is_from_authorized(table)`.
pub fn db_is_from_authorized(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    check(f, args, HeaderName::From)
}

/// `db_get_auth_id(table, uri, $auth_id, $auth_realm)`: 1 with the authentication user and
/// realm the table gives the URI's user and host, -1 when it has none.
pub fn db_get_auth_id(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let uri = text(args, 1);
    let Ok(u) = sip::Uri::parse(&uri) else {
        return -1;
    };
    let (Some(user), Some(host)) = (u.user(), u.host()) else {
        return -1;
    };
    let [user_col, domain_col, uriuser_col] = columns(f);
    let filter = [
        (uriuser_col.as_str(), user.to_owned()),
        (domain_col.as_str(), host.as_str().to_owned()),
    ];
    match uri_rows(
        &text(args, 0),
        &filter,
        &[user_col.as_str(), domain_col.as_str()],
    ) {
        Ok(rows) => match rows.first() {
            Some(row) => {
                let get = |i: usize| row.get(i).and_then(db::Value::as_text).unwrap_or_default();
                f.set_output(2, Value::from(get(0)));
                f.set_output(3, Value::from(get(1)));
                1
            }
            None => -1,
        },
        Err(e) => {
            f.log.log(-1, &format!("auth_db: {e}\n"));
            -1
        }
    }
}
