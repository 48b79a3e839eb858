//! The `text://` driver: OpenSIPS' `db_text`. A database is a directory, a table is the file of
//! that name in it: a first line of column definitions (`name(type[,null|auto])`, the type told
//! by its first letter), then one row per line, fields separated by `:`, an empty field NULL,
//! `\n \r \t \\ \: \0` escaped in strings. Tables are read when first used and kept in memory;
//! writes change the memory and reach the files at `dump` (MI `db_text:dump`) or shutdown.
//! With `db_mode` 1 a table whose file changed on disk is read again before it is used.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use crate::{Connection, DbError, Filter, Value};

/// The `db_text` module's parameters.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `db_mode` 1: re-read a table whose file changed since it was read.
    pub reread: bool,
    /// `buffer_size`: the longest field (and column name) a file may hold.
    pub buffer_size: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            reread: false,
            buffer_size: 4096,
        }
    }
}

/// A column type, as its definition's first letter gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Int,
    BigInt,
    Double,
    /// `str`; a definition whose word contains an `i` (`string`) is [`Type::String`].
    Str,
    String,
    Blob,
    DateTime,
}

impl Type {
    fn word(self) -> &'static str {
        match self {
            Type::Int => "int",
            Type::BigInt => "long",
            Type::Double => "double",
            Type::Str => "str",
            Type::String => "string",
            Type::Blob => "blob",
            Type::DateTime => "time",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Type::Int | Type::BigInt | Type::DateTime)
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: Type,
    pub nullable: bool,
    pub auto: bool,
}

/// One table in memory.
#[derive(Debug, Clone)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
    /// The largest value the auto column holds (the next insert gets one more).
    auto_max: i64,
    /// The file's modification time when it was read.
    read_at: Option<SystemTime>,
    /// Changed in memory since it was read or written.
    dirty: bool,
}

impl Table {
    fn column(&self, table: &str, name: &str) -> Result<usize, DbError> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| DbError::NoColumn {
                table: table.to_owned(),
                column: name.to_owned(),
            })
    }

    fn matching(&self, table: &str, filter: &Filter<'_>) -> Result<Vec<usize>, DbError> {
        let cols = filter
            .iter()
            .map(|(name, v)| Ok((self.column(table, name)?, v)))
            .collect::<Result<Vec<_>, DbError>>()?;
        Ok((0..self.rows.len())
            .filter(|&r| cols.iter().all(|(c, v)| self.rows[r][*c].same(v)))
            .collect())
    }

    /// `v` as column `c` stores it: text that is a number for a number column, a number as
    /// text for a text column; anything else is refused.
    fn coerce(&self, table: &str, c: usize, v: &Value) -> Result<Value, DbError> {
        let col = &self.columns[c];
        let bad = || DbError::Value {
            table: table.to_owned(),
            what: format!(
                "\"{v}\" does not fit column {} ({})",
                col.name,
                col.ty.word()
            ),
        };
        Ok(match (col.ty, v) {
            (_, Value::Null) => Value::Null,
            (t, v) if t.numeric() => Value::Int(v.as_int().ok_or_else(bad)?),
            (Type::Double, Value::Int(n)) => Value::Double(*n as f64),
            (Type::Double, Value::Double(d)) if d.is_finite() => Value::Double(*d),
            (Type::Double, Value::Str(s)) => match s.trim().parse::<f64>() {
                Ok(d) if d.is_finite() => Value::Double(d),
                _ => return Err(bad()),
            },
            (Type::Double, _) => return Err(bad()),
            // An empty string stays one (a NULL only in a column that takes NULL, as the file
            // writes both the same way and reads them back by the column).
            (_, v) => match v.as_text().unwrap_or_default() {
                s if s.is_empty() && col.nullable => Value::Null,
                s => Value::Str(s),
            },
        })
    }

    /// NULLs where the column allows none: the auto column takes its next value, anything
    /// else is refused (OpenSIPS' row check).
    fn complete(&mut self, row: &mut [Value]) -> Result<(), String> {
        for (c, col) in self.columns.iter().enumerate() {
            if !row[c].is_null() || col.nullable {
                continue;
            }
            if col.auto {
                self.auto_max = self
                    .auto_max
                    .checked_add(1)
                    .ok_or_else(|| format!("column {} has no auto value left", col.name))?;
                row[c] = Value::Int(self.auto_max);
                continue;
            }
            return Err(format!("column {} may not be NULL", col.name));
        }
        Ok(())
    }
}

