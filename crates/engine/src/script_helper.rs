//! OpenSIPS' `script_helper`: loading it embeds the routing every basic script repeats, run
//! before the main request route. Sequential requests (a To tag) are loose-routed (an INVITE
//! record-routed again), relayed after the optional `sequential_route`, and never reach the
//! main route; one without our Route gets `404 Not Here` (an ACK is relayed if it matches a
//! transaction); a CANCEL is relayed to its transaction; retransmissions are absorbed;
//! initial requests are record-routed (not REGISTER or MESSAGE) and, with `use_dialog`, an
//! INVITE creates its dialog with `create_dialog_flags`.
//!
//! rsips embeds it as script: the statements are parsed from text made here (a source file
//! named `<script_helper>`) and put in front of the main route's, so they compile, run and
//! profile like the rest of the script. `exit` in the `sequential_route` ends the request
//! there, as OpenSIPS documents.

use cfg::ast::{Block, Config, Item, ParamValue, RouteBlock, RouteKind};
use cfg::{Diagnostic, SourceMap};

use crate::module::{ModuleSpec, ParamType};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "script_helper",
    functions: &[],
    params: &[
        ("use_dialog", ParamType::Int),
        ("create_dialog_flags", ParamType::Str),
        ("sequential_route", ParamType::Str),
    ],
};

fn loads(config: &Config, module: &str) -> Option<cfg::Span> {
    config.items.iter().find_map(|i| match i {
        Item::LoadModule(m) => {
            let file = m.node.rsplit('/').next().unwrap_or(&m.node);
            (file.strip_suffix(".so").unwrap_or(file) == module).then_some(m.span)
        }
        _ => None,
    })
}

fn modparam<'a>(config: &'a Config, name: &str) -> Option<&'a ParamValue> {
    config.items.iter().rev().find_map(|i| match i {
        Item::ModParam {
            module,
            param,
            value,
        } if module.node == "script_helper" && param.node == name => Some(&value.node),
        _ => None,
    })
}

/// The embedded statements as script text.
fn prelude(use_dialog: bool, flags: &str, seq_route: Option<&str>) -> String {
    let match_dialog = if use_dialog { "match_dialog();\n" } else { "" };
    let seq = seq_route.map_or(String::new(), |r| format!("route({r});\n"));
    let create = if use_dialog {
        format!("if ($rm == \"INVITE\") create_dialog(\"{flags}\");\n")
    } else {
        String::new()
    };
    format!(
        "route {{\n\
         if ($tt != NULL) {{\n\
         if ($rm == \"INVITE\") record_route();\n\
         if (!loose_route()) {{\n\
         {match_dialog}\
         if ($rm == \"ACK\") {{ if (t_check_trans()) t_relay(); exit; }}\n\
         sl_send_reply(404, \"Not Here\");\n\
         exit;\n\
         }}\n\
         t_check_trans();\n\
         {seq}\
         if (!t_relay()) sl_send_reply(500, \"Server Internal Error\");\n\
         exit;\n\
         }}\n\
         if ($rm == \"CANCEL\") {{ if (t_check_trans()) t_relay(); exit; }}\n\
         t_check_trans();\n\
         if ($rm != \"REGISTER\" && $rm != \"MESSAGE\") record_route();\n\
         {create}\
         }}\n"
    )
}

/// When the script loads script_helper, puts its statements in front of the main route's
/// (making a main route when there is none). Errors: a module it needs is not loaded, a
/// parameter is unusable.
pub fn embed(config: &mut Config, sources: &mut SourceMap) -> Vec<Diagnostic> {
    let Some(at) = loads(config, "script_helper") else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    let mut needs = vec!["rr", "sl", "tm"];
    let use_dialog = match modparam(config, "use_dialog") {
        Some(ParamValue::Int(n)) => *n != 0,
        Some(ParamValue::Str(s)) => s.trim() != "0",
        None => false,
    };
    if use_dialog {
        needs.push("dialog");
    }
    let missing: Vec<&str> = needs
        .into_iter()
        .filter(|m| loads(config, m).is_none())
        .collect();
    if !missing.is_empty() {
        errors.push(
            Diagnostic::error(
                format!(
                    "script_helper needs module{} {} loaded",
                    if missing.len() == 1 { "" } else { "s" },
                    missing
                        .iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                at,
            )
            .with_help(
                "OpenSIPS' script_helper depends on rr, sl and tm (and dialog with use_dialog)",
            ),
        );
        return errors;
    }
    let flags = match modparam(config, "create_dialog_flags") {
        Some(ParamValue::Str(s)) => s.clone(),
        _ => String::new(),
    };
    if flags.contains(['"', '\\']) {
        errors.push(Diagnostic::error(
            "script_helper: create_dialog_flags has a quote or a backslash",
            at,
        ));
        return errors;
    }
    let seq_route = match modparam(config, "sequential_route") {
        Some(ParamValue::Str(s)) if !s.trim().is_empty() => {
            let name = s.trim();
            let defined = config.items.iter().any(|i| {
                matches!(i, Item::Route(r) if r.kind == RouteKind::Request
                    && r.name.as_ref().is_some_and(|n| n.node == name))
            });
            if defined {
                Some(name.to_owned())
            } else {
                // OpenSIPS logs it and goes on without one.
                log::error!("script_helper: route \"{name}\" does not exist! ignoring");
                None
            }
        }
        _ => None,
    };
    let text = prelude(use_dialog, &flags, seq_route.as_deref());
    let parsed = cfg::parse(sources, std::path::Path::new("<script_helper>"), text);
    if parsed.diagnostics.iter().any(Diagnostic::is_error) {
        return parsed.diagnostics;
    }
    let Some(Item::Route(helper)) = parsed.config.items.into_iter().next() else {
        return errors;
    };
    let main = config.items.iter_mut().find_map(|i| match i {
        Item::Route(r) if r.kind == RouteKind::Request && r.name.is_none() => Some(r),
        _ => None,
    });
    match main {
        Some(r) => {
            let mut stmts = helper.body.stmts;
            stmts.append(&mut r.body.stmts);
            r.body.stmts = stmts;
        }
        None => config.items.push(Item::Route(RouteBlock {
            body: Block {
                stmts: helper.body.stmts,
                span: helper.body.span,
            },
            ..helper
        })),
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prelude_parses_in_every_form() {
        for (dialog, seq) in [(false, None), (true, Some("seq"))] {
            let mut sources = SourceMap::without_includes();
            let parsed = cfg::parse(
                &mut sources,
                std::path::Path::new("x.cfg"),
                prelude(dialog, "bye-on-timeout", seq),
            );
            assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        }
    }
}
