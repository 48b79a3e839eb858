//! usrloc's replication packets (OpenSIPS `ul_cluster.c`, capability
//! `usrloc-contact-repl`), without I/O: what a node tells the others when it inserts or
//! deletes an address-of-record or inserts, updates or deletes a contact, and the chunks a
//! donor writes when a node asks for the whole table.
//!
//! The layout is OpenSIPS' BIN version 5: strings are a u16 length and bytes, integers i32,
//! and the contact id, expiry, q and last-modified time travel as strings holding the C
//! value's bytes (u64, time_t, int, time_t; little-endian, as every OpenSIPS platform
//! is). Branch flags travel by name, space-separated (version 4 on); version 3 added the
//! contact-matching mode, version 5 the AoR's key-value store. Versions 2 to 5 are read.

/// The capability OpenSIPS registers for usrloc replication.
pub const CAP: &str = "usrloc-contact-repl";
pub const URECORD_INSERT: i32 = 1;
pub const URECORD_DELETE: i32 = 2;
pub const UCONTACT_INSERT: i32 = 3;
pub const UCONTACT_UPDATE: i32 = 4;
pub const UCONTACT_DELETE: i32 = 5;
/// `UL_BIN_VERSION`, what we send.
pub const VERSION: i16 = 5;
/// The oldest version OpenSIPS 4.0 still reads.
pub const MIN_VERSION: i16 = 2;

/// How the receiver finds the contact a packet names (OpenSIPS `struct ct_match`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// The receiver's own `matching_mode` (-1).
    Default,
    /// By URI (0).
    Contact,
    /// By URI and Call-ID (1).
    ContactCallid,
    /// By URI parameters (2, push notification): their names.
    Params(Vec<String>),
}

/// An address-of-record as a URECORD_INSERT (or a sync chunk) carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aor {
    /// The table ("location").
    pub domain: String,
    pub aor: String,
    /// OpenSIPS' record label and next contact label (parts of its contact ids).
    pub label: i32,
    pub next_clabel: i32,
    /// The serialized key-value store (JSON; empty when none).
    pub kv_store: String,
}

/// A contact as UCONTACT_INSERT / UCONTACT_UPDATE (or a sync chunk) carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ct {
    pub domain: String,
    pub aor: String,
    pub uri: String,
    pub contact_id: u64,
    pub callid: String,
    pub user_agent: String,
    pub path: String,
    pub attr: String,
    pub received: String,
    pub instance: String,
    /// Seconds since the epoch; 0 never.
    pub expires: i64,
    /// q × 1000, or -1.
    pub q: i32,
    /// `proto:ip:port`, empty when none.
    pub socket: String,
    pub cseq: i32,
    pub flags: i32,
    /// Branch flag names, space-separated (an int bitmask before version 4: its decimal).
    pub cflags: String,
    pub methods: i32,
    pub last_modified: i64,
    pub kv_store: String,
}

/// What a UCONTACT_DELETE names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtDel {
    pub domain: String,
    pub aor: String,
    pub uri: String,
    pub callid: String,
    pub cseq: i32,
}

/// One replication event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    AorInsert(Aor),
    AorDelete { domain: String, aor: String },
    CtInsert(Ct, Match),
    CtUpdate(Ct, Match),
    CtDelete(CtDel, Match),
}

/// A packet body that is not what its type says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// A field is missing or cut short.
    Truncated(&'static str),
    /// A fixed-size field (id, expires, q, time) has the wrong size.
    BadSize(&'static str, usize),
    BadVersion(i16),
    UnknownType(i32),
    MissingAor,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::Truncated(w) => write!(f, "packet cut short at {w}"),
            Malformed::BadSize(w, n) => write!(f, "field {w} has {n} bytes"),
            Malformed::BadVersion(v) => write!(f, "unsupported BIN version {v}"),
            Malformed::UnknownType(t) => write!(f, "invalid usrloc binary packet type: {t}"),
            Malformed::MissingAor => f.write_str("the AoR URI is missing the 'username' part"),
        }
    }
}

/// A body being written: i32s and u16-length strings, as BIN lays them out.
#[derive(Debug, Default)]
pub struct Body(pub Vec<u8>);

impl Body {
    fn int(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let b = b.get(..b.len().min(usize::from(u16::MAX))).unwrap_or(b);
        self.0.extend_from_slice(&(b.len() as u16).to_le_bytes());
        self.0.extend_from_slice(b);
        self
    }

    fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    fn aor(&mut self, a: &Aor) -> &mut Self {
        self.str(&a.domain)
            .str(&a.aor)
            .int(a.label)
            .int(a.next_clabel)
            .str(&a.kv_store)
    }

