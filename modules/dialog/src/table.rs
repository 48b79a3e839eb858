//! The dialogs in memory: one record per call the script created a dialog for, found by its
//! id (the `did` Route parameter) or by its SIP identifiers, and the profile counters.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// OpenSIPS' dialog states (`$DLG_status`, MI `state`).
pub const UNCONFIRMED: u8 = 1;
pub const EARLY: u8 = 2;
pub const CONFIRMED_NA: u8 = 3;
pub const CONFIRMED: u8 = 4;
pub const DELETED: u8 = 5;

/// One side of the call, as the proxy sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leg {
    pub tag: String,
    /// The remote target (Contact URI) requests towards this side go to.
    pub contact: String,
    /// The last CSeq number this side sent.
    pub cseq: u32,
    /// The Route set for requests from us towards this side, first hop first.
    pub route_set: Vec<String>,
    /// The socket we talk to this side on (`udp:127.0.0.1:5060`).
    pub socket: Option<String>,
    /// The last CSeq number on a request rsips sent towards this side, once it sent one of
    /// its own (a PRACK, `dlg_send_sequential`): the other side's requests that follow are
    /// renumbered after it, as OpenSIPS' `last_gen_cseq` (0: none sent, nothing renumbered).
    pub gen_cseq: u32,
    /// The INVITEs towards this side that were renumbered, (as sent, as relayed), the latest
    /// last: their ACKs follow them.
    pub renumbered: Vec<(u32, u32)>,
    /// The reliable provisional replies of this side rsips acknowledged itself (`auto-prack`),
    /// (To tag, RSeq): a retransmission is not acknowledged twice.
    pub pracked: Vec<(String, u32)>,
    /// The last SDP this side sent (offer or answer), and the last one rsips relayed to it
    /// (after what the script and media modules changed). Kept for dialogs with re-INVITE
    /// pings, which offer it again.
    pub in_sdp: String,
    pub out_sdp: String,
    /// The Contact topology hiding advertised to this side (OpenSIPS' `adv_contact`): the one
    /// of the INVITE towards the callee, of the 200 OK towards the caller. Flags `A` and `a`
    /// keep showing it for the whole call.
    pub adv_contact: String,
}

impl Flags {
    /// Whether the dialog keeps the SDP of each side (for re-INVITE pings).
    pub fn keeps_sdp(self) -> bool {
        self.reinvite_ping_caller || self.reinvite_ping_callee
    }
}

impl Leg {
    /// The CSeq number for a request rsips sends towards this side itself: one above both what
    /// it used last and `seen`, the last number the other side sent this way.
    pub fn next_gen_cseq(&mut self, seen: u32) -> u32 {
        self.gen_cseq = self.gen_cseq.max(seen).saturating_add(1);
        self.gen_cseq
    }
}

/// `n` in hex digits, least significant first (OpenSIPS `int2reverse_hex`).
pub fn reverse_hex(n: u32) -> String {
    let mut out = String::with_capacity(8);
    push_reverse_hex(&mut out, n);
    out
}

/// Appends [`reverse_hex`]`(n)` to `out` (no allocation of its own: the `did` is built on
/// every dialog-creating request).
fn push_reverse_hex(out: &mut String, mut n: u32) {
    if n == 0 {
        out.push('0');
        return;
    }
    while n > 0 {
        out.push(char::from_digit(n & 0xf, 16).unwrap_or('0'));
        n >>= 4;
    }
}

/// The number [`reverse_hex`] wrote (either case; at most 8 digits).
pub fn reverse_hex_int(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 8 {
        return None;
    }
    let mut n: u32 = 0;
    for c in text.chars().rev() {
        n = (n << 4) | c.to_digit(16)?;
    }
    Some(n)
}

/// What `create_dialog` flags ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub bye_on_timeout: bool,
    pub ping_caller: bool,
    pub ping_callee: bool,
    pub reinvite_ping_caller: bool,
    pub reinvite_ping_callee: bool,
    pub end_on_race: bool,
    pub auto_prack: bool,
}

