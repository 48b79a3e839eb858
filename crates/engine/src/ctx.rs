//! The routing state of one message while a script runs over it (STYLE rule 9): the parsed
//! message stays immutable; R-URI rewrites, `$du`, flags and header edits live here and are
//! applied when the message is serialized.

use std::net::SocketAddr;

use sip::{Edits, SipMessage};

/// Where a message came from and which local socket received it (`$si`, `$sp`, `$socket_in`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub source: SocketAddr,
    /// Lower-case transport name: `udp`, `tcp`, `tls`, `ws`, `wss`.
    pub proto: &'static str,
    pub local: SocketAddr,
}

/// Per-message script state.
#[derive(Debug, Clone)]
pub struct MsgCtx {
    pub msg: SipMessage,
    pub receipt: Option<Receipt>,
    /// The Request-URI after rewrites (`$ru = ...`, `seturi`, `sethost` …); `None` = unchanged.
    pub new_ruri: Option<String>,
    /// The destination URI (`$du`), set by `setdsturi`, `loose_route`, `lookup` …
    pub dst_uri: Option<String>,
    /// Message flags, one bit per named flag (names are numbered when the script is compiled).
    pub flags: u64,
    /// Flags of branch 0 (the R-URI branch).
    pub branch_flags: u64,
    /// Header edits made by the script, applied at serialization.
    pub edits: Edits,
    /// The last return code (`$rc`, `$retcode`).
    pub retcode: i64,
}

impl MsgCtx {
    pub fn new(msg: SipMessage) -> MsgCtx {
        MsgCtx {
            msg,
            receipt: None,
            new_ruri: None,
            dst_uri: None,
            flags: 0,
            branch_flags: 0,
            edits: Edits::new(),
            retcode: 0,
        }
    }

    pub fn with_receipt(mut self, receipt: Receipt) -> MsgCtx {
        self.receipt = Some(receipt);
        self
    }

    /// The current Request-URI text (rewritten or original); `None` for replies.
    pub fn ruri(&self) -> Option<&str> {
        match &self.new_ruri {
            Some(u) => Some(u),
            None => self.msg.request_uri_str(),
        }
    }
}
