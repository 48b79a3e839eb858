//! The compiled script: routes lowered from the syntax tree with every name resolved (PVs to
//! [`Read`]/[`Write`], flags to bits, `$var` names to slots, routes to indexes, functions to
//! [`CoreFn`]). Running it does no string lookups.

use bytestring::ByteString;
use cfg::ast::{AssignOp, BinOp, CmpOp};

use crate::pv::CorePv;
use crate::transform::Compiled;
use crate::value::Value;

/// A readable variable.
#[derive(Debug, Clone)]
pub(crate) enum Read {
    Core(CorePv),
    Var(usize),
    Retcode,
    Param(usize),
    /// `$param(name)` in an event route: the `raise_event` attribute of that name.
    ParamNamed(String),
    Avp(usize, crate::pv::Index),
    /// `$msg.flag(NAME)`: 1 when set, 0 when not.
    Flag(u32),
    /// acc's `$acc_extra(tag)`: NULL until set.
    AccExtra(Box<str>),
    /// dialog's `$dlg_val(name)`: NULL until stored (or without a dialog).
    DlgVal(Box<str>),
    /// ratelimit's `$rl_count(name)`: the pipe's counter, NULL without such a pipe.
    RlCount(Box<str>),
    /// clusterer's `$cluster.sh_tag(name/cluster_id)`: `active` / `backup`.
    ShTag(Box<str>),
    /// sql_cacher's `$sql_cached_value(id:col:key)`: the name is a format string (the key
    /// may hold variables), expanded at each read.
    SqlCached(Box<[Piece]>),
    /// stir_shaken's `$identity(name)`: NULL without a usable Identity header.
    Identity(&'static str),
    /// tls_mgm's `$tls_version`, `$tls_description`, `$tls_cipher_info`, `$tls_cipher_bits`.
    Tls(&'static str),
    /// topology_hiding's `$TH_callee_callid`.
    ThCalleeCallid,
    /// nat_traversal's `$source_uri`.
    SourceUri,
    /// mqueue's `$mqk(q)`, `$mqv(q)`, `$mq_size(q)`, benchmark's `$BM_time_diff`: read
    /// through the module's reader.
    ModulePv(crate::hooks::ModulePv, Box<str>),
    /// b2b_logic's `$b2b_logic.key`, `.scenario`, `.entity(field)[i]`, `.ctx(name)`: read
    /// through the module for the message's session (full name, argument, index).
    B2b(Box<str>, Option<Box<str>>, Option<usize>),
    /// statistics' `$stat(name)`: the statistic's value, NULL without such a statistic.
    Stat(Box<str>),
    /// cfgutils' `$shv(name)`: a variable shared by every worker.
    Shv(Box<str>),
    AccLeg(Box<str>),
    AccCurrentLeg,
    /// `$msg.branch.flag(NAME)[i]` (no index: the last branch; 0 the R-URI's): 1 when set,
    /// 0 when not, NULL when there is no such branch.
    BranchFlag(u32, Option<i64>),
    /// `$hdr($var(h))`, `$(hdr(Via)[$var(i)])`: a header chosen at run time.
    DynHeader {
        name: Dyn<String>,
        index: Dyn<crate::pv::Index>,
    },
    /// `$(avp(x)[$var(i)])`.
    AvpAt(usize, Box<PvRead>),
    /// `$(msg.branch.<field>[$var])` (`legacy`: `$(branch(<field>)[$var])`, which counts the
    /// appended branches only): the branch a variable names.
    BranchAt {
        field: crate::pv::BranchField,
        at: Box<PvRead>,
        legacy: bool,
    },
    /// `$(msg.branch.attr(NAME)[$var])`.
    BranchAttrAt(Box<str>, Box<PvRead>),
    /// Known when the script is compiled (`$cfg_line`, `$cfg_file`).
    Const(Value),
    /// `$route` / `$route.name`: the running route's name; `$route.type`: its kind.
    RouteName,
    RouteType,
    /// `$xlog_level`, `$log_level`: this worker's levels.
    XlogLevel,
    LogLevel,
    /// `$return(i)`: a value returned by the last route that returned values (0-based).
    Returned(usize),
    /// `$bavp(name)`: an AVP of the branch tm is handling.
    Bavp(usize, crate::pv::Index),
    /// `$(<request>pv)` / `$(<reply>pv)`: a message PV read from the transaction's request or
    /// picked reply instead of the message being handled.
    InContext(Context, crate::pv::CorePv),
    /// `$sdp.line(...)`, `$sdp.session(...)`, `$sdp.stream(...)`: a line or token of the SDP.
    SdpLine(Box<SdpSel>),
    /// `$sdp.stream.idx(...)`: the index (in the whole SDP) of the line a selector finds.
    SdpLineIdx(Box<SdpSel>),
    /// `$json(name/path)` and its compact / pretty forms.
    Json(Box<super::json::JsonPath>),
    /// `$xml(name/el…[.val|.attr/a])`.
    Xml(Box<super::xml::XmlPath>),
}

/// An SDP index: written in the script, or read from a variable when the PV is used.
#[derive(Debug, Clone)]
pub(crate) enum SdpIdx {
    At(i64),
    Pv(Box<PvRead>),
}

/// A compiled SDP selector (see `pv::sdp`).
pub(crate) type SdpSel = crate::pv::sdp::Selector<SdpIdx>;

/// What an assignment to an SDP variable changes.
#[derive(Debug, Clone)]
pub(crate) enum SdpTarget {
    /// `$sdp`: the whole SDP.
    Body,
    Lines(SdpSel, crate::pv::sdp::LineOp),
}

/// The message a `$(<context>pv)` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    Request,
    Reply,
}

/// A readable variable with its transformations.
#[derive(Debug, Clone)]
pub(crate) struct PvRead {
    pub read: Read,
    pub transforms: Vec<(Compiled, Vec<Expr>)>,
}

/// A part known at load time or read from a variable at run time.
#[derive(Debug, Clone)]
pub(crate) enum Dyn<T> {
    Static(T),
    Var(Box<PvRead>),
}

/// An assignable variable.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    Var(usize),
    /// `$msg.branch = uri`: appends a branch to the destination set.
    AppendBranch,
    /// `$T_fr_timeout` / `$T_fr_inv_timeout` (seconds; NULL restores the module default).
    FrTimeout,
    FrInvTimeout,
    Ruri,
    RuriUser,
    RuriHost,
    RuriPort,
    DstUri,
    /// `$dd` / `$dp`: the host / port of `$du` (NULL removes the port).
    DstHost,
    DstPort,
    RuriQ,
    SocketOut,
    LogLevel,
    XlogLevel,
    Avp(usize, AvpSlot),
    Bavp(usize, AvpSlot),
    Flag(u32),
    /// acc's `$acc_extra(tag) = v` (NULL removes it).
    AccExtra(Box<str>),
    /// dialog's `$dlg_val(name) = v` and `$DLG_timeout = secs`.
    DlgVal(Box<str>),
    /// `$b2b_logic.ctx(name)`: the session's context value (NULL deletes it).
    B2bCtx(Box<str>),
    /// statistics' `$stat(name) = …`: resets it.
    Stat(Box<str>),
    /// cfgutils' `$shv(name) = …`.
    Shv(Box<str>),
    /// clusterer's `$cluster.sh_tag(name/cluster_id) = "active"`.
    ShTag(Box<str>),
    DlgTimeout,
    AccLeg(Box<str>),
    /// `$msg.branch.flag(NAME)[i] = bool` (no index: the last branch; 0 the R-URI's).
    BranchFlag(u32, Option<i64>),
    Sdp(Box<SdpTarget>),
    /// `$msg.branch.attr(NAME)[i]` (no index: the last branch).
    BranchAttr(Box<str>, Option<i64>),
    /// `$msg.branch.uri|duri|q|flags[i]` (no index: the last branch; 0 the R-URI's).
    BranchField(crate::pv::BranchField, Option<i64>),
    /// `$tm.branch.attr(NAME)[i]` (no index: the branch being handled).
    TmBranchAttr(Box<str>, Option<i64>),
    /// `$json(name/path) = v` (`:=` parses JSON text).
    Json(Box<super::json::JsonPath>),
    /// `$xml(name/path) = v` (`=` and `:=` alike).
    Xml(Box<super::xml::XmlPath>),
}

