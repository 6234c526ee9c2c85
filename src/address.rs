//! Which network addresses a proxy may be pointed at (SSRF guard), as pure functions.
//!
//! Shared by the admission rules (`spec.remoteUrl` judged as written, no DNS), the bridge's
//! remote mode and the operator's own registry look-ups (every address a name resolves to,
//! judged at connect time by [`GuardedResolver`]), so that all of them refuse the same things.

use hyper_util::client::legacy::connect::dns::Name;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Why an address may not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Loopback (127/8, ::1): the pod itself.
    Loopback,
    /// Link-local (169.254/16, fe80::/10), where node and cloud metadata services live.
    LinkLocal,
    /// 0.0.0.0/8 and `::`: "this host".
    Unspecified,
    /// A cloud metadata service outside the link-local range (AWS IPv6, Alibaba).
    Metadata,
    /// RFC 1918, ULA (fc00::/7) or broadcast: allowed only with `allowPrivateEndpoint`.
    Private,
}

impl Refused {
    /// What the address is, for messages.
    pub fn what(self) -> &'static str {
        match self {
            Refused::Loopback => "loopback",
            Refused::LinkLocal => "link-local",
            Refused::Unspecified => "unspecified",
            Refused::Metadata => "a cloud metadata address",
            Refused::Private => "private",
        }
    }
}

/// Cloud metadata services that are not link-local: AWS's IPv6 IMDS and Alibaba's.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);
const METADATA_V4: [Ipv4Addr; 1] = [Ipv4Addr::new(100, 100, 100, 200)];

/// The class of `ip` when it is one a proxy must not reach unasked; `None` for a public one.
/// [`Refused::Private`] is the only class `allowPrivateEndpoint` lifts.
pub fn classify(ip: IpAddr) -> Option<Refused> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(v4: Ipv4Addr) -> Option<Refused> {
    if v4.is_loopback() {
        Some(Refused::Loopback)
    } else if v4.is_link_local() {
        Some(Refused::LinkLocal)
    } else if v4.octets()[0] == 0 {
        Some(Refused::Unspecified)
    } else if METADATA_V4.contains(&v4) {
        Some(Refused::Metadata)
    } else if v4.is_private() || v4 == Ipv4Addr::BROADCAST {
        Some(Refused::Private)
    } else {
        None
    }
}

fn classify_v6(v6: Ipv6Addr) -> Option<Refused> {
    if v6.is_loopback() {
        Some(Refused::Loopback)
    } else if v6.is_unspecified() {
        Some(Refused::Unspecified)
    } else if (v6.segments()[0] & 0xffc0) == 0xfe80 {
        Some(Refused::LinkLocal)
    } else if v6 == METADATA_V6 {
        Some(Refused::Metadata)
    } else if (v6.segments()[0] & 0xfe00) == 0xfc00 {
        Some(Refused::Private)
    } else {
        None
    }
}

/// What the bridge may reach besides public addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allowance {
    /// `allowPrivateEndpoint`: RFC 1918 and ULA.
    pub private: bool,
    /// Tests and local development only (`--insecure-allow-loopback-remote`): loopback.
    pub loopback: bool,
}

/// Why `ip` may not be reached under `allow`, if it may not.
pub fn refusal(ip: IpAddr, allow: Allowance) -> Option<Refused> {
    match classify(ip)? {
        Refused::Private if allow.private => None,
        Refused::Loopback if allow.loopback => None,
        class => Some(class),
    }
}

// At connect time: the same rules applied to every address a name resolves to. The bridge's
// remote mode and the operator's registry look-ups both connect through this resolver.

/// Resolves names at connect time and refuses forbidden addresses (for a hyper `HttpConnector`).
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedResolver {
    /// `None`: no guard (the bridge's in-pod backends, reached on loopback by design).
    pub guard: Option<Allowance>,
}

/// A name that resolved to an address the bridge may not reach.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {ip}, which is {what}: refused by the address guard{hint}")]
pub struct Refusal {
    pub host: String,
    pub ip: std::net::IpAddr,
    pub what: &'static str,
    pub hint: &'static str,
}

impl Refusal {
    fn new(host: &str, ip: std::net::IpAddr, class: Refused) -> Self {
        let hint = match class {
            Refused::Private => " (set allowPrivateEndpoint to allow private addresses)",
            _ => "",
        };
        Refusal {
            host: host.to_owned(),
            ip,
            what: class.what(),
            hint,
        }
    }
}

/// Checks every address of `host` (all of them: one forbidden answer refuses the name, so a
/// mixed answer cannot be used to reach the node).
pub fn check_addresses(host: &str, addrs: &[SocketAddr], allow: Allowance) -> Result<(), Refusal> {
    for a in addrs {
        if let Some(class) = refusal(a.ip(), allow) {
            return Err(Refusal::new(host, a.ip(), class));
        }
    }
    Ok(())
}

/// Checks a host written as an IP address (the connector does not resolve those).
pub fn check_literal(host: &str, allow: Allowance) -> Result<(), Refusal> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => check_addresses(host, &[SocketAddr::new(ip, 0)], allow),
        Err(_) => Ok(()),
    }
}

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let guard = self.guard;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(allow) = guard {
                check_addresses(&host, &addrs, allow).map_err(|refusal| {
                    std::io::Error::new(std::io::ErrorKind::PermissionDenied, refusal)
                })?;
            }
            Ok(addrs.into_iter())
        })
    }
}

/// An error and everything under it, for messages (hyper's own Display stops at the top).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_classified() {
        let rows: &[(&str, Option<Refused>)] = &[
            ("8.8.8.8", None),
            ("2606:4700::1111", None),
            ("127.0.0.1", Some(Refused::Loopback)),
            ("127.8.9.1", Some(Refused::Loopback)),
            ("::1", Some(Refused::Loopback)),
            ("::ffff:127.0.0.1", Some(Refused::Loopback)),
            ("169.254.169.254", Some(Refused::LinkLocal)),
            ("fe80::1", Some(Refused::LinkLocal)),
            ("0.0.0.0", Some(Refused::Unspecified)),
            ("0.1.2.3", Some(Refused::Unspecified)),
            ("::", Some(Refused::Unspecified)),
            ("fd00:ec2::254", Some(Refused::Metadata)),
            ("100.100.100.200", Some(Refused::Metadata)),
            ("10.0.0.1", Some(Refused::Private)),
            ("172.16.5.4", Some(Refused::Private)),
            ("192.168.1.1", Some(Refused::Private)),
            ("fd12::1", Some(Refused::Private)),
            ("::ffff:10.1.1.1", Some(Refused::Private)),
            ("255.255.255.255", Some(Refused::Private)),
        ];
        for (ip, want) in rows {
            assert_eq!(classify(ip.parse().unwrap()), *want, "{ip}");
        }
    }

    #[test]
    fn allowances_lift_only_their_class() {
        let private = Allowance {
            private: true,
            loopback: false,
        };
        let loopback = Allowance {
            private: false,
            loopback: true,
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(refusal(ip("10.0.0.1"), private), None);
        assert_eq!(refusal(ip("127.0.0.1"), private), Some(Refused::Loopback));
        assert_eq!(refusal(ip("127.0.0.1"), loopback), None);
        assert_eq!(refusal(ip("10.0.0.1"), loopback), Some(Refused::Private));
        for allow in [private, loopback] {
            assert_eq!(
                refusal(ip("169.254.169.254"), allow),
                Some(Refused::LinkLocal)
            );
            assert_eq!(refusal(ip("fd00:ec2::254"), allow), Some(Refused::Metadata));
        }
    }
}