/// OpenSIPS' `DLG_FLAG_*` bits of the `create_dialog` flags (modules/dialog/dlg_hash.h), as
/// its `flags` column keeps them, so that either server reads the other's rows.
const BYE_ON_TIMEOUT: u32 = 1 << 3;
const PING_CALLER: u32 = 1 << 5;
const PING_CALLEE: u32 = 1 << 6;
const REINVITE_PING_CALLER: u32 = 1 << 11;
const REINVITE_PING_CALLEE: u32 = 1 << 12;
const END_ON_RACE: u32 = 1 << 15;
const AUTO_PRACK: u32 = 1 << 20;

impl Flags {
    /// The bits OpenSIPS keeps for them (the `flags` column).
    pub fn bits(self) -> u32 {
        [
            (self.bye_on_timeout, BYE_ON_TIMEOUT),
            (self.ping_caller, PING_CALLER),
            (self.ping_callee, PING_CALLEE),
            (self.reinvite_ping_caller, REINVITE_PING_CALLER),
            (self.reinvite_ping_callee, REINVITE_PING_CALLEE),
            (self.end_on_race, END_ON_RACE),
            (self.auto_prack, AUTO_PRACK),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, b)| b)
        .sum()
    }

    /// Both sets of flags.
    pub fn merge(self, o: Flags) -> Flags {
        Flags::from_bits(self.bits() | o.bits())
    }

    pub fn from_bits(bits: u32) -> Flags {
        Flags {
            bye_on_timeout: bits & BYE_ON_TIMEOUT != 0,
            ping_caller: bits & PING_CALLER != 0,
            ping_callee: bits & PING_CALLEE != 0,
            reinvite_ping_caller: bits & REINVITE_PING_CALLER != 0,
            reinvite_ping_callee: bits & REINVITE_PING_CALLEE != 0,
            end_on_race: bits & END_ON_RACE != 0,
            auto_prack: bits & AUTO_PRACK != 0,
        }
    }

    /// `create_dialog`'s flags: names separated by `,`, `|` or blanks.
    pub fn parse(text: &str) -> Result<Flags, String> {
        let mut f = Flags::default();
        for name in text
            .split(|c: char| c == ',' || c == '|' || c.is_whitespace())
            .filter(|n| !n.is_empty())
        {
            match name.to_ascii_lowercase().as_str() {
                "bye-on-timeout" => f.bye_on_timeout = true,
                "auto-prack" => f.auto_prack = true,
                "options-ping-caller" => f.ping_caller = true,
                "options-ping-callee" => f.ping_callee = true,
                "reinvite-ping-caller" => f.reinvite_ping_caller = true,
                "reinvite-ping-callee" => f.reinvite_ping_callee = true,
                "end-on-race-condition" => f.end_on_race = true,
                other => {
                    return Err(format!(
                        "unknown create_dialog flag `{other}` (bye-on-timeout, \
                         options-ping-caller, options-ping-callee, reinvite-ping-caller, \
                         reinvite-ping-callee, end-on-race-condition, auto-prack)"
                    ));
                }
            }
        }
        Ok(f)
    }
}

/// How a dialog went, for what [`crate::on_gone`] armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone {
    /// It was answered (confirmed) before it ended.
    pub answered: bool,
    /// Seconds from its answer to its end (0 when never answered).
    pub duration: u64,
}

/// Run once when a dialog goes, however it went.
pub type OnGone = Box<dyn FnOnce(&Gone) + Send>;