/// Which value(s) of an AVP an assignment sets (OpenSIPS pv_set_avp forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AvpSlot {
    /// `$avp(x)`: `=` pushes a new newest value, `:=` replaces all.
    Newest,
    /// `$(avp(x)[N])`: replaces value N (0 = newest).
    At(i64),
    /// `$(avp(x)[append])`: adds an oldest value.
    Append,
    /// `$(avp(x)[*])`: replaces all.
    All,
}

/// A string with PVs inside (`"$fu/$tu"`), split once at load time.
#[derive(Debug, Clone)]
pub(crate) enum Piece {
    Text(ByteString),
    Pv(PvRead),
}

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Const(Value),
    Pv(Box<PvRead>),
    Format(Vec<Piece>),
    Call(Box<Call>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp {
        op: CmpOp,
        left: Box<PvRead>,
        right: Box<Expr>,
        regex: Option<regex::Regex>,
    },
    CmpNet {
        negate: bool,
        left: Box<PvRead>,
        net: (std::net::IpAddr, u8),
    },
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    BitNot(Box<Expr>),
    Assign(Box<Assign>),
    Test(Box<Expr>),
}

#[derive(Debug, Clone)]
pub(crate) struct Assign {
    pub target: Write,
    pub op: AssignOp,
    pub value: Expr,
}

