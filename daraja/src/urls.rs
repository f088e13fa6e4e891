//! Which callback URLs a business may give: `http` or `https` only; with an allow-list
//! configured, only its hosts; never this node's own HTTP listener (its admin API); and, as
//! Daraja rules, none containing the words M-PESA, Safaricom, exe, exec, cmd, SQL or query.

use std::net::{IpAddr, SocketAddr};

use reqwest::Url;

use crate::envelope::DarajaError;

/// Longest callback URL.
pub const URL_LEN_MAX: usize = 512;
/// Words Daraja refuses in callback URLs (case-insensitive).
const REFUSED_WORDS: [&str; 8] = [
    "m-pesa",
    "mpesa",
    "safaricom",
    "exec",
    "exe",
    "cmd",
    "sql",
    "query",
];

/// The callback URL policy.
#[derive(Clone, Debug, Default)]
pub struct CallbackUrls {
    /// Hosts callbacks may go to (`None`: any host).
    pub allowed_hosts: Option<Vec<String>>,
    /// Addresses callbacks never go to (this node's own listener).
    forbidden: Vec<SocketAddr>,
}

impl CallbackUrls {
    /// Only these hosts (names or addresses, compared case-insensitively).
    pub fn allowing(hosts: Vec<String>) -> CallbackUrls {
        CallbackUrls {
            allowed_hosts: Some(hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect()),
            forbidden: Vec::new(),
        }
    }

    pub(crate) fn forbid(&mut self, addr: SocketAddr) {
        self.forbidden.push(addr);
    }

    /// The URL, parsed, if a callback may go there; `400.002.02 Invalid <field>` otherwise.
    pub fn check(&self, field: &str, text: &str) -> Result<Url, DarajaError> {
        let invalid = || DarajaError::invalid(field);
        if text.len() > URL_LEN_MAX {
            return Err(invalid());
        }
        let lower = text.to_ascii_lowercase();
        if REFUSED_WORDS.iter().any(|w| lower.contains(w)) {
            return Err(invalid());
        }
        let url = Url::parse(text).map_err(|_| invalid())?;
        if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() {
            return Err(invalid());
        }
        let host = url.host_str().ok_or_else(invalid)?.to_ascii_lowercase();
        if let Some(allowed) = &self.allowed_hosts {
            if !allowed.contains(&host) {
                return Err(invalid());
            }
        }
        let port = url.port_or_known_default().ok_or_else(invalid)?;
        let host_ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        let is_local_name = host == "localhost";
        for own in &self.forbidden {
            let same_host = match host_ip {
                Some(ip) => ip == own.ip() || (ip.is_loopback() && own.ip().is_loopback()),
                None => is_local_name && own.ip().is_loopback(),
            } || own.ip().is_unspecified() && (is_local_name || host_ip.is_some());
            if same_host && port == own.port() {
                return Err(invalid());
            }
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_go_only_where_allowed() {
        let mut open = CallbackUrls::default();
        open.forbid("127.0.0.1:8080".parse().unwrap());
        assert!(open.check("CallBackURL", "https://shop.example/cb").is_ok());
        assert!(open
            .check("CallBackURL", "http://127.0.0.1:9000/cb")
            .is_ok());
        for refused in [
            "ftp://shop.example/cb",
            "not a url",
            "https://user:pw@shop.example/cb",
            "http://127.0.0.1:8080/admin/v1/cluster",
            "http://localhost:8080/cb",
            "https://shop.example/mpesa/cb",
            "https://shop.example/M-PESA",
            "https://shop.example/cb?query=1",
            "https://safaricom.example/cb",
        ] {
            assert_eq!(
                open.check("CallBackURL", refused),
                Err(DarajaError::invalid("CallBackURL")),
                "{refused}"
            );
        }
        let listed = CallbackUrls::allowing(vec!["Shop.Example".into()]);
        assert!(listed.check("ResultURL", "https://shop.example/cb").is_ok());
        assert!(listed
            .check("ResultURL", "https://other.example/cb")
            .is_err());
        let mut any_addr = CallbackUrls::default();
        any_addr.forbid("0.0.0.0:8080".parse().unwrap());
        assert!(any_addr
            .check("CallBackURL", "http://10.0.0.5:8080/cb")
            .is_err());
        assert!(any_addr
            .check("CallBackURL", "http://10.0.0.5:8081/cb")
            .is_ok());
    }
}
