//! `script_trace()`'s side of lowering: in a script that calls it, each statement keeps where
//! it is written and what OpenSIPS calls it (`[core if]`, `[module t_relay]`, `[assign
//! equal]`, `[route name]`), for the trace line it prints when tracing is on.

use super::*;

impl Lower<'_> {
    /// `stmt` wrapped with the place and name of `s`.
    pub(super) fn traced(&mut self, s: &ast::Stmt, stmt: Stmt) -> Stmt {
        let (class, action): (&'static str, String) = match &s.kind {
            StmtKind::Call(c) => {
                let name = c.name.node.as_str();
                match name {
                    "route" => (
                        "route",
                        match c.args.first() {
                            Some(Some(Arg::Str(r, _) | Arg::Ident(r, _))) => r.clone(),
                            Some(Some(Arg::Int(n, _))) => n.to_string(),
                            _ => String::new(),
                        },
                    ),
                    _ if self.available.function(name).is_some() => ("module", name.to_owned()),
                    _ => ("core", name.to_owned()),
                }
            }
            StmtKind::Assign(a) => {
                use ast::AssignOp as Op;
                let op = match a.op {
                    Op::Set => "equal",
                    Op::Replace => "colon-eq",
                    Op::Add => "plus-eq",
                    Op::Sub => "minus-eq",
                    Op::Div => "div-eq",
                    Op::Mul => "mult-eq",
                    Op::Mod => "modulo-eq",
                    Op::And => "b-and-eq",
                    Op::Or => "b-or-eq",
                    Op::Xor => "b-xor-eq",
                };
                ("assign", op.to_owned())
            }
            StmtKind::If { .. } => ("core", "if".into()),
            StmtKind::While { .. } => ("core", "while".into()),
            StmtKind::For { .. } => ("core", "for-each".into()),
            StmtKind::Switch { .. } => ("core", "switch".into()),
            StmtKind::Return(_) => ("core", "return".into()),
            StmtKind::Exit => ("core", "exit".into()),
            StmtKind::Drop => ("core", "drop".into()),
            StmtKind::Break => ("core", "break".into()),
            StmtKind::Assert { .. } => ("core", "assert".into()),
            StmtKind::Block(_) | StmtKind::Nop => ("core", String::new()),
        };
        let (file, line) = match self.sources.get(s.span.file) {
            Some(f) => (f.path.display().to_string(), f.line_col(s.span.start).0),
            None => (String::new(), 0),
        };
        Stmt::Traced(Box::new(crate::script::ir::Traced {
            file: file.into(),
            line,
            class,
            action: action.into(),
            stmt,
        }))
    }
}
