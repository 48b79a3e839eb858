//! What the server lends the script engine once it runs: the stream transports, for the core
//! functions that act on connections (`tcp_close_conn`).

use std::sync::OnceLock;

/// Closes the connection(s) a `tcp_close_conn` argument names: `Ok(true)` closed, `Ok(false)`
/// none matched, `Err` a bad description.
pub type TcpCloser = Box<dyn Fn(&str) -> Result<bool, String> + Send + Sync>;

static TCP_CLOSER: OnceLock<TcpCloser> = OnceLock::new();

/// Installs the closer (once; later calls are ignored).
pub fn set_tcp_closer(f: TcpCloser) {
    let _ = TCP_CLOSER.set(f);
}

/// `None` when no stream transport runs.
pub fn close_tcp(desc: &str) -> Option<Result<bool, String>> {
    TCP_CLOSER.get().map(|f| f(desc))
}

/// Keeps a stream connection (by id) open for a while even when idle.
pub type TcpKeeper = Box<dyn Fn(u64, std::time::Duration) -> bool + Send + Sync>;

static TCP_KEEPER: OnceLock<TcpKeeper> = OnceLock::new();

/// Installs the keeper (once; later calls are ignored).
pub fn set_tcp_keeper(f: TcpKeeper) {
    let _ = TCP_KEEPER.set(f);
}

/// Keeps connection `conn` open for `d` from now (registrar's `tcp_persistent_flag`); `false`
/// when no stream transport runs or the connection is gone.
pub fn keep_tcp(conn: u64, d: std::time::Duration) -> bool {
    TCP_KEEPER.get().is_some_and(|f| f(conn, d))
}

/// Writes a line as OpenSIPS' `LM_GEN2` does (accounting): `LEVEL:text`, no module tag, if
/// `level` passes the global `log_level`, to the syslog `facility` (a `LOG_*` name) given.
pub type LineWriter = Box<dyn Fn(i32, Option<&str>, &str) + Send + Sync>;

static LINE_WRITER: OnceLock<LineWriter> = OnceLock::new();

/// Installs the writer (once; later calls are ignored).
pub fn set_line_writer(f: LineWriter) {
    let _ = LINE_WRITER.set(f);
}

/// A line at `level` for `facility` through the installed writer (stderr without one).
pub fn gen_line(level: i32, facility: Option<&str>, text: &str) {
    match LINE_WRITER.get() {
        Some(f) => f(level, facility, text),
        None => eprintln!("{text}"),
    }
}

/// Whether a host is one of ours by a module's table (the `domain` module's domains count for
/// `is_myself`, as OpenSIPS' registered alias functions do).
pub type AliasCheck = Box<dyn Fn(&str) -> bool + Send + Sync>;

static ALIAS_CHECK: OnceLock<AliasCheck> = OnceLock::new();

/// Installs the check (once; later calls are ignored).
pub fn set_alias_check(f: AliasCheck) {
    let _ = ALIAS_CHECK.set(f);
}

/// `false` when no module installed a check.
pub fn is_alias(host: &str) -> bool {
    ALIAS_CHECK.get().is_some_and(|f| f(host))
}

/// A module's look at a sequential request `loose_route` took by our Route (uac restores
/// the From/To it replaced in the initial request).
pub type RoutedHook = Box<dyn Fn(&mut crate::MsgCtx) + Send + Sync>;

static ROUTED: std::sync::RwLock<Vec<RoutedHook>> = std::sync::RwLock::new(Vec::new());

/// Adds a hook (uac, path); they run in the order they were added.
pub fn set_routed_hook(f: RoutedHook) {
    ROUTED
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(f);
}

/// Runs the installed hooks (rr calls them after the dialog module's).
pub fn routed(ctx: &mut crate::MsgCtx) {
    let hooks = ROUTED
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for f in hooks.iter() {
        f(ctx);
    }
}

/// ratelimit's `$rl_count(name)`: the pipe's counter, `None` when there is no such pipe.
pub type PipeCounter = Box<dyn Fn(&str) -> Option<i64> + Send + Sync>;

static PIPE_COUNTER: OnceLock<PipeCounter> = OnceLock::new();

/// Installs the reader (once; later calls are ignored).
pub fn set_pipe_counter(f: PipeCounter) {
    let _ = PIPE_COUNTER.set(f);
}

