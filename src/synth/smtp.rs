//! SMTP sessions and MIME messages as mail clients write them: EHLO, envelope, DATA with
//! dot-stuffing, base64 and quoted-printable parts (soft line breaks placed by the caller, so
//! one can fall inside a number), nested multiparts, attachments, RFC 2047 encoded-words, and
//! STARTTLS after which the bytes are opaque.

use super::http::base64_lines;
use base64::Engine;

/// Bytes one side says in a conversation: `(from_client, bytes)`.
pub type Turn = (bool, Vec<u8>);

/// SMTP envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// EHLO name.
    pub helo: String,
    /// MAIL FROM address.
    pub mail_from: String,
    /// RCPT TO addresses.
    pub rcpt_to: Vec<String>,
}

fn c(s: &str) -> Turn {
    (true, s.as_bytes().to_vec())
}
fn s(s: &str) -> Turn {
    (false, s.as_bytes().to_vec())
}

fn greeting(env: &Envelope) -> Vec<Turn> {
    vec![
        s("220 mx.example.org ESMTP ready\r\n"),
        c(&format!("EHLO {}\r\n", env.helo)),
        s("250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n250-STARTTLS\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"),
    ]
}

fn transaction(env: &Envelope, message: &[u8]) -> Vec<Turn> {
    let mut t = vec![c(&format!("MAIL FROM:<{}>\r\n", env.mail_from)), s("250 2.1.0 Ok\r\n")];
    for r in &env.rcpt_to {
        t.push(c(&format!("RCPT TO:<{r}>\r\n")));
        t.push(s("250 2.1.5 Ok\r\n"));
    }
    t.push(c("DATA\r\n"));
    t.push(s("354 End data with <CR><LF>.<CR><LF>\r\n"));
    let mut data = dot_stuff(message);
    data.extend_from_slice(b".\r\n");
    t.push((true, data));
    t.push(s("250 2.0.0 Ok: queued as 4XbQ1d2mZkz9t\r\n"));
    t
}

/// A whole session delivering each message in turn over one connection, then QUIT.
pub fn session(env: &Envelope, messages: &[Vec<u8>]) -> Vec<Turn> {
    let mut t = greeting(env);
    for m in messages {
        t.extend(transaction(env, m));
    }
    t.push(c("QUIT\r\n"));
    t.push(s("221 2.0.0 Bye\r\n"));
    t
}

/// A session that upgrades with STARTTLS: after the server's `220`, each side's bytes are
/// `client_tls` and `server_tls` (the caller's stand-in for TLS records), never SMTP.
pub fn starttls_session(env: &Envelope, client_tls: Vec<u8>, server_tls: Vec<u8>) -> Vec<Turn> {
    let mut t = greeting(env);
    t.push(c("STARTTLS\r\n"));
    t.push(s("220 2.0.0 Ready to start TLS\r\n"));
    t.push((true, client_tls));
    t.push((false, server_tls));
    t
}

/// DATA transparency (RFC 5321 4.5.2): a line starting with `.` gets another; the message is
/// made to end in CRLF.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut at_line_start = true;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Quoted-printable (RFC 2045 6.7) of `data`: `=` and bytes outside printable ASCII as `=XX`,
/// line breaks in `data` kept as CRLF, and a soft line break (`=` CRLF) before every input
/// offset in `breaks` and wherever a line would pass 76 characters.
pub fn quoted_printable(data: &[u8], breaks: &[usize]) -> String {
    let mut out = String::with_capacity(data.len() * 2);
    let mut line = 0usize;
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        if breaks.contains(&i) && line > 0 {
            out.push_str("=\r\n");
            line = 0;
        }
        if b == b'\r' && data.get(i + 1) == Some(&b'\n') {
            out.push_str("\r\n");
            line = 0;
            i += 2;
            continue;
        }
        if b == b'\n' {
            out.push_str("\r\n");
            line = 0;
            i += 1;
            continue;
        }
        let literal = (b'!'..=b'~').contains(&b) && b != b'='
            || b == b' ' && data.get(i + 1).is_some_and(|n| *n != b'\n' && *n != b'\r');
        let piece = if literal {
            (b as char).to_string()
        } else {
            format!("={b:02X}")
        };
        if line + piece.len() > 75 {
            out.push_str("=\r\n");
            line = 0;
        }
        line += piece.len();
        out.push_str(&piece);
        i += 1;
    }
    out
}