/// One dialog.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub id: u64,
    pub state: u8,
    pub callid: String,
    pub from_uri: String,
    pub to_uri: String,
    pub caller: Leg,
    pub callee: Leg,
    /// The CSeq of the INVITE that created it.
    pub initial_cseq: u32,
    pub flags: Flags,
    /// The script's dialog flags (`set_dlg_flag`), by the bits of [`flag_bit`].
    pub user_flags: u32,
    /// The routes to run when it is answered, times out, ends.
    pub routes: Routes,
    /// The lifetime (seconds) once confirmed: `default_timeout`, or `$DLG_timeout`.
    pub lifetime: u32,
    /// Unix time it was confirmed (0 before).
    pub start_unix: i64,
    /// When it was created and confirmed, in ms since the epoch (0: not yet).
    pub created_ms: i64,
    pub start_ms: i64,
    /// When a confirmed dialog times out.
    pub expires: Option<Instant>,
    /// When a deleted one leaves the table.
    pub gone_at: Option<Instant>,
    pub end_reason: Option<String>,
    /// (profile, value — empty for profiles without one).
    pub profiles: Vec<(String, String)>,
    /// `store_dlg_value`.
    pub vals: Vec<(String, String)>,
    /// When the next OPTIONS ping is due (`options-ping-*` flags).
    pub next_ping: Option<Instant>,
    /// How many pings were sent.
    pub pings: u32,
    /// A row for it is in the database (written, or loaded at start).
    pub stored: bool,
    /// Its session timer (the sst module).
    pub sst: Option<crate::sst::Info>,
    /// When the next re-INVITE ping is due (`reinvite-ping-*` flags).
    pub next_reinvite: Option<Instant>,
    /// Its INVITE was cancelled; `race`: a CANCEL and a 2xx crossed (RFC 5407) and, with
    /// `end-on-race-condition`, it ends after `race_condition_timeout`.
    pub cancelled: bool,
    pub race: bool,
    /// What other modules keep on the call (OpenSIPS' `mod_flags`): topology_hiding's bits,
    /// [`TOPOH_ONGOING`] once it hides the call.
    pub mod_flags: u32,
}

/// [`Dialog::mod_flags`]: topology hiding runs on the call, its state kept in the dialog
/// (OpenSIPS' bit, next to the flags topology_hiding keeps there).
pub const TOPOH_ONGOING: u32 = 1 << 1;

/// A `did` value (`entry.id`, reversed hex) as a dialog id; `None` when malformed.
pub fn parse_did(did: &str) -> Option<u64> {
    let (e, i) = did.split_once('.')?;
    Some((u64::from(reverse_hex_int(e)?) << 32) | u64::from(reverse_hex_int(i)?))
}

/// The dialog flag names, each at the index of its bit (given out on first use, 32 at most as
/// in OpenSIPS).
static FLAG_NAMES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The bit of a dialog flag name.
pub fn flag_bit(name: &str) -> Option<u32> {
    let mut names = FLAG_NAMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(i) = names.iter().position(|n| n == name) {
        return u32::try_from(i).ok();
    }
    if names.len() >= 32 {
        return None;
    }
    names.push(name.to_owned());
    u32::try_from(names.len() - 1).ok()
}

