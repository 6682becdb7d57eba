//! Request rates: token buckets (GCRA, the `governor` crate) per client IP and per signer, one
//! set per route family. Buckets live in this replica's memory (docs/limits.md).
//!
//! - Per client IP: checked by the request guard before any handler runs. IPv6 clients are
//!   counted per /64 (one host usually owns a whole /64).
//! - Per signer: checked by the handlers once the signature is recovered (an offline step) and
//!   before anything is read from the chain or the store.
//!
//! Every keyed table is bounded: at most `--rate-limit-max-clients` keys per family, the keys
//! beyond sharing one overflow bucket, and a background task drops the keys whose bucket is
//! full again (indistinguishable from a new key) every few seconds.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use sms_core::Address;

use super::family;

pub const DEFAULT_RATE_LIMIT_IP: &str = "1000/s:2000,tee-challenge=20/s:200,tee-session=20/s:200,provisioning-nonce=50/s:500,chain-push=10/s:100";
pub const DEFAULT_RATE_LIMIT_SIGNER: &str =
    "500/s:1000,tee-challenge=20/s:200,tee-session=20/s:200,chain-push=10/s:100";
pub const DEFAULT_RATE_LIMIT_MAX_CLIENTS: usize = 100_000;
/// How often full buckets are dropped from the tables.
const SHRINK_INTERVAL: Duration = Duration::from_secs(10);

/// One bucket's rate: `count` requests per `period`, at most `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub period: Duration,
    pub burst: NonZeroU32,
}

impl Rate {
    fn quota(self) -> Option<Quota> {
        let per_request = self.period / self.count.get();
        Quota::with_period(per_request).map(|q| q.allow_burst(self.burst))
    }
}

/// A rate (or none: unlimited) for every family, with per-family overrides
/// (`1000/s:2000,tee-session=20/s:200,dev=off`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FamilyRates {
    pub default: Option<Rate>,
    pub overrides: Vec<(&'static str, Option<Rate>)>,
}

impl FamilyRates {
    pub fn get(&self, family: &str) -> Option<Rate> {
        self.overrides
            .iter()
            .rev()
            .find(|(f, _)| *f == family)
            .map_or(self.default, |(_, r)| *r)
    }
}

impl std::str::FromStr for FamilyRates {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        parse_family_rates(text)
    }
}

/// `N/s`, `N/m` or `N/h`, then `:B` for a burst other than N; or `off`.
fn parse_rate(text: &str) -> Result<Option<Rate>, String> {
    let text = text.trim();
    if text == "off" {
        return Ok(None);
    }
    let bad = || {
        format!(
            "'{text}' is not a rate: expected N/s, N/m or N/h (N from 1 to 1000000), optionally \
             followed by :BURST, or off"
        )
    };
    let number = |v: &str| match v.trim().parse::<u32>() {
        Ok(n) if (1..=1_000_000).contains(&n) => NonZeroU32::new(n).ok_or_else(bad),
        _ => Err(bad()),
    };
    let (rate, burst) = match text.split_once(':') {
        Some((rate, burst)) => (rate, Some(number(burst)?)),
        None => (text, None),
    };
    let (count, unit) = rate.split_once('/').ok_or_else(bad)?;
    let count = number(count)?;
    let period = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    Ok(Some(Rate {
        count,
        period,
        burst: burst.unwrap_or(count),
    }))
}

pub(crate) fn parse_family_rates(text: &str) -> Result<FamilyRates, String> {
    let mut rates = FamilyRates::default();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match item.split_once('=') {
            Some((name, rate)) => {
                let name = super::known_family(name.trim())?;
                rates.overrides.push((name, parse_rate(rate)?));
            }
            None => rates.default = parse_rate(item)?,
        }
    }
    Ok(rates)
}

/// The proxies whose `X-Forwarded-For` is believed (`--trusted-proxies`): addresses or
/// `address/prefix` ranges. Empty (the default): the client is the connection's peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl std::str::FromStr for TrustedProxies {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let bad = || format!("'{item}' is not an IP address or an address/prefix range");
            let (ip, prefix) = match item.split_once('/') {
                Some((ip, prefix)) => (ip, Some(prefix.parse::<u8>().map_err(|_| bad())?)),
                None => (item, None),
            };
            let ip: IpAddr = ip.parse().map_err(|_| bad())?;
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = prefix.unwrap_or(bits);
            if prefix > bits {
                return Err(bad());
            }
            ranges.push((ip, prefix));
        }
        Ok(Self(ranges))
    }
}

