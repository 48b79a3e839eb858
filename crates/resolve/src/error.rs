//! The one error type of the crate. Every variant names the host being resolved and, for DNS
//! failures, the query (name and type) that failed, so a log line says what to fix.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::Proto;
use crate::wire::{Rcode, RecordType};

/// Why a host could not be resolved, or the resolver could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The resolver configuration file could not be read.
    #[error("cannot read resolver configuration {path}: {source}")]
    Config {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The resolver has no nameserver to ask.
    #[error("cannot resolve {host}: no nameserver configured")]
    NoNameservers { host: String },
    /// The host is not a name DNS can carry (empty label, label over 63 or name over 255
    /// octets).
    #[error("cannot resolve {host:?}: {reason}")]
    InvalidName { host: String, reason: String },
    /// A SIPS URI asked for a transport that is not encrypted (RFC 3261 §26.2.2).
    #[error("cannot resolve sips:{host}: transport {proto} is not secure")]
    InsecureTransport { host: String, proto: Proto },
    /// DNS answered, but there is no address for the host (NXDOMAIN or no records).
    #[error("cannot resolve {host}: no {what} record found")]
    NotFound { host: String, what: &'static str },
    /// No nameserver answered in time.
    #[error(
        "cannot resolve {host}: {qtype} query for {name} got no answer from {servers} \
         nameserver(s) in {waited:?}"
    )]
    Timeout {
        host: String,
        name: String,
        qtype: RecordType,
        servers: usize,
        waited: Duration,
    },
    /// Every nameserver answered with an error code (SERVFAIL, REFUSED …).
    #[error("cannot resolve {host}: {qtype} query for {name} failed with {rcode}")]
    ServerFailure {
        host: String,
        name: String,
        qtype: RecordType,
        rcode: Rcode,
    },
    /// The answer could not be parsed or did not match the question.
    #[error("cannot resolve {host}: {qtype} query for {name}: malformed answer ({reason})")]
    Malformed {
        host: String,
        name: String,
        qtype: RecordType,
        reason: String,
    },
    /// A socket error talking to the nameserver (e.g. ICMP port unreachable).
    #[error("cannot resolve {host}: {qtype} query for {name}: {source}")]
    Io {
        host: String,
        name: String,
        qtype: RecordType,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Whether asking DNS again right away is pointless: the nameservers are not reachable.
    /// Server location stops at such an error instead of stacking one timeout per fallback
    /// step (NAPTR, SRV, A) on a worker thread.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. } | Self::Io { .. } | Self::NoNameservers { .. }
        )
    }

    /// The host the error is about, where there is one.
    pub fn host(&self) -> Option<&str> {
        match self {
            Self::Config { .. } => None,
            Self::NoNameservers { host }
            | Self::InvalidName { host, .. }
            | Self::InsecureTransport { host, .. }
            | Self::NotFound { host, .. }
            | Self::Timeout { host, .. }
            | Self::ServerFailure { host, .. }
            | Self::Malformed { host, .. }
            | Self::Io { host, .. } => Some(host),
        }
    }

    /// The same error about `host`: lookups fail on a derived name (an SRV owner, a target)
    /// and report it as part of resolving the SIP host.
    pub(crate) fn for_host(mut self, new_host: &str) -> Self {
        match &mut self {
            Self::Config { .. } => {}
            Self::NoNameservers { host }
            | Self::InvalidName { host, .. }
            | Self::InsecureTransport { host, .. }
            | Self::NotFound { host, .. }
            | Self::Timeout { host, .. }
            | Self::ServerFailure { host, .. }
            | Self::Malformed { host, .. }
            | Self::Io { host, .. } => new_host.clone_into(host),
        }
        self
    }
}
