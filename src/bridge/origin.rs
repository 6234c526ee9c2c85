//! Which browser pages may call the bridge: the `Origin` and `Host` checks against DNS rebinding
//! (the MCP transport spec's security notes), shared by the stdio fronts and the HTTP backends.
//!
//! A rebinding page at `http://evil.example:PORT` whose name now resolves to the bridge sends
//! `Origin: http://evil.example:PORT` and `Host: evil.example:PORT`: the two agree, so comparing
//! them proves nothing. What the page cannot choose is a `Host` the bridge knows as its own. So a
//! request that carries an `Origin` (every browser POST does) is served only when
//!
//! - its Origin is listed in `allowedOrigins` (an explicit opt-in), or
//! - its `Host` is one of the bridge's own names — an IP literal, `localhost`, the pod's host
//!   name, a single-label name, a name under `.svc` or the cluster domain (from the pod's DNS
//!   search list; `cluster.local` by default), or one listed in `allowedHosts` — **and** its
//!   Origin is loopback or that same host.
//!
//! A request without an `Origin` does not come from a page's script (browsers leave it out only
//! on same-origin GETs, which cannot open an MCP session here), so its `Host` is not checked:
//! SDK clients behind an Ingress keep working with the Ingress's public name.

use axum::http::{header, HeaderMap, Uri};

use super::config::Config;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Origin,
    Host,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Origin => "Forbidden: Origin not allowed",
            Refusal::Host => {
                "Forbidden: Host not allowed (add the name to allowedHosts, or the page's \
                 Origin to allowedOrigins)"
            }
        }
    }
}

/// The Origin and Host rules of one bridge, built once at start-up.
#[derive(Debug, Clone, Default)]
pub struct Access {
    any_origin: bool,
    /// Lower-case Origins allowed as listed.
    origins: Vec<String>,
    any_host: bool,
    /// Lower-case names; an entry starting with `.` matches every name under it.
    hosts: Vec<String>,
    /// The pod's own host name, lower case.
    pod_name: Option<String>,
    /// `.svc` and `.<cluster domain>` suffixes.
    cluster_suffixes: Vec<String>,
}

impl Access {
    /// The rules of `cfg`, with the pod's host name and DNS search list read from the system.
    pub fn of(cfg: &Config) -> Self {
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        Self::new(cfg, pod_host_name(), &resolv)
    }

    pub fn new(cfg: &Config, pod_name: Option<String>, resolv_conf: &str) -> Self {
        let lower = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|s| s.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .map(|s| s.strip_prefix('*').map(str::to_owned).unwrap_or(s))
                .collect()
        };
        let mut cluster_suffixes = vec![".svc".to_owned(), ".cluster.local".to_owned()];
        for domain in cluster_domains(resolv_conf) {
            let suffix = format!(".{domain}");
            if !cluster_suffixes.contains(&suffix) {
                cluster_suffixes.push(suffix);
            }
        }
        Self {
            any_origin: cfg.allowed_origins.iter().any(|o| o == "*"),
            origins: cfg
                .allowed_origins
                .iter()
                .map(|o| o.to_ascii_lowercase())
                .collect(),
            any_host: cfg.allowed_hosts.iter().any(|h| h.trim() == "*"),
            hosts: lower(&cfg.allowed_hosts),
            pod_name: pod_name.map(|n| n.to_ascii_lowercase()),
            cluster_suffixes,
        }
    }

    /// Checks one request's `Origin` and `Host` (the `:authority` of HTTP/2 when there is no
    /// `Host` header).
    pub fn check(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), Refusal> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or("");
        if self.any_origin || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
            return Ok(());
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()))
            .unwrap_or("");
        if !self.host_is_ours(host_name(host)) {
            return Err(Refusal::Host);
        }
        let same_or_loopback = origin_host(origin).is_some_and(|o| {
            matches!(host_name(o), "localhost" | "127.0.0.1" | "[::1]")
                || o.eq_ignore_ascii_case(host)
        });
        if same_or_loopback {
            Ok(())
        } else {
            Err(Refusal::Origin)
        }
    }

    /// Whether `name` (no port) is one of the bridge's own names.
    pub fn host_is_ours(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return false;
        }
        if self.any_host || is_ip_literal(&name) {
            return true;
        }
        let under = |suffix: &str| name.len() > suffix.len() && name.ends_with(suffix);
        name == "localhost"
            || under(".localhost")
            // A single label is resolved only through the pod's DNS search list.
            || !name.contains('.')
            || self.pod_name.as_deref() == Some(name.as_str())
            || self.cluster_suffixes.iter().any(|s| under(s))
            || self
                .hosts
                .iter()
                .any(|h| *h == name || (h.starts_with('.') && under(h)))
    }
}

/// `host[:port]` of `scheme://host[:port]`.
pub fn origin_host(origin: &str) -> Option<&str> {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))?;
    Some(rest.split('/').next().unwrap_or(rest))
}

/// The host of `host[:port]`, keeping IPv6 brackets.
pub fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map_or(host, |h| &host[..h.len() + 1]);
    }
    host.split(':').next().unwrap_or(host)
}

