//! `$ct` and `$ct.fields(...)`: the contacts of every Contact header line, in order (OpenSIPS
//! pvar.c `pv_get_contact_body`). No index is the first one, `[i]` / `[-i]` counts from either
//! end, `[*]` joins them all with `, ` (a contact without the field adds an empty piece).

use sip::{HeaderName, NameAddr, SipMessage};

use super::{ContactField, Index};
use crate::value::Value;

/// The contact (or one of its fields) `index` selects; NULL without Contact or past the end.
pub(crate) fn contact(msg: &SipMessage, field: Option<ContactField>, index: Index) -> Value {
    let all: Vec<&str> = msg
        .values(HeaderName::Contact)
        .filter(|c| !c.is_empty())
        .collect();
    let at = match index {
        Index::First => 0,
        Index::At(i) if i < 0 => all.len() as i64 + i,
        Index::At(i) => i,
        Index::All if all.is_empty() => return Value::Null,
        Index::All => {
            let pieces: Vec<String> = all
                .iter()
                .map(|c| match field_of(msg, c, field) {
                    Value::Null => String::new(),
                    v => v.to_text().into_owned(),
                })
                .collect();
            return Value::from(pieces.join(", "));
        }
    };
    usize::try_from(at)
        .ok()
        .and_then(|i| all.get(i))
        .map_or(Value::Null, |c| field_of(msg, c, field))
}

/// One contact as written, or a field of it: parameters as written (strings, as OpenSIPS keeps
/// them), NULL when absent or empty; `*` has no fields.
fn field_of(msg: &SipMessage, raw: &str, field: Option<ContactField>) -> Value {
    let text = |s: Option<&str>| {
        s.filter(|s| !s.is_empty())
            .map_or(Value::Null, |s| Value::Str(msg.share(s)))
    };
    let Some(field) = field else {
        return text(Some(raw));
    };
    let Ok(c) = NameAddr::parse(raw) else {
        return Value::Null;
    };
    match field {
        ContactField::Uri => text(Some(c.uri().as_str())),
        ContactField::Name => text(super::uri::display_name(&c)),
        ContactField::Q => text(c.q()),
        ContactField::Expires => text(c.param("expires").flatten()),
        ContactField::Methods => text(c.param("methods").flatten()),
        ContactField::Received => text(c.param("received").flatten()),
        // From the first parameter name to the end of the last one.
        ContactField::Params => text(Some(
            c.params()
                .as_str()
                .trim_start_matches(|ch: char| ch == ';' || ch.is_ascii_whitespace())
                .trim_end(),
        )),
    }
}
