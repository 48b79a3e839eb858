//! Requests rsips makes itself for the modules (dialog's BYEs, presence's NOTIFYs, pua's
//! PUBLISHes, uac_registrant's REGISTERs): through the running script's `local_route`, then
//! tm; and the `dlg_on_*` routes run over a dialog.

use std::sync::Arc;

use bytes::Bytes;
use engine::{MsgCtx, Worker};
use sip::SipMessage;

use super::{Outlet, Scripts};

/// Sends the requests the dialog module builds (BYEs ending a call): the running script's
/// `local_route` sees each first, then tm sends it.
pub(super) struct DialogSender(pub(super) Arc<Scripts>);

impl dialog::end::Sender for DialogSender {
    fn send(&self, ctx: MsgCtx, done: dialog::end::Done) -> Result<(), String> {
        send_local(
            &self.0,
            ctx,
            Box::new(move |reply| {
                done(&dialog::end::Final {
                    code: reply.code,
                    local: reply.reply.is_none(),
                    reason: reply.reason,
                });
            }),
        )
    }
}

/// Sends the NOTIFYs presence builds.
pub(super) struct PresenceSender(pub(super) Arc<Scripts>);

impl presence::Sender for PresenceSender {
    fn send(&self, ctx: MsgCtx, done: presence::Done) -> Result<(), String> {
        send_local(&self.0, ctx, Box::new(move |reply| done(reply.code)))
    }
}

/// Sends the PUBLISHes pua builds.
pub(super) struct PuaSender(pub(super) Arc<Scripts>);

impl pua::Sender for PuaSender {
    fn send(&self, ctx: MsgCtx, done: pua::Done) -> Result<(), String> {
        send_local(
            &self.0,
            ctx,
            Box::new(move |reply| done(reply.code, reply.reply)),
        )
    }
}

/// Sends the REGISTERs uac_registrant builds.
pub(super) struct RegistrantSender(pub(super) Arc<Scripts>);

impl uac_registrant::Sender for RegistrantSender {
    fn send(&self, ctx: MsgCtx, done: uac_registrant::Done) -> Result<(), String> {
        send_local(
            &self.0,
            ctx,
            Box::new(move |reply| done(reply.code, reply.reply)),
        )
    }
}

/// A request rsips builds itself: the running script's `local_route` sees it first (and may
/// drop it), then tm sends it; `done` gets its final reply.
fn send_local(scripts: &Scripts, mut ctx: MsgCtx, done: tm::core::LocalDone) -> Result<(), String> {
    let script = scripts.load();
    let mut worker = Worker::default();
    if !tm::run_local_route(
        &script,
        &mut worker,
        &mut ctx,
        &mut crate::logging::ScriptLog,
    ) {
        return Err("dropped by local_route".into());
    }
    let tm = tm::global().ok_or("tm is not running")?;
    tm.new_request(ctx, None, &script.net(), std::time::Instant::now(), done)
        .map(|_| ())
}

/// A `dlg_on_*` route over dialog `id`, on a placeholder message (OpenSIPS' "phony" one)
/// that carries the dialog, so `$DLG_*` and `$dlg_val` read it.
pub(super) fn run_dialog_route(scripts: &Scripts, outlet: &Outlet, route: usize, id: u64) {
    const PHONY: &[u8] = b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKdlgroute\r\nFrom: <sip:rsips@127.0.0.1>;tag=dlg\r\nTo: <sip:rsips@127.0.0.1>\r\nCall-ID: dialog-route\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let Ok(msg) = SipMessage::parse(Bytes::from_static(PHONY)) else {
        return;
    };
    let script = scripts.load();
    let mut ctx = MsgCtx::new(msg);
    ctx.script = Some(Arc::clone(&script));
    ctx.dialog = Some(engine::DialogMark {
        id,
        upstream: false,
        created: false,
        check: 0,
    });
    let mut worker = Worker::default();
    if let Err(e) = script.run_index(route, &mut worker, &mut ctx, &mut crate::logging::ScriptLog) {
        crate::logging::core(-1, &format!("dialog route: {e}"));
    }
    for out in std::mem::take(&mut ctx.outbox) {
        outlet.send(out, None);
    }
}