fn is_ip_literal(name: &str) -> bool {
    match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => name.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

/// The cluster domains named by the `search` line of resolv.conf: `svc.<domain>` → `<domain>`.
fn cluster_domains(resolv_conf: &str) -> Vec<String> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("search"))
        .flat_map(str::split_whitespace)
        .filter_map(|d| d.trim_end_matches('.').strip_prefix("svc."))
        .filter(|d| !d.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

fn pod_host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    std::str::from_utf8(&buf[..end])
        .ok()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn access(origins: &[&str], hosts: &[&str]) -> Access {
        let cfg = Config {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            ..Config::default()
        };
        let resolv = "nameserver 10.96.0.10\nsearch team-a.svc.corp.example svc.corp.example corp.example\noptions ndots:5\n";
        Access::new(&cfg, Some("mcp-x-7f9c".into()), resolv)
    }

    #[test]
    fn origin_hosts() {
        assert_eq!(origin_host("http://localhost:3000"), Some("localhost:3000"));
        assert_eq!(host_name("localhost:3000"), "localhost");
        assert_eq!(host_name("[::1]:80"), "[::1]");
        assert_eq!(origin_host("null"), None);
    }

    /// (allowed origins, allowed hosts, Origin, Host, outcome)
    type Case<'a> = (
        &'a [&'a str],
        &'a [&'a str],
        Option<&'a str>,
        &'a str,
        Result<(), Refusal>,
    );

    #[test]
    fn origin_and_host_rules() {
        use Refusal::*;
        let cases: &[Case] = &[
            // No Origin: not a page's script; any Host (an Ingress's public name) is served.
            (&[], &[], None, "mcp.example.com", Ok(())),
            // The rebinding signature: Origin and Host agree on a foreign name.
            (
                &[],
                &[],
                Some("http://evil.example:8080"),
                "evil.example:8080",
                Err(Host),
            ),
            (
                &[],
                &[],
                Some("http://localhost:6274"),
                "evil.example:8080",
                Err(Host),
            ),
            // The bridge's own names.
            (
                &[],
                &[],
                Some("http://localhost:6274"),
                "127.0.0.1:8080",
                Ok(()),
            ),
            (
                &[],
                &[],
                Some("http://localhost:6274"),
                "[::1]:8080",
                Ok(()),
            ),
            (
                &[],
                &[],
                Some("http://localhost:6274"),
                "10.1.2.3:8080",
                Ok(()),
            ),
            (&[], &[], Some("http://a.localhost"), "a.localhost", Ok(())),
            (&[], &[], Some("http://x"), "mcp-x-proxy:8080", Err(Origin)),
            (
                &[],
                &[],
                Some("http://mcp-x-proxy:8080"),
                "mcp-x-proxy:8080",
                Ok(()),
            ),
            (
                &[],
                &[],
                Some("http://mcp-x-proxy.team-a.svc:8080"),
                "mcp-x-proxy.team-a.svc:8080",
                Ok(()),
            ),
            (
                &[],
                &[],
                Some("http://mcp-x-proxy.team-a.svc.cluster.local:8080"),
                "mcp-x-proxy.team-a.svc.cluster.local:8080",
                Ok(()),
            ),
            // The cluster domain of the pod's search list.
            (
                &[],
                &[],
                Some("http://mcp-x-proxy.team-a.svc.corp.example"),
                "mcp-x-proxy.team-a.svc.corp.example",
                Ok(()),
            ),
            (
                &[],
                &[],
                Some("http://mcp-x-7f9c:8080"),
                "MCP-X-7F9C:8080",
                Ok(()),
            ),
            // A bare suffix is not a name under it.
            (
                &[],
                &[],
                Some("http://cluster.local"),
                "cluster.local",
                Err(Host),
            ),
            (
                &[],
                &[],
                Some("http://mcp-x-proxy."),
                "mcp-x-proxy.",
                Ok(()),
            ),
            (
                &[],
                &[],
                Some("http://evilsvc"),
                "evil-svc.example",
                Err(Host),
            ),
            // Configured names: exact, or every name under a `.suffix` / `*.suffix`.
            (
                &[],
                &["mcp.example.com"],
                Some("https://mcp.example.com"),
                "mcp.example.com",
                Ok(()),
            ),
            (
                &[],
                &[".example.com"],
                Some("https://a.example.com"),
                "a.example.com",
                Ok(()),
            ),
            (
                &[],
                &["*.example.com"],
                Some("https://a.example.com"),
                "a.example.com",
                Ok(()),
            ),
            (
                &[],
                &["*.example.com"],
                Some("https://example.com"),
                "example.com",
                Err(Host),
            ),
            (
                &[],
                &["*"],
                Some("http://evil.example"),
                "evil.example",
                Ok(()),
            ),
            // A listed Origin is an explicit opt-in, whatever the Host.
            (
                &["https://app.example"],
                &[],
                Some("https://app.example"),
                "mcp.example.com",
                Ok(()),
            ),
            (
                &["*"],
                &[],
                Some("http://evil.example"),
                "evil.example",
                Ok(()),
            ),
            // A known Host does not make a foreign Origin acceptable.
            (
                &[],
                &[],
                Some("http://evil.example"),
                "127.0.0.1:8080",
                Err(Origin),
            ),
            (&[], &[], Some("null"), "127.0.0.1:8080", Err(Origin)),
            (&[], &[], Some("http://localhost"), "", Err(Host)),
        ];
        for (origins, hosts, origin, host, want) in cases {
            let mut headers = HeaderMap::new();
            if let Some(o) = origin {
                headers.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
            }
            if !host.is_empty() {
                headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
            }
            let got = access(origins, hosts).check(&headers, &Uri::from_static("/mcp"));
            assert_eq!(got, *want, "{origins:?} {hosts:?} {origin:?} {host}");
        }
    }
}
