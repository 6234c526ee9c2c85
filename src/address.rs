//! Which network addresses a proxy may be pointed at (SSRF guard), as pure functions.
//!
//! Shared by the admission rules (`spec.remoteUrl` judged as written, no DNS) and the bridge's
//! remote mode (every address a name resolves to, judged at connect time), so that both refuse
//! the same things.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
