//! Small, reusable field rules with the API server's wording. Each returns the reasons a value
//! is wrong (empty when it is fine), so callers decide the field path.

use std::cmp::Ordering;

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;

/// `metadata.name` of most objects: a DNS-1123 subdomain.
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        out.push(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    let ok = !s.is_empty() && s.split('.').all(is_label_body);
    if !ok {
        out.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
             and must start and end with an alphanumeric character (e.g. 'example.com')"
                .into(),
        );
    }
    out
}

/// Names that become Service or container names: a DNS-1123 label.
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        out.push(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    if !is_label_body(s) {
        out.push(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character (e.g. 'my-name')"
                .into(),
        );
    }
    out
}

fn is_label_body(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// An environment variable name as Kubernetes validates it for a container.
pub fn env_var_name(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let first_ok = b
        .first()
        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, b'-' | b'.' | b'_'));
    let rest_ok = b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    if first_ok && rest_ok {
        Vec::new()
    } else {
        vec!["a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', \
              and must not start with a digit (e.g. 'my.env-name')"
            .into()]
    }
}

/// A key of a Secret or ConfigMap.
pub fn config_map_key(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        out.push(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    let chars_ok = !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    if !chars_ok {
        out.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name')".into());
    }
    if s == "." || s == ".." {
        out.push(format!("must not be '{s}'"));
    }
    out
}

/// An absolute, clean container path (what volume mounts need).
pub fn absolute_path(s: &str) -> Vec<String> {
    if !s.starts_with('/') {
        return vec!["must be an absolute path".into()];
    }
    if s.split('/').any(|seg| seg == "..") {
        return vec!["must not contain '..'".into()];
    }
    Vec::new()
}

/// Normalises a path for prefix comparisons: no trailing or doubled slashes.
pub fn clean_path(s: &str) -> String {
    let parts: Vec<&str> = s
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// True when `path` is `dir` or lies below it.
pub fn path_within(path: &str, dir: &str) -> bool {
    let (p, d) = (clean_path(path), clean_path(dir));
    d == "/" || p == d || p.starts_with(&format!("{d}/"))
}

/// A Kubernetes resource quantity (`100m`, `128Mi`, `1.5`, `2e3`), as an exact decimal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantity {
    /// The value in units of 10^-9 (nano), enough for every suffix we accept.
    nanos: i128,
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.nanos.partial_cmp(&other.nanos)
    }
}

/// Parses a quantity the way `resource.ParseQuantity` does; the error says why not.
pub fn parse_quantity(s: &str) -> Result<Quantity, String> {
    const BAD: &str = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    if number.is_empty() || number.len() > 40 {
        return Err(BAD.into());
    }
    let (negative, digits) = match number.as_bytes()[0] {
        b'-' => (true, &number[1..]),
        b'+' => (false, &number[1..]),
        _ => (false, number),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |p: &str| p.bytes().all(|c| c.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(BAD.into());
    }
    let (mult_num, mult_den) = suffix_multiplier(suffix).ok_or_else(|| BAD.to_string())?;
    // value = 0.int.frac * multiplier, kept in nano units with i128 (saturating for absurd sizes).
    let frac_digits = frac_part.len().min(18) as u32;
    let mantissa: i128 = format!("{int_part}{}", &frac_part[..frac_digits as usize])
        .trim_start_matches('0')
        .parse::<i128>()
        .unwrap_or(0);
    let scale = 10i128.pow(frac_digits);
    let nanos = mantissa
        .saturating_mul(1_000_000_000)
        .saturating_mul(mult_num)
        / mult_den.max(1)
        / scale;
    Ok(Quantity {
        nanos: if negative { -nanos } else { nanos },
    })
}

/// (numerator, denominator) of a suffix; `None` when the suffix is not a quantity suffix.
fn suffix_multiplier(suffix: &str) -> Option<(i128, i128)> {
    let binary = |p: u32| Some((1i128 << (10 * p), 1));
    let decimal = |e: i32| {
        if e >= 0 {
            Some((10i128.checked_pow(e as u32)?, 1))
        } else {
            Some((1, 10i128.checked_pow((-e) as u32)?))
        }
    };
    match suffix {
        "" => Some((1, 1)),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        s if s.starts_with(['e', 'E']) => {
            let exp: i32 = s[1..].parse().ok()?;
            if exp.abs() > 18 {
                return None;
            }
            decimal(exp)
        }
        _ => None,
    }
}

/// Checks an OCI image reference: `[registry[:port]/]path[:tag][@algo:hex]`.
pub fn image_reference(s: &str) -> Vec<String> {
    match parse_image(s) {
        Ok(()) => Vec::new(),
        Err(why) => vec![why],
    }
}

fn parse_image(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 4096 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace".into());
    }
    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let (algo, hex) = d
            .split_once(':')
            .ok_or("digest must look like 'sha256:<hex>'")?;
        let algo_ok = !algo.is_empty()
            && algo.bytes().all(|c| {
                c.is_ascii_lowercase()
                    || c.is_ascii_digit()
                    || matches!(c, b'+' | b'.' | b'_' | b'-')
            });
        if !algo_ok || hex.len() < 32 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err("digest must look like 'sha256:<hex>'".into());
        }
    }
    // The tag follows the last ':' after the last '/'.
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_tag[..last_slash + i],
            Some(&name_tag[last_slash + i + 1..]),
        ),
        None => (name_tag, None),
    };
    if let Some(tag) = tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.as_bytes()[0] != b'.'
            && tag.as_bytes()[0] != b'-'
            && tag
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if !ok {
            return Err(format!("invalid tag {tag:?}"));
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // A first component with '.', ':' or 'localhost' is a registry host.
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        let (h, port) = host.split_once(':').unwrap_or((host, ""));
        let host_ok = !h.is_empty()
            && h.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-'));
        let port_ok = port.is_empty() || port.parse::<u16>().is_ok();
        if !host_ok || !port_ok {
            return Err(format!("invalid registry host {host:?}"));
        }
    }
    for part in parts {
        if !is_path_component(part) {
            return Err(format!(
                "invalid repository path component {part:?}: lowercase letters, digits and separators ('.', '_', '__', '-') only"
            ));
        }
    }
    Ok(())
}