/// One `text://` database.
#[derive(Debug)]
pub struct TextDb {
    url: String,
    dir: PathBuf,
    settings: Settings,
    tables: Mutex<HashMap<String, Table>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn open_databases() -> MutexGuard<'static, Vec<Arc<TextDb>>> {
    static OPEN: OnceLock<Mutex<Vec<Arc<TextDb>>>> = OnceLock::new();
    lock(OPEN.get_or_init(Mutex::default))
}

/// The database in `dir`, opened once per process (its tables are read when first used).
pub fn open(url: &str, dir: &Path, settings: &Settings) -> Arc<TextDb> {
    // One database per directory, however the URL spells it (`db`, `./db`, a symlink).
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let dir = canonical.as_path();
    let mut open = open_databases();
    if let Some(db) = open.iter().find(|d| d.dir == dir) {
        return Arc::clone(db);
    }
    let db = Arc::new(TextDb {
        url: url.to_owned(),
        dir: dir.to_owned(),
        settings: settings.clone(),
        tables: Mutex::default(),
    });
    open.push(Arc::clone(&db));
    db
}

/// Every `text://` database opened so far.
pub fn databases() -> Vec<Arc<TextDb>> {
    open_databases().clone()
}

/// Writes every changed table of every database to its file (MI `db_text:dump`, shutdown).
pub fn dump_all() -> Result<usize, DbError> {
    databases().iter().try_fold(0, |n, db| Ok(n + db.dump()?))
}