    fn ct_match(&mut self, m: &Match) -> &mut Self {
        match m {
            Match::Default => self.int(-1),
            Match::Contact => self.int(0),
            Match::ContactCallid => self.int(1),
            Match::Params(ps) => {
                self.int(2).int(i32::try_from(ps.len()).unwrap_or(0));
                for p in ps {
                    self.str(p);
                }
                self
            }
        }
    }

    /// The fields from the Call-ID to the key-value store, common to insert and update.
    fn ct_fields(&mut self, c: &Ct) -> &mut Self {
        self.str(&c.callid)
            .str(&c.user_agent)
            .str(&c.path)
            .str(&c.attr)
            .str(&c.received)
            .str(&c.instance)
            .bytes(&c.expires.to_le_bytes())
            .bytes(&c.q.to_le_bytes())
            .str(&c.socket)
            .int(c.cseq)
            .int(c.flags)
            .str(&c.cflags)
            .int(c.methods)
            .bytes(&c.last_modified.to_le_bytes())
            .str(&c.kv_store)
    }

    /// A contact as UCONTACT_INSERT and a sync chunk lay it out (the id after the URI).
    fn ct_insert(&mut self, c: &Ct, m: &Match) -> &mut Self {
        self.str(&c.domain)
            .str(&c.aor)
            .str(&c.uri)
            .bytes(&c.contact_id.to_le_bytes())
            .ct_fields(c)
            .ct_match(m)
    }
}

/// The packet type and body of an event.
pub fn encode(e: &Event) -> (i32, Vec<u8>) {
    let mut b = Body::default();
    let t = match e {
        Event::AorInsert(a) => {
            b.aor(a);
            URECORD_INSERT
        }
        Event::AorDelete { domain, aor } => {
            b.str(domain).str(aor);
            URECORD_DELETE
        }
        Event::CtInsert(c, m) => {
            b.ct_insert(c, m);
            UCONTACT_INSERT
        }
        Event::CtUpdate(c, m) => {
            b.str(&c.domain)
                .str(&c.aor)
                .str(&c.uri)
                .ct_fields(c)
                .bytes(&c.contact_id.to_le_bytes())
                .ct_match(m);
            UCONTACT_UPDATE
        }
        Event::CtDelete(d, m) => {
            b.str(&d.domain)
                .str(&d.aor)
                .str(&d.uri)
                .str(&d.callid)
                .int(d.cseq)
                .ct_match(m);
            UCONTACT_DELETE
        }
    };
    (t, b.0)
}

/// A sync chunk's data: an AoR (`is_contact` 0) or one of its contacts (1, matched by URI
/// and Call-ID, as OpenSIPS' donor sends them).
pub fn sync_aor(a: &Aor) -> Vec<u8> {
    let mut b = Body::default();
    b.int(0).aor(a);
    b.0
}

pub fn sync_contact(c: &Ct) -> Vec<u8> {
    let mut b = Body::default();
    b.int(1).ct_insert(c, &Match::ContactCallid);
    b.0
}

/// Pops BIN fields off the front of a body.
#[derive(Debug, Clone)]
pub struct Pop<'a> {
    rest: &'a [u8],
}

