//! Transformations: the `{class.op,args}` suffixes of `$(pv{...})` (OpenSIPS 4.0 semantics).
//!
//! # Using them
//!
//! At config load time the compiler resolves each `{class.op,a,b}` once:
//!
//! 1. [`split_inline_index`] turns `nameaddr.1.uri` (OpenSIPS' optional multi-body index) into
//!    `nameaddr.uri` plus the index text, which becomes an extra *first* argument.
//! 2. [`TransformOp::lookup`] maps the name and argument count to an op (names are matched
//!    case-insensitively, as OpenSIPS does; aliases such as `uri.domain` are accepted).
//! 3. [`TransformOp::compile`] validates the literal arguments (`None` for a variable one) and
//!    precomputes what it can — the `re.subst` regex, the `s.fill.*` pad, the `ip.matches`
//!    network — into a [`Compiled`], which is `Send + Sync` and cheap to clone.
//!
//! At run time the interpreter evaluates the arguments (literal ones too, as `Value::Str`) and
//! calls [`Compiled::apply`] for a single step, or, for a chain, threads a [`TrValue`] through
//! [`Compiled::apply_chained`] and converts the end result with [`TrValue::into_value`]:
//!
//! ```
//! use engine::Value;
//! use engine::transform::{TransformOp, TrValue};
//! let steps = [
//!     TransformOp::lookup("ip.pton", 0).unwrap().compile(&[]).unwrap(),
//!     TransformOp::lookup("ip.ntop", 0).unwrap().compile(&[]).unwrap(),
//! ];
//! let mut v = TrValue::from(&Value::str("192.168.1.10"));
//! for step in &steps {
//!     v = step.apply_chained(&v, &[]);
//! }
//! assert_eq!(v.into_value(), Value::str("192.168.1.10"));
//! ```
//!
//! Notes for the config parser, which splits `{class.op,a,b}` into a name and argument texts:
//! `s.select`'s separator is the one character right after the second comma (it may be a space
//! or even `,`, as in `{s.select,1,,}`), and `s.fill.*` pads may be quoted (`' '`), so neither
//! should be trimmed; `\,` `\{` `\}` inside an argument are escapes OpenSIPS allows (`re.subst`
//! handles them itself, so its text can be passed through raw).
//!
//! `TrValue` exists because several ops produce raw bytes that are not UTF-8 (`ip.pton`,
//! `s.decode.hexa`, `s.b64decode`, `s.xor`, `s.reverse` of multi-byte text …) and
//! [`Value::Str`] cannot hold them; inside a chain they survive as [`TrValue::Bin`], and only a
//! final non-UTF-8 result becomes `Value::Null`.
//!
//! # Semantics shared by all ops
//!
//! * A NULL input gives NULL (every OpenSIPS class returns early on a NULL value), so running the
//!   rest of a chain after a failure is equivalent to OpenSIPS stopping it.
//! * Any runtime failure (bad input, bad argument, out of range) gives NULL.
//! * An `Int` input is read as its decimal text wherever OpenSIPS would read a string (OpenSIPS
//!   PVs such as `$rp` carry both views). Only `s.int`, `s.hex2dec` and `s.dec2hex` look at the
//!   integer itself, as in OpenSIPS.
//! * Results OpenSIPS flags as integers (`s.len`, `s.int`, `s.index`, `uri.port`, `param.count`,
//!   `ip.isip` …) are `Int`; all others are strings. Results that are a piece of a string input
//!   share its buffer instead of copying.
//! * Numeric arguments accept `Int` or a decimal `Str`; string arguments accept any non-NULL.
//!
//! `s.eval` yields NULL here: the interpreter evaluates it (it needs the message and the
//! variables), see `Run::eval_format`; `ip.resolve` does no DNS (IP literals only); the `sdp.*`
//! class is not implemented; `re.subst` replacements may not contain pseudo-variables or `\u`.

mod codec;
mod csv;
mod data;
mod date;
mod dispatch;
mod hash;
mod ip;
mod nameaddr;
mod names;
mod params;
mod regex_subst;
mod sdp;
mod strings;
#[cfg(test)]
mod testing;
mod uri;
mod via;

use std::sync::Arc;

use crate::Value;
pub use data::TrValue;
use dispatch::run;
pub use names::split_inline_index;

