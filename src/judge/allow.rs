//! Allow-lists: sanctioned HTTP hosts and published test card numbers.

/// Published test card numbers (payment processors' documentation: Visa, Mastercard, Amex,
/// Discover, JCB, Diners, UnionPay). Suppressed by default (`allow.builtin_test_cards`): they
/// show up in every QA environment and are not personal data.
pub const BUILTIN_TEST_CARDS: &[&str] = &[
    "4111111111111111",
    "4012888888881881",
    "4222222222222",
    "4242424242424242",
    "4000056655665556",
    "4000000000000002",
    "5555555555554444",
    "5105105105105100",
    "5200828282828210",
    "2223003122003222",
    "378282246310005",
    "371449635398431",
    "378734493671000",
    "6011111111111117",
    "6011000990139424",
    "3530111333300000",
    "3566002020360505",
    "30569309025904",
    "38520000023237",
    "36227206271667",
    "6200000000000005",
];

/// An allowed HTTP host: `api.partner.example` (exactly) or `*.bank.example` (any subdomain, at
/// any depth, but not `bank.example` itself: list both if both are sanctioned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower-case host, without the `*.` of a wildcard.
    host: String,
    /// `*.` prefix: match subdomains.
    wildcard: bool,
}

impl HostPattern {
    /// Parses a pattern; the error says what is wrong (the caller names the config key).
    pub fn parse(s: &str) -> Result<HostPattern, String> {
        let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
        let (wildcard, host) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, s.clone()),
        };
        let label_ok =
            |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if host.is_empty() || !host.split('.').all(label_ok) {
            return Err(format!(
                "{s:?} is not a host name: use a name such as \"api.partner.example\" or \"*.bank.example\" (no port, no scheme)"
            ));
        }
        Ok(HostPattern { host, wildcard })
    }

    /// True if the HTTP `Host` value (any case, optional `:port`, optional trailing dot)
    /// matches.
    pub fn matches(&self, host_header: &str) -> bool {
        let h = strip_port(host_header.trim()).trim_end_matches('.');
        if self.wildcard {
            h.len() > self.host.len() + 1
                && h.as_bytes()[h.len() - self.host.len() - 1] == b'.'
                && h[h.len() - self.host.len()..].eq_ignore_ascii_case(&self.host)
        } else {
            h.eq_ignore_ascii_case(&self.host)
        }
    }
}

/// `host:port` → `host`; `[v6]:port` → `[v6]`; a bare IPv6 literal is left alone.
fn strip_port(h: &str) -> &str {
    if h.starts_with('[') {
        return h.find(']').map_or(h, |i| &h[..=i]);
    }
    match h.rfind(':') {
        Some(i) if h[..i].find(':').is_none() && h[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &h[..i],
        _ => h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::{PiiKind, PiiValue};

    #[test]
    fn exact_and_wildcard_hosts() {
        let exact = HostPattern::parse("API.Partner.example.").unwrap();
        assert!(exact.matches("api.partner.example"));
        assert!(exact.matches("API.PARTNER.EXAMPLE:8443"));
        assert!(exact.matches("api.partner.example."));
        assert!(!exact.matches("x.api.partner.example"));
        assert!(!exact.matches("api.partner.example.evil"));
        let wild = HostPattern::parse("*.bank.example").unwrap();
        assert!(wild.matches("www.bank.example"));
        assert!(wild.matches("a.b.bank.example:443"));
        assert!(!wild.matches("bank.example"));
        assert!(!wild.matches("evilbank.example"));
        assert!(!wild.matches(""));
        for bad in ["", "*.", "https://x.example", "x.example:80", "a..b", "*x.example"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(strip_port("[2001:db8::1]:443"), "[2001:db8::1]");
        assert_eq!(strip_port("2001:db8::1"), "2001:db8::1");
    }

    #[test]
    fn builtin_test_cards_are_valid_cards() {
        for c in BUILTIN_TEST_CARDS {
            let v = PiiValue::parse(Some(PiiKind::Card), c.as_bytes());
            assert!(v.is_ok(), "builtin test card #{} fails: {v:?}", c.len());
        }
    }
}
