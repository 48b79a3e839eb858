//! `mi_html`: the Management Interface as web pages under its `root` ("mi"): the commands as
//! links, a form per command, and a command's result. Parameters are given as OpenSIPS'
//! mi_html takes them, a JSON array (`["all"]`; `[["dialog:","tm:"]]` for a command whose
//! one parameter is an array) or object; the form sends them by GET, or by POST with
//! `http_method` 1.

use crate::Mi;

/// HTML (and XML) text with `<`, `>`, `&` and quotes escaped.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `application/x-www-form-urlencoded` / query-string decoding (`+` is a blank; a `%` not
/// followed by two hex digits stays as it is).
fn url_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `name` in a query string or form body.
fn field(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (url_decode(k) == name).then(|| url_decode(v))
    })
}

fn wrap(title: &str, content: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head>\n\
         <body><h1>{t}</h1>\n{content}</body></html>\n",
        t = escape(title)
    )
}

/// The page for `path` (under `root`): (HTTP status, HTML).
pub(crate) fn page(
    mi: &Mi,
    root: &str,
    post: bool,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String) {
    let root = root.trim_matches('/');
    let (p, query) = path.split_once('?').unwrap_or((path, ""));
    let cmd = p
        .trim_start_matches('/')
        .strip_prefix(root)
        .unwrap_or("")
        .trim_matches('/');
    let wanted = if post { "POST" } else { "GET" };
    if cmd.is_empty() {
        if method != "GET" {
            return (405, wrap("OpenSIPS MI", "<p>Use GET.</p>"));
        }
        let mut names = mi.names();
        names.sort();
        let list: String = names
            .iter()
            .map(|n| {
                format!(
                    "<li><a href=\"/{root}/{}\">{}</a></li>\n",
                    escape(n),
                    escape(n)
                )
            })
            .collect();
        return (200, wrap("OpenSIPS MI", &format!("<ul>\n{list}</ul>\n")));
    }
    let cmd = url_decode(cmd);
    if mi.find(&cmd).is_err() {
        return (
            404,
            wrap(
                "OpenSIPS MI",
                &format!("<p>No MI command <b>{}</b>.</p>", escape(&cmd)),
            ),
        );
    }
    let form = format!(
        "<form method=\"{m}\" action=\"/{root}/{c}\">\
         <input type=\"text\" name=\"arg\" size=\"60\" placeholder='[\"param\"]'> \
         <input type=\"submit\" value=\"Run\"></form>\n\
         <p><a href=\"/{root}\">All commands</a></p>\n",
        m = wanted.to_ascii_lowercase(),
        c = escape(&cmd)
    );
    let args = match method {
        "GET" => field(query, "arg"),
        "POST" => field(&String::from_utf8_lossy(body), "arg"),
        _ => return (405, wrap(&cmd, "<p>Use GET or POST.</p>")),
    };
    // No `arg`: the form alone. A form posted with the other method is refused.
    let Some(args) = args else {
        return (200, wrap(&cmd, &form));
    };
    if method != wanted {
        return (405, wrap(&cmd, &format!("<p>Use {wanted}.</p>{form}")));
    }
    let args = args.trim();
    let params = if args.is_empty() {
        None
    } else {
        match serde_json::from_str::<serde_json::Value>(args) {
            Ok(v @ (serde_json::Value::Array(_) | serde_json::Value::Object(_))) => Some(v),
            _ => {
                return (
                    400,
                    wrap(
                        &cmd,
                        &format!(
                            "<p>The parameters must be a JSON array or object, not <code>{}</code>.</p>{form}",
                            escape(args)
                        ),
                    ),
                );
            }
        }
    };
    let result = match mi.call(&cmd, params.as_ref()) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        Err(e) => format!("Error {}: {}", e.code, e.message),
    };
    (
        200,
        wrap(&cmd, &format!("{form}<pre>{}</pre>\n", escape(&result))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(url_decode("%5B%22all%22%5D"), "[\"all\"]");
        assert_eq!(url_decode("a+b%zz%"), "a b%zz%");
        assert_eq!(field("x=1&arg=%5B%5D", "arg").as_deref(), Some("[]"));
        assert_eq!(field("x=1", "arg"), None);
        assert_eq!(
            escape("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