/// One transformation operation, resolved at config load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransformOp {
    // s.*
    SLen,
    SInt,
    SMd5,
    SCrc32,
    SReverse,
    SSubstr,
    SSelect,
    SEncodeHexa,
    SDecodeHexa,
    SEscapeCommon,
    SUnescapeCommon,
    SEscapeUser,
    SUnescapeUser,
    SEscapeParam,
    SUnescapeParam,
    RestEscape,
    RestUnescape,
    SToLower,
    SToUpper,
    SIndex,
    SRIndex,
    SFillLeft,
    SFillRight,
    SWidth,
    STrim,
    STrimR,
    STrimL,
    SDec2Hex,
    SHex2Dec,
    SB64Encode,
    SB64Decode,
    SXor,
    /// `s.eval`: evaluates the input as a format string. Needs the interpreter; `apply` gives NULL.
    SEval,
    SDate2Unix,
    SSha1,
    SSha224,
    SSha256,
    SSha384,
    SSha512,
    SSha1Hmac,
    SSha224Hmac,
    SSha256Hmac,
    SSha384Hmac,
    SSha512Hmac,
    // uri.*
    UriUser,
    UriHost,
    UriPasswd,
    UriPort,
    UriParams,
    UriParam,
    UriHeaders,
    UriTransport,
    UriTtl,
    UriUParam,
    UriMaddr,
    UriMethod,
    UriLr,
    UriR2,
    UriSchema,
    // via.*
    ViaName,
    ViaVersion,
    ViaTransport,
    ViaHost,
    ViaPort,
    ViaComment,
    ViaParams,
    ViaParam,
    ViaBranch,
    ViaReceived,
    ViaRport,
    // param.*
    ParamValue,
    ParamExist,
    ParamValueAt,
    ParamName,
    ParamCount,
    // nameaddr.* (each takes an optional leading index argument)
    NameaddrName,
    NameaddrUri,
    NameaddrLen,
    NameaddrParam,
    NameaddrParams,
    // ip.*
    IpPton,
    IpNtop,
    IpIsIp,
    IpIsIp4,
    IpIsIp6,
    IpFamily,
    IpResolve,
    IpResolve4,
    IpResolve6,
    IpIsPrivate,
    IpMatches,
    // csv.*
    CsvCount,
    CsvValue,
    // re.*
    ReSubst,
    // sdp.*
    SdpLine,
    SdpStream,
    SdpStreamDelete,
}

/// Why a transformation name/arguments were rejected at load time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    #[error("unknown transformation '{0}'")]
    Unknown(String),
    #[error("transformation '{name}' takes {expected} argument(s), got {got}")]
    Arity {
        name: String,
        expected: String,
        got: usize,
    },
    #[error("bad argument for '{name}': {why}")]
    BadArg { name: String, why: String },
}

impl TransformOp {
    /// Resolve "s.substr" / "uri.param" … (class and op lowercase as written in scripts) with the
    /// number of arguments given.
    pub fn lookup(name: &str, nargs: usize) -> Result<TransformOp, TransformError> {
        names::lookup(name, nargs)
    }

    /// Every valid name, for "did you mean" suggestions.
    pub fn names() -> &'static [&'static str] {
        names::all()
    }

    /// The canonical script name, e.g. `"s.substr"`.
    pub fn name(self) -> &'static str {
        names::canonical(self)
    }

    /// Validate literal arguments at load time where possible (e.g. re.subst expression syntax,
    /// numeric args); `None` for a non-literal arg (a variable). Return BadArg on error.
    pub fn check_args(self, args: &[Option<&str>]) -> Result<(), TransformError> {
        self.compile(args).map(|_| ())
    }

    /// Validates the literal arguments like [`TransformOp::check_args`] and precomputes what the
    /// literals allow, so that [`Compiled::apply`] does no per-call parsing or regex compilation.
    pub fn compile(self, literal_args: &[Option<&str>]) -> Result<Compiled, TransformError> {
        names::check_arity(self, literal_args.len())?;
        let bad = |why: String| TransformError::BadArg {
            name: self.name().to_owned(),
            why,
        };
        let pre = names::check_literals(self, literal_args).map_err(bad)?;
        Ok(Compiled { op: self, pre })
    }

    /// Apply to `input` with the already-evaluated `args`. Returns Value::Null on any runtime
    /// failure (OpenSIPS returns NULL when a transformation fails). A `re.subst` expression is
    /// compiled on first use and kept in a small per-thread cache; prefer [`Compiled`].
    pub fn apply(self, input: &Value, args: &[Value]) -> Value {
        self.apply_chained(&TrValue::from(input), args).into_value()
    }

    /// Like [`TransformOp::apply`], on a chain value (see [`TrValue`]).
    pub fn apply_chained(self, input: &TrValue, args: &[Value]) -> TrValue {
        run(self, &Prepared::None, input, args)
    }
}

