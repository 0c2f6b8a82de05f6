//! Rate limits and the client's IP. Limits are per instance (GCRA, from the `governor` crate):
//! behind a load balancer with N instances a client gets up to N times the configured rate.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::config::LimitsConfig;
use crate::error::{self, ApiError};

fn limiter<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

/// The key of per-IP limits: an IPv4 address, or the /64 of an IPv6 one. One subscriber (one
/// home, one VPS) usually gets a whole /64, so keying by the full address would hand them 2^64
/// budgets.
pub(crate) fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !(u128::from(u64::MAX));
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// Wrong admin tokens allowed per client (`ip_key`) per window before every admin request from
/// it is refused with 429 for the rest of the window.
pub(crate) const ADMIN_FAILURES_PER_WINDOW: u32 = 10;
pub(crate) const ADMIN_FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Clients tracked at once, which bounds the memory a flood of addresses can take. Beyond this
/// (a guess spread over many addresses) new clients share one budget, the overflow.
const ADMIN_FAILURE_CLIENTS: usize = 10_000;

/// Wrong admin tokens per client in fixed one-minute windows.
///
/// A client over its own budget is refused before its token is looked at, so it learns nothing
/// from a guess. The overflow budget is different: it is spent by whoever comes once the table is
/// full, so refusing the right token for it would let anyone with enough addresses (one IPv6 /48
/// holds 65 536 /64s) lock the operator out. It is therefore consulted only after the token:
/// the right token always passes, wrong ones from untracked clients get 429 once it is spent.
/// What an untracked guesser gains is the answer to its guesses at the server's speed, which an
/// attacker with 10 000 addresses nearly has anyway (10 guesses each per minute); the token's
/// length (`MIN_ADMIN_TOKEN_LEN` printable characters) is what makes guessing hopeless.
pub(crate) struct AdminFailures {
    state: Mutex<FailureTable>,
}

struct FailureTable {
    clients: HashMap<IpAddr, Window>,
    overflow: Window,
}

/// A fixed window: when it opened, and the wrong tokens counted in it.
#[derive(Clone, Copy)]
struct Window {
    opened: Instant,
    failures: u32,
}

impl Window {
    fn new(now: Instant) -> Window {
        Window {
            opened: now,
            failures: 0,
        }
    }

    fn ends(&self) -> Instant {
        self.opened + ADMIN_FAILURE_WINDOW
    }

    /// How long until it may try again, while it is over its budget.
    fn blocked(&self, now: Instant) -> Option<Duration> {
        (self.failures >= ADMIN_FAILURES_PER_WINDOW && now < self.ends()).then(|| self.ends() - now)
    }

    fn count(&mut self, now: Instant) {
        if now >= self.ends() {
            *self = Window::new(now);
        }
        self.failures = self.failures.saturating_add(1);
    }
}

