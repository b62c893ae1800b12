//! Just enough MIME to show a person the mails the backend sends (RFC 2045
//! transfer encodings, RFC 2046 multipart, RFC 2047 encoded words): the
//! backend's mail builder writes quoted-printable or base64 bodies, and raw
//! `=\r\n` soft breaks in the middle of words are unreadable.

use base64::Engine;

/// A message (or one part of one): its header block and its raw body.
pub struct Part<'a> {
    head: &'a str,
    body: &'a str,
}

impl<'a> Part<'a> {
    pub fn parse(raw: &'a str) -> Self {
        for sep in ["\r\n\r\n", "\n\n"] {
            if let Some((head, body)) = raw.split_once(sep) {
                return Self { head, body };
            }
        }
        Self {
            head: raw,
            body: "",
        }
    }

    /// The first header `name` (case-insensitive), unfolded and with
    /// encoded words decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        let mut found: Option<String> = None;
        for line in self.head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some(v) = found.as_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                continue;
            }
            if found.is_some() {
                break;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.trim().eq_ignore_ascii_case(name)
            {
                found = Some(v.trim().to_owned());
            }
        }
        found.map(|v| decode_words(&v))
    }

    /// The text a person reads: the first `text/plain` part (the first
    /// `text/*` when there is none), transfer encoding undone.
    pub fn text(&self) -> String {
        let content_type = self.header("Content-Type").unwrap_or_default();
        let lower = content_type.to_ascii_lowercase();
        if lower.starts_with("multipart/") {
            let Some(boundary) = param(&content_type, "boundary") else {
                return self.body.to_owned();
            };
            let parts = split_multipart(self.body, &boundary);
            let is = |p: &Part<'_>, prefix: &str| {
                p.header("Content-Type")
                    .unwrap_or_else(|| "text/plain".to_owned())
                    .to_ascii_lowercase()
                    .starts_with(prefix)
            };
            return parts
                .iter()
                .find(|p| is(p, "text/plain") || is(p, "multipart/"))
                .or_else(|| parts.iter().find(|p| is(p, "text/")))
                .map(Part::text)
                .unwrap_or_default();
        }
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let bytes = match encoding.trim() {
            "quoted-printable" => quoted_printable(self.body),
            "base64" => base64_lenient(self.body),
            _ => self.body.as_bytes().to_vec(),
        };
        String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
    }
}

/// `key=value` or `key="value"` from a header like Content-Type.
fn param(header: &str, key: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

fn split_multipart<'a>(body: &'a str, boundary: &str) -> Vec<Part<'a>> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    // Text before the first delimiter is the preamble, after `--b--` the
    // epilogue; neither is a part.
    for chunk in body.split(delimiter.as_str()).skip(1) {
        if chunk.starts_with("--") {
            break;
        }
        let chunk = chunk
            .strip_prefix("\r\n")
            .or_else(|| chunk.strip_prefix('\n'))
            .unwrap_or(chunk);
        parts.push(Part::parse(chunk));
    }
    parts
}

/// RFC 2045 §6.7: `=XX` is a byte, `=` at a line end is a soft break.
pub fn quoted_printable(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'=' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let rest = &bytes[i + 1..];
        if rest.starts_with(b"\r\n") {
            i += 3;
        } else if rest.starts_with(b"\n") {
            i += 2;
        } else if let Some(byte) = rest
            .get(..2)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            // Not an escape: keep the `=` as written.
            out.push(b'=');
            i += 1;
        }
    }
    out
}

fn base64_lenient(s: &str) -> Vec<u8> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .unwrap_or_else(|_| s.as_bytes().to_vec())
}

/// RFC 2047 encoded words (`=?utf-8?B?…?=`, `=?utf-8?Q?…?=`) in a header;
/// whitespace between two adjacent encoded words is dropped.
pub fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, candidate) = rest.split_at(start);
        let Some((decoded, used)) = encoded_word(candidate) else {
            out.push_str(before);
            out.push_str("=?");
            rest = &candidate[2..];
            after_word = false;
            continue;
        };
        if !(after_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        out.push_str(&decoded);
        rest = &candidate[used..];
        after_word = true;
    }
    out.push_str(rest);
    out
}

/// One encoded word at the start of `s`: (text, bytes consumed).
fn encoded_word(s: &str) -> Option<(String, usize)> {
    let inner = s.strip_prefix("=?")?;
    let (charset, inner) = inner.split_once('?')?;
    let (encoding, inner) = inner.split_once('?')?;
    let end = inner.find("?=")?;
    let text = &inner[..end];
    let bytes = match encoding {
        "B" | "b" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?,
        "Q" | "q" => quoted_printable(&text.replace('_', " ")),
        _ => return None,
    };
    let used = 2 + charset.len() + 1 + encoding.len() + 1 + end + 2;
    Some((String::from_utf8_lossy(&bytes).into_owned(), used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_soft_breaks_and_escapes() {
        let body = "send y=\r\nour orders =E2=80=94 today=3D now";
        assert_eq!(
            String::from_utf8(quoted_printable(body)).unwrap(),
            "send your orders — today= now"
        );
        assert_eq!(quoted_printable("a=zz"), b"a=zz");
    }

    #[test]
    fn encoded_words_in_headers() {
        assert_eq!(
            decode_words("=?utf-8?B?WW91ciBHYWxheHkgc2lnbi1pbiBjb2Rl?= =?utf-8?Q?:_123456?="),
            "Your Galaxy sign-in code: 123456"
        );
        assert_eq!(decode_words("plain =? not a word"), "plain =? not a word");
    }

    #[test]
    fn single_part_quoted_printable() {
        let raw = "Subject: Hi\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n\
                   Content-Transfer-Encoding: quoted-printable\r\n\r\nYour code is 1234=\r\n56\r\n";
        let m = Part::parse(raw);
        assert_eq!(m.header("subject").as_deref(), Some("Hi"));
        assert_eq!(m.text(), "Your code is 123456\n");
    }

    #[test]
    fn multipart_prefers_plain_text_and_decodes_base64() {
        let raw = "Content-Type: multipart/alternative;\r\n boundary=\"b1\"\r\n\r\npreamble\r\n\
                   --b1\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n\
                   --b1\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n\
                   aGVsbG8g\r\nd29ybGQ=\r\n--b1--\r\nepilogue";
        assert_eq!(Part::parse(raw).text(), "hello world");
    }
}
