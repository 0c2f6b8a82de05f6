//! Rate limits and the client's IP. Limits are per instance (GCRA, from the `governor` crate):
//! behind a load balancer with N instances a client gets up to N times the configured rate.

use std::net::IpAddr;
use std::num::NonZeroU32;

use actix_web::HttpRequest;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::config::Config;
use crate::error::ApiError;

fn limiter<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

pub struct RateLimits {
    login_per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    login_per_openid: Option<DefaultKeyedRateLimiter<String>>,
    bindphone_per_user: Option<DefaultKeyedRateLimiter<i64>>,
    trusted_proxies: Vec<IpNet>,
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &Option<DefaultKeyedRateLimiter<K>>,
    key: &K,
) -> Result<(), ApiError> {
    match limiter {
        Some(l) if l.check_key(key).is_err() => Err(ApiError::RateLimited),
        _ => Ok(()),
    }
}

impl RateLimits {
    pub fn new(config: &Config) -> Self {
        RateLimits {
            login_per_ip: limiter(config.rate_login_per_ip),
            login_per_openid: limiter(config.rate_login_per_openid),
            bindphone_per_user: limiter(config.rate_bindphone_per_user),
            trusted_proxies: config.trusted_proxies.clone(),
        }
    }

    pub fn login_from(&self, ip: IpAddr) -> Result<(), ApiError> {
        check(&self.login_per_ip, &ip)
    }

    pub fn login_of(&self, openid: &str) -> Result<(), ApiError> {
        check(&self.login_per_openid, &openid.to_string())
    }

    pub fn bind_phone_by(&self, user_id: i64) -> Result<(), ApiError> {
        check(&self.bindphone_per_user, &user_id)
    }

    /// Forgets keys whose limits have fully replenished, so memory follows active clients only.
    pub fn prune(&self) {
        if let Some(l) = &self.login_per_ip {
            l.retain_recent();
        }
        if let Some(l) = &self.login_per_openid {
            l.retain_recent();
        }
        if let Some(l) = &self.bindphone_per_user {
            l.retain_recent();
        }
    }

    fn trusted(&self, ip: &IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }

    /// The client's IP: the socket peer, unless the peer is a trusted proxy; then the rightmost
    /// `X-Forwarded-For` entry that is not itself a trusted proxy (entries left of it can be
    /// forged by the client, so they are never believed).
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusted(&peer) {
            return peer;
        }
        let Some(header) = forwarded_for else {
            return peer;
        };
        let mut client = peer;
        for hop in header.rsplit(',').map(str::trim) {
            match hop.parse::<IpAddr>() {
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

    pub fn client_ip_of(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        Some(self.client_ip(peer, forwarded))
    }
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
        RateLimits::new(&Config::from_vars(&vars).expect("config"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let l = limits(&[("TRUSTED_PROXIES", "10.0.0.0/8")]);
        assert_eq!(
            l.client_ip(ip("203.0.113.9"), Some("1.2.3.4")),
            ip("203.0.113.9"),
            "untrusted peer"
        );
        assert_eq!(l.client_ip(ip("10.0.0.2"), Some("1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(
            l.client_ip(ip("10.0.0.2"), Some("6.6.6.6, 1.2.3.4, 10.0.0.7")),
            ip("1.2.3.4"),
            "a forged left entry is ignored, trusted hops are skipped"
        );
        assert_eq!(l.client_ip(ip("10.0.0.2"), None), ip("10.0.0.2"));
        assert_eq!(l.client_ip(ip("10.0.0.2"), Some("garbage")), ip("10.0.0.2"));
        let none = limits(&[]);
        assert_eq!(
            none.client_ip(ip("127.0.0.1"), Some("1.2.3.4")),
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
            Err(ApiError::RateLimited)
        ));
        assert!(l.login_from(ip("2.2.2.2")).is_ok(), "another IP is served");
        for _ in 0..100 {
            assert!(l.bind_phone_by(7).is_ok());
        }
        l.prune();
    }
}