fn is_path_component(p: &str) -> bool {
    let b = p.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    b.iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-'))
        && !p.contains("..")
        && !p.contains("___")
}

/// A Go `time.Duration` string (`30s`, `1m30s`, `1.5h`, `250ms`), in seconds. Signs are
/// refused: every duration we take is a length of time.
pub fn go_duration_secs(s: &str) -> Result<f64, String> {
    const SHAPE: &str =
        "must be a duration such as 30s, 1m30s or 250ms (units ns, us, ms, s, m, h)";
    if s == "0" {
        return Ok(0.0);
    }
    let mut rest = s;
    let mut total = 0.0;
    if rest.is_empty() {
        return Err(SHAPE.into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| SHAPE.to_string())?;
        let number: f64 = rest[..digits].parse().map_err(|_| SHAPE.to_string())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(SHAPE.into()),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_compare_across_suffixes() {
        let q = |s| parse_quantity(s).unwrap();
        assert!(q("100m") < q("1"));
        assert!(q("128Mi") > q("100M"));
        assert_eq!(q("1k"), q("1000"));
        assert_eq!(q("0.5"), q("500m"));
        assert_eq!(q("1e3"), q("1k"));
        assert!(parse_quantity("abc").is_err());
        assert!(parse_quantity("12XB").is_err());
        assert!(parse_quantity("").is_err());
    }

    #[test]
    fn images_parse_as_registries_do() {
        for ok in [
            "docker.io/mcp/fetch",
            "ghcr.io/github/github-mcp-server",
            "nginx",
            "localhost:5000/a/b:v1.2",
            "repo/name@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(image_reference(ok).is_empty(), "{ok}");
        }
        for bad in [
            "",
            "Docker.io/UPPER",
            "a b",
            "name:",
            "name:-bad",
            "x@sha256:zz",
        ] {
            assert!(!image_reference(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn paths_nest_by_component() {
        assert!(path_within(
            "/config/registry/a/registry.json",
            "/config/registry/a"
        ));
        assert!(!path_within("/config/registry/ab/x", "/config/registry/a"));
        assert!(path_within("/a/b", "/a/b/"));
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_secs("30s"), Ok(30.0));
        assert_eq!(go_duration_secs("1m30s"), Ok(90.0));
        assert_eq!(go_duration_secs("1.5h"), Ok(5400.0));
        assert_eq!(go_duration_secs("250ms"), Ok(0.25));
        assert_eq!(go_duration_secs("0"), Ok(0.0));
        for bad in ["", "30", "s", "-5s", "5 s", "5sec", "1d", "1..5s"] {
            assert!(go_duration_secs(bad).is_err(), "{bad}");
        }
    }
}
