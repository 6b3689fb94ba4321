//! Decoder tests: every link type, encapsulations, lengths, skip reasons, and reassembly against
//! the obvious oracle (the unfragmented datagram).

use super::*;
use etherparse::{LinuxSllPacketType, PacketBuilder, VlanId};
use proptest::prelude::*;
use std::time::Duration;

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];
const V4_SRC: [u8; 4] = [10, 0, 0, 1];
const V4_DST: [u8; 4] = [192, 168, 7, 9];
const V6_SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const TEXT: &[u8] = b"CNIC 35202-1234567-1 card 4111 1111 1111 1111";

fn decoder() -> Decoder {
    Decoder::new(DefragConfig {
        memcap: 1 << 20,
        timeout: Duration::from_secs(30),
    })
}

fn at(secs: u64) -> Timestamp {
    Timestamp::from_micros(secs * 1_000_000)
}

fn write(builder: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = Vec::new();
    builder(&mut v);
    v
}

/// IPv4 TCP datagram (no link header).
fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
    write(|v| {
        PacketBuilder::ipv4(V4_SRC, V4_DST, 64)
            .tcp(40000, 443, 1000, 8192)
            .ack(77)
            .psh()
            .write(v, payload)
            .unwrap()
    })
}

/// IPv4 UDP datagram (no link header).
fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
    write(|v| {
        PacketBuilder::ipv4(V4_SRC, V4_DST, 64)
            .udp(5353, 53)
            .write(v, payload)
            .unwrap()
    })
}

/// IPv6 TCP datagram (no link header, no extension headers).
fn ipv6_tcp(payload: &[u8]) -> Vec<u8> {
    write(|v| {
        PacketBuilder::ipv6(V6_SRC, V6_DST, 64)
            .tcp(40000, 25, 5, 8192)
            .syn()
            .write(v, payload)
            .unwrap()
    })
}

fn eth(ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&MAC_B);
    v.extend_from_slice(&MAC_A);
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn assert_v4_tcp(p: &Packet<'_>) {
    assert_eq!(p.src, IpAddr::from(V4_SRC));
    assert_eq!(p.dst, IpAddr::from(V4_DST));
    assert_eq!((p.src_port, p.dst_port), (40000, 443));
    assert_eq!(
        p.transport,
        Transport::Tcp(TcpHeader {
            seq: 1000,
            ack_num: 77,
            syn: false,
            ack: true,
            fin: false,
            rst: false
        })
    );
    assert_eq!(p.payload, TEXT);
    assert_eq!(p.reassembled, None);
}

fn assert_v6_tcp(p: &Packet<'_>) {
    assert_eq!(p.src, IpAddr::from(V6_SRC));
    assert_eq!(p.dst, IpAddr::from(V6_DST));
    assert_eq!((p.src_port, p.dst_port), (40000, 25));
    assert!(matches!(
        p.transport,
        Transport::Tcp(TcpHeader { syn: true, seq: 5, .. })
    ));
    assert_eq!(p.payload, TEXT);
    assert_eq!(p.reassembled, None);
}

/// Decodes a frame that must give a packet. Frame and decoder are leaked so the packet can be
/// returned (tests only).
fn ok(link: LinkType, frame: &[u8]) -> Packet<'static> {
    let frame: &'static [u8] = Box::leak(frame.to_vec().into_boxed_slice());
    let d: &'static mut Decoder = Box::leak(Box::new(decoder()));
    match d.decode(link, at(1), frame) {
        Ok(p) => p,
        Err(e) => panic!("expected a packet, got {e:?}"),
    }
}

