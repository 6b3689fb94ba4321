//! Community ID v1 flow hashing. CONTRACT STUB — helper B implements.

use std::net::IpAddr;

/// Community ID v1 string (`1:<base64 sha1>`), seed 0 by default; protocol 6 = TCP, 17 = UDP.
pub fn community_id(seed: u16, src: IpAddr, dst: IpAddr, src_port: u16, dst_port: u16, proto: u8) -> String {
    let _ = (seed, src, dst, src_port, dst_port, proto);
    todo!()
}
