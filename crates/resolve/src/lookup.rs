//! The stub resolver: one record type for one name, through the cache, the search list, the
//! nameservers in turn, and CNAME chains.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::Error;
use crate::cache::Cache;
use crate::config::ResolverConfig;
use crate::exchange::{Failure, exchange};
use crate::wire::{RData, Rcode, RecordType, Response, names_equal, wire_len};

/// OpenSIPS stops following CNAMEs after 10 (`MAX_CNAME_CHAIN_DEPTH`).
const MAX_CNAME_CHAIN: usize = 10;

/// A blocking DNS resolver for SIP server location. Cheap to share: put it in an `Arc` and
/// call it from any worker thread; the cache is internally locked.
#[derive(Debug)]
pub struct Resolver {
    pub(crate) config: ResolverConfig,
    cache: Cache,
}

impl Resolver {
    /// A resolver with the given settings.
    pub fn new(config: ResolverConfig) -> Self {
        let cache = Cache::new(config.cache_capacity);
        Self { config, cache }
    }

    /// A resolver configured from `/etc/resolv.conf`, or from the file named by the
    /// `RSIPS_RESOLV_CONF` environment variable when set.
    pub fn from_system() -> Result<Self, Error> {
        Ok(Self::new(ResolverConfig::from_system()?))
    }

    /// A resolver asking exactly these nameservers, with default options and no search list.
    pub fn with_servers(servers: Vec<SocketAddr>) -> Self {
        Self::new(ResolverConfig {
            nameservers: servers,
            ..ResolverConfig::default()
        })
    }

    /// Sets OpenSIPS' `dns_try_naptr`.
    pub fn try_naptr(self, on: bool) -> Self {
        self.reconfigure(|c| c.try_naptr = on)
    }

    /// Sets OpenSIPS' `dns_try_ipv6`.
    pub fn try_ipv6(self, on: bool) -> Self {
        self.reconfigure(|c| c.try_ipv6 = on)
    }

    /// Sets OpenSIPS' `dns_use_search_list`.
    pub fn use_search_list(self, on: bool) -> Self {
        self.reconfigure(|c| c.use_search_list = on)
    }