/// `$rl_count(name)`: NULL without the module or such a pipe.
pub fn pipe_count(name: &str) -> crate::Value {
    PIPE_COUNTER
        .get()
        .and_then(|f| f(name))
        .map_or(crate::Value::Null, crate::Value::Int)
}

/// stir_shaken's `$identity(name)`: a field of the request's Identity header.
pub type IdentityReader = Box<dyn Fn(&crate::MsgCtx, &str) -> crate::Value + Send + Sync>;

static IDENTITY_READER: OnceLock<IdentityReader> = OnceLock::new();

/// Installs the reader (once; later calls are ignored).
pub fn set_identity_reader(f: IdentityReader) {
    let _ = IDENTITY_READER.set(f);
}

/// `$identity(name)`: NULL without the module.
pub fn identity(ctx: &crate::MsgCtx, name: &str) -> crate::Value {
    IDENTITY_READER
        .get()
        .map_or(crate::Value::Null, |f| f(ctx, name))
}

/// Raises an event a module publishes (`E_DISPATCHER_STATUS` …): its `event_route` runs, if
/// the script has one, with the event's parameters.
pub type EventRaiser = Box<dyn Fn(&str, Vec<(Option<String>, crate::Value)>) + Send + Sync>;

static EVENT_RAISER: OnceLock<EventRaiser> = OnceLock::new();

/// Installs the raiser (once; later calls are ignored).
pub fn set_event_raiser(f: EventRaiser) {
    let _ = EVENT_RAISER.set(f);
}

/// Whether anybody listens to an event (an `event_route` or a subscriber): a module that
/// raises often (usrloc's `E_UL_*`) builds the parameters only then.
pub type EventWanted = Box<dyn Fn(&str) -> bool + Send + Sync>;

static EVENT_WANTED: OnceLock<EventWanted> = OnceLock::new();

/// Installs the check (once; later calls are ignored).
pub fn set_event_wanted(f: EventWanted) {
    let _ = EVENT_WANTED.set(f);
}

/// Whether `name` has a listener; `false` before the server installed the check.
pub fn event_wanted(name: &str) -> bool {
    EVENT_WANTED.get().is_some_and(|f| f(name))
}

/// Raises `name` with `params`; nothing happens before the server installed a raiser.
pub fn raise_event(name: &str, params: Vec<(Option<String>, crate::Value)>) {
    if let Some(f) = EVENT_RAISER.get() {
        f(name, params);
    }
}

/// A call that ended, as the dialog module tells it (acc's CDRs). Times are milliseconds
/// since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogEnd {
    /// When the dialog was created (the initial INVITE).
    pub created_ms: i64,
    /// When it was answered (its 2xx).
    pub start_ms: i64,
    pub end_ms: i64,
    /// `$DLG_end_reason`.
    pub reason: String,
}

/// Called once when a dialog ends.
pub type OnDialogEnd = Box<dyn FnOnce(&DialogEnd) + Send>;