fn skip(link: LinkType, frame: &[u8]) -> Skip {
    match decoder().decode(link, at(1), frame) {
        Ok(p) => panic!("expected a skip, got {p:?}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------- link types

#[test]
fn from_dlt_maps_libpcap_numbers() {
    let cases = [
        (0, Some(LinkType::Null)),
        (1, Some(LinkType::Ethernet)),
        (12, Some(LinkType::RawIp)),
        (101, Some(LinkType::RawIp)),
        (108, Some(LinkType::Null)),
        (113, Some(LinkType::LinuxSll)),
        (228, Some(LinkType::Ipv4)),
        (229, Some(LinkType::Ipv6)),
        (276, Some(LinkType::LinuxSll2)),
        (105, None), // 802.11
        (127, None), // radiotap
        (-1, None),
    ];
    for (dlt, want) in cases {
        assert_eq!(LinkType::from_dlt(dlt), want, "dlt {dlt}");
    }
}

#[test]
fn ethernet_ipv4_tcp() {
    let frame = write(|v| {
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(V4_SRC, V4_DST, 64)
            .tcp(40000, 443, 1000, 8192)
            .ack(77)
            .write(v, TEXT)
            .unwrap()
    });
    assert_v4_tcp(&ok(LinkType::Ethernet, &frame));
}

#[test]
fn ethernet_ipv6_udp() {
    let frame = write(|v| {
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv6(V6_SRC, V6_DST, 64)
            .udp(1111, 2222)
            .write(v, TEXT)
            .unwrap()
    });
    let p = ok(LinkType::Ethernet, &frame);
    assert_eq!((p.src, p.dst), (IpAddr::from(V6_SRC), IpAddr::from(V6_DST)));
    assert_eq!((p.src_port, p.dst_port, p.transport), (1111, 2222, Transport::Udp));
    assert_eq!(p.payload, TEXT);
}

#[test]
fn vlan_and_qinq() {
    let single = write(|v| {
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .single_vlan(VlanId::try_new(100).unwrap())
            .ipv4(V4_SRC, V4_DST, 64)
            .tcp(40000, 443, 1000, 8192)
            .ack(77)
            .write(v, TEXT)
            .unwrap()
    });
    assert_v4_tcp(&ok(LinkType::Ethernet, &single));

    let double = write(|v| {
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .double_vlan(VlanId::try_new(10).unwrap(), VlanId::try_new(20).unwrap())
            .ipv6(V6_SRC, V6_DST, 64)
            .tcp(40000, 25, 5, 8192)
            .syn()
            .write(v, TEXT)
            .unwrap()
    });
    assert_v6_tcp(&ok(LinkType::Ethernet, &double));

    // By hand: every tag ethertype, stacked.
    for outer in [0x8100u16, 0x88a8, 0x9100] {
        let mut body = Vec::new();
        body.extend_from_slice(&[0x00, 0x0a]); // TCI
        body.extend_from_slice(&0x9100u16.to_be_bytes());
        body.extend_from_slice(&[0x00, 0x0b]);
        body.extend_from_slice(&0x8100u16.to_be_bytes());
        body.extend_from_slice(&[0x00, 0x0c]);
        body.extend_from_slice(&0x0800u16.to_be_bytes());
        body.extend_from_slice(&ipv4_tcp(TEXT));
        assert_v4_tcp(&ok(LinkType::Ethernet, &eth(outer, &body)));
    }

    // Too many tags: an encapsulation we refuse rather than loop over.
    let mut body = Vec::new();
    for _ in 0..5 {
        body.extend_from_slice(&[0x00, 0x0a, 0x81, 0x00]);
    }
    body.extend_from_slice(&ipv4_tcp(TEXT));
    assert_eq!(skip(LinkType::Ethernet, &eth(0x8100, &body)), Skip::UnsupportedLink);
}

#[test]
fn mpls_and_pppoe() {
    let mut mpls = Vec::new();
    mpls.extend_from_slice(&[0x00, 0x01, 0x00, 0x40]); // label 16, not bottom
    mpls.extend_from_slice(&[0x00, 0x02, 0x01, 0x40]); // bottom of stack
    mpls.extend_from_slice(&ipv4_tcp(TEXT));
    assert_v4_tcp(&ok(LinkType::Ethernet, &eth(0x8847, &mpls)));

    let mut pw = vec![0x00, 0x02, 0x01, 0x40];
    pw.extend_from_slice(&[0; 4]); // pseudowire control word
    assert_eq!(skip(LinkType::Ethernet, &eth(0x8847, &pw)), Skip::UnsupportedLink);

    let ip = ipv6_tcp(TEXT);
    let mut pppoe = vec![0x11, 0x00, 0x12, 0x34];
    pppoe.extend_from_slice(&(ip.len() as u16 + 2).to_be_bytes());
    pppoe.extend_from_slice(&[0x00, 0x57]);
    pppoe.extend_from_slice(&ip);
    assert_v6_tcp(&ok(LinkType::Ethernet, &eth(0x8864, &pppoe)));
    pppoe[6..8].copy_from_slice(&[0xc0, 0x21]); // LCP
    assert_eq!(skip(LinkType::Ethernet, &eth(0x8864, &pppoe)), Skip::NotIp);
}

#[test]
fn linux_sll() {
    let frame = write(|v| {
        PacketBuilder::linux_sll(LinuxSllPacketType::OUTGOING, 6, [2, 0, 0, 0, 0, 1, 0, 0])
            .ipv4(V4_SRC, V4_DST, 64)
            .tcp(40000, 443, 1000, 8192)
            .ack(77)
            .write(v, TEXT)
            .unwrap()
    });
    assert_eq!(frame.len(), 16 + ipv4_tcp(TEXT).len());
    assert_v4_tcp(&ok(LinkType::LinuxSll, &frame));

    // By hand, IPv6.
    let mut frame = vec![0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x86, 0xdd];
    frame.extend_from_slice(&ipv6_tcp(TEXT));
    assert_v6_tcp(&ok(LinkType::LinuxSll, &frame));
    frame[14..16].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(skip(LinkType::LinuxSll, &frame), Skip::NotIp);
}

fn sll2(protocol: u16, ip: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&protocol.to_be_bytes());
    v.extend_from_slice(&[0, 0]); // reserved
    v.extend_from_slice(&3u32.to_be_bytes()); // interface index
    v.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
    v.push(4); // outgoing
    v.push(6);
    v.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(v.len(), 20);
    v.extend_from_slice(ip);
    v
}

#[test]
fn linux_sll2() {
    assert_v4_tcp(&ok(LinkType::LinuxSll2, &sll2(0x0800, &ipv4_tcp(TEXT))));
    assert_v6_tcp(&ok(LinkType::LinuxSll2, &sll2(0x86dd, &ipv6_tcp(TEXT))));
    assert_eq!(skip(LinkType::LinuxSll2, &sll2(0x88cc, &[0; 40])), Skip::NotIp);
}

#[test]
fn null_and_loop_in_either_byte_order() {
    let v4 = ipv4_tcp(TEXT);
    let v6 = ipv6_tcp(TEXT);
    let with = |family: [u8; 4], ip: &[u8]| [&family[..], ip].concat();
    assert_v4_tcp(&ok(LinkType::Null, &with(2u32.to_le_bytes(), &v4)));
    assert_v4_tcp(&ok(LinkType::Null, &with(2u32.to_be_bytes(), &v4)));
    for family in [10u32, 24, 28, 30] {
        assert_v6_tcp(&ok(LinkType::Null, &with(family.to_le_bytes(), &v6)));
        assert_v6_tcp(&ok(LinkType::Null, &with(family.to_be_bytes(), &v6)));
    }
    assert_eq!(skip(LinkType::Null, &with(7u32.to_le_bytes(), &v4)), Skip::NotIp);
}

#[test]
fn raw_ip_and_fixed_version_dlts() {
    assert_v4_tcp(&ok(LinkType::RawIp, &ipv4_tcp(TEXT)));
    assert_v6_tcp(&ok(LinkType::RawIp, &ipv6_tcp(TEXT)));
    assert_v4_tcp(&ok(LinkType::Ipv4, &ipv4_tcp(TEXT)));
    assert_v6_tcp(&ok(LinkType::Ipv6, &ipv6_tcp(TEXT)));
    assert_eq!(skip(LinkType::Ipv4, &ipv6_tcp(TEXT)), Skip::MalformedIp);
    assert_eq!(skip(LinkType::Ipv6, &ipv4_tcp(TEXT)), Skip::MalformedIp);
    let mut v5 = ipv4_tcp(TEXT);
    v5[0] = 0x55;
    assert_eq!(skip(LinkType::RawIp, &v5), Skip::MalformedIp);
    assert_eq!(skip(LinkType::RawIp, &[]), Skip::Truncated);
}

// ---------------------------------------------------------------- IP and transport

/// Splices IPv6 extension headers (each `(type, bytes)`, bytes including their own next-header
/// byte, which is patched) between the fixed header and the payload of `packet`.
fn with_v6_exts(packet: &[u8], exts: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let (header, payload) = packet.split_at(40);
    let mut out = header.to_vec();
    let mut next_of_previous = 6; // index of the next-header byte to patch
    let original_next = header[6];
    for (ty, bytes) in exts {
        let at = out.len();
        out[next_of_previous] = *ty;
        out.extend_from_slice(bytes);
        next_of_previous = at;
    }
    out[next_of_previous] = original_next;
    out.extend_from_slice(payload);
    let payload_len = (out.len() - 40) as u16;
    out[4..6].copy_from_slice(&payload_len.to_be_bytes());
    out
}

fn ext8(fill: u8) -> Vec<u8> {
    vec![0, 0, 1, 4, fill, fill, fill, fill] // next, len 0 (8 bytes), PadN option
}

#[test]
fn ipv6_with_several_extension_headers() {
    let routing = vec![0, 0, 0, 0, 0, 0, 0, 0]; // type 0, segments left 0
    let mut auth = vec![0, 2, 0, 0]; // next, payload len (2 → 16 bytes), reserved
    auth.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd]); // SPI, seq, ICV
    let atomic_fragment = vec![0, 0, 0, 0, 0, 0, 0, 7]; // offset 0, M clear
    let packet = with_v6_exts(
        &ipv6_tcp(TEXT),
        &[
            (0, ext8(0)),
            (43, routing),
            (60, ext8(0)),
            (51, auth),
            (44, atomic_fragment),
            (60, ext8(0)),
        ],
    );
    assert_v6_tcp(&ok(LinkType::RawIp, &packet));

    // Truncated extension chain inside a complete datagram: the sender's fault.
    let bad = with_v6_exts(&ipv6_tcp(b""), &[(0, ext8(0))]);
    let mut bad = bad[..bad.len() - 20].to_vec(); // drop the TCP header
    bad[4..6].copy_from_slice(&6u16.to_be_bytes());
    bad.truncate(46);
    assert_eq!(skip(LinkType::RawIp, &bad), Skip::MalformedIp);

    // ESP is opaque: not a transport we read.
    let mut esp = ipv6_tcp(TEXT);
    esp[6] = 50;
    assert_eq!(skip(LinkType::RawIp, &esp), Skip::UnsupportedTransport);
}

