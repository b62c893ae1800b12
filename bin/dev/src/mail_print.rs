//! How a mail the backend sent appears on the launcher's terminal: who it is
//! for, its subject, and a sign-in code on a line of its own (the one thing
//! a person copies from it), decoded from whatever MIME the sender used.

use crate::mime::Part;

/// The terminal block for one received mail.
pub fn render(envelope_to: &[String], raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mail = Part::parse(&text);
    let subject = mail.header("Subject").unwrap_or_default();
    let to = if envelope_to.is_empty() {
        mail.header("To").unwrap_or_default()
    } else {
        envelope_to.join(", ")
    };
    let body = mail.text();
    let mut out = String::from("──── mail ──────────────────────────────────────────\n");
    out.push_str(&format!("To:      {to}\nSubject: {subject}\n"));
    match sign_in_code(&subject, &body) {
        // The code mail says nothing else a person needs here.
        Some(code) => out.push_str(&format!("Code:    {code}\n")),
        None => {
            out.push('\n');
            for line in body.trim_end().lines() {
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
    }
    out.push_str("────────────────────────────────────────────────────");
    out
}

/// The 6-digit code of a sign-in mail (its subject speaks of a code).
pub fn sign_in_code(subject: &str, body: &str) -> Option<String> {
    if !subject.to_ascii_lowercase().contains("code") {
        return None;
    }
    [subject, body].into_iter().find_map(|text| {
        text.split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .map(str::to_owned)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_mail_shows_recipient_subject_and_code() {
        let raw = "From: <galaxy@localhost>\r\nTo: <alice@example.test>\r\n\
                   Subject: =?utf-8?Q?Your_Galaxy_sign-in_code:_654321?=\r\n\
                   Content-Type: text/plain; charset=\"utf-8\"\r\n\
                   Content-Transfer-Encoding: quoted-printable\r\n\r\n\
                   Your Galaxy sign-in code is 654321\r\n\r\nIt is valid for 10 min=\r\nutes.\r\n";
        let shown = render(&["alice@example.test".to_owned()], raw.as_bytes());
        assert!(shown.contains("To:      alice@example.test\n"), "{shown}");
        assert!(
            shown.contains("Subject: Your Galaxy sign-in code: 654321\n"),
            "{shown}"
        );
        assert!(shown.contains("\nCode:    654321\n"), "{shown}");
        assert!(!shown.contains('='), "no transfer encoding left: {shown}");
    }

    #[test]
    fn other_mails_show_their_decoded_text() {
        let raw = "To: <bob@example.test>\r\nSubject: Your game started\r\n\
                   Content-Transfer-Encoding: quoted-printable\r\n\r\nSend y=\r\nour orders.\r\n";
        let shown = render(&[], raw.as_bytes());
        assert!(shown.contains("To:      <bob@example.test>\n"), "{shown}");
        assert!(shown.contains("\nSend your orders.\n"), "{shown}");
        assert!(!shown.contains("Code:"), "{shown}");
    }
}