/// What the dialog module answers for the core and tm: the `$DLG_*` variables of a message,
/// replies sent upstream for a transaction of a dialog, sequential requests routed by
/// `loose_route`.
pub trait DialogHooks: Send + Sync {
    /// `$DLG_*` (`name` without the `$`) for the message's dialog.
    fn pv(&self, ctx: &crate::MsgCtx, name: &str) -> crate::Value;
    /// A reply of `code` went upstream for a request of the dialog `mark` names (`upstream`:
    /// the request went towards the caller), the reply as sent or built (`None` for a
    /// negative one tm made itself).
    fn reply_sent(&self, mark: crate::DialogMark, code: u16, reply: Option<&sip::SipMessage>);
    /// The INVITE of dialog `dialog` was cancelled (a CANCEL matched its transaction).
    fn cancelled(&self, _dialog: u64) {}
    /// A reply of a transaction of the dialog `mark` names, about to be relayed upstream: the
    /// module may change it (`ctx.edits`; sst's Session-Expires).
    fn reply_out(&self, _ctx: &mut crate::MsgCtx, _mark: crate::DialogMark) {}
    /// The transaction of a request of dialog `dialog` is gone: a dialog it created and that
    /// never got a final reply goes away too.
    fn tx_gone(&self, dialog: u64);
    /// `loose_route()` took a sequential request with our Route (its parameters in
    /// `ctx.rr_params`): the dialog it belongs to is matched and its state moves.
    fn routed(&self, ctx: &mut crate::MsgCtx);
    /// The request route is done with a request: a dialog it created but left with no
    /// transaction (a stateless reply) goes away.
    fn request_done(&self, ctx: &crate::MsgCtx);
    /// `$dlg_val(name)` of the message's dialog.
    fn val(&self, ctx: &crate::MsgCtx, name: &str) -> crate::Value;
    /// `$dlg_val(name) = v` (NULL removes it); false without a dialog.
    fn set_val(&self, ctx: &crate::MsgCtx, name: &str, v: &crate::Value) -> bool;
    /// `$DLG_timeout = secs`: the dialog's lifetime (from now once it is confirmed).
    fn set_timeout(&self, ctx: &crate::MsgCtx, secs: u32) -> bool;
    /// A dialog for the initial INVITE in `ctx` (the one it has, or a new one): its id.
    fn create(&self, ctx: &mut crate::MsgCtx) -> Option<u64>;
    /// When dialog `dialog` was created (ms since the epoch).
    fn created_ms(&self, dialog: u64) -> Option<i64>;
    /// Runs `f` when the confirmed dialog `dialog` ends; false when there is no such dialog.
    fn on_end(&self, dialog: u64, f: OnDialogEnd) -> bool;
}

static DIALOG: OnceLock<Box<dyn DialogHooks>> = OnceLock::new();

/// Installs the dialog module's hooks (once).
pub fn set_dialog_hooks(h: Box<dyn DialogHooks>) {
    let _ = DIALOG.set(h);
}

pub fn dialog_pv(ctx: &crate::MsgCtx, name: &str) -> crate::Value {
    DIALOG.get().map_or(crate::Value::Null, |d| d.pv(ctx, name))
}

pub fn dialog_reply_sent(mark: crate::DialogMark, code: u16, reply: Option<&sip::SipMessage>) {
    if let Some(d) = DIALOG.get() {
        d.reply_sent(mark, code, reply);
    }
}

pub fn dialog_cancelled(dialog: u64) {
    if let Some(d) = DIALOG.get() {
        d.cancelled(dialog);
    }
}

pub fn dialog_tx_gone(dialog: u64) {
    if let Some(d) = DIALOG.get() {
        d.tx_gone(dialog);
    }
}

pub fn dialog_routed(ctx: &mut crate::MsgCtx) {
    if let Some(d) = DIALOG.get() {
        d.routed(ctx);
    }
}

pub fn dialog_request_done(ctx: &crate::MsgCtx) {
    if ctx.dialog.is_some()
        && let Some(d) = DIALOG.get()
    {
        d.request_done(ctx);
    }
}

pub fn dialog_val(ctx: &crate::MsgCtx, name: &str) -> crate::Value {
    match (ctx.dialog, DIALOG.get()) {
        (Some(_), Some(d)) => d.val(ctx, name),
        _ => crate::Value::Null,
    }
}

pub fn dialog_set_val(ctx: &crate::MsgCtx, name: &str, v: &crate::Value) -> bool {
    match (ctx.dialog, DIALOG.get()) {
        (Some(_), Some(d)) => d.set_val(ctx, name, v),
        _ => false,
    }
}

pub fn dialog_set_timeout(ctx: &crate::MsgCtx, secs: u32) -> bool {
    match (ctx.dialog, DIALOG.get()) {
        (Some(_), Some(d)) => d.set_timeout(ctx, secs),
        _ => false,
    }
}

/// Whether the dialog module runs (its hooks are installed).
pub fn dialog_running() -> bool {
    DIALOG.get().is_some()
}

pub fn dialog_reply_out(ctx: &mut crate::MsgCtx, mark: crate::DialogMark) {
    if let Some(d) = DIALOG.get() {
        d.reply_out(ctx, mark);
    }
}

pub fn dialog_create(ctx: &mut crate::MsgCtx) -> Option<u64> {
    DIALOG.get().and_then(|d| d.create(ctx))
}

pub fn dialog_created_ms(dialog: u64) -> Option<i64> {
    DIALOG.get().and_then(|d| d.created_ms(dialog))
}