impl AdminFailures {
    fn new() -> Self {
        AdminFailures {
            state: Mutex::new(FailureTable {
                clients: HashMap::new(),
                overflow: Window::new(Instant::now()),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FailureTable> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `None` while `ip` may still try a token; else how long until it may again. Only the
    /// client's own failures count here, never the overflow's.
    pub(crate) fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        self.lock().clients.get(&ip_key(ip))?.blocked(now)
    }

    /// Counts one wrong token from `ip`. Answers how long to refuse when the wrong token went to
    /// the overflow budget and that is spent: the caller answers it 429 rather than 403.
    pub(crate) fn failed(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut table = self.lock();
        let key = ip_key(ip);
        if table.clients.len() >= ADMIN_FAILURE_CLIENTS && !table.clients.contains_key(&key) {
            table.clients.retain(|_, w| now < w.ends());
        }
        if table.clients.len() < ADMIN_FAILURE_CLIENTS || table.clients.contains_key(&key) {
            table
                .clients
                .entry(key)
                .or_insert_with(|| Window::new(now))
                .count(now);
            return None;
        }
        table.overflow.count(now);
        table.overflow.blocked(now)
    }

    fn prune(&self, now: Instant) {
        self.lock().clients.retain(|_, w| now < w.ends());
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().clients.len()
    }
}

pub(crate) struct RateLimits {
    login_per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    login_per_openid: Option<DefaultKeyedRateLimiter<String>>,
    bindphone_per_user: Option<DefaultKeyedRateLimiter<i64>>,
    trusted_proxies: Vec<IpNet>,
    pub(crate) admin_failures: AdminFailures,
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &Option<DefaultKeyedRateLimiter<K>>,
    key: &K,
) -> Result<(), ApiError> {
    match limiter {
        Some(l) if l.check_key(key).is_err() => Err(ApiError::new(error::RATE_LIMITED)),
        _ => Ok(()),
    }
}

impl RateLimits {
    pub(crate) fn new(config: &LimitsConfig) -> Self {
        RateLimits {
            login_per_ip: limiter(config.login_per_ip),
            login_per_openid: limiter(config.login_per_openid),
            bindphone_per_user: limiter(config.bindphone_per_user),
            trusted_proxies: config.trusted_proxies.clone(),
            admin_failures: AdminFailures::new(),
        }
    }

    pub(crate) fn login_from(&self, ip: IpAddr) -> Result<(), ApiError> {
        check(&self.login_per_ip, &ip_key(ip))
    }

    /// Per openid in its app: WeChat's openids are per app, and so is the limit.
    pub(crate) fn login_of(&self, appid: &str, openid: &str) -> Result<(), ApiError> {
        check(&self.login_per_openid, &format!("{appid}/{openid}"))
    }

    pub(crate) fn bind_phone_by(&self, user_id: i64) -> Result<(), ApiError> {
        check(&self.bindphone_per_user, &user_id)
    }

    /// Forgets keys whose limits have fully replenished, so memory follows active clients only.
    pub(crate) fn prune(&self) {
        if let Some(l) = &self.login_per_ip {
            l.retain_recent();
        }
        if let Some(l) = &self.login_per_openid {
            l.retain_recent();
        }
        if let Some(l) = &self.bindphone_per_user {
            l.retain_recent();
        }
        self.admin_failures.prune(Instant::now());
    }

    fn trusted(&self, ip: &IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }

    /// The client's IP: the socket peer, unless the peer is a trusted proxy; then the rightmost
    /// `X-Forwarded-For` entry that is not itself a trusted proxy (entries left of it can be
    /// forged by the client, so they are never believed). `forwarded_for` holds every
    /// `X-Forwarded-For` line in order: a list split over several lines is one list (RFC 9110
    /// section 5.3), and a proxy that appends its own line after the client's keeps the real hop
    /// rightmost.
    pub(crate) fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        if !self.trusted(&peer) {
            return peer;
        }
        let mut client = peer;
        let hops = forwarded_for
            .rev()
            .flat_map(|line| line.rsplit(','))
            .map(str::trim);
        for hop in hops {
            match parse_hop(hop) {
                Ok(ip) => {
                    client = ip;
                    if !self.trusted(&ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }

    pub(crate) fn client_ip_of(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        // A line that is not visible ASCII cannot hold an address: it reads as an empty list
        // element, which stops the walk like any other unparseable hop.
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .map(|v| v.to_str().unwrap_or(""))
            .collect();
        Some(self.client_ip(peer, forwarded.into_iter()))
    }
}

/// One `X-Forwarded-For` hop: an address, or an address with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`) as some proxies write it.
fn parse_hop(hop: &str) -> Result<IpAddr, std::net::AddrParseError> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<std::net::SocketAddr>().map(|a| a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn limits(pairs: &[(&str, &str)]) -> RateLimits {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RateLimits::new(
            &crate::config::Config::from_vars(&vars)
                .expect("config")
                .limits,
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn lines<'a>(lines: &'a [&'a str]) -> impl DoubleEndedIterator<Item = &'a str> {
        lines.iter().copied()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let l = limits(&[("TRUSTED_PROXIES", "10.0.0.0/8")]);
        assert_eq!(
            l.client_ip(ip("203.0.113.9"), lines(&["1.2.3.4"])),
            ip("203.0.113.9"),
            "untrusted peer"
        );
        assert_eq!(
            l.client_ip(ip("10.0.0.2"), lines(&["1.2.3.4"])),
            ip("1.2.3.4")
        );
        assert_eq!(
            l.client_ip(ip("10.0.0.2"), lines(&["6.6.6.6, 1.2.3.4, 10.0.0.7"])),
            ip("1.2.3.4"),
            "a forged left entry is ignored, trusted hops are skipped"
        );
        assert_eq!(l.client_ip(ip("10.0.0.2"), lines(&[])), ip("10.0.0.2"));
        assert_eq!(
            l.client_ip(ip("10.0.0.2"), lines(&["garbage"])),
            ip("10.0.0.2")
        );
        assert_eq!(
            l.client_ip(ip("10.0.0.2"), lines(&["6.6.6.6", "1.2.3.4, 10.0.0.7"])),
            ip("1.2.3.4"),
            "a forged first line and the proxy's own line are one list"
        );
        assert_eq!(
            l.client_ip(ip("10.0.0.2"), lines(&["1.2.3.4:5678"])),
            ip("1.2.3.4"),
            "a hop with a port"
        );
        assert_eq!(
            l.client_ip(ip("10.0.0.2"), lines(&["[2001:db8::1]:443"])),
            ip("2001:db8::1")
        );
        let none = limits(&[]);
        assert_eq!(
            none.client_ip(ip("127.0.0.1"), lines(&["1.2.3.4"])),
            ip("127.0.0.1"),
            "nothing trusted by default"
        );
    }

    #[test]
    fn limits_count_per_key_and_zero_turns_them_off() {
        let l = limits(&[("RATE_LOGIN_PER_IP", "3"), ("RATE_BINDPHONE_PER_USER", "0")]);
        for _ in 0..3 {
            assert!(l.login_from(ip("1.1.1.1")).is_ok());
        }
        assert!(matches!(
            l.login_from(ip("1.1.1.1")),
            Err(e) if e.is(error::RATE_LIMITED)
        ));
        assert!(l.login_from(ip("2.2.2.2")).is_ok(), "another IP is served");
        for _ in 0..100 {
            assert!(l.bind_phone_by(7).is_ok());
        }
        l.prune();
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(ip_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(ip_key(ip("203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(
            ip_key(ip("::ffff:203.0.113.9")),
            ip("203.0.113.9"),
            "an IPv4-mapped address is its IPv4 client"
        );
        let l = limits(&[("RATE_LOGIN_PER_IP", "3")]);
        for host in 1..=3 {
            assert!(l.login_from(ip(&format!("2001:db8:1:2::{host}"))).is_ok());
        }
        assert!(
            matches!(
                l.login_from(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
                Err(e) if e.is(error::RATE_LIMITED)
            ),
            "another address in the same /64 shares the budget"
        );
        assert!(
            l.login_from(ip("2001:db8:1:3::1")).is_ok(),
            "the next /64 is another client"
        );
    }

    #[test]
    fn admin_failures_block_a_client_for_the_rest_of_the_window() {
        let failures = AdminFailures::new();
        let start = Instant::now();
        let client = ip("203.0.113.9");
        for _ in 0..ADMIN_FAILURES_PER_WINDOW {
            assert_eq!(failures.blocked(client, start), None);
            failures.failed(client, start);
        }
        let later = start + Duration::from_secs(15);
        assert_eq!(
            failures.blocked(client, later),
            Some(Duration::from_secs(45))
        );
        assert_eq!(failures.blocked(ip("203.0.113.10"), later), None);
        assert_eq!(
            failures.blocked(client, start + ADMIN_FAILURE_WINDOW),
            None,
            "a new window, a new budget"
        );
        failures.failed(client, start + ADMIN_FAILURE_WINDOW);
        assert_eq!(failures.blocked(client, start + ADMIN_FAILURE_WINDOW), None);
        failures.prune(start + ADMIN_FAILURE_WINDOW * 3);
        assert_eq!(failures.tracked(), 0);
    }

    #[test]
    fn a_flood_of_addresses_stays_bounded_and_never_blocks_anyone_else() {
        let failures = AdminFailures::new();
        let now = Instant::now();
        // Every /64 of one /48, more than the table holds, each over its own budget.
        let mut overflowed = 0;
        for subnet in 0..(ADMIN_FAILURE_CLIENTS as u128 + 500) {
            let guesser = IpAddr::V6(Ipv6Addr::from(
                (0x2001_0db8_0042_u128 << 80) | (subnet << 64) | 1,
            ));
            for _ in 0..ADMIN_FAILURES_PER_WINDOW {
                overflowed += usize::from(failures.failed(guesser, now).is_some());
            }
        }
        assert_eq!(failures.tracked(), ADMIN_FAILURE_CLIENTS, "bounded");
        assert!(overflowed > 0, "untracked guessers are told to wait");
        for bystander in ["198.51.100.7", "2001:db8:99::1", "2001:db8:42:ffff::1"] {
            assert_eq!(failures.blocked(ip(bystander), now), None, "{bystander}");
        }
        let tracked = IpAddr::V6(Ipv6Addr::from((0x2001_0db8_0042_u128 << 80) | 1));
        assert!(
            failures.blocked(tracked, now).is_some(),
            "its own failures still count"
        );
    }
}