#[test]
fn ethernet_padding_never_reaches_the_payload() {
    let short = write(|v| {
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(V4_SRC, V4_DST, 64)
            .udp(1, 2)
            .write(v, b"hi")
            .unwrap()
    });
    assert_eq!(short.len(), 44);
    let mut padded = short.clone();
    padded.resize(60, 0xAA); // minimum frame, with non-zero padding
    padded.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]); // a trailing FCS
    assert_eq!(ok(LinkType::Ethernet, &padded).payload, b"hi");

    let mut tcp = eth(0x0800, &ipv4_tcp(b"4111"));
    tcp.resize(tcp.len().max(60) + 8, 0xAA);
    assert_eq!(ok(LinkType::Ethernet, &tcp).payload, b"4111");

    let mut v6 = eth(0x86dd, &ipv6_tcp(b"x"));
    v6.extend_from_slice(&[0xAA; 7]);
    assert_eq!(ok(LinkType::Ethernet, &v6).payload, b"x");
}

#[test]
fn non_ip_and_non_tcp_udp_are_skipped_with_their_reason() {
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&[0; 20]);
    assert_eq!(skip(LinkType::Ethernet, &eth(0x0806, &arp)), Skip::NotIp);
    assert_eq!(skip(LinkType::Ethernet, &eth(0x88cc, &[0; 30])), Skip::NotIp); // LLDP
    assert_eq!(skip(LinkType::Ethernet, &eth(0x0026, &[0x42; 38])), Skip::NotIp); // 802.3 + STP

    let icmp = write(|v| {
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(V4_SRC, V4_DST, 64)
            .icmpv4_echo_request(1, 1)
            .write(v, b"ping")
            .unwrap()
    });
    assert_eq!(skip(LinkType::Ethernet, &icmp), Skip::UnsupportedTransport);
    let icmp6 = write(|v| {
        PacketBuilder::ipv6(V6_SRC, V6_DST, 64)
            .icmpv6_echo_request(1, 1)
            .write(v, b"ping")
            .unwrap()
    });
    assert_eq!(skip(LinkType::RawIp, &icmp6), Skip::UnsupportedTransport);
    let mut sctp = ipv4_udp(TEXT);
    sctp[9] = 132;
    assert_eq!(skip(LinkType::RawIp, &sctp), Skip::UnsupportedTransport);
}

