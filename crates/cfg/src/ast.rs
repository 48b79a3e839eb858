//! The syntax tree of an opensips.cfg. Every node carries its span; names are not resolved here
//! (that is the engine's compile step).

use crate::pv::PvSpec;
use crate::source::{Span, Spanned};

/// A whole configuration, includes spliced in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `name = value` for a core parameter (`log_level=3`, `mpath="..."`).
    Global {
        name: Spanned<String>,
        value: Spanned<GlobalValue>,
    },
    /// `socket = ...`.
    Socket(Spanned<crate::socket::SocketDef>),
    /// `alias = ...`.
    Alias(Spanned<Vec<crate::socket::AliasSpec>>),
    /// `loadmodule "tm.so"`.
    LoadModule(Spanned<String>),
    /// `modparam("tm", "fr_timeout", 5)`.
    ModParam {
        module: Spanned<String>,
        param: Spanned<String>,
        value: Spanned<ParamValue>,
    },
    Route(RouteBlock),
}

/// A global parameter's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobalValue {
    Int(i64),
    Str(String),
    /// An unquoted word (`syslog_facility=LOG_LOCAL0`).
    Ident(String),
    Ip(String),
    /// `udp_workers = 4 use_auto_scaling_profile NAME`.
    Workers {
        count: i64,
        profile: String,
    },
    /// `mpath = "dir1" : "dir2"`.
    Paths(Vec<String>),
}

/// A modparam value: a (folded) string or an integer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    Int(i64),
    Str(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    Request,
    Reply,
    Failure,
    Branch,
    Local,
    Error,
    Startup,
    Timer,
    Event,
}

impl RouteKind {
    /// The keyword that opens this kind of block.
    pub fn keyword(self) -> &'static str {
        match self {
            RouteKind::Request => "route",
            RouteKind::Reply => "onreply_route",
            RouteKind::Failure => "failure_route",
            RouteKind::Branch => "branch_route",
            RouteKind::Local => "local_route",
            RouteKind::Error => "error_route",
            RouteKind::Startup => "startup_route",
            RouteKind::Timer => "timer_route",
            RouteKind::Event => "event_route",
        }
    }

    pub fn from_keyword(k: &str) -> Option<RouteKind> {
        Some(match k {
            "route" => RouteKind::Request,
            "onreply_route" => RouteKind::Reply,
            "failure_route" => RouteKind::Failure,
            "branch_route" => RouteKind::Branch,
            "local_route" => RouteKind::Local,
            "error_route" => RouteKind::Error,
            "startup_route" => RouteKind::Startup,
            "timer_route" => RouteKind::Timer,
            "event_route" => RouteKind::Event,
            _ => return None,
        })
    }
}

/// `route[name] { ... }` and the other route blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteBlock {
    pub kind: RouteKind,
    /// `None` for the main route and the unnamed blocks. Numeric names are kept as text ("0").
    pub name: Option<Spanned<String>>,
    /// `timer_route[name, seconds]`.
    pub interval: Option<Spanned<i64>>,
    pub body: Block,
    /// The block header (`route[relay]`).
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    /// A function call, `route(...)`, `xlog(...)`, `async(...)` …
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
    For {
        var: PvRef,
        iter: PvRef,
        body: Box<Stmt>,
    },
    Switch {
        subject: PvRef,
        cases: Vec<Case>,
        default: Option<Vec<Stmt>>,
    },
    /// `return`, `return(N)`, `return(N, v1, …)`; empty = `return` (code 1).
    Return(Vec<Option<Expr>>),
    Exit,
    Drop,
    Break,
    Block(Block),
    /// A lone `;`.
    Nop,
    /// `assert(condition[, "message"])`.
    Assert {
        cond: Expr,
        message: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub label: Spanned<CaseLabel>,
    pub body: Vec<Stmt>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseLabel {
    Int(i64),
    Str(String),
}

/// A PV reference as written, with its parsed structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvRef {
    pub text: String,
    pub spec: PvSpec,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignOp {
    /// `=` (for AVPs: push a value).
    Set,
    /// `:=` (for AVPs: replace all values).
    Replace,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    And,
    Or,
    Xor,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assign {
    pub target: PvRef,
    pub op: AssignOp,
    pub value: Expr,
}

/// `name(args)`; an empty argument (`f(,"x")`) is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: Spanned<String>,
    pub args: Vec<Option<Arg>>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A string literal (a format string for most functions). Adjacent literals are folded.
    Str(String, Span),
    Int(i64, Span),
    Pv(PvRef),
    Null(Span),
    /// A bare word: a route name in `route(x)` / `async(f(), x)`, or a mistake the compiler reports.
    Ident(String, Span),
    /// The function inside `async(f(...), resume)` / `launch(f(...))`.
    Call(Box<Call>),
}

impl Arg {
    pub fn span(&self) -> Span {
        match self {
            Arg::Str(_, s) | Arg::Int(_, s) | Arg::Null(s) | Arg::Ident(_, s) => *s,
            Arg::Pv(p) => p.span,
            Arg::Call(c) => c.span,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Match,
    NotMatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Str(String),
    Null,
    /// An IP address or network literal.
    Ip(String),
    Pv(PvRef),
    Call(Call),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `PV op value` (the left side is always a PV in OpenSIPS).
    Cmp {
        op: CmpOp,
        left: PvRef,
        right: Box<Expr>,
    },
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    BitNot(Box<Expr>),
    /// An assignment used as a condition.
    Assign(Box<Assign>),
    /// `[ expr ]`: an arithmetic/string expression tested for truth.
    Test(Box<Expr>),
}