pub fn dialog_on_end(dialog: u64, f: OnDialogEnd) -> bool {
    DIALOG.get().is_some_and(|d| d.on_end(dialog, f))
}

/// topology_hiding's Contact for a reply it hides: from the reply, the socket (`proto`,
/// address) it came in on and the state the module left in [`crate::HideFixup::state`].
pub type ContactBuilder = Box<
    dyn Fn(&sip::SipMessage, Option<(&'static str, std::net::SocketAddr)>, &str) -> Option<String>
        + Send
        + Sync,
>;

static HIDDEN_CONTACT: OnceLock<ContactBuilder> = OnceLock::new();

/// Installs the builder (once; later calls are ignored).
pub fn set_hidden_contact(f: ContactBuilder) {
    let _ = HIDDEN_CONTACT.set(f);
}

/// The Contact topology_hiding gives a reply; `None` when the module is not there or has
/// none to give.
pub fn hidden_contact(
    reply: &sip::SipMessage,
    came_on: Option<(&'static str, std::net::SocketAddr)>,
    state: &str,
) -> Option<String> {
    HIDDEN_CONTACT.get().and_then(|f| f(reply, came_on, state))
}

/// A media module's part in the dialogs it engaged (rtpproxy's `rtpproxy_engage`): told of
/// each sequential request the dialog module matched, each reply tm relays for a request of
/// a dialog, and each dialog that ends (answered or not).
pub trait MediaHooks: Send + Sync {
    /// A sequential request of dialog `dialog` (`ctx.dialog` is set).
    fn request(&self, ctx: &mut crate::MsgCtx, dialog: u64);
    /// A reply (in `ctx`, which the module may edit) that tm is about to relay, for a request
    /// of dialog `dialog` with that method, with or without a body.
    fn reply(&self, ctx: &mut crate::MsgCtx, dialog: u64, method: &str, request_body: bool);
    /// Dialog `dialog` ended or was given up.
    fn gone(&self, dialog: u64);
}

static MEDIA: OnceLock<Box<dyn MediaHooks>> = OnceLock::new();

/// Installs the media module's hooks (once).
pub fn set_media_hooks(h: Box<dyn MediaHooks>) {
    let _ = MEDIA.set(h);
}

pub fn media_request(ctx: &mut crate::MsgCtx, dialog: u64) {
    if let Some(m) = MEDIA.get() {
        m.request(ctx, dialog);
    }
}

/// Whether a media module listens (tm looks at the request only then).
pub fn media_running() -> bool {
    MEDIA.get().is_some()
}

pub fn media_reply(ctx: &mut crate::MsgCtx, dialog: u64, method: &str, request_body: bool) {
    if let Some(m) = MEDIA.get() {
        m.reply(ctx, dialog, method, request_body);
    }
}

pub fn media_gone(dialog: u64) {
    if let Some(m) = MEDIA.get() {
        m.gone(dialog);
    }
}

/// clusterer's `$cluster.sh_tag(name/cluster_id)`: the sharing tag's state.
pub type ShtagReader = Box<dyn Fn(&str) -> crate::Value + Send + Sync>;

static SHTAG_READER: OnceLock<ShtagReader> = OnceLock::new();

/// Installs the reader (once; later calls are ignored).
pub fn set_shtag_reader(f: ShtagReader) {
    let _ = SHTAG_READER.set(f);
}

/// `$cluster.sh_tag(name/cluster_id)`: NULL without the module.
pub fn shtag(name: &str) -> crate::Value {
    SHTAG_READER.get().map_or(crate::Value::Null, |f| f(name))
}

/// clusterer's `$cluster.sh_tag(name/cluster_id) = v`: `false` when refused.
pub type ShtagWriter = Box<dyn Fn(&str, &crate::Value) -> bool + Send + Sync>;

static SHTAG_WRITER: OnceLock<ShtagWriter> = OnceLock::new();

/// Installs the writer (once; later calls are ignored).
pub fn set_shtag_writer(f: ShtagWriter) {
    let _ = SHTAG_WRITER.set(f);
}

/// `$cluster.sh_tag(name/cluster_id) = v`: `false` without the module.
pub fn shtag_set(name: &str, v: &crate::Value) -> bool {
    SHTAG_WRITER.get().is_some_and(|f| f(name, v))
}

/// sql_cacher's `$sql_cached_value(id:col:key)`, given the expanded name.
pub type SqlCacheReader = Box<dyn Fn(&str) -> crate::Value + Send + Sync>;

static SQL_CACHE_READER: OnceLock<SqlCacheReader> = OnceLock::new();

/// Installs the reader (once; later calls are ignored).
pub fn set_sql_cache_reader(f: SqlCacheReader) {
    let _ = SQL_CACHE_READER.set(f);
}

/// `$sql_cached_value(...)`: NULL without the module.
pub fn sql_cached_value(name: &str) -> crate::Value {
    SQL_CACHE_READER
        .get()
        .map_or(crate::Value::Null, |f| f(name))
}

/// A module's look at each reply tm relays upstream, after the onreply routes (mid_registrar
/// stores what the main registrar granted): the reply's context and the script its request
/// ran in.
pub type ReplyHook = Box<dyn Fn(&mut crate::MsgCtx, &crate::Script) + Send + Sync>;

static REPLY_HOOKS: std::sync::RwLock<Vec<ReplyHook>> = std::sync::RwLock::new(Vec::new());
static REPLY_HOOKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Adds a reply hook (they run in the order added).
pub fn add_reply_hook(f: ReplyHook) {
    REPLY_HOOKS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(f);
    REPLY_HOOKED.store(true, std::sync::atomic::Ordering::Release);
}

/// Whether any module hooks replies (one load per reply otherwise).
pub fn reply_hooked() -> bool {
    REPLY_HOOKED.load(std::sync::atomic::Ordering::Acquire)
}

pub fn run_reply_hooks(ctx: &mut crate::MsgCtx, script: &crate::Script) {
    let hooks = REPLY_HOOKS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for f in hooks.iter() {
        f(ctx, script);
    }
}

/// Read-only pseudo-variables of modules that keep their state to themselves: mqueue's
/// `$mqk(q)`, `$mqv(q)`, `$mq_size(q)` and benchmark's `$BM_time_diff`. The script compiler
/// resolves the name to one of these; the module installs the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModulePv {
    MqKey,
    MqValue,
    MqSize,
    BmTimeDiff,
    /// nat_traversal's `$keepalive.socket(uri)`.
    KeepaliveSocket,
}

/// Reads a [`ModulePv`] given its argument (the queue name; empty for `$BM_time_diff`).
pub type ModulePvReader = Box<dyn Fn(ModulePv, &str) -> crate::Value + Send + Sync>;

static MQUEUE_PVS: OnceLock<ModulePvReader> = OnceLock::new();
static BENCHMARK_PVS: OnceLock<ModulePvReader> = OnceLock::new();
static NAT_TRAVERSAL_PVS: OnceLock<ModulePvReader> = OnceLock::new();

/// Installs the reader of a module's variables (once per module; later calls are ignored).
pub fn set_module_pv_reader(pv: ModulePv, f: ModulePvReader) {
    let slot = match pv {
        ModulePv::MqKey | ModulePv::MqValue | ModulePv::MqSize => &MQUEUE_PVS,
        ModulePv::BmTimeDiff => &BENCHMARK_PVS,
        ModulePv::KeepaliveSocket => &NAT_TRAVERSAL_PVS,
    };
    let _ = slot.set(f);
}

/// The variable's value: NULL without the module.
pub fn module_pv(pv: ModulePv, arg: &str) -> crate::Value {
    let slot = match pv {
        ModulePv::MqKey | ModulePv::MqValue | ModulePv::MqSize => &MQUEUE_PVS,
        ModulePv::BmTimeDiff => &BENCHMARK_PVS,
        ModulePv::KeepaliveSocket => &NAT_TRAVERSAL_PVS,
    };
    slot.get().map_or(crate::Value::Null, |f| f(pv, arg))
}

/// A module's look at each request before the script runs (OpenSIPS' pre-script callbacks:
/// b2b_entities takes the in-dialog requests of its dialogs there): `true` when the module
/// took the request, and the script does not run for it. It runs with the worker's state and
/// log, for the routes the module runs itself.
pub type RequestHook = Box<
    dyn Fn(&mut crate::MsgCtx, &crate::Script, &mut crate::Worker, &mut dyn crate::Log) -> bool
        + Send
        + Sync,
>;

static REQUEST_HOOKS: std::sync::RwLock<Vec<RequestHook>> = std::sync::RwLock::new(Vec::new());
static REQUEST_HOOKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Adds a request hook (they run in the order added, until one takes the request).
pub fn add_request_hook(f: RequestHook) {
    REQUEST_HOOKS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(f);
    REQUEST_HOOKED.store(true, std::sync::atomic::Ordering::Release);
}

/// Whether any module hooks requests (one load per request otherwise).
pub fn request_hooked() -> bool {
    REQUEST_HOOKED.load(std::sync::atomic::Ordering::Acquire)
}

/// Runs the request hooks; `true` when one took the request.
pub fn run_request_hooks(
    ctx: &mut crate::MsgCtx,
    script: &crate::Script,
    worker: &mut crate::Worker,
    log: &mut dyn crate::Log,
) -> bool {
    let hooks = REQUEST_HOOKS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    hooks.iter().any(|f| f(ctx, script, worker, log))
}

/// b2b_logic's `$b2b_logic.key`, `$b2b_logic.scenario`, `$b2b_logic.entity(field)[idx]` and
/// `$b2b_logic.ctx(name)`: read for the message with this id (`MsgCtx::id`), given the
/// variable's name without `$`, the name in parentheses and the index.
pub type B2bPvReader =
    Box<dyn Fn(u64, &str, Option<&str>, Option<usize>) -> crate::Value + Send + Sync>;

/// `$b2b_logic.ctx(name) = v` (NULL deletes it): `false` when refused.
pub type B2bPvWriter = Box<dyn Fn(u64, &str, Option<&str>, &crate::Value) -> bool + Send + Sync>;

static B2B_PVS: OnceLock<(B2bPvReader, B2bPvWriter)> = OnceLock::new();

/// Installs the reader and writer (once; later calls are ignored).
pub fn set_b2b_pvs(read: B2bPvReader, write: B2bPvWriter) {
    let _ = B2B_PVS.set((read, write));
}

/// A `$b2b_logic.*` variable: NULL without the module.
pub fn b2b_pv(msg_id: u64, name: &str, arg: Option<&str>, index: Option<usize>) -> crate::Value {
    B2B_PVS
        .get()
        .map_or(crate::Value::Null, |(r, _)| r(msg_id, name, arg, index))
}

/// Assigns a `$b2b_logic.*` variable: `false` without the module.
pub fn b2b_pv_set(msg_id: u64, name: &str, arg: Option<&str>, v: &crate::Value) -> bool {
    B2B_PVS.get().is_some_and(|(_, w)| w(msg_id, name, arg, v))
}

/// tls_mgm's `$tls_version`, `$tls_description`, `$tls_cipher_info`, `$tls_cipher_bits`:
/// given the connection id and the variable's name, its value (NULL off TLS).
pub type TlsReader = Box<dyn Fn(u64, &str) -> crate::Value + Send + Sync>;

static TLS_READER: OnceLock<TlsReader> = OnceLock::new();

/// Installs the reader (once; later calls are ignored).
pub fn set_tls_reader(f: TlsReader) {
    let _ = TLS_READER.set(f);
}

/// A `$tls_*` variable of the connection the message came on: NULL without one.
pub fn tls(ctx: &crate::MsgCtx, name: &str) -> crate::Value {
    match (ctx.receipt.as_ref().and_then(|r| r.conn), TLS_READER.get()) {
        (Some(conn), Some(f)) => f(conn, name),
        _ => crate::Value::Null,
    }
}

/// topology_hiding's `$TH_callee_callid`: the Call-ID the message's hidden dialog shows the
/// callee (NULL without one, or without flag `C`).
pub type ThCallidReader = Box<dyn Fn(&crate::MsgCtx) -> crate::Value + Send + Sync>;

static TH_CALLID: OnceLock<ThCallidReader> = OnceLock::new();

/// Installs the reader (once; later calls are ignored).
pub fn set_th_callid_reader(f: ThCallidReader) {
    let _ = TH_CALLID.set(f);
}

/// `$TH_callee_callid` of `ctx`: NULL without the module.
pub fn th_callee_callid(ctx: &crate::MsgCtx) -> crate::Value {
    TH_CALLID.get().map_or(crate::Value::Null, |f| f(ctx))
}