/// Core functions rsips runs itself (OpenSIPS core_cmds.c).
#[derive(Debug, Clone)]
pub(crate) enum CoreFn {
    /// `script_trace()` (off) or `script_trace(level, format[, info])`.
    ScriptTrace(Option<Box<TraceSpec>>),
    SetFlag(u32),
    ResetFlag(u32),
    IsFlagSet(u32),
    SetBFlag(u32),
    ResetBFlag(u32),
    IsBFlagSet(u32),
    SetUri(Expr),
    SetHost(Expr),
    SetHostPort(Expr),
    SetUser(Expr),
    SetPort(Expr),
    Prefix(Expr),
    Strip(Expr),
    StripTail(Expr),
    RevertUri,
    SetDstUri(Expr),
    ResetDstUri,
    IsDstUriSet,
    IsMyself(Expr, Option<Expr>),
    ForceRport,
    ForceSendSocket(String),
    /// `forward([dest])`: stateless relay (RFC 3261 §16.11).
    Forward(Option<Expr>),
    /// `send(dest[, headers])`: the message as received, to `dest`, without a Via of ours.
    Send(Expr, Option<Expr>),
    /// `socket_belongs_to_bond(socket, bond)`.
    SocketBelongsToBond(Expr, String),
    /// `raise_event(name)`: runs `event_route[name]` (synchronously, over a copy of the
    /// message) when the script has one.
    /// With the AVPs holding the attribute names and values (`raise_event(ev, $avp(n), $avp(v))`).
    RaiseEvent(Expr, Option<usize>, Option<usize>),
    /// `json_link($json(dest), $json(src))`.
    JsonLink(Box<super::json::JsonPath>, Box<super::json::JsonPath>),
    /// `subscribe_event(event, socket[, expire])`: an external subscriber (`crate::evi`).
    SubscribeEvent(Expr, Expr, Option<Expr>),
    /// `force_tcp_alias([port])`.
    ForceTcpAlias(Option<Expr>),
    /// `append_msg_branch(uri[, q][, flags])` / `append_branch_old([uri][, q])` (no uri: the
    /// R-URI branch moves into the set). The last field is `append_msg_branch`'s flags; `None`
    /// for `append_branch_old`, which always inherits the R-URI branch's `$du` and flags.
    AppendBranch(Option<Expr>, Option<Expr>, Option<Option<Expr>>),
    /// `remove_msg_branch(i)`, `move_msg_branch([src][, dst][, "keep"])`,
    /// `swap_msg_branches([a][, b])`: appended branches from 0, absent or negative is the
    /// R-URI's (OpenSIPS dset.c).
    RemoveMsgBranch(Expr),
    MoveMsgBranch(Option<Expr>, Option<Expr>, Option<Expr>),
    SwapMsgBranches(Option<Expr>, Option<Expr>),
    /// `construct_uri(proto, [user], domain, [port], [extra], $avp(result))`.
    ConstructUri(Box<[Option<Expr>; 5]>, Write),
    /// `serialize_branches(clear[, keep_order])`.
    SerializeBranches(Expr, Option<Expr>),
    /// `next_branches()`.
    NextBranches,
    /// `add_local_rport()`.
    AddLocalRport,
    /// `setuserpass(pass)`.
    SetUserPass(Expr),
    /// `avp_print()`.
    AvpPrint,
    /// `set_via_handling("force-rport, add-local-rport, reply-to-via, force-tcp-alias")`.
    SetViaHandling {
        force_rport: bool,
        local_rport: bool,
        reply_to_via: bool,
        tcp_alias: bool,
    },
    /// `cache_store(id, attr, value[, expire])`.
    CacheStore(Box<[Expr; 3]>, Option<Expr>),
    /// `cache_remove(id, attr)`.
    CacheRemove(Expr, Expr),
    /// `cache_fetch(id, attr, var)` / `cache_counter_fetch(id, attr, var)` (`true`: counter).
    CacheFetch(Expr, Expr, Write, bool),
    /// `cache_raw_query(id, query[, "$avp(result)"])`: the reply's values into the AVP.
    CacheRawQuery(Expr, Expr, Option<usize>),
    /// `cache_add` / `cache_sub(id, attr, n, expire[, var])` (`true`: sub).
    CacheAdd(Box<[Expr; 4]>, Option<Write>, bool),
    /// `set_advertised_address(addr)` / `set_advertised_port(port)`.
    SetAdvertised {
        address: bool,
        value: Expr,
    },
    /// `tcp_close_conn(id | [proto:]ip:port)`.
    TcpCloseConn(Expr),
    /// `get_timestamp($avp(sec), $avp(usec))`.
    GetTimestamp(Write, Write),
    /// `pv_printf(var, format)`.
    PvPrintf(Write, Expr),
}

