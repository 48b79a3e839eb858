//! The OpenSIPS `rtp_relay` module, for the RTPProxy engine: `rtp_relay_engage("rtpproxy"[,
//! set])` engages the call's media for the whole dialog as `rtpproxy_engage` does, with the
//! flags the script provisioned in `$rtp_relay` (the caller's leg: its `flags`, `ip`) — the
//! compiler keeps `$rtp_relay(field)` and `$rtp_relay_peer(field)` in the AVPs
//! `rtp_relay:field` / `rtp_relay_peer:field`. The `rtpengine` engine is not available through
//! rtp_relay in rsips yet (rtpengine's own `rtpengine_offer`/`answer`/`manage` are): a literal
//! `"rtpengine"` is refused when the script loads.

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamCheck, Routes, Value};

static ENGINE: ParamCheck = ParamCheck {
    what: "rtp_relay engine",
    check: |text| match text.trim() {
        "rtpproxy" => Ok(()),
        "rtpengine" => Err(
            "the rtpengine engine is not available through rtp_relay in rsips yet \
             (use rtpengine_offer/rtpengine_answer, or the rtpproxy engine)"
                .into(),
        ),
        other => Err(format!("unknown engine `{other}` (rtpproxy, rtpengine)")),
    },
};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "rtp_relay",
    functions: &[FnSpec {
        name: "rtp_relay_engage",
        params: &[(Param::CheckedStr(&ENGINE), false), (Param::Int, true)],
        // As OpenSIPS: a branch route engages the relay for that branch only.
        routes: Routes::REQUEST.or(Routes::FAILURE).or(Routes::BRANCH),
        run: rtp_relay_engage,
    }],
    params: &[],
};

fn rtp_relay_engage(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let engine = args
        .first()
        .map(|v| v.to_text().trim().to_owned())
        .unwrap_or_default();
    if let Err(e) = (ENGINE.check)(&engine) {
        f.log.log(-1, &format!("rtp_relay_engage: {e}\n"));
        return -1;
    }
    if !f.script.loads("rtpproxy") {
        f.log.log(
            -1,
            "rtp_relay_engage: the rtpproxy engine needs `loadmodule \"rtpproxy.so\"`\n",
        );
        return -1;
    }
    let text = |v: Option<Value>| {
        v.map(|v| v.to_text().into_owned())
            .filter(|s| !s.is_empty())
    };
    let flags = text(f.avp("rtp_relay:flags")).map_or(Value::Null, Value::from);
    let ip = text(f.avp("rtp_relay:ip")).map_or(Value::Null, Value::from);
    let set = args.get(1).cloned().unwrap_or(Value::Null);
    crate::rtpproxy_engage(f, &[flags, ip, set])
}
