//! Percent-encoding of one URL component (a path segment, a query value, a
//! connection option): everything but RFC 3986's unreserved characters is
//! escaped, so a value can never end or split the component it sits in.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Every byte but `A–Z a–z 0–9 - . _ ~`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `s` escaped for use as one URL component.
pub fn encode_component(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::encode_component;

    #[test]
    fn only_unreserved_characters_stay_as_they_are() {
        assert_eq!(encode_component("Zorg-1.x_~"), "Zorg-1.x_~");
        assert_eq!(encode_component("a b/c&d=e"), "a%20b%2Fc%26d%3De");
        assert_eq!(encode_component("é"), "%C3%A9");
    }
}