impl TrustedProxies {
    fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, true),
            IpAddr::V6(v6) => (u128::from(v6), false),
        };
        let (ip, v4) = bits(ip);
        self.0.iter().any(|&(range, prefix)| {
            let (range, range_v4) = bits(range);
            // Both families sit in the top bits, so a prefix masks the top `prefix` bits.
            let shift = 128 - u32::from(prefix);
            let mask = u128::MAX.checked_shl(shift).unwrap_or(0);
            v4 == range_v4 && ip & mask == range & mask
        })
    }

    /// The client of a request from `peer`: the peer itself, unless it is a trusted proxy;
    /// then the rightmost `X-Forwarded-For` hop that is not a trusted proxy (a hop that does
    /// not parse ends the walk at the last trusted one).
    pub fn client(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                return client;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }
}

/// Who a bucket is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ClientKey {
    Ip(IpAddr),
    Signer(Address),
    /// The keys past the table's bound share this one.
    Overflow,
}

impl ClientKey {
    /// IPv6 clients by /64; IPv4-mapped IPv6 as the IPv4 address.
    fn ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientKey::Ip(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::Ip(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientKey::Ip(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

/// A keyed table with at most `max` keys: a new key past the bound is counted on
/// [`ClientKey::Overflow`]. The keys are counted as they come and go (`keys`): `DashMap::len`
/// would lock every shard of the table on every check.
struct BoundedStore {
    map: DashMap<ClientKey, InMemoryState>,
    keys: AtomicUsize,
    max: usize,
}

impl BoundedStore {
    fn new(max: usize) -> Self {
        Self {
            map: DashMap::default(),
            keys: AtomicUsize::new(0),
            max,
        }
    }
}

impl StateStore for BoundedStore {
    type Key = ClientKey;

    fn measure_and_replace<T, F, E>(&self, key: &ClientKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(state) = self.map.get(key) {
            return state.measure_and_replace(&NotKeyed::NonKey, f);
        }
        let key = if self.keys.load(Ordering::Relaxed) >= self.max {
            ClientKey::Overflow
        } else {
            *key
        };
        let state = match self.map.entry(key) {
            Entry::Occupied(entry) => entry.into_ref(),
            Entry::Vacant(entry) => {
                // Counted under the shard's lock, before the key is visible: a sweep that
                // removes it has seen the count go up.
                self.keys.fetch_add(1, Ordering::Relaxed);
                entry.insert(InMemoryState::default())
            }
        };
        state.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

/// Whether a bucket is full again (its theoretical arrival time is at most `drop_below`), read
/// without changing it: a decision that refuses returns the state it saw.
fn is_full_again(state: &InMemoryState, drop_below: Nanos) -> bool {
    match state.measure_and_replace(&NotKeyed::NonKey, Err::<((), Nanos), _>) {
        Err(Some(tat)) => tat <= drop_below,
        _ => true,
    }
}

impl ShrinkableKeyedStateStore<ClientKey> for BoundedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        let mut dropped = 0;
        self.map.retain(|_, state| {
            let keep = !is_full_again(state, drop_below);
            dropped += usize::from(!keep);
            keep
        });
        self.keys.fetch_sub(dropped, Ordering::Relaxed);
    }

    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.keys.load(Ordering::Relaxed)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

type Limiter = RateLimiter<ClientKey, BoundedStore, DefaultClock, NoOpMiddleware>;

/// Which table refused: a label of the refusal metric and a word of the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    Ip,
    Signer,
}

impl By {
    pub fn as_str(self) -> &'static str {
        match self {
            By::Ip => "ip",
            By::Signer => "signer",
        }
    }
}

/// A request over its rate: answered 429 with `Retry-After`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateRefusal {
    pub family: &'static str,
    pub by: By,
    /// Whole seconds until the bucket has a token again (at least 1).
    pub retry_after_secs: u64,
}

impl RateRefusal {
    pub const CODE: &'static str = "RATE_LIMITED";
    pub const MESSAGE: &'static str = "Too many requests";

    pub fn reason(&self) -> String {
        let flag = match self.by {
            By::Ip => "--rate-limit-ip",
            By::Signer => "--rate-limit-signer",
        };
        format!(
            "too many {} requests from this {} ({flag}): retry in {} s",
            self.family,
            match self.by {
                By::Ip => "client address",
                By::Signer => "signer",
            },
            self.retry_after_secs
        )
    }

    /// The answer, in the body shape of `path` (as every limit refusal).
    pub fn response_for(&self, path: &str) -> axum::response::Response {
        super::layer::refusal(
            path,
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            Self::CODE,
            Self::MESSAGE,
            self.reason(),
            Some(self.retry_after_secs),
        )
    }
}

/// Every bucket table of this replica.
pub struct RateLimits {
    by_ip: HashMap<&'static str, Limiter>,
    by_signer: HashMap<&'static str, Limiter>,
    /// Whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
}

impl RateLimits {
    pub fn new(by_ip: &FamilyRates, by_signer: &FamilyRates, max_clients: usize) -> Self {
        let tables = |rates: &FamilyRates| {
            family::names()
                .into_iter()
                .filter_map(|f| {
                    let quota = rates.get(f)?.quota()?;
                    let store = BoundedStore::new(max_clients.max(1));
                    Some((f, RateLimiter::new(quota, store, DefaultClock::default())))
                })
                .collect()
        };
        Self {
            by_ip: tables(by_ip),
            by_signer: tables(by_signer),
            trusted_proxies: TrustedProxies::default(),
        }
    }

    /// Takes a token from the bucket of `ip` in `family`.
    pub fn check_ip(&self, family: &'static str, ip: IpAddr) -> Result<(), RateRefusal> {
        Self::check(&self.by_ip, family, By::Ip, ClientKey::ip(ip))
    }

    /// Takes a token from the bucket of `signer` in `family`.
    pub fn check_signer(&self, family: &'static str, signer: Address) -> Result<(), RateRefusal> {
        Self::check(
            &self.by_signer,
            family,
            By::Signer,
            ClientKey::Signer(signer),
        )
    }

    fn check(
        tables: &HashMap<&'static str, Limiter>,
        family: &'static str,
        by: By,
        key: ClientKey,
    ) -> Result<(), RateRefusal> {
        let Some(limiter) = tables.get(family) else {
            return Ok(());
        };
        limiter.check_key(&key).map_err(|not_until| {
            metrics::counter!("sms_rate_limited_total", "family" => family, "by" => by.as_str())
                .increment(1);
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            RateRefusal {
                family,
                by,
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        })
    }

    /// Drops the full buckets of every table and publishes the table sizes.
    pub fn shrink(&self) {
        for (by, tables) in [(By::Ip, &self.by_ip), (By::Signer, &self.by_signer)] {
            for (family, limiter) in tables {
                limiter.retain_recent();
                limiter.shrink_to_fit();
                metrics::gauge!("sms_rate_limit_clients", "family" => *family, "by" => by.as_str())
                    .set(limiter.len() as f64);
            }
        }
    }

    /// Keys held in the tables (per-IP, per-signer).
    pub fn clients(&self) -> (usize, usize) {
        let count = |t: &HashMap<&'static str, Limiter>| t.values().map(|l| l.len()).sum();
        (count(&self.by_ip), count(&self.by_signer))
    }

    /// Runs [`Self::shrink`] every few seconds.
    pub fn spawn_shrinker(self: &Arc<Self>) -> tokio::task::AbortHandle {
        let rates = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(SHRINK_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(rates) = rates.upgrade() else { return };
                rates.shrink();
            }
        })
        .abort_handle()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rate_specs() {
        let r = parse_family_rates("10/s,tee-session=2/m:5,dev=off").unwrap();
        assert_eq!(r.get("secrets").unwrap().count.get(), 10);
        assert_eq!(r.get("secrets").unwrap().burst.get(), 10);
        let s = r.get("tee-session").unwrap();
        assert_eq!(
            (s.count.get(), s.period, s.burst.get()),
            (2, Duration::from_secs(60), 5)
        );
        assert_eq!(r.get("dev"), None);
        assert_eq!(parse_family_rates("off").unwrap().get("ops"), None);
        for bad in ["0/s", "10", "10/d", "10/s:0", "nope=1/s", "x/s"] {
            assert!(parse_family_rates(bad).is_err(), "{bad}");
        }
        assert!(parse_family_rates(DEFAULT_RATE_LIMIT_IP).is_ok());
        assert!(parse_family_rates(DEFAULT_RATE_LIMIT_SIGNER).is_ok());
    }

    #[test]
    fn buckets_are_per_key_and_bounded() {
        let rates = parse_family_rates("3/h").unwrap();
        let limits = RateLimits::new(&rates, &rates, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            limits.check_ip("tee-session", a).unwrap();
        }
        let refusal = limits.check_ip("tee-session", a).unwrap_err();
        assert_eq!(refusal.by, By::Ip);
        assert!(refusal.retry_after_secs > 1000, "{refusal:?}");
        // Another client and another family have their own buckets.
        limits.check_ip("tee-session", b).unwrap();
        limits.check_ip("tee-challenge", a).unwrap();
        // Past the bound (2 keys), new clients share one overflow bucket.
        for i in 0..3 {
            limits
                .check_ip("tee-session", IpAddr::from([10, 0, 0, i]))
                .unwrap();
        }
        assert!(
            limits
                .check_ip("tee-session", IpAddr::from([10, 0, 1, 1]))
                .is_err()
        );
        // a, b and the overflow key in tee-session; a in tee-challenge.
        assert_eq!(limits.clients().0, 4);
    }

    /// The count of keys that bounds a table follows inserts and sweeps: once full buckets are
    /// swept, new clients get buckets of their own again instead of the overflow one.
    #[test]
    fn the_bound_counts_keys_through_sweeps() {
        let rates = parse_family_rates("1000000/s").unwrap();
        let limits = RateLimits::new(&rates, &rates, 2);
        let ip = |i: u8| IpAddr::from([10, 0, 0, i]);
        for i in 0..5 {
            limits.check_ip("secrets", ip(i)).unwrap();
        }
        // Two keys of their own, then the overflow key.
        assert_eq!(limits.clients().0, 3);
        std::thread::sleep(Duration::from_millis(20));
        limits.shrink();
        assert_eq!(limits.clients().0, 0);
        for i in 5..7 {
            limits.check_ip("secrets", ip(i)).unwrap();
        }
        assert_eq!(limits.clients().0, 2);
        let table = &limits.by_ip["secrets"];
        assert!(
            !table.is_empty() && table.len() == 2,
            "two keys of their own, no overflow key yet"
        );
    }

    #[test]
    fn forwarded_for_is_read_from_trusted_proxies_only() {
        let trusted: TrustedProxies = "127.0.0.1, 10.0.0.0/8, 2001:db8::/32".parse().unwrap();
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        let headers = |xff: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert("x-forwarded-for", xff.parse().unwrap());
            h
        };
        let xff = headers("198.51.100.1, 203.0.113.9, 10.1.2.3");
        // The rightmost hop that is not a trusted proxy.
        assert_eq!(trusted.client(ip("127.0.0.1"), &xff), ip("203.0.113.9"));
        assert_eq!(trusted.client(ip("2001:db8::5"), &xff), ip("203.0.113.9"));
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(trusted.client(ip("127.0.0.2"), &xff), ip("127.0.0.2"));
        assert_eq!(trusted.client(ip("11.0.0.1"), &xff), ip("11.0.0.1"));
        // No header, or garbage: the last trusted hop.
        let none = axum::http::HeaderMap::new();
        assert_eq!(trusted.client(ip("127.0.0.1"), &none), ip("127.0.0.1"));
        assert_eq!(
            trusted.client(ip("127.0.0.1"), &headers("nope, 10.0.0.7")),
            ip("10.0.0.7")
        );
        assert_eq!(
            TrustedProxies::default().client(ip("127.0.0.1"), &xff),
            ip("127.0.0.1")
        );
        for bad in ["1.2.3.4/33", "nope", "::1/129"] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad}");
        }
        let all: TrustedProxies = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")) && !all.contains(ip("::1")));
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::ip(a), ClientKey::ip(b));
        assert_ne!(ClientKey::ip(a), ClientKey::ip(c));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(
            ClientKey::ip(mapped),
            ClientKey::ip("127.0.0.1".parse().unwrap())
        );
    }
}