impl TextDb {
    /// The directory, as MI `db_text:reload` names a database.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, table: &str) -> Result<PathBuf, DbError> {
        // A table is a file in the directory, never a path out of it.
        if table.is_empty() || table.contains(['/', '\\']) || table == "." || table == ".." {
            return Err(self.no_table(table));
        }
        Ok(self.dir.join(table))
    }

    fn no_table(&self, table: &str) -> DbError {
        DbError::NoTable {
            db: self.url.clone(),
            table: table.to_owned(),
        }
    }

    fn read(&self, table: &str) -> Result<Table, DbError> {
        let path = self.path(table)?;
        let text = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => self.no_table(table),
            _ => DbError::Io {
                path: path.clone(),
                source: e,
            },
        })?;
        let mut t = parse(&path, &text, self.settings.buffer_size)?;
        t.read_at = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        Ok(t)
    }

    /// Runs `f` on the table, reading it first if it is not in memory (or, with `db_mode` 1,
    /// if its file changed).
    fn with<R>(
        &self,
        table: &str,
        f: impl FnOnce(&mut Table) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        let mut tables = lock(&self.tables);
        let stale = match tables.get(table) {
            None => true,
            // Changes not yet written win over the file: re-reading would lose them.
            Some(t) if self.settings.reread && !t.dirty => {
                let now = std::fs::metadata(self.path(table)?)
                    .and_then(|m| m.modified())
                    .ok();
                now.is_some() && now != t.read_at
            }
            Some(_) => false,
        };
        if stale {
            let fresh = self.read(table)?;
            tables.insert(table.to_owned(), fresh);
        }
        let t = tables.get_mut(table).ok_or_else(|| self.no_table(table))?;
        f(t)
    }

    /// Writes the changed tables to their files; how many it wrote. Each file is replaced
    /// whole (written beside it, then renamed), so a crash mid-write leaves the old one.
    pub fn dump(&self) -> Result<usize, DbError> {
        let mut tables = lock(&self.tables);
        let mut written = 0;
        for (name, t) in tables.iter_mut().filter(|(_, t)| t.dirty) {
            let path = self.path(name)?;
            let tmp = path.with_extension("rsips-tmp");
            let io = |e| DbError::Io {
                path: path.clone(),
                source: e,
            };
            std::fs::write(&tmp, print(t)).map_err(io)?;
            std::fs::rename(&tmp, &path).map_err(io)?;
            t.dirty = false;
            t.read_at = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            written += 1;
        }
        Ok(written)
    }

    /// Reads `table` (or every table in memory) from disk again. A file that no longer reads
    /// leaves the table as it was and is reported, as OpenSIPS keeps the old version.
    pub fn reload(&self, table: Option<&str>) -> Result<(), DbError> {
        let names: Vec<String> = match table {
            Some(t) => {
                if !lock(&self.tables).contains_key(t) {
                    return Err(self.no_table(t));
                }
                vec![t.to_owned()]
            }
            None => lock(&self.tables).keys().cloned().collect(),
        };
        let mut failed = None;
        for name in names {
            match self.read(&name) {
                Ok(fresh) => {
                    lock(&self.tables).insert(name, fresh);
                }
                Err(e) => failed = Some(e),
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

impl Connection for TextDb {
    fn query(
        &self,
        table: &str,
        columns: &[&str],
        filter: &Filter<'_>,
    ) -> Result<Vec<Vec<Value>>, DbError> {
        self.with(table, |t| {
            let cols = if crate::sql::all_columns(columns) {
                (0..t.columns.len()).collect()
            } else {
                columns
                    .iter()
                    .map(|c| t.column(table, c))
                    .collect::<Result<Vec<_>, _>>()?
            };
            Ok(t.matching(table, filter)?
                .into_iter()
                .map(|r| cols.iter().map(|&c| t.rows[r][c].clone()).collect())
                .collect())
        })
    }

    fn insert(&self, table: &str, values: &[(&str, Value)]) -> Result<(), DbError> {
        self.with(table, |t| {
            let mut row = vec![Value::Null; t.columns.len()];
            for (name, v) in values {
                let c = t.column(table, name)?;
                row[c] = t.coerce(table, c, v)?;
                if t.columns[c].auto {
                    t.auto_max = t.auto_max.max(row[c].as_int().unwrap_or(0));
                }
            }
            t.complete(&mut row).map_err(|what| DbError::Value {
                table: table.to_owned(),
                what,
            })?;
            t.rows.push(row);
            t.dirty = true;
            Ok(())
        })
    }

    fn update(
        &self,
        table: &str,
        filter: &Filter<'_>,
        set: &[(&str, Value)],
    ) -> Result<usize, DbError> {
        self.with(table, |t| {
            let rows = t.matching(table, filter)?;
            let mut sets = Vec::with_capacity(set.len());
            for (name, v) in set {
                let c = t.column(table, name)?;
                let v = t.coerce(table, c, v)?;
                if v.is_null() && !t.columns[c].nullable {
                    return Err(DbError::Value {
                        table: table.to_owned(),
                        what: format!("column {} may not be NULL", t.columns[c].name),
                    });
                }
                sets.push((c, v));
            }
            for &r in &rows {
                for (c, v) in &sets {
                    t.rows[r][*c] = v.clone();
                }
            }
            t.dirty |= !rows.is_empty();
            Ok(rows.len())
        })
    }

    fn delete(&self, table: &str, filter: &Filter<'_>) -> Result<usize, DbError> {
        self.with(table, |t| {
            let gone = t.matching(table, filter)?;
            let mut i = 0;
            t.rows.retain(|_| {
                i += 1;
                !gone.contains(&(i - 1))
            });
            t.dirty |= !gone.is_empty();
            Ok(gone.len())
        })
    }

    fn url(&self) -> &str {
        &self.url
    }
}

/// Reads a table file. Errors name the line and column (1-based) as an editor shows them.
pub fn parse(path: &Path, text: &[u8], buffer_size: usize) -> Result<Table, DbError> {
    let err = |line: usize, col: usize, what: String| DbError::Syntax {
        path: path.to_owned(),
        line,
        col,
        what,
    };
    let mut lines = text.split(|&b| b == b'\n');
    let header = lines.next().unwrap_or_default();
    let columns = parse_header(header, buffer_size).map_err(|(col, what)| err(1, col, what))?;
    let auto = columns.iter().position(|c| c.auto);
    let mut table = Table {
        columns,
        rows: Vec::new(),
        auto_max: 0,
        read_at: None,
        dirty: false,
    };
    for (i, line) in lines.enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let mut row =
            parse_row(line, &table.columns, buffer_size).map_err(|(col, w)| err(i + 2, col, w))?;
        if let Some(v) = auto.and_then(|a| row[a].as_int()) {
            table.auto_max = table.auto_max.max(v);
        }
        table.complete(&mut row).map_err(|w| err(i + 2, 1, w))?;
        table.rows.push(row);
    }
    Ok(table)
}

type At<T> = Result<T, (usize, String)>;

/// `name(type[,attr]) name(type) …`
fn parse_header(line: &[u8], buffer_size: usize) -> At<Vec<Column>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut columns: Vec<Column> = Vec::new();
    let mut i = 0;
    let skip_spaces = |i: &mut usize| {
        while line.get(*i) == Some(&b' ') {
            *i += 1;
        }
    };
    loop {
        skip_spaces(&mut i);
        if i >= line.len() {
            break;
        }
        let start = i;
        while i < line.len() && line[i] != b'(' && line[i] != b' ' {
            i += 1;
        }
        let name = String::from_utf8_lossy(&line[start..i]).into_owned();
        if name.len() > buffer_size {
            return Err((
                start + 1,
                format!("column name longer than buffer_size {buffer_size}"),
            ));
        }
        skip_spaces(&mut i);
        if line.get(i) != Some(&b'(') {
            return Err((
                i + 1,
                format!("column \"{name}\" needs its type in parentheses"),
            ));
        }
        i += 1;
        skip_spaces(&mut i);
        let type_at = i;
        let word_end = line[i..]
            .iter()
            .position(|&b| matches!(b, b')' | b',' | b' ' | b'('))
            .map_or(line.len(), |p| i + p);
        let word = &line[i..word_end];
        let mut ty = match word.first().map(u8::to_ascii_lowercase) {
            Some(b's') => Type::Str,
            Some(b'i') => Type::Int,
            Some(b'l') => Type::BigInt,
            Some(b'd') => Type::Double,
            Some(b'b') => Type::Blob,
            Some(b't') => Type::DateTime,
            _ => {
                return Err((
                    type_at + 1,
                    format!(
                        "column \"{name}\": unknown type \"{}\" (str, string, int, long, double, blob, time)",
                        String::from_utf8_lossy(word).trim()
                    ),
                ));
            }
        };
        if ty == Type::Str && word.iter().any(|b| b.eq_ignore_ascii_case(&b'i')) {
            ty = Type::String;
        }
        let mut col = Column {
            name,
            ty,
            nullable: false,
            auto: false,
        };
        i = word_end;
        skip_spaces(&mut i);
        if line.get(i) == Some(&b',') {
            i += 1;
            skip_spaces(&mut i);
            match line.get(i).map(u8::to_ascii_lowercase) {
                Some(b'n') => col.nullable = true,
                Some(b'a')
                    if matches!(ty, Type::Int | Type::BigInt)
                        && !columns.iter().any(|c| c.auto) =>
                {
                    col.auto = true;
                }
                _ => {
                    return Err((
                        i + 1,
                        format!(
                            "column \"{}\": the attribute must be null, or auto on the one int column that has it",
                            col.name
                        ),
                    ));
                }
            }
            while i < line.len() && line[i] != b')' {
                i += 1;
            }
        }
        if line.get(i) != Some(&b')') {
            return Err((i + 1, format!("column \"{}\": missing ')'", col.name)));
        }
        i += 1;
        columns.push(col);
    }
    if columns.is_empty() {
        return Err((1, "the first line must define the columns".into()));
    }
    Ok(columns)
}

/// One row line: a field per column, `:` between them.
fn parse_row(line: &[u8], columns: &[Column], buffer_size: usize) -> At<Vec<Value>> {
    let mut row = Vec::with_capacity(columns.len());
    let mut i = 0;
    for (c, col) in columns.iter().enumerate() {
        let start = i;
        let mut field = Vec::new();
        while i < line.len() && line[i] != b':' {
            let mut b = line[i];
            if b == b'\\' && !col.ty.numeric() && col.ty != Type::Double {
                i += 1;
                b = match line.get(i) {
                    Some(b'n') => b'\n',
                    Some(b'r') => b'\r',
                    Some(b't') => b'\t',
                    Some(b'\\') => b'\\',
                    Some(b':') => b':',
                    Some(b'0') => 0,
                    _ => {
                        return Err((
                            i + 1,
                            "unknown escape (\\n \\r \\t \\\\ \\: \\0 are the ones there are)"
                                .into(),
                        ));
                    }
                };
            }
            field.push(b);
            i += 1;
            if field.len() > buffer_size {
                return Err((
                    start + 1,
                    format!("field longer than buffer_size {buffer_size}"),
                ));
            }
        }
        let last = c + 1 == columns.len();
        if !last && i >= line.len() {
            return Err((
                i + 1,
                format!("{} fields where the table has {}", c + 1, columns.len()),
            ));
        }
        if last && i < line.len() {
            return Err((
                i + 1,
                format!("more fields than the table's {} columns", columns.len()),
            ));
        }
        row.push(field_value(&field, col.ty, col.nullable).map_err(|w| (start + 1, w))?);
        i += 1;
    }
    Ok(row)
}

fn field_value(field: &[u8], ty: Type, nullable: bool) -> Result<Value, String> {
    if field.is_empty() {
        // In a text column that takes no NULL, an empty field is the empty string (what a
        // write of "" leaves); elsewhere it is NULL.
        let text = matches!(ty, Type::Str | Type::String | Type::Blob);
        return Ok(if text && !nullable {
            Value::Str(String::new())
        } else {
            Value::Null
        });
    }
    let text = String::from_utf8_lossy(field);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match ty {
        t if t.numeric() => {
            let body = text.strip_prefix('-').unwrap_or(&text);
            if !digits(body) {
                return Err(format!("\"{text}\" is not an integer"));
            }
            text.parse()
                .map(Value::Int)
                .map_err(|_| format!("\"{text}\" is out of range"))
        }
        Type::Double => {
            let body = text.strip_prefix('-').unwrap_or(&text);
            let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
            if !digits(whole) || !(frac.is_empty() || digits(frac)) {
                return Err(format!("\"{text}\" is not a number"));
            }
            text.parse()
                .map(Value::Double)
                .map_err(|_| format!("\"{text}\" is not a number"))
        }
        _ => Ok(Value::Str(text.into_owned())),
    }
}

/// A table as its file holds it (what `dump` writes).
pub fn print(t: &Table) -> String {
    let mut out = String::new();
    for (i, c) in t.columns.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&c.name);
        out.push('(');
        out.push_str(c.ty.word());
        if c.nullable {
            out.push_str(",null");
        } else if c.auto {
            out.push_str(",auto");
        }
        out.push(')');
    }
    out.push('\n');
    for row in &t.rows {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            match v {
                Value::Null => {}
                Value::Int(n) | Value::DateTime(n) => out.push_str(&n.to_string()),
                Value::Double(d) => out.push_str(&format!("{d}")),
                Value::Str(s) => {
                    for ch in s.chars() {
                        match ch {
                            '\n' => out.push_str("\\n"),
                            '\r' => out.push_str("\\r"),
                            '\t' => out.push_str("\\t"),
                            '\\' => out.push_str("\\\\"),
                            ':' => out.push_str("\\:"),
                            '\0' => out.push_str("\\0"),
                            c => out.push(c),
                        }
                    }
                }
            }
        }
        out.push('\n');
    }
    out
}