/// An `xlog` level: fixed (`"L_ERR"`) or read from a variable at run time.
#[derive(Debug, Clone)]
pub(crate) enum Level {
    Fixed(i32),
    Pv(PvRead),
}

#[derive(Debug, Clone)]
pub(crate) enum Call {
    Core(CoreFn),
    Route {
        index: usize,
        params: Vec<Expr>,
        /// Where the call is written (an index into the script's sites), for profiling.
        site: u32,
    },
    /// `async(call, route)` (ends the calling route) / `launch(call[, route])` (goes on).
    Async {
        call: Box<Call>,
        route: Option<usize>,
        launch: bool,
    },
    Xlog {
        level: Level,
        format: Vec<Piece>,
    },
    Log {
        level: i32,
        text: ByteString,
    },
    Module {
        run: crate::module::ScriptFn,
        args: Vec<Expr>,
        /// The variables given for output parameters, by parameter index.
        /// (parameter, position in its variable list, target).
        outs: Vec<(usize, usize, Write)>,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum Stmt {
    Call(Call),
    Assign(Assign),
    If {
        cond: Expr,
        then: Box<Stmt>,
        otherwise: Option<Box<Stmt>>,
    },
    While {
        cond: Expr,
        body: Box<Stmt>,
    },
    /// Cases point into `body`; execution falls through from the matched case until `break`.
    Switch {
        subject: PvRead,
        cases: Vec<(Value, usize)>,
        default: Option<usize>,
        body: Vec<Stmt>,
    },
    /// `return(code, values…)`; the values are read with `$return(i)`.
    Return(Option<Expr>, Vec<Expr>),
    Exit,
    Drop,
    Break,
    Block(Vec<Stmt>),
    Nop,
    /// `for (var in $(x[*]))`.
    For {
        var: Write,
        values: PvRead,
        body: Box<Stmt>,
    },
    Assert {
        cond: Expr,
        message: String,
    },
    /// A statement with where it is written, for `script_trace()` (only in scripts that call
    /// it: the others pay nothing).
    Traced(Box<Traced>),
}

/// What `script_trace()` prints for a statement.
#[derive(Debug, Clone)]
pub(crate) struct Traced {
    pub file: Box<str>,
    pub line: usize,
    pub class: &'static str,
    pub action: Box<str>,
    pub stmt: Stmt,
}

/// `script_trace(level, format[, info])` as it was called.
#[derive(Debug, Clone)]
pub(crate) struct TraceSpec {
    pub level: Expr,
    pub format: Vec<Piece>,
    pub info: Option<Box<str>>,
}

/// A place in the configuration: the file as named on load (`$cfg_file`) and a 1-based line.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    pub file: std::sync::Arc<str>,
    pub line: u32,
}