/// The names of the flags set in `bits`, separated by blanks (the `script_flags` column).
pub fn flag_names(bits: u32) -> String {
    let names = FLAG_NAMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    names
        .iter()
        .enumerate()
        .filter(|(b, _)| bits & (1 << b) != 0)
        .map(|(_, n)| n.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The bits of blank-separated flag names (a `script_flags` column read back).
pub fn flag_bits(names: &str) -> u32 {
    names
        .split([' ', ',', '|'])
        .filter(|n| !n.is_empty())
        .filter_map(flag_bit)
        .fold(0, |acc, b| acc | (1 << b))
}

impl Dialog {
    pub fn h_entry(&self) -> u32 {
        (self.id >> 32) as u32
    }

    pub fn h_id(&self) -> u32 {
        self.id as u32
    }

    /// The `did` Route parameter's value (and `$DLG_did`): entry and id in OpenSIPS'
    /// reversed hex (least significant digit first), so that a call set up by either server
    /// is matched by the other from a shared dialog table.
    pub fn did(&self) -> String {
        let mut did = String::with_capacity(17);
        push_reverse_hex(&mut did, self.h_entry());
        did.push('.');
        push_reverse_hex(&mut did, self.h_id());
        did
    }

    /// Seconds left before it times out (the whole lifetime before it is confirmed).
    pub fn timeout_left(&self, now: Instant) -> u64 {
        match self.expires {
            Some(at) => at.saturating_duration_since(now).as_secs(),
            None => u64::from(self.lifetime),
        }
    }
}

/// Every dialog, and how many are in each profile (and value).
#[derive(Default)]
pub struct Dialogs {
    pub by_id: HashMap<u64, Dialog>,
    pub by_callid: HashMap<String, Vec<u64>>,
    /// profile → value → dialogs (value "" for profiles without values).
    pub profiles: HashMap<String, HashMap<String, usize>>,
    next_id: u32,
    /// Dialogs changed since the database was last written (db_mode 1 and 2).
    pub dirty: std::collections::HashSet<u64>,
    /// Dialogs to remove from the database.
    pub removed: Vec<u64>,
    /// A database keeps the dialogs (the two lists above are kept).
    pub track: bool,
    /// Dialogs not ended (`$DLG_count`), kept as they come and go.
    pub live: usize,
    /// What runs when a confirmed dialog ends (acc's CDRs), by dialog.
    pub on_end: HashMap<u64, Vec<engine::hooks::OnDialogEnd>>,
    /// Those of dialogs that ended, run once the table is unlocked.
    due: Vec<(Vec<engine::hooks::OnDialogEnd>, engine::hooks::DialogEnd)>,
    /// What other modules run when a dialog goes, answered or not ([`crate::on_gone`]).
    pub on_gone: HashMap<u64, Vec<OnGone>>,
    gone_due: Vec<(Vec<OnGone>, Gone)>,
    /// Dialogs that ended or went away, for the media module (told once unlocked).
    gone: Vec<u64>,
    /// The script routes `dlg_on_answer`/`dlg_on_hangup` armed that are due: (route,
    /// dialog), run once the table is unlocked.
    pub routes_due: Vec<(usize, u64)>,
    /// `dialog_replication_cluster` is set: changes are sent to the cluster.
    pub repl_on: bool,
    /// A change another node sent is being applied: it is not sent back.
    pub applying: bool,
    /// Dialogs changed since their last packet, sent once the table is unlocked.
    pub repl_dirty: std::collections::HashSet<u64>,
    /// Dialogs the cluster has heard of (their next packet is an update).
    pub repl_sent: std::collections::HashSet<u64>,
    /// Confirmed dialogs that ended, told to the cluster once the table is unlocked.
    pub repl_deleted: Vec<crate::repl::WireDelete>,
}

impl std::fmt::Debug for Dialogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialogs")
            .field("dialogs", &self.by_id.len())
            .finish_non_exhaustive()
    }
}

/// The table, locked; what ended dialogs asked to run (acc's CDRs) runs once it is unlocked.
#[derive(Debug)]
pub struct DialogsGuard(Option<MutexGuard<'static, Dialogs>>);

impl std::ops::Deref for DialogsGuard {
    type Target = Dialogs;
    fn deref(&self) -> &Dialogs {
        self.0
            .as_deref()
            .unwrap_or_else(|| unreachable!("held until dropped"))
    }
}

impl std::ops::DerefMut for DialogsGuard {
    fn deref_mut(&mut self) -> &mut Dialogs {
        self.0
            .as_deref_mut()
            .unwrap_or_else(|| unreachable!("held until dropped"))
    }
}

impl Drop for DialogsGuard {
    fn drop(&mut self) {
        let Some(mut guard) = self.0.take() else {
            return;
        };
        let due = std::mem::take(&mut guard.due);
        let gone_due = std::mem::take(&mut guard.gone_due);
        let routes = std::mem::take(&mut guard.routes_due);
        let gone = std::mem::take(&mut guard.gone);
        let packets = crate::cluster::outgoing(&mut guard);
        drop(guard);
        crate::cluster::send(&packets);
        for id in gone {
            engine::hooks::media_gone(id);
        }
        for (hooks, info) in due {
            for h in hooks {
                h(&info);
            }
        }
        for (hooks, info) in gone_due {
            for h in hooks {
                h(&info);
            }
        }
        for (route, id) in routes {
            run_route(route, id);
        }
    }
}

/// Runs a script route over a dialog (with no SIP message of its own): the server's.
pub type RouteRunner = Box<dyn Fn(usize, u64) + Send + Sync>;

static ROUTE_RUNNER: OnceLock<RouteRunner> = OnceLock::new();

/// Installs the runner of `dlg_on_*` routes (once).
pub fn set_route_runner(f: RouteRunner) {
    let _ = ROUTE_RUNNER.set(f);
}

/// Runs route `route` for dialog `id` (the table unlocked).
pub fn run_route(route: usize, id: u64) {
    if let Some(f) = ROUTE_RUNNER.get() {
        f(route, id);
    }
}

/// The routes `dlg_on_answer`, `dlg_on_timeout` and `dlg_on_hangup` armed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Routes {
    pub answer: Option<usize>,
    pub timeout: Option<usize>,
    pub hangup: Option<usize>,
}

