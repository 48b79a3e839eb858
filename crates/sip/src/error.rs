//! The one error type of the `sip` crate: what was wrong and how a server should react to it.

/// How a SIP element should react to a message that failed to parse or validate.
///
/// RFC 3261 §16.3 / §8.2: a bad request gets a final response when one can be built; a bad response
/// is silently discarded (RFC 3261 §18.1.2, §16.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// Answer the request statelessly with this status code.
    Reply(u16),
    /// Drop the message: it is a response, or no reply can be addressed.
    Drop,
}

/// The class of a parse or validation failure. Each class maps to one SIP status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Syntax or semantic error in the message (400 Bad Request).
    Malformed,
    /// The Request-URI scheme is not one we can route (416 Unsupported URI Scheme, RFC 3261 §8.2.2.1).
    UnsupportedUriScheme,
    /// The SIP version is not 2.0 (505 Version Not Supported, RFC 3261 §8.2.2... §21.5.7).
    VersionNotSupported,
    /// The message or its header section exceeds a configured limit (413 / 513).
    TooLarge,
}

impl ErrorKind {
    /// The status code a stateless reply to a request with this fault carries.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::Malformed => 400,
            ErrorKind::UnsupportedUriScheme => 416,
            ErrorKind::VersionNotSupported => 505,
            ErrorKind::TooLarge => 513,
        }
    }
}

/// A SIP message that could not be parsed or failed validation.
///
/// The reason is meant for the reason phrase of the 400 reply, so it names the fault
/// ("Bad CSeq header", "Missing Call-ID header"). It is a static string so that results stay
/// small on the per-packet path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    kind: ErrorKind,
    reason: &'static str,
    in_response: bool,
}

impl ParseError {
    pub(crate) fn new(kind: ErrorKind, reason: &'static str) -> Self {
        ParseError {
            kind,
            reason,
            in_response: false,
        }
    }

    /// A 400-class error with a fixed reason.
    pub(crate) fn malformed(reason: &'static str) -> Self {
        ParseError::new(ErrorKind::Malformed, reason)
    }

    /// Marks the error as belonging to a response, which changes the reaction to [`Reaction::Drop`].
    pub(crate) fn in_response(mut self, yes: bool) -> Self {
        self.in_response = yes;
        self
    }

    /// The fault class.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Text suitable as the reason phrase of the error reply.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The status code of a reply to the faulty request.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// What a SIP element does with the message: reply (requests) or drop (responses).
    pub fn reaction(&self) -> Reaction {
        if self.in_response {
            Reaction::Drop
        } else {
            Reaction::Reply(self.kind.status())
        }
    }
}

/// Result alias used across the crate.
pub type Result<T> = std::result::Result<T, ParseError>;
