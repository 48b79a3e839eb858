//! Globals with a grammar of their own in OpenSIPS' cfg.y: `auto_scaling_profile` and
//! `dst_blacklist` load (rsips' workers do not scale and it keeps no blacklists, but configs
//! that define them must start), their syntax errors point at the fault, and
//! `use_auto_scaling_profile` must name a defined profile.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use engine::{Available, Script};

/// The rendered diagnostics of compiling `src`, empty when it loads.
fn errors(src: &str) -> String {
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("g.cfg"), src.to_owned());
    let mut diags = parsed.diagnostics.clone();
    if !parsed.has_errors() {
        let available = Available {
            builtin: vec!["proto_udp"],
            ..Available::default()
        };
        if let Err(d) = Script::compile(&parsed.config, &sources, &available) {
            diags.extend(d);
        }
    }
    diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.render(&sources))
        .collect()
}

const BASE: &str = "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\n";

#[test]
fn opensips_profiles_and_blacklists_load() {
    let src = format!(
        "{BASE}auto_scaling_profile = PROFILE_UDP scale up to 8 on 80% for 4 cycles within 5 \
         scale down to 2 on 20% for 10 cycles\n\
         auto_scaling_profile = SMALL SCALE UP TO 4 ON 70% FOR 3 CYCLES\n\
         udp_workers = 2 use_auto_scaling_profile PROFILE_UDP\n\
         dst_blacklist = gw_list: {{ (tcp, 192.168.2.100, 5060, \"\"), (any, 192.168.2.0/24, 0, \"^OPTIONS\"), !(udp, 10.0.0.1), 10.1.0.0/16 }}\n\
         dst_blacklist = empty/readonly,expire: {{ }}\n\
         dst_blacklist = bare\n\
         route {{ exit; }}\n"
    );
    assert_eq!(errors(&src), "");
}

#[test]
fn their_errors_say_where() {
    let bad_profile = format!(
        "{BASE}auto_scaling_profile = P scale up to 8 at 80% for 4 cycles\nroute {{ exit; }}\n"
    );
    let e = errors(&bad_profile);
    assert!(
        e.contains("expected `on` in an auto-scaling profile") && e.contains("g.cfg:3:"),
        "{e}"
    );
    let bad_list = format!("{BASE}dst_blacklist = l: {{ (tcp 10.0.0.1) }}\nroute {{ exit; }}\n");
    let e = errors(&bad_list);
    assert!(
        e.contains("`,` or `)` in a blacklist rule") && e.contains("g.cfg:3:"),
        "{e}"
    );
    let undefined =
        format!("{BASE}udp_workers = 2 use_auto_scaling_profile NOPE\nroute {{ exit; }}\n");
    let e = errors(&undefined);
    assert!(e.contains("no auto_scaling_profile named `NOPE`"), "{e}");
}
