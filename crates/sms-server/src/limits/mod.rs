//! Limits on hostile load: connections, time, requests in flight and request rates. Every
//! limit, its flag, its default and why: docs/limits.md.

pub mod conn;
pub mod family;
mod layer;
pub mod rate;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::sync::Semaphore;

pub(crate) use layer::timed_out;

pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_MAX_IN_FLIGHT: &str = "1024,tee-session=128,tee-challenge=256,chain-push=256";

#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Limits (docs/limits.md)")]
pub struct LimitsArgs {
    /// Time a client has, from the first byte of a request, to send the whole request head
    /// (request line and headers), in milliseconds; past it the connection is closed. Ends
    /// slow-loris clients. 100 to 600000.
    #[arg(long, env = "SMS_HEADER_READ_TIMEOUT_MS", value_name = "MS", default_value_t = DEFAULT_HEADER_READ_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub header_read_timeout_ms: u64,

    /// Upper bound of one request, from its head to the head of the answer (the body upload and
    /// every store and chain call included), in milliseconds; past it the answer is
    /// 408 REQUEST_TIMEOUT. 100 to 600000.
    #[arg(long, env = "SMS_REQUEST_TIMEOUT_MS", value_name = "MS", default_value_t = DEFAULT_REQUEST_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub request_timeout_ms: u64,

    /// A connection with no request in flight that sends and receives nothing for this long is
    /// closed (idle keep-alive), in milliseconds. 100 to 3600000.
    #[arg(long, env = "SMS_IDLE_TIMEOUT_MS", value_name = "MS", default_value_t = DEFAULT_IDLE_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub idle_timeout_ms: u64,

    /// Maximum open connections; one more is closed as soon as it is accepted. Keep it under
    /// the process's file descriptor limit (`ulimit -n`) less a few hundred. 1 to 1000000.
    #[arg(long, env = "SMS_MAX_CONNECTIONS", value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = parse_max_connections)]
    pub max_connections: usize,

    /// Maximum requests in flight per route family; one more is answered 503 at once (with
    /// Retry-After: 1). A number for every family, then `family=N` overrides, comma-separated.
    /// Families: tee-challenge, tee-session, provisioning-nonce, chain-push, secrets, ops, tee,
    /// provisioning, dev, other.
    #[arg(long, env = "SMS_MAX_IN_FLIGHT", value_name = "SPEC", default_value = DEFAULT_MAX_IN_FLIGHT,
          value_parser = parse_in_flight)]
    pub max_in_flight: FamilyValues,

    /// Request rate per client IP address (IPv6: per /64) and route family: a token bucket
    /// of `N/s`, `N/m` or `N/h` (burst N, or `:BURST`), or `off`; the first item for every
    /// family, then `family=RATE` overrides, comma-separated. Over it the answer is 429
    /// RATE_LIMITED with Retry-After. Buckets are per replica.
    #[arg(long, env = "SMS_RATE_LIMIT_IP", value_name = "SPEC", default_value = rate::DEFAULT_RATE_LIMIT_IP,
          value_parser = rate::parse_family_rates)]
    pub rate_limit_ip: rate::FamilyRates,

    /// Request rate per signer address and route family (same syntax as --rate-limit-ip),
    /// counted once the signature is recovered and before anything is read from the chain.
    /// Signed families: tee-challenge, tee-session (the workerpool owner), chain-push,
    /// secrets-v2.
    #[arg(long, env = "SMS_RATE_LIMIT_SIGNER", value_name = "SPEC", default_value = rate::DEFAULT_RATE_LIMIT_SIGNER,
          value_parser = rate::parse_family_rates)]
    pub rate_limit_signer: rate::FamilyRates,

    /// Most clients (addresses or signers) with a bucket of their own per family and table;
    /// past it new clients share one bucket until full buckets are dropped (every 10 s).
    /// 1 to 10000000.
    #[arg(long, env = "SMS_RATE_LIMIT_MAX_CLIENTS", value_name = "N", default_value_t = rate::DEFAULT_RATE_LIMIT_MAX_CLIENTS,
          value_parser = parse_max_clients)]
    pub rate_limit_max_clients: usize,

    /// Proxies in front of this server whose `X-Forwarded-For` names the client for the
    /// per-address rate limits: comma-separated addresses or `address/prefix` ranges. Off by
    /// default (the client is the connection's peer); list only proxies that overwrite or
    /// append to the header, or clients could pick their address.
    #[arg(
        long,
        env = "SMS_TRUSTED_PROXIES",
        value_name = "LIST",
        default_value = ""
    )]
    pub trusted_proxies: rate::TrustedProxies,

    /// How long "does not exist" answers of the chain (unknown task, deal, app, dataset,
    /// workerpool, an address without owner) are remembered, in milliseconds; 0 turns it off.
    /// Concurrent reads of one fact always share one RPC call. 0 to 60000.
    #[arg(long, env = "SMS_CHAIN_MISS_TTL_MS", value_name = "MS", default_value_t = DEFAULT_CHAIN_MISS_TTL_MS,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub chain_miss_ttl_ms: u64,
}

pub const DEFAULT_CHAIN_MISS_TTL_MS: u64 = 2000;