/// Precomputed literal arguments of a [`Compiled`] transformation.
#[derive(Debug, Clone)]
enum Prepared {
    None,
    /// `re.subst` with a literal expression.
    Subst(Arc<regex_subst::Subst>),
    /// `s.fill.*` pad string, quotes removed (`s.fill.*` arguments are always literal).
    Pad(Arc<[u8]>),
    /// `ip.matches` with a literal network.
    Net(ip::Net),
}

/// A transformation with its literal arguments validated and precomputed; see the module docs.
///
/// `apply` takes the same argument list as the script wrote, evaluated; positions that were
/// literal at compile time are served from the precomputed form and their runtime value ignored.
#[derive(Debug, Clone)]
pub struct Compiled {
    op: TransformOp,
    pre: Prepared,
}

impl Compiled {
    pub fn op(&self) -> TransformOp {
        self.op
    }

    /// Pseudo-variables the compiled literal needs evaluated and passed after the written
    /// arguments (those of a `re.subst` replacement).
    pub fn extra_pvs(&self) -> &[String] {
        match &self.pre {
            Prepared::Subst(s) => s.vars(),
            _ => &[],
        }
    }

    /// One transformation step on a script value; NULL on failure or a non-UTF-8 result.
    pub fn apply(&self, input: &Value, args: &[Value]) -> Value {
        self.apply_chained(&TrValue::from(input), args).into_value()
    }

    /// One step of a chain; keep the result as a [`TrValue`] for the next step.
    pub fn apply_chained(&self, input: &TrValue, args: &[Value]) -> TrValue {
        run(self.op, &self.pre, input, args)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    #[test]
    fn null_input_gives_null_for_every_op() {
        for name in TransformOp::names() {
            for nargs in 0..=2 {
                if let Ok(op) = TransformOp::lookup(name, nargs) {
                    let args = vec![s("1"); nargs];
                    assert_eq!(op.apply(&Value::Null, &args), Value::Null, "{name}");
                }
            }
        }
    }

    #[test]
    fn hostile_inputs_never_panic() {
        let inputs = [
            "",
            " ",
            ";",
            "=",
            "\"",
            "<",
            ",,,",
            "%",
            "%4",
            "\\",
            "[",
            "sip:",
            "SIP/2.0/UDP",
            "a=\"b",
            "é",
            "é;é=é",
            "1.2.3.4/99",
            "::ffff:1.2.3.4",
            "\u{0}\u{1}",
            "sip:a@[::1]:5060;lr?x=y",
            "\"x\" <sip:a@b>;tag=1, <sip:c@d>",
        ];
        let args = [
            vec![],
            vec![s("-1")],
            vec![s("0")],
            vec![s("99999999999")],
            vec![s("é")],
            vec![s("/a*/b/g")],
            vec![s("-9223372036854775808"), s("-9223372036854775808")],
            vec![s("9223372036854775807"), s("9223372036854775807")],
            vec![s("x"), s("y")],
        ];
        for name in TransformOp::names() {
            for a in &args {
                let Ok(op) = TransformOp::lookup(name, a.len()) else {
                    continue;
                };
                for i in inputs {
                    let _ = op.apply(&s(i), a);
                }
                let _ = op.apply(&Value::Int(i64::MIN), a);
                let _ = op.apply_chained(&TrValue::Bin(bytes::Bytes::from_static(b"\xff\xfe")), a);
            }
        }
    }

    #[test]
    fn compile_uses_literal_cache() {
        let c = TransformOp::lookup("re.subst", 1)
            .unwrap()
            .compile(&[Some("/a/b/g")])
            .unwrap();
        assert_eq!(c.op(), TransformOp::ReSubst);
        // The runtime argument at a literal position is ignored in favour of the compiled one.
        assert_eq!(c.apply(&s("banana"), &[s("/x/y/")]), s("bbnbnb"));
        let c = TransformOp::SFillLeft
            .compile(&[Some("'0'"), Some("5")])
            .unwrap();
        assert_eq!(c.apply(&s("12"), &[s("'0'"), s("5")]), s("00012"));
        let c = TransformOp::IpMatches
            .compile(&[Some("10.0.0.0/8")])
            .unwrap();
        assert_eq!(c.apply(&s("10.1.2.3"), &[s("10.0.0.0/8")]), Value::Int(1));
    }

    #[test]
    fn uncompiled_apply_still_works() {
        assert_eq!(
            TransformOp::ReSubst.apply(&s("abc"), &[s("/b/X/")]),
            s("aXc")
        );
        assert_eq!(
            TransformOp::SFillRight.apply(&s("ab"), &[s("\"xy\""), s("5")]),
            s("abxyx")
        );
        assert_eq!(
            TransformOp::IpMatches.apply(&s("10.1.2.3"), &[s("10.0.0.0/8")]),
            Value::Int(1)
        );
    }

    #[test]
    fn binary_survives_a_chain_but_not_a_value() {
        let pton = TransformOp::IpPton;
        let v = pton.apply_chained(&TrValue::from(&s("192.168.1.1")), &[]);
        assert!(matches!(v, TrValue::Bin(_)));
        assert_eq!(
            TransformOp::IpFamily.apply_chained(&v, &[]).into_value(),
            s("INET")
        );
        assert_eq!(
            TransformOp::SLen.apply_chained(&v, &[]).into_value(),
            Value::Int(4)
        );
        assert_eq!(pton.apply(&s("192.168.1.1"), &[]), Value::Null);
        // ASCII-only bytes are a valid string even outside a chain.
        assert_eq!(pton.apply(&s("10.0.0.1"), &[]), s("\u{a}\u{0}\u{0}\u{1}"));
    }

    #[test]
    fn compiled_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Compiled>();
        assert_send_sync::<TrValue>();
        assert_send_sync::<TransformError>();
    }