/// RFC 2047 encoded-words, `B` encoding, UTF-8. Like mail clients, long text is split (on
/// character boundaries, wherever that falls) into several words of at most 75 characters on
/// folded lines; a decoder joins adjacent words.
pub fn encoded_word_b(text: &str) -> String {
    let mut words = Vec::new();
    let mut start = 0;
    let mut end = 0;
    for (i, ch) in text.char_indices() {
        if i + ch.len_utf8() - start > 42 {
            words.push(&text[start..end]);
            start = i;
        }
        end = i + ch.len_utf8();
    }
    words.push(&text[start..end]);
    words
        .iter()
        .map(|w| {
            format!(
                "=?UTF-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// An RFC 2047 encoded-word, `Q` encoding, UTF-8 (spaces as `_`).
pub fn encoded_word_q(text: &str) -> String {
    let mut out = String::from("=?UTF-8?Q?");
    for &b in text.as_bytes() {
        match b {
            b' ' => out.push('_'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' => out.push(b as char),
            _ => out.push_str(&format!("={b:02X}")),
        }
    }
    out.push_str("?=");
    out
}

/// A content transfer encoding for a MIME leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cte {
    /// `7bit`: written as is.
    SevenBit,
    /// `base64` in 76-character lines.
    Base64,
    /// `quoted-printable` with soft breaks before these content offsets.
    QuotedPrintable(Vec<usize>),
}

/// A MIME entity: a leaf part or a multipart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mime {
    /// A single part.
    Leaf {
        /// `Content-Type` value.
        content_type: String,
        /// `Content-Disposition: attachment; filename=…`, if an attachment.
        filename: Option<String>,
        /// Transfer encoding.
        cte: Cte,
        /// Decoded content.
        content: Vec<u8>,
    },
    /// `multipart/<subtype>` with its parts.
    Multipart {
        /// `mixed`, `alternative`, `related`, ….
        subtype: String,
        /// Boundary string.
        boundary: String,
        /// Parts in order.
        parts: Vec<Mime>,
    },
}

impl Mime {
    /// A text/plain leaf.
    pub fn text(cte: Cte, content: &str) -> Mime {
        Mime::Leaf {
            content_type: "text/plain; charset=utf-8".into(),
            filename: None,
            cte,
            content: content.as_bytes().to_vec(),
        }
    }

    /// An attachment leaf.
    pub fn attachment(content_type: &str, filename: &str, cte: Cte, content: Vec<u8>) -> Mime {
        Mime::Leaf {
            content_type: content_type.into(),
            filename: Some(filename.into()),
            cte,
            content,
        }
    }

    /// The entity's headers and body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Mime::Leaf {
                content_type,
                filename,
                cte,
                content,
            } => {
                out.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
                if let Some(f) = filename {
                    out.extend_from_slice(format!("Content-Disposition: attachment; filename=\"{f}\"\r\n").as_bytes());
                }
                match cte {
                    Cte::SevenBit => {
                        out.extend_from_slice(b"Content-Transfer-Encoding: 7bit\r\n\r\n");
                        out.extend_from_slice(content);
                    }
                    Cte::Base64 => {
                        out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n\r\n");
                        out.extend_from_slice(base64_lines(content).as_bytes());
                    }
                    Cte::QuotedPrintable(breaks) => {
                        out.extend_from_slice(b"Content-Transfer-Encoding: quoted-printable\r\n\r\n");
                        out.extend_from_slice(quoted_printable(content, breaks).as_bytes());
                    }
                }
                if !out.ends_with(b"\r\n") {
                    out.extend_from_slice(b"\r\n");
                }
            }
            Mime::Multipart {
                subtype,
                boundary,
                parts,
            } => {
                out.extend_from_slice(
                    format!("Content-Type: multipart/{subtype}; boundary=\"{boundary}\"\r\n\r\n").as_bytes(),
                );
                out.extend_from_slice(b"This is a multi-part message in MIME format.\r\n");
                for p in parts {
                    out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
                    p.write(out);
                }
                out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
            }
        }
    }
}

/// A whole RFC 5322 message: the given header lines (already encoded), `MIME-Version`, then
/// the entity.
pub fn message(headers: &[(&str, &str)], body: &Mime) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    out.extend_from_slice(&body.to_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qp_soft_breaks_where_asked_and_at_76() {
        let q = quoted_printable(b"id 35202-1234567-1 x=y", &[7]);
        assert_eq!(q, "id 3520=\r\n2-1234567-1 x=3Dy");
        let long = quoted_printable(&[b'a'; 200], &[]);
        assert!(long.split("\r\n").all(|l| l.len() <= 76));
        assert_eq!(long.replace("=\r\n", ""), "a".repeat(200));
    }

    #[test]
    fn dot_stuffing_and_words() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n");
        assert_eq!(encoded_word_b("a"), "=?UTF-8?B?YQ==?=");
        let long = encoded_word_b(&"ش".repeat(40));
        assert_eq!(long.matches("=?UTF-8?B?").count(), 2);
        assert!(long.split("\r\n ").all(|w| w.len() <= 75));
        assert_eq!(encoded_word_q("a b=1"), "=?UTF-8?Q?a_b=3D1?=");
    }

    #[test]
    fn nested_multipart_has_each_boundary() {
        let m = Mime::Multipart {
            subtype: "mixed".into(),
            boundary: "OUT".into(),
            parts: vec![
                Mime::Multipart {
                    subtype: "alternative".into(),
                    boundary: "IN".into(),
                    parts: vec![Mime::text(Cte::SevenBit, "hi")],
                },
                Mime::attachment("text/csv", "a.csv", Cte::Base64, b"x".to_vec()),
            ],
        };
        let s = String::from_utf8(m.to_bytes()).unwrap();
        for needle in [
            "--OUT\r\n",
            "--IN\r\n",
            "--IN--\r\n",
            "--OUT--\r\n",
            "filename=\"a.csv\"",
            "eA==\r\n",
        ] {
            assert!(s.contains(needle), "{needle}");
        }
    }

    #[test]
    fn session_shape() {
        let env = Envelope {
            helo: "pc".into(),
            mail_from: "a@x.example".into(),
            rcpt_to: vec!["b@y.example".into()],
        };
        let t = session(&env, &[b"Subject: s\r\n\r\n.dot\r\n".to_vec()]);
        let client: Vec<u8> = t.iter().filter(|(c, _)| *c).flat_map(|(_, b)| b.clone()).collect();
        let text = String::from_utf8(client).unwrap();
        assert!(text.contains("MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n"));
        assert!(text.contains("\r\n..dot\r\n.\r\nQUIT\r\n"));
    }
}