#[test]
fn malformed_headers() {
    let mut ihl = ipv4_tcp(TEXT);
    ihl[0] = 0x44;
    assert_eq!(skip(LinkType::RawIp, &ihl), Skip::MalformedIp);

    let mut total = ipv4_tcp(TEXT);
    total[2..4].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(skip(LinkType::RawIp, &total), Skip::MalformedIp);

    let mut offset = ipv4_tcp(TEXT);
    offset[20 + 12] = 0xf0; // data offset 60 bytes, more than the segment
    let short = ipv4_tcp(b"");
    let mut short_offset = short.clone();
    short_offset[20 + 12] = 0xf0;
    assert_eq!(skip(LinkType::RawIp, &short_offset), Skip::MalformedTcp);
    let mut tiny = ipv4_tcp(TEXT);
    tiny[2..4].copy_from_slice(&30u16.to_be_bytes()); // 10 bytes of TCP
    assert_eq!(skip(LinkType::RawIp, &tiny), Skip::MalformedTcp);
    offset[20 + 12] = 0x40; // data offset 16 bytes, less than a header
    assert_eq!(skip(LinkType::RawIp, &offset), Skip::MalformedTcp);

    let mut udp = ipv4_udp(TEXT);
    udp[20 + 4..20 + 6].copy_from_slice(&500u16.to_be_bytes());
    assert_eq!(skip(LinkType::RawIp, &udp), Skip::MalformedUdp);
    let mut udp = ipv4_udp(TEXT);
    udp[20 + 4..20 + 6].copy_from_slice(&4u16.to_be_bytes());
    assert_eq!(skip(LinkType::RawIp, &udp), Skip::MalformedUdp);
}

/// Valid frames of every link type, for the truncation and fuzz tests.
fn valid_frames() -> Vec<(LinkType, Vec<u8>)> {
    let vlan = [&[0u8, 10, 0x08, 0x00][..], &ipv4_tcp(TEXT)].concat();
    let mut mpls = vec![0x00, 0x02, 0x01, 0x40];
    mpls.extend_from_slice(&ipv6_tcp(TEXT));
    let ext6 = with_v6_exts(&ipv6_tcp(TEXT), &[(0, ext8(1)), (60, ext8(2))]);
    vec![
        (LinkType::Ethernet, eth(0x0800, &ipv4_tcp(TEXT))),
        (LinkType::Ethernet, eth(0x86dd, &ext6)),
        (LinkType::Ethernet, eth(0x8100, &vlan)),
        (LinkType::Ethernet, eth(0x8847, &mpls)),
        (LinkType::Ethernet, eth(0x0800, &ipv4_udp(TEXT))),
        (
            LinkType::LinuxSll,
            [&[0u8, 4, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 8, 0][..], &ipv4_udp(TEXT)].concat(),
        ),
        (LinkType::LinuxSll2, sll2(0x86dd, &ipv6_tcp(TEXT))),
        (LinkType::Null, [&2u32.to_le_bytes()[..], &ipv4_tcp(TEXT)].concat()),
        (LinkType::RawIp, ipv6_tcp(TEXT)),
        (LinkType::Ipv4, ipv4_udp(TEXT)),
        (LinkType::Ipv6, ext6),
    ]
}