impl<'a> Pop<'a> {
    pub fn new(body: &'a [u8]) -> Pop<'a> {
        Pop { rest: body }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Malformed> {
        if self.rest.len() < n {
            return Err(Malformed::Truncated(what));
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Ok(a)
    }

    fn int(&mut self, what: &'static str) -> Result<i32, Malformed> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], Malformed> {
        let l = self.take(2, what)?;
        let n = usize::from(u16::from_le_bytes([l[0], l[1]]));
        self.take(n, what)
    }

    fn str(&mut self, what: &'static str) -> Result<String, Malformed> {
        self.bytes(what)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// A C value sent as its bytes: exactly `N` of them.
    fn fixed<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Malformed> {
        let b = self.bytes(what)?;
        b.try_into().map_err(|_| Malformed::BadSize(what, b.len()))
    }

    fn aor_name(&mut self) -> Result<(String, String), Malformed> {
        let domain = self.str("domain")?;
        let aor = self.str("aor")?;
        if aor.is_empty() {
            return Err(Malformed::MissingAor);
        }
        Ok((domain, aor))
    }

    fn ct_match(&mut self, version: i16) -> Result<Match, Malformed> {
        if version <= 2 {
            return Ok(Match::ContactCallid);
        }
        Ok(match self.int("match mode")? {
            0 => Match::Contact,
            1 => Match::ContactCallid,
            2 => {
                let n = self.int("match params")?;
                let mut ps = Vec::new();
                for _ in 0..n.clamp(0, 64) {
                    ps.push(self.str("match param")?);
                }
                Match::Params(ps)
            }
            _ => Match::Default,
        })
    }

    /// From the Call-ID to the key-value store; the caller fills domain, AoR, URI, id.
    fn ct_fields(&mut self, version: i16, c: &mut Ct) -> Result<(), Malformed> {
        c.callid = self.str("callid")?;
        c.user_agent = self.str("user agent")?;
        c.path = self.str("path")?;
        c.attr = self.str("attr")?;
        c.received = self.str("received")?;
        c.instance = self.str("instance")?;
        c.expires = i64::from_le_bytes(self.fixed("expires")?);
        c.q = i32::from_le_bytes(self.fixed("q")?);
        c.socket = self.str("socket")?;
        c.cseq = self.int("cseq")?;
        c.flags = self.int("flags")?;
        c.cflags = if version <= 3 {
            self.int("cflags")?.to_string()
        } else {
            self.str("cflags")?
        };
        c.methods = self.int("methods")?;
        c.last_modified = i64::from_le_bytes(self.fixed("last modified")?);
        c.kv_store = self.str("kv store")?;
        Ok(())
    }

    fn aor(&mut self, version: i16) -> Result<Aor, Malformed> {
        let (domain, aor) = self.aor_name()?;
        Ok(Aor {
            domain,
            aor,
            label: self.int("label")?,
            next_clabel: self.int("next clabel")?,
            kv_store: if version >= 5 {
                self.str("kv store")?
            } else {
                String::new()
            },
        })
    }

    fn ct_insert(&mut self, version: i16) -> Result<(Ct, Match), Malformed> {
        let (domain, aor) = self.aor_name()?;
        let mut c = Ct {
            domain,
            aor,
            uri: self.str("contact")?,
            contact_id: u64::from_le_bytes(self.fixed("contact id")?),
            ..Ct::default()
        };
        self.ct_fields(version, &mut c)?;
        let m = self.ct_match(version)?;
        Ok((c, m))
    }
}

impl Default for Ct {
    fn default() -> Ct {
        Ct {
            domain: String::new(),
            aor: String::new(),
            uri: String::new(),
            contact_id: 0,
            callid: String::new(),
            user_agent: String::new(),
            path: String::new(),
            attr: String::new(),
            received: String::new(),
            instance: String::new(),
            expires: 0,
            q: -1,
            socket: String::new(),
            cseq: 0,
            flags: 0,
            cflags: String::new(),
            methods: -1,
            last_modified: 0,
            kv_store: String::new(),
        }
    }
}

fn check_version(version: i16) -> Result<(), Malformed> {
    if (MIN_VERSION..=VERSION).contains(&version) {
        Ok(())
    } else {
        Err(Malformed::BadVersion(version))
    }
}

/// The event a packet of type `packet_type`, BIN version `version` carries.
pub fn decode(packet_type: i32, version: i16, body: &[u8]) -> Result<Event, Malformed> {
    check_version(version)?;
    let mut p = Pop::new(body);
    Ok(match packet_type {
        URECORD_INSERT => Event::AorInsert(p.aor(version)?),
        URECORD_DELETE => {
            let (domain, aor) = p.aor_name()?;
            Event::AorDelete { domain, aor }
        }
        UCONTACT_INSERT => {
            let (c, m) = p.ct_insert(version)?;
            Event::CtInsert(c, m)
        }
        UCONTACT_UPDATE => {
            let (domain, aor) = p.aor_name()?;
            let mut c = Ct {
                domain,
                aor,
                uri: p.str("contact")?,
                ..Ct::default()
            };
            p.ct_fields(version, &mut c)?;
            c.contact_id = u64::from_le_bytes(p.fixed("contact id")?);
            let m = p.ct_match(version)?;
            Event::CtUpdate(c, m)
        }
        UCONTACT_DELETE => {
            let (domain, aor) = p.aor_name()?;
            let d = CtDel {
                domain,
                aor,
                uri: p.str("contact")?,
                callid: p.str("callid")?,
                cseq: p.int("cseq")?,
            };
            Event::CtDelete(d, p.ct_match(version)?)
        }
        other => return Err(Malformed::UnknownType(other)),
    })
}

/// The event of one sync chunk (donor data version `version`).
pub fn decode_chunk(version: i16, chunk: &[u8]) -> Result<Event, Malformed> {
    check_version(version)?;
    let mut p = Pop::new(chunk);
    if p.int("is_contact")? == 0 {
        return Ok(Event::AorInsert(p.aor(version)?));
    }
    let (c, m) = p.ct_insert(version)?;
    Ok(Event::CtInsert(c, m))
}

#[cfg(test)]
mod tests;