    /// Sets how long one nameserver gets to answer one query.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.reconfigure(|c| c.timeout = timeout)
    }

    /// Sets how many rounds over the nameservers a query makes (at least one).
    pub fn attempts(self, attempts: u8) -> Self {
        self.reconfigure(|c| c.attempts = attempts)
    }

    fn reconfigure(mut self, change: impl FnOnce(&mut ResolverConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// The settings in force.
    pub fn config(&self) -> &ResolverConfig {
        &self.config
    }

    /// Forgets every cached answer.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// Number of (name, type) answers currently cached.
    pub fn cached_answers(&self) -> usize {
        self.cache.len()
    }

    /// The records of type `qtype` for `name`, after the search list and CNAMEs. An empty list
    /// means the name or the type does not exist (NXDOMAIN or NODATA).
    pub fn lookup(&self, name: &str, qtype: RecordType) -> Result<Vec<RData>, Error> {
        if self.config.nameservers.is_empty() {
            return Err(Error::NoNameservers {
                host: name.to_owned(),
            });
        }
        let mut failure = None;
        for candidate in self.candidates(name) {
            match self.lookup_exact(&candidate, qtype) {
                Ok(records) if records.is_empty() => {}
                Ok(records) => return Ok(records),
                Err(e) if e.is_unreachable() => return Err(e),
                Err(e) => failure = Some(e),
            }
        }
        failure.map_or(Ok(Vec::new()), Err)
    }

    /// Names to try for `name`, in order (resolv.conf(5) `search` and `ndots`).
    fn candidates(&self, name: &str) -> Vec<String> {
        let config = &self.config;
        if name.ends_with('.') || !config.use_search_list || config.search.is_empty() {
            return vec![name.to_owned()];
        }
        let searched = config
            .search
            .iter()
            .map(|domain| format!("{name}.{domain}"));
        let dots = name.bytes().filter(|&b| b == b'.').count();
        if dots >= usize::from(config.ndots) {
            std::iter::once(name.to_owned()).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(name.to_owned())).collect()
        }
    }

    /// One fully qualified name: cache, then the network, following CNAMEs the server did not
    /// chase itself.
    fn lookup_exact(&self, name: &str, qtype: RecordType) -> Result<Vec<RData>, Error> {
        if wire_len(name).is_none() {
            return Err(Error::InvalidName {
                host: name.to_owned(),
                reason: "not a valid DNS name".to_owned(),
            });
        }
        if let Some(records) = self.cache.get(name, qtype, Instant::now()) {
            return Ok(records);
        }
        let mut current = name.to_owned();
        let mut ttl = u32::MAX;
        for _ in 0..MAX_CNAME_CHAIN {
            let response = self.query(&current, qtype)?;
            let found = follow_answer(&response, &current, qtype);
            ttl = ttl.min(found.ttl);
            match found.alias {
                Some(alias)
                    if found.records.is_empty() && response.header.rcode == Rcode::NoError =>
                {
                    current = alias;
                }
                _ => {
                    let lifetime = self.cache_lifetime(&found.records, &response, ttl);
                    self.cache
                        .put(name, qtype, found.records.clone(), lifetime, Instant::now());
                    return Ok(found.records);
                }
            }
        }
        Err(Error::Malformed {
            host: name.to_owned(),
            name: current,
            qtype,
            reason: format!("CNAME chain longer than {MAX_CNAME_CHAIN}"),
        })
    }

    /// How long an answer may be cached: its smallest TTL, or for a negative answer the SOA's
    /// (RFC 2308 §5), or `negative_ttl` without one; never more than `max_cache_ttl`.
    fn cache_lifetime(&self, records: &[RData], response: &Response, ttl: u32) -> Duration {
        let lifetime = if !records.is_empty() {
            Duration::from_secs(u64::from(ttl))
        } else {
            negative_ttl(response).map_or(self.config.negative_ttl, |soa| {
                Duration::from_secs(u64::from(soa.min(ttl)))
            })
        };
        lifetime.min(self.config.max_cache_ttl)
    }

    /// Asks the nameservers in turn, `attempts` rounds, until one gives a usable answer.
    fn query(&self, name: &str, qtype: RecordType) -> Result<Response, Error> {
        let started = Instant::now();
        let servers = &self.config.nameservers;
        let mut last = Failure::Timeout;
        for _ in 0..self.config.attempts.max(1) {
            for &server in servers {
                match exchange(server, name, qtype, self.config.timeout) {
                    Ok(response) => return Ok(response),
                    Err(Failure::Timeout) => {}
                    Err(other) => last = other,
                }
            }
        }
        let (host, name) = (name.to_owned(), name.to_owned());
        Err(match last {
            Failure::Timeout => {
                let waited = started.elapsed();
                Error::Timeout {
                    host,
                    name,
                    qtype,
                    servers: servers.len(),
                    waited,
                }
            }
            Failure::Io(source) => Error::Io {
                host,
                name,
                qtype,
                source,
            },
            Failure::Rcode(rcode) => Error::ServerFailure {
                host,
                name,
                qtype,
                rcode,
            },
            Failure::Malformed(reason) => Error::Malformed {
                host,
                name,
                qtype,
                reason,
            },
        })
    }
}

/// What an answer says about `name`: the records of `qtype` at the end of its CNAME chain, the
/// last alias when the chain ends without them, and the smallest TTL seen on the way.
struct Found {
    records: Vec<RData>,
    alias: Option<String>,
    ttl: u32,
}

fn follow_answer(response: &Response, name: &str, qtype: RecordType) -> Found {
    let mut owner = name.to_owned();
    let mut ttl = u32::MAX;
    for _ in 0..=MAX_CNAME_CHAIN {
        let here = response
            .answers
            .iter()
            .filter(|r| names_equal(&r.name, &owner));
        let records: Vec<_> = here.clone().filter(|r| r.rtype == qtype).collect();
        if !records.is_empty() {
            let ttl = records.iter().map(|r| r.ttl).fold(ttl, u32::min);
            let records = records.into_iter().map(|r| r.data.clone()).collect();
            return Found {
                records,
                alias: None,
                ttl,
            };
        }
        let alias = here.filter_map(|r| match &r.data {
            RData::Cname(target) => Some((target, r.ttl)),
            _ => None,
        });
        match alias.into_iter().next() {
            Some((target, cname_ttl)) => {
                ttl = ttl.min(cname_ttl);
                owner.clone_from(target);
            }
            None => break,
        }
    }
    let alias = (!names_equal(&owner, name)).then_some(owner);
    Found {
        records: Vec::new(),
        alias,
        ttl,
    }
}

/// RFC 2308 §5: a negative answer lives min(SOA TTL, SOA MINIMUM).
fn negative_ttl(response: &Response) -> Option<u32> {
    response.authority.iter().find_map(|r| match r.data {
        RData::Soa { minimum } => Some(minimum.min(r.ttl)),
        _ => None,
    })
}