pub fn dialogs() -> DialogsGuard {
    static D: OnceLock<Mutex<Dialogs>> = OnceLock::new();
    DialogsGuard(Some(
        D.get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    ))
}

pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The `h_entry` part of a dialog's id: OpenSIPS' `core_hash` of its Call-ID over the table
/// size (rounded down to a power of two, as OpenSIPS does with `hash_size`), so that a node
/// receiving a replicated dialog, or sharing a database, agrees with its `did`.
pub fn entry_of(callid: &str, hash_size: u32) -> u32 {
    // C `char` is signed on the platforms OpenSIPS runs on: bytes above 0x7f count negative.
    let byte = |b: u8| i32::from(b as i8) as u32;
    let step = |h: u32, v: u32| h.wrapping_add(v ^ (v >> 3));
    let bytes = callid.as_bytes();
    let mut h = 0u32;
    let mut chunks = bytes.chunks_exact(4);
    for c in &mut chunks {
        let v = (byte(c[0]) << 24)
            .wrapping_add(byte(c[1]) << 16)
            .wrapping_add(byte(c[2]) << 8)
            .wrapping_add(byte(c[3]));
        h = step(h, v);
    }
    let v = chunks
        .remainder()
        .iter()
        .fold(0u32, |v, b| (v << 8).wrapping_add(byte(*b)));
    h = step(h, v);
    h = h
        .wrapping_add(h >> 11)
        .wrapping_add((h >> 13).wrapping_add(h >> 23));
    let size = match hash_size.max(1) {
        n if n.is_power_of_two() => n,
        n => 1 << (31 - n.leading_zeros()),
    };
    h & (size - 1)
}

impl Dialogs {
    /// A new id for a dialog of `callid`.
    pub fn new_id(&mut self, callid: &str, hash_size: u32) -> u64 {
        loop {
            self.next_id = self.next_id.wrapping_add(1);
            let id = (u64::from(entry_of(callid, hash_size)) << 32) | u64::from(self.next_id);
            if !self.by_id.contains_key(&id) {
                return id;
            }
        }
    }

    /// An id another node gave a dialog is not given out here (OpenSIPS' `next_id` follows
    /// the replicated ids).
    pub fn seen_h_id(&mut self, h_id: u32) {
        if h_id >= self.next_id && h_id < u32::MAX / 2 {
            self.next_id = h_id;
        }
    }

    pub fn insert(&mut self, d: Dialog) {
        if d.state != DELETED {
            self.live += 1;
        }
        self.by_callid
            .entry(d.callid.clone())
            .or_default()
            .push(d.id);
        for (p, v) in &d.profiles {
            *self
                .profiles
                .entry(p.clone())
                .or_default()
                .entry(v.clone())
                .or_default() += 1;
        }
        self.by_id.insert(d.id, d);
    }