    #[test]
    fn seval_is_a_null_stub() {
        assert_eq!(TransformOp::lookup("s.eval", 0), Ok(TransformOp::SEval));
        assert_eq!(TransformOp::SEval.apply(&s("$ru"), &[]), Value::Null);
    }

    #[test]
    fn load_time_errors() {
        assert_eq!(
            TransformOp::lookup("s.nosuch", 0),
            Err(TransformError::Unknown("s.nosuch".into()))
        );
        assert!(matches!(
            TransformOp::lookup("s.substr", 1),
            Err(TransformError::Arity { got: 1, .. })
        ));
        let bad = |op: TransformOp, args: &[Option<&str>]| {
            matches!(op.check_args(args), Err(TransformError::BadArg { .. }))
        };
        assert!(bad(TransformOp::ReSubst, &[Some("/a(/b/")]));
        assert!(bad(TransformOp::ReSubst, &[Some("/a/b/q")]));
        assert!(bad(TransformOp::SSubstr, &[Some("x"), Some("1")]));
        assert!(bad(TransformOp::SWidth, &[Some("-1")]));
        assert!(bad(TransformOp::SFillLeft, &[None, Some("3")]));
        assert!(bad(TransformOp::SFillLeft, &[Some("''"), Some("3")]));
        assert!(bad(TransformOp::SSelect, &[Some("1"), None]));
        assert!(bad(TransformOp::IpMatches, &[Some("10.0.0.0/33")]));
        assert!(TransformOp::SSubstr.check_args(&[None, Some("-2")]).is_ok());
        assert!(TransformOp::ReSubst.check_args(&[None]).is_ok());
        // Arity is checked by compile too.
        assert!(matches!(
            TransformOp::SLen.check_args(&[Some("1")]),
            Err(TransformError::Arity { .. })
        ));
    }

    #[test]
    fn error_messages() {
        let e = TransformOp::lookup("s.index", 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "transformation 's.index' takes 1 or 2 argument(s), got 3"
        );
        let e = TransformOp::SWidth.check_args(&[Some("0")]).unwrap_err();
        assert!(e.to_string().starts_with("bad argument for 's.width': "));
    }
}