#[test]
fn every_truncation_of_a_valid_frame_is_truncated() {
    for (link, frame) in valid_frames() {
        assert!(decoder().decode(link, at(1), &frame).is_ok(), "{link:?} whole frame");
        for len in 0..frame.len() {
            let got = decoder().decode(link, at(1), &frame[..len]).map(|p| p.payload.len());
            assert_eq!(got, Err(Skip::Truncated), "{link:?} cut at {len} of {}", frame.len());
        }
    }
}

#[test]
fn skip_labels_are_distinct_snake_case() {
    let labels: Vec<_> = Skip::ALL.iter().map(|s| s.as_label()).collect();
    let mut unique = labels.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), labels.len());
    assert!(labels
        .iter()
        .all(|l| l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    assert_eq!(Skip::FragmentHeld.as_label(), "fragment_held");
}

// ---------------------------------------------------------------- fragments

/// Splits an IPv4 datagram into fragments of `chunk` payload bytes (a multiple of 8).
fn fragment_v4(datagram: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    assert_eq!(chunk % 8, 0);
    let hlen = usize::from(datagram[0] & 0x0f) * 4;
    let (header, payload) = datagram.split_at(hlen);
    payload
        .chunks(chunk)
        .enumerate()
        .map(|(i, piece)| {
            let offset = i * chunk;
            let more = offset + piece.len() < payload.len();
            let mut f = header.to_vec();
            f[2..4].copy_from_slice(&((hlen + piece.len()) as u16).to_be_bytes());
            let flags_offset = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
            f[6..8].copy_from_slice(&flags_offset.to_be_bytes());
            f.extend_from_slice(piece);
            f
        })
        .collect()
}

/// Splits an IPv6 datagram (no extension headers) into fragments of `chunk` payload bytes.
fn fragment_v6(datagram: &[u8], chunk: usize, id: u32) -> Vec<Vec<u8>> {
    let (header, payload) = datagram.split_at(40);
    payload
        .chunks(chunk)
        .enumerate()
        .map(|(i, piece)| {
            let offset = i * chunk;
            let more = offset + piece.len() < payload.len();
            let mut f = header.to_vec();
            f[4..6].copy_from_slice(&((8 + piece.len()) as u16).to_be_bytes());
            f[6] = 44;
            f.push(header[6]);
            f.push(0);
            f.extend_from_slice(&(((offset / 8) as u16) << 3 | u16::from(more)).to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
            f.extend_from_slice(piece);
            f
        })
        .collect()
}

/// A datagram with a 3020-byte payload (3 fragments of 1008); `id` set, IHL 6 (NOP options).
fn big_v4(id: u16) -> Vec<u8> {
    let body: Vec<u8> = TEXT.iter().cycle().take(3000).copied().collect();
    let mut d = write(|v| {
        let mut ip = etherparse::Ipv4Header::new(0, 64, etherparse::IpNumber::TCP, V4_SRC, V4_DST).unwrap();
        ip.identification = id;
        ip.options = [1, 1, 1, 1][..].try_into().unwrap(); // four NOP options: IHL 6
        PacketBuilder::ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
            .tcp(40000, 443, 1000, 8192)
            .ack(77)
            .write(v, &body)
            .unwrap()
    });
    assert_eq!(d[0], 0x46);
    d = fragmentable(d);
    d
}

/// Clears DF (the builder sets it) and fixes the header checksum, as a sender that lets routers
/// fragment would.
fn fragmentable(mut d: Vec<u8>) -> Vec<u8> {
    d[6] &= !0x40;
    let header = etherparse::Ipv4HeaderSlice::from_slice(&d).unwrap().to_header();
    let checksum = header.calc_header_checksum();
    d[10..12].copy_from_slice(&checksum.to_be_bytes());
    d
}

/// Feeds `frames` as raw IP; returns the outcome of each.
fn feed(d: &mut Decoder, frames: &[Vec<u8>], secs: u64) -> Vec<Result<Vec<u8>, Skip>> {
    frames
        .iter()
        .map(|f| {
            d.decode(LinkType::RawIp, at(secs), f)
                .map(|p| p.reassembled.expect("reassembled").to_vec())
        })
        .collect()
}

/// Checks that exactly the last outcome is the whole datagram and all others were held.
fn assert_reassembles(outcomes: &[Result<Vec<u8>, Skip>], original: &[u8]) {
    let (last, rest) = outcomes.split_last().unwrap();
    assert!(rest.iter().all(|r| *r == Err(Skip::FragmentHeld)), "{rest:?}");
    assert_eq!(last.as_deref(), Ok(original));
}

#[test]
fn ipv4_fragments_in_order_reversed_shuffled_duplicated() {
    let original = big_v4(0x1234);
    let frags = fragment_v4(&original, 1208);
    assert_eq!(frags.len(), 3);

    let mut d = decoder();
    assert_reassembles(&feed(&mut d, &frags, 1), &original);

    let reversed: Vec<_> = frags.iter().rev().cloned().collect();
    assert_reassembles(&feed(&mut d, &reversed, 2), &original);

    let small = fragment_v4(&original, 256);
    let n = small.len();
    let shuffled: Vec<_> = (0..n).map(|i| small[(i * 7 + 3) % n].clone()).collect();
    assert_reassembles(&feed(&mut d, &shuffled, 3), &original);

    // Each fragment twice, the duplicate of the completing one after completion starts a new
    // datagram (it cannot be told from a new one), which then times out.
    let mut twice = Vec::new();
    for f in &frags[..2] {
        twice.push(f.clone());
        twice.push(f.clone());
    }
    twice.push(frags[2].clone());
    assert_reassembles(&feed(&mut d, &twice, 4), &original);

    let s = d.defrag_stats();
    assert_eq!(
        (s.reassembled, s.conflicts, s.held_datagrams, s.held_bytes),
        (4, 0, 0, 0)
    );
}

#[test]
fn reassembled_bytes_redecode_identically_as_raw_ip() {
    let original = big_v4(7);
    let frags = fragment_v4(&original, 512);
    let mut d = decoder();
    let mut last = None;
    for f in &frags {
        if let Ok(p) = d.decode(LinkType::Ethernet, at(1), &eth(0x0800, f)) {
            last = Some((
                p.src,
                p.dst,
                p.src_port,
                p.dst_port,
                p.transport,
                p.payload.to_vec(),
                p.reassembled.unwrap().to_vec(),
            ));
        }
    }
    let (src, dst, sp, dp, transport, payload, whole) = last.expect("reassembled");
    let mut worker = decoder();
    let p = worker.decode(LinkType::RawIp, at(1), &whole).unwrap();
    assert_eq!(
        (p.src, p.dst, p.src_port, p.dst_port, p.transport),
        (src, dst, sp, dp, transport)
    );
    assert_eq!(p.payload, &payload[..]);
    assert_eq!(p.reassembled, None);
    // And it is the datagram that was fragmented, header checksum included.
    assert_eq!(whole, original);
    assert_eq!(&payload[..], ok(LinkType::RawIp, &original).payload);
}

#[test]
fn missing_fragment_times_out() {
    let original = big_v4(9);
    let frags = fragment_v4(&original, 1008);
    let mut d = decoder();
    assert_eq!(
        d.decode(LinkType::RawIp, at(100), &frags[0]).unwrap_err(),
        Skip::FragmentHeld
    );
    assert_eq!(
        d.decode(LinkType::RawIp, at(110), &frags[2]).unwrap_err(),
        Skip::FragmentHeld
    );
    assert_eq!(d.defrag_stats().held_datagrams, 1);
    // Any packet after the timeout (from the first fragment) expires it.
    assert!(d.decode(LinkType::RawIp, at(130), &ipv4_tcp(TEXT)).is_ok());
    let s = d.defrag_stats();
    assert_eq!((s.timed_out, s.held_datagrams, s.held_bytes), (1, 0, 0));
    // The late piece alone is just held again.
    assert_eq!(
        d.decode(LinkType::RawIp, at(131), &frags[1]).unwrap_err(),
        Skip::FragmentHeld
    );
}

#[test]
fn memcap_evicts_oldest_and_is_never_exceeded() {
    let memcap = 8 * 1024;
    let mut d = Decoder::new(DefragConfig {
        memcap,
        timeout: Duration::from_secs(30),
    });
    for id in 0..40u16 {
        let frags = fragment_v4(&big_v4(id), 1008);
        assert_eq!(
            d.decode(LinkType::RawIp, at(1), &frags[0]).unwrap_err(),
            Skip::FragmentHeld
        );
        assert!(d.defrag_stats().held_bytes <= memcap);
    }
    let s = d.defrag_stats();
    assert!(s.memcap_dropped > 0 && s.held_datagrams < 40, "{s:?}");
    // The newest datagram survived the flood and completes.
    let frags = fragment_v4(&big_v4(39), 1008);
    assert!(d.decode(LinkType::RawIp, at(2), &frags[1]).is_err());
    assert!(d.decode(LinkType::RawIp, at(2), &frags[2]).is_ok());
    // The oldest did not: its last pieces only start a new datagram.
    let frags = fragment_v4(&big_v4(0), 1008);
    assert_eq!(
        d.decode(LinkType::RawIp, at(2), &frags[1]).unwrap_err(),
        Skip::FragmentHeld
    );
    assert_eq!(
        d.decode(LinkType::RawIp, at(2), &frags[2]).unwrap_err(),
        Skip::FragmentHeld
    );

    // A datagram larger than the memcap can never be held.
    let mut tiny = Decoder::new(DefragConfig {
        memcap: 1024,
        timeout: Duration::from_secs(30),
    });
    let frags = fragment_v4(&big_v4(1), 1008);
    assert_eq!(
        tiny.decode(LinkType::RawIp, at(1), &frags[2]).unwrap_err(),
        Skip::FragmentDropped
    );
    assert_eq!(tiny.defrag_stats().held_bytes, 0);
}

#[test]
fn overlapping_fragments_first_seen_wins() {
    let original = big_v4(5);
    let frags = fragment_v4(&original, 1008);
    let hlen = 24;
    // A rogue copy of the second fragment with different bytes, sent first.
    let mut rogue = frags[1].clone();
    for b in &mut rogue[hlen..] {
        *b = b'X';
    }
    let mut d = decoder();
    assert_eq!(
        d.decode(LinkType::RawIp, at(1), &rogue).unwrap_err(),
        Skip::FragmentHeld
    );
    assert_eq!(
        d.decode(LinkType::RawIp, at(1), &frags[1]).unwrap_err(),
        Skip::FragmentHeld
    );
    assert_eq!(
        d.decode(LinkType::RawIp, at(1), &frags[0]).unwrap_err(),
        Skip::FragmentHeld
    );
    let p = d.decode(LinkType::RawIp, at(1), &frags[2]).unwrap();
    let whole = p.reassembled.unwrap().to_vec();
    assert_eq!(&whole[hlen + 1008..hlen + 2016], &[b'X'; 1008][..]);
    assert_eq!(&whole[..hlen + 1008], &original[..hlen + 1008]);
    assert_eq!(&whole[hlen + 2016..], &original[hlen + 2016..]);
    assert_eq!(d.defrag_stats().conflicts, 1);

    // A second "last fragment" with another end is dropped and counted.
    let mut d = decoder();
    assert_eq!(
        d.decode(LinkType::RawIp, at(1), &frags[2]).unwrap_err(),
        Skip::FragmentHeld
    );
    let mut short_last = frags[1].clone();
    short_last[6] &= !0x20; // clear MF: claims the datagram ends at 2000
    assert_eq!(
        d.decode(LinkType::RawIp, at(1), &short_last).unwrap_err(),
        Skip::FragmentDropped
    );
    assert_eq!(d.defrag_stats().conflicts, 1);
}

#[test]
fn bad_fragments_are_dropped() {
    let original = big_v4(3);
    let frags = fragment_v4(&original, 1008);
    let mut d = decoder();

    // Not a multiple of 8 while more fragments follow.
    let mut odd = frags[0].clone();
    odd.truncate(odd.len() - 3);
    let total = (odd.len() as u16).to_be_bytes();
    odd[2..4].copy_from_slice(&total);
    assert_eq!(
        d.decode(LinkType::RawIp, at(1), &odd).unwrap_err(),
        Skip::FragmentDropped
    );

    // Beyond 65535 bytes.
    let mut far = frags[2].clone();
    far[6..8].copy_from_slice(&0x1fffu16.to_be_bytes());
    assert_eq!(
        d.decode(LinkType::RawIp, at(1), &far).unwrap_err(),
        Skip::FragmentDropped
    );
    assert_eq!(d.defrag_stats().invalid, 2);

    // Too many fragments for one datagram.
    let mut n = 0;
    loop {
        n += 1;
        match d.decode(LinkType::RawIp, at(1), &frags[1]) {
            Err(Skip::FragmentHeld) => continue,
            Err(Skip::FragmentDropped) => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(n, MAX_FRAGMENTS_PER_DATAGRAM + 1);
    let s = d.defrag_stats();
    assert_eq!((s.too_many_fragments, s.held_datagrams, s.held_bytes), (1, 0, 0));
}

#[test]
fn fragments_that_cannot_hold_tcp_or_udp_are_not_held() {
    let mut icmp = big_v4(11);
    icmp[9] = 1;
    let mut d = decoder();
    for f in fragment_v4(&icmp, 1008) {
        assert_eq!(
            d.decode(LinkType::RawIp, at(1), &f).unwrap_err(),
            Skip::UnsupportedTransport
        );
    }
    let mut icmp6 = ipv6_tcp(&[7; 3000]);
    icmp6[6] = 58;
    for f in fragment_v6(&icmp6, 1232, 1) {
        assert_eq!(
            d.decode(LinkType::RawIp, at(1), &f).unwrap_err(),
            Skip::UnsupportedTransport
        );
    }
    assert_eq!(d.defrag_stats(), DefragStats::default());
}

#[test]
fn ipv6_fragments_reassemble() {
    let body: Vec<u8> = TEXT.iter().cycle().take(2500).copied().collect();
    let original = ipv6_tcp(&body);
    let frags = fragment_v6(&original, 1232, 0xdead_beef);
    assert_eq!(frags.len(), 3);
    let mut d = decoder();
    let reversed: Vec<_> = frags.iter().rev().cloned().collect();
    assert_reassembles(&feed(&mut d, &reversed, 1), &original);
    let p = decoder()
        .decode(LinkType::RawIp, at(1), &original)
        .unwrap()
        .payload
        .to_vec();
    assert_eq!(p, body);
}

// ---------------------------------------------------------------- properties

fn any_link() -> impl Strategy<Value = LinkType> {
    prop_oneof![
        Just(LinkType::Ethernet),
        Just(LinkType::LinuxSll),
        Just(LinkType::LinuxSll2),
        Just(LinkType::RawIp),
        Just(LinkType::Ipv4),
        Just(LinkType::Ipv6),
        Just(LinkType::Null),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes never panic, for every link type, through one stateful decoder.
    #[test]
    fn arbitrary_bytes_never_panic(frames in prop::collection::vec((any_link(), prop::collection::vec(any::<u8>(), 0..200)), 1..8)) {
        let mut d = Decoder::new(DefragConfig { memcap: 4096, timeout: Duration::from_secs(1) });
        for (i, (link, frame)) in frames.iter().enumerate() {
            let _ = d.decode(*link, at(i as u64), frame);
            prop_assert!(d.defrag_stats().held_bytes <= 4096);
        }
    }

    /// Mutations of valid frames (where the interesting branches are) never panic either.
    #[test]
    fn mutated_valid_frames_never_panic(which in 0usize..11, flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let (link, mut frame) = valid_frames().swap_remove(which);
        for (at_, byte) in flips {
            let i = at_ % frame.len();
            frame[i] = byte;
        }
        let _ = decoder().decode(link, at(1), &frame);
    }

    /// Oracle: any split into 8-byte-aligned fragments, in any order, with duplicates, reassembles
    /// to the original datagram, completing exactly on the last missing piece.
    #[test]
    fn any_fragmentation_reassembles_to_the_original(
        len in 1usize..2000,
        chunk8 in 4usize..200, // at most 2000 / 32 + 2 fragments, under the per-datagram cap
        order_seed in any::<u64>(),
        dups in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        // Always longer than one fragment.
        let body: Vec<u8> = (0..len + chunk8 * 8).map(|i| (i * 31 % 251) as u8).collect();
        let original = fragmentable(ipv4_udp(&body));
        let mut frags = fragment_v4(&original, chunk8 * 8);
        // Deterministic shuffle from the seed.
        let mut s = order_seed | 1;
        for i in (1..frags.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            frags.swap(i, (s % (i as u64 + 1)) as usize);
        }
        for ix in &dups {
            let f = ix.get(&frags).clone();
            let at_ = ix.index(frags.len());
            frags.insert(at_, f); // a duplicate before (or at) a copy of itself
        }
        let mut d = decoder();
        let mut done = None;
        for (i, f) in frags.iter().enumerate() {
            match d.decode(LinkType::RawIp, at(1), f) {
                Ok(p) => { prop_assert!(done.is_none()); done = Some((i, p.reassembled.unwrap().to_vec(), p.payload.to_vec())); }
                Err(Skip::FragmentHeld) => {}
                Err(e) => prop_assert!(false, "unexpected {:?}", e),
            }
        }
        let (_, whole, payload) = done.expect("completed");
        prop_assert_eq!(whole, original);
        prop_assert_eq!(payload, body);
        prop_assert_eq!(d.defrag_stats().conflicts, 0);
    }
}

// ---------------------------------------------------------------- allocation

mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static COUNT: Cell<usize> = const { Cell::new(0) };
    }

    /// Counts allocations made on the current thread (the test thread only reads its own count).
    pub(super) struct Counting;

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
            // SAFETY: forwarding the caller's contract to the system allocator.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarding the caller's contract to the system allocator.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    pub(super) fn count() -> usize {
        COUNT.with(Cell::get)
    }
}

#[global_allocator]
static ALLOC: alloc_count::Counting = alloc_count::Counting;

#[test]
fn the_non_fragment_path_does_not_allocate() {
    let frames = valid_frames();
    let mut d = decoder();
    // Warm up (first-fragment table growth etc. is not on this path, but be fair).
    for (link, f) in &frames {
        let _ = d.decode(*link, at(1), f);
    }
    let before = alloc_count::count();
    let mut bytes = 0;
    for _ in 0..100 {
        for (link, f) in &frames {
            bytes += d.decode(*link, at(2), f).map(|p| p.payload.len()).unwrap_or(0);
        }
    }
    assert_eq!(alloc_count::count() - before, 0);
    assert!(bytes > 0);
}

// ---------------------------------------------------------------- checksums (fuzz)

#[test]
fn bad_checksums_are_dropped_only_when_verified() {
    let checking = || decoder().with_checksums(ChecksumMode::On);
    let good = [ipv4_tcp(TEXT), ipv4_udp(TEXT), ipv6_tcp(TEXT)];
    for ip in &good {
        assert!(checking().decode(LinkType::RawIp, at(1), ip).is_ok());
    }
    // The last payload byte (TCP/UDP checksum) and the IPv4 TTL (header checksum).
    let mut bad = good.to_vec();
    for b in &mut bad {
        *b.last_mut().unwrap() ^= 0x01;
    }
    let mut ttl = good[0].clone();
    ttl[8] -= 1;
    bad.push(ttl);
    for ip in &bad {
        let mut d = checking();
        assert_eq!(d.decode(LinkType::RawIp, at(1), ip).err(), Some(Skip::BadChecksum));
        assert_eq!(d.checksum_errors(), 1);
        assert!(
            decoder().decode(LinkType::RawIp, at(1), ip).is_ok(),
            "a new decoder does not verify"
        );
    }
}

#[test]
fn a_reassembled_datagram_is_verified_whole() {
    let mut d = big_v4(7);
    let last = d.len() - 1;
    d[last] ^= 0x01; // TCP checksum now wrong; each fragment's IPv4 header is still right
    let mut dec = decoder().with_checksums(ChecksumMode::On);
    let frags = fragment_v4(&fragmentable(d), 1008);
    let outcomes: Vec<_> = frags
        .iter()
        .map(|f| dec.decode(LinkType::RawIp, at(1), f).err())
        .collect();
    assert_eq!(outcomes.last(), Some(&Some(Skip::BadChecksum)), "{outcomes:?}");
    assert_eq!(dec.checksum_errors(), 1);
}