    /// Takes a dialog out of every profile it is in.
    pub fn leave_profiles(&mut self, id: u64) {
        let Some(d) = self.by_id.get_mut(&id) else {
            return;
        };
        for (p, v) in std::mem::take(&mut d.profiles) {
            if let Some(values) = self.profiles.get_mut(&p)
                && let Some(n) = values.get_mut(&v)
            {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    values.remove(&v);
                }
            }
        }
    }

    /// Puts a dialog in a profile (once per value).
    pub fn join_profile(&mut self, id: u64, profile: &str, value: &str) -> bool {
        let Some(d) = self.by_id.get_mut(&id) else {
            return false;
        };
        if d.state == DELETED {
            return false;
        }
        if d.profiles.iter().any(|(p, v)| p == profile && v == value) {
            return true;
        }
        d.profiles.push((profile.to_owned(), value.to_owned()));
        *self
            .profiles
            .entry(profile.to_owned())
            .or_default()
            .entry(value.to_owned())
            .or_default() += 1;
        true
    }

    /// Takes a dialog out of a profile (every value when `value` is `None`); whether it was in.
    pub fn leave_profile(&mut self, id: u64, profile: &str, value: Option<&str>) -> bool {
        let Some(d) = self.by_id.get_mut(&id) else {
            return false;
        };
        let mut left = Vec::new();
        d.profiles.retain(|(p, v)| {
            let hit = p == profile && value.is_none_or(|want| want == v);
            if hit {
                left.push(v.clone());
            }
            !hit
        });
        for v in &left {
            if let Some(values) = self.profiles.get_mut(profile)
                && let Some(n) = values.get_mut(v)
            {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    values.remove(v);
                }
            }
        }
        !left.is_empty()
    }

    /// How many dialogs a profile holds (with `value`, or in all); a `/b` profile counts
    /// the other nodes' dialogs too (`profile_replication_cluster`).
    pub fn profile_size(&self, profile: &str, value: Option<&str>) -> usize {
        let remote = crate::profile_repl::remote_size(profile, value);
        let Some(values) = self.profiles.get(profile) else {
            return remote;
        };
        remote
            + match value {
                Some(v) => values.get(v).copied().unwrap_or(0),
                None => values.values().sum::<usize>(),
            }
    }

    /// Ends a dialog: deleted, out of its profiles, gone from the table after `delay`.
    pub fn end(&mut self, id: u64, reason: &str, delay: Duration, now: Instant) {
        self.leave_profiles(id);
        if let Some(d) = self.by_id.get_mut(&id)
            && d.state != DELETED
        {
            // An unconfirmed dialog was never counted as early or active.
            if d.state >= CONFIRMED_NA {
                engine::gauge!("dialog", "active_dialogs").dec();
            } else if d.state == EARLY {
                engine::gauge!("dialog", "early_dialogs").dec();
            }
            let stored = d.stored;
            self.live = self.live.saturating_sub(1);
            self.gone.push(id);
            // The call's records (CDRs) are written now, with how long it lasted.
            if let Some(hooks) = self.on_end.remove(&id)
                && d.start_ms > 0
            {
                let info = engine::hooks::DialogEnd {
                    created_ms: d.created_ms,
                    start_ms: d.start_ms,
                    end_ms: unix_ms(),
                    reason: reason.to_owned(),
                };
                self.due.push((hooks, info));
            }
            if let Some(route) = d.routes.hangup {
                self.routes_due.push((route, id));
            }
            if let Some(hooks) = self.on_gone.remove(&id) {
                let answered = d.start_unix > 0;
                let info = Gone {
                    answered,
                    duration: if answered {
                        u64::try_from(unix_now() - d.start_unix).unwrap_or(0)
                    } else {
                        0
                    },
                };
                self.gone_due.push((hooks, info));
            }
            let old = d.state;
            d.state = DELETED;
            crate::events::state_changed(d, old);
            d.end_reason = Some(reason.to_owned());
            d.expires = None;
            d.gone_at = Some(now + delay);
            if stored && self.track {
                self.removed.push(id);
            }
            if self.repl_on && !self.applying && old >= CONFIRMED_NA {
                self.repl_deleted.push(crate::repl::WireDelete {
                    callid: d.callid.clone(),
                    from_tag: d.caller.tag.clone(),
                    to_tag: d.callee.tag.clone(),
                    h_id: Some(d.h_id()),
                });
            }
            self.repl_dirty.remove(&id);
        }
    }

    /// Removes a dialog at once.
    pub fn remove(&mut self, id: u64) -> Option<Dialog> {
        crate::events::unwatch(id);
        self.leave_profiles(id);
        self.dirty.remove(&id);
        self.repl_dirty.remove(&id);
        self.repl_sent.remove(&id);
        self.on_end.remove(&id);
        if let Some(hooks) = self.on_gone.remove(&id) {
            self.gone_due.push((
                hooks,
                Gone {
                    answered: false,
                    duration: 0,
                },
            ));
        }
        let d = self.by_id.remove(&id)?;
        if d.state != DELETED {
            self.live = self.live.saturating_sub(1);
            self.gone.push(id);
        }
        if let Some(ids) = self.by_callid.get_mut(&d.callid) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_callid.remove(&d.callid);
            }
        }
        Some(d)
    }

    /// The dialog of a sequential request by its SIP identifiers: (id, upstream).
    pub fn by_sip(&self, callid: &str, from_tag: &str, to_tag: &str) -> Option<(u64, bool)> {
        let ids = self.by_callid.get(callid)?;
        let find = |live: bool, exact: bool| {
            ids.iter().find_map(|id| {
                let d = self.by_id.get(id)?;
                if live && d.state == DELETED {
                    return None;
                }
                let callee = |tag: &str| d.callee.tag == tag || (!exact && d.callee.tag.is_empty());
                if d.caller.tag == from_tag && callee(to_tag) {
                    Some((*id, false))
                } else if d.caller.tag == to_tag
                    && !d.callee.tag.is_empty()
                    && d.callee.tag == from_tag
                {
                    Some((*id, true))
                } else {
                    None
                }
            })
        };
        // A live dialog with both tags first, then a live one still without the callee's tag,
        // then one just ended (a retransmitted BYE).
        find(true, true)
            .or_else(|| find(true, false))
            .or_else(|| find(false, true))
    }

    pub fn mark_dirty(&mut self, id: u64) {
        if self.track {
            self.dirty.insert(id);
        }
        if self.repl_on && !self.applying {
            self.repl_dirty.insert(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_hex_is_least_significant_digit_first_and_reads_back() {
        assert_eq!(reverse_hex(0), "0");
        assert_eq!(reverse_hex(0x1a3), "3a1");
        assert_eq!(reverse_hex(u32::MAX), "ffffffff");
        for n in [0, 1, 15, 16, 0x1a3, 0xdead_beef, u32::MAX] {
            assert_eq!(reverse_hex_int(&reverse_hex(n)), Some(n));
        }
        assert_eq!(reverse_hex_int("3A1"), Some(0x1a3));
        assert_eq!(reverse_hex_int(""), None);
        assert_eq!(reverse_hex_int("123456789"), None);
        assert_eq!(reverse_hex_int("xyz"), None);
    }

    #[test]
    fn entry_is_opensips_core_hash_of_the_callid() {
        // Values printed by OpenSIPS' own core_hash (hash_func.h) for these Call-IDs.
        for (callid, big, small) in [
            ("c1", 3943, 7),
            ("abc@host", 2438, 6),
            ("a84b4c76e66710", 3530, 10),
            ("x\u{e9}yz12345", 309, 5),
            ("", 0, 0),
        ] {
            assert_eq!(entry_of(callid, 4096), big, "{callid}");
            assert_eq!(entry_of(callid, 16), small, "{callid}");
        }
        // A size that is not a power of two is rounded down, as OpenSIPS does.
        assert_eq!(entry_of("c1", 5000), 3943);
    }

    #[test]
    fn flag_bits_are_opensips_dlg_flag_values() {
        let f = Flags::parse("bye-on-timeout,auto-prack").unwrap_or_default();
        assert_eq!(f.bits(), (1 << 3) | (1 << 20));
        assert_eq!(Flags::from_bits(f.bits()), f);
        assert!(Flags::parse("reinvite-ping-caller").is_ok_and(|f| f.reinvite_ping_caller));
        assert!(Flags::parse("no-such-flag").is_err());
    }
}