fn parse_max_clients(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=10_000_000).contains(&n) => Ok(n),
        _ => Err(format!("'{text}' is not a number from 1 to 10000000")),
    }
}

impl Default for LimitsArgs {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: DEFAULT_HEADER_READ_TIMEOUT_MS,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_in_flight: parse_in_flight(DEFAULT_MAX_IN_FLIGHT).unwrap_or_default(),
            rate_limit_ip: rate::parse_family_rates(rate::DEFAULT_RATE_LIMIT_IP)
                .unwrap_or_default(),
            rate_limit_signer: rate::parse_family_rates(rate::DEFAULT_RATE_LIMIT_SIGNER)
                .unwrap_or_default(),
            rate_limit_max_clients: rate::DEFAULT_RATE_LIMIT_MAX_CLIENTS,
            trusted_proxies: rate::TrustedProxies::default(),
            chain_miss_ttl_ms: DEFAULT_CHAIN_MISS_TTL_MS,
        }
    }
}

impl LimitsArgs {
    /// The bucket tables these flags describe.
    pub fn rate_limits(&self) -> rate::RateLimits {
        let mut rates = rate::RateLimits::new(
            &self.rate_limit_ip,
            &self.rate_limit_signer,
            self.rate_limit_max_clients,
        );
        rates.trusted_proxies = self.trusted_proxies.clone();
        rates
    }

    /// The chain's negative cache and single flight these flags describe.
    pub fn shared_reads(&self) -> sms_chain::shared::SharedReadsConfig {
        sms_chain::shared::SharedReadsConfig {
            miss_ttl: Duration::from_millis(self.chain_miss_ttl_ms),
            ..Default::default()
        }
    }

    pub fn connection_timeouts(&self) -> conn::ConnectionTimeouts {
        conn::ConnectionTimeouts {
            header_read: Duration::from_millis(self.header_read_timeout_ms),
            idle: Duration::from_millis(self.idle_timeout_ms),
        }
    }
}

fn parse_max_connections(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!("'{text}' is not a number from 1 to 1000000")),
    }
}

/// A value for every family with per-family overrides (`1024,tee-session=128`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FamilyValues {
    pub default: u32,
    pub overrides: Vec<(String, u32)>,
}

impl FamilyValues {
    pub fn get(&self, family: &str) -> u32 {
        self.overrides
            .iter()
            .rev()
            .find(|(f, _)| f == family)
            .map_or(self.default, |(_, n)| *n)
    }
}

impl std::str::FromStr for FamilyValues {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        parse_in_flight(text)
    }
}

/// Checks a family name of a flag against the known families.
pub(crate) fn known_family(name: &str) -> Result<&'static str, String> {
    let names = family::names();
    names.iter().copied().find(|f| *f == name).ok_or_else(|| {
        format!(
            "unknown route family '{name}' (known: {})",
            names.join(", ")
        )
    })
}

fn parse_in_flight(text: &str) -> Result<FamilyValues, String> {
    let number = |v: &str| match v.trim().parse::<u32>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!("'{v}' is not a number from 1 to 1000000")),
    };
    let mut values = FamilyValues {
        default: 1024,
        overrides: Vec::new(),
    };
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match item.split_once('=') {
            Some((family, n)) => {
                let family = known_family(family.trim())?;
                values.overrides.push((family.to_owned(), number(n)?));
            }
            None => values.default = number(item)?,
        }
    }
    Ok(values)
}

/// The limits applied per request (built once at start-up, shared by the middleware and the
/// handlers).
pub struct Limits {
    pub families: family::Families,
    pub request_timeout: Duration,
    in_flight: HashMap<&'static str, Arc<Semaphore>>,
    /// Shared with the handlers (per-signer buckets).
    pub rates: Arc<rate::RateLimits>,
}

impl Limits {
    pub fn new(
        args: &LimitsArgs,
        families: family::Families,
        rates: Arc<rate::RateLimits>,
    ) -> Self {
        let in_flight = family::names()
            .into_iter()
            .map(|f| {
                let n = args.max_in_flight.get(f);
                metrics::gauge!("sms_in_flight_max", "family" => f).set(f64::from(n));
                (f, Arc::new(Semaphore::new(n as usize)))
            })
            .collect();
        Self {
            families,
            request_timeout: Duration::from_millis(args.request_timeout_ms),
            in_flight,
            rates,
        }
    }

    /// A place among the family's requests in flight, if one is free.
    pub(crate) fn enter(
        &self,
        family: &'static str,
    ) -> Option<Option<tokio::sync::OwnedSemaphorePermit>> {
        match self.in_flight.get(family) {
            Some(s) => s.clone().try_acquire_owned().ok().map(Some),
            None => Some(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_spec() {
        let v = parse_in_flight("10,tee-session=2").unwrap();
        assert_eq!(v.get("secrets"), 10);
        assert_eq!(v.get("tee-session"), 2);
        assert!(
            parse_in_flight("10,nope=2")
                .unwrap_err()
                .contains("unknown route family")
        );
        assert!(parse_in_flight("0").is_err());
        assert_eq!(
            parse_in_flight(DEFAULT_MAX_IN_FLIGHT).unwrap(),
            LimitsArgs::default().max_in_flight
        );
    }
}
