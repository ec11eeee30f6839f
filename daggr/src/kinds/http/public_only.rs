//! Fetching a URL someone else named, without letting them aim the server at its own
//! network (server-side request forgery): the client [`public_only`] builds never connects
//! to a loopback, private, link-local, shared (CGNAT), multicast or otherwise non-public
//! address, whether the URL names one, a host name resolves to one, or a redirect leads to
//! one. The check is made on the addresses actually connected to (a resolver that filters
//! them), so a name that resolves differently on a second look (DNS rebinding) gains
//! nothing.
//!
//! Written here rather than taken from a crate: the standard library's `IpAddr::is_global`
//! is still unstable, and the crates that offer the same list pull in much more.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::client::{base, ClientError};

/// The most redirects followed in a row.
const MAX_REDIRECTS: usize = 5;

/// Whether `ip` is an address of the public internet: not loopback, private, link-local,
/// shared address space, documentation, benchmarking, multicast, broadcast, unspecified
/// or reserved (IPv4-mapped and NAT64 IPv6 addresses are judged by their IPv4 address).
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            // 64:ff9b::/96 (NAT64) carries an IPv4 address in its last 32 bits.
            if s[0..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let v4 =
                    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                return is_public_v4(v4);
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
                || (s[0] & 0xffc0) == 0xfec0 // fec0::/10 site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // 2001:db8::/32 documentation
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // 100::/64 discard
                || s[0..5] == [0, 0, 0, 0, 0]) // ::/80 (IPv4-compatible, reserved)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254.0.0/16: cloud metadata services live here
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // 0.0.0.0/8 "this network"
        || (a == 100 && (64..128).contains(&b)) // 100.64.0.0/10 shared (CGNAT)
        || (a == 192 && b == 0 && c == 0) // 192.0.0.0/24 protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // 198.18.0.0/15 benchmarking
        || a >= 240) // 240.0.0.0/4 reserved
}

/// Why a URL's host is refused, or `None` when it is a name (the resolver judges those)
/// or a public address.
fn refused_literal(url: &reqwest::Url) -> Option<String> {
    let ip = match url.host()? {
        url::Host::Ipv4(v4) => IpAddr::V4(v4),
        url::Host::Ipv6(v6) => IpAddr::V6(v6),
        url::Host::Domain(_) => return None,
    };
    (!is_public(ip)).then(|| refusal(url.host_str().unwrap_or_default(), ip))
}

fn refusal(host: &str, ip: IpAddr) -> String {
    format!(
        "`{host}` is {ip}, not a public address: this server fetches only public URLs (serve with DAGGR_FETCH_PRIVATE_URLS=1 to allow private ones)"
    )
}

/// Resolves names with the system's resolver and keeps only public addresses: a name with
/// none is an error saying so.
struct PublicResolver;

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| is_public(a.ip()))
                .collect();
            match (public.is_empty(), found.first()) {
                (false, _) => Ok(Box::new(public.into_iter()) as Addrs),
                (true, Some(first)) => Err(refusal(&host, first.ip()).into()),
                (true, None) => Err(format!("`{host}` has no address").into()),
            }
        })
    }
}

/// The client for URLs a caller names: daggr's user agent and connect timeout, public
/// addresses only (see the module), at most 5 redirects, each to a public address, and
/// no proxy (a proxy would resolve the names, out of this check's sight). Built once.
pub(crate) fn public_only() -> Result<reqwest::Client, ClientError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c.clone());
    }
    let client = base()
        .no_proxy()
        .dns_resolver(Arc::new(PublicResolver))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error("too many redirects");
            }
            match refused_literal(attempt.url()) {
                Some(why) => attempt.error(format!("a redirect led to a private address: {why}")),
                None => attempt.follow(),
            }
        }))
        .build()
        .map_err(ClientError)?;
    Ok(CLIENT.get_or_init(|| client).clone())
}

/// Checks a URL's host before a request through [`public_only`] (a literal address never
/// reaches the resolver): the refusal, when it names a non-public address.
pub(crate) fn check_literal(url: &reqwest::Url) -> Result<(), String> {
    match refused_literal(url) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "::127.0.0.1",
        ] {
            assert!(!public(s), "{s} is not public");
        }
        for s in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(public(s), "{s} is public");
        }
    }

    #[test]
    fn literal_hosts_are_judged_before_any_request() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(check_literal(&url("http://127.0.0.1:8080/x.png"))
            .unwrap_err()
            .contains("not a public address"));
        assert!(check_literal(&url("http://[::ffff:10.0.0.1]/x")).is_err());
        assert!(check_literal(&url("http://169.254.169.254/latest/meta-data")).is_err());
        assert!(check_literal(&url("https://example.com/x.png")).is_ok());
        assert!(check_literal(&url("https://8.8.8.8/x.png")).is_ok());
    }

    #[tokio::test]
    async fn names_that_resolve_to_private_addresses_are_refused() {
        let client = public_only().unwrap();
        // `localhost` resolves to loopback: refused by the resolver, no connection made.
        let err = client
            .get("http://localhost:9/x.png")
            .send()
            .await
            .unwrap_err();
        let chain = crate::error::error_chain(&err);
        assert!(chain.contains("not a public address"), "{chain}");
    }
}
