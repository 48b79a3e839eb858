//! Resolver settings: the nameservers and search list of resolv.conf(5) plus the OpenSIPS
//! globals that steer server location (`dns_try_naptr`, `dns_try_ipv6`, `dns_use_search_list`,
//! `dns_retr_time`, `dns_retr_no`).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Error;

/// Environment variable naming a resolv.conf to read instead of `/etc/resolv.conf`.
pub const RESOLV_CONF_ENV: &str = "RSIPS_RESOLV_CONF";
const SYSTEM_RESOLV_CONF: &str = "/etc/resolv.conf";
const DNS_PORT: u16 = 53;
/// resolv.conf(5): only the first three nameservers are used (MAXNS).
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCH: usize = 6;

/// Everything a [`Resolver`](crate::Resolver) needs to know. Fields are public; start from
/// [`Default`] or [`ResolverConfig::from_system`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Nameservers, asked in order.
    pub nameservers: Vec<SocketAddr>,
    /// Domains appended to relative names (resolv.conf `search` / `domain`).
    pub search: Vec<String>,
    /// A name with at least this many dots is tried as-is before the search list.
    pub ndots: u8,
    /// How long to wait for one nameserver to answer one query (resolv.conf `timeout`,
    /// OpenSIPS `dns_retr_time`).
    pub timeout: Duration,
    /// Rounds over the nameserver list before giving up (resolv.conf `attempts`, OpenSIPS
    /// `dns_retr_no`). At least one round is always made.
    pub attempts: u8,
    /// Look up NAPTR when the URI has neither port nor transport (OpenSIPS `dns_try_naptr`,
    /// default on).
    pub try_naptr: bool,
    /// Look up AAAA as well as A, AAAA first (OpenSIPS `dns_try_ipv6`, default off).
    pub try_ipv6: bool,
    /// Apply the search list to relative names (OpenSIPS `dns_use_search_list`, default on).
    pub use_search_list: bool,
    /// Most (name, type) answers kept in the cache; 0 disables caching.
    pub cache_capacity: usize,
    /// Cap on any cached TTL, so a huge TTL cannot pin a stale answer.
    pub max_cache_ttl: Duration,
    /// How long a negative answer without an SOA is cached (RFC 2308 §5).
    pub negative_ttl: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
            try_naptr: true,
            try_ipv6: false,
            use_search_list: true,
            cache_capacity: 1024,
            max_cache_ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(30),
        }
    }
}

impl ResolverConfig {
    /// Reads the file named by `RSIPS_RESOLV_CONF`, or `/etc/resolv.conf` when it is unset.
    pub fn from_system() -> Result<Self, Error> {
        let path = std::env::var_os(RESOLV_CONF_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(SYSTEM_RESOLV_CONF));
        Self::from_file(&path)
    }

    /// Reads a resolv.conf(5) file.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Config {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::parse_resolv_conf(&text))
    }

    /// Parses resolv.conf(5) text: `nameserver`, `search`, `domain` and `options ndots:`,
    /// `timeout:`, `attempts:`. Unknown lines are ignored, as the C library does; with no
    /// usable nameserver line the local one (127.0.0.1:53) is used, also as it does.
    ///
    /// As an rsips extension a nameserver may carry a port (`127.0.0.1:5353`,
    /// `[::1]:5353`), which lets tests point the resolver at a server of their own.
    pub fn parse_resolv_conf(text: &str) -> Self {
        let mut config = Self::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    let server = words.next().and_then(parse_nameserver);
                    if let Some(server) = server
                        && config.nameservers.len() < MAX_NAMESERVERS
                    {
                        config.nameservers.push(server);
                    }
                }
                Some("domain") => config.search = words.take(1).map(str::to_owned).collect(),
                Some("search") => {
                    config.search = words.take(MAX_SEARCH).map(str::to_owned).collect();
                }
                Some("options") => words.for_each(|option| config.apply_option(option)),
                _ => {}
            }
        }
        if config.nameservers.is_empty() {
            config
                .nameservers
                .push(SocketAddr::from(([127, 0, 0, 1], DNS_PORT)));
        }
        config
    }

    /// resolv.conf(5) caps: ndots 15, timeout 30 s, attempts 5.
    fn apply_option(&mut self, option: &str) {
        let Some((key, value)) = option.split_once(':') else {
            return;
        };
        let Ok(value) = value.parse::<u32>() else {
            return;
        };
        match key {
            "ndots" => self.ndots = value.min(15) as u8,
            "timeout" => self.timeout = Duration::from_secs(u64::from(value.clamp(1, 30))),
            "attempts" => self.attempts = value.clamp(1, 5) as u8,
            _ => {}
        }
    }
}

fn parse_nameserver(word: &str) -> Option<SocketAddr> {
    if let Ok(ip) = word.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, DNS_PORT));
    }
    word.parse::<SocketAddr>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_servers_search_and_options() {
        let c = ResolverConfig::parse_resolv_conf(
            "# comment\nnameserver 10.0.0.1\nnameserver ::1 ; v6\nnameserver 127.0.0.1:5353\n\
             nameserver 10.0.0.4\nsearch a.example b.example\noptions ndots:2 timeout:3 attempts:9\n",
        );
        let expected: Vec<SocketAddr> = vec![
            "10.0.0.1:53".parse().unwrap(),
            "[::1]:53".parse().unwrap(),
            "127.0.0.1:5353".parse().unwrap(),
        ];
        assert_eq!(c.nameservers, expected);
        assert_eq!(c.search, ["a.example", "b.example"]);
        assert_eq!(
            (c.ndots, c.timeout, c.attempts),
            (2, Duration::from_secs(3), 5)
        );
    }

    #[test]
    fn later_domain_replaces_search_and_empty_file_means_localhost() {
        let c = ResolverConfig::parse_resolv_conf("search x.example\ndomain y.example\nbogus\n");
        assert_eq!(c.search, ["y.example"]);
        assert_eq!(
            c.nameservers,
            ["127.0.0.1:53".parse::<SocketAddr>().unwrap()]
        );
    }
}
