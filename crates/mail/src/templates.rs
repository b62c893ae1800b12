//! Per-kind mail templates. A kind renders from a JSON payload so modules
//! (and the notification catalog) can plug in kinds without the mail crate
//! knowing their types.

use serde_json::Value;

use crate::outbox::NewMail;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown mail kind {0:?}")]
    UnknownKind(String),
    #[error("mail kind {kind}: payload field {field:?} is missing or has the wrong type")]
    BadPayload { kind: String, field: &'static str },
}

pub const LOGIN_CODE: &str = "auth.login_code";

/// The login-code mail. `ttl_minutes` is how long the code stays valid.
pub fn login_code(to: &str, code: &str, ttl_minutes: u64) -> NewMail {
    NewMail {
        kind: LOGIN_CODE.to_owned(),
        to: to.to_owned(),
        subject: format!("Your Galaxy sign-in code: {code}"),
        body_text: format!(
            "Your Galaxy sign-in code is {code}\n\n\
             It is valid for {ttl_minutes} minutes and can be used once.\n\
             If you did not ask for it, ignore this mail.\n"
        ),
        body_html: None,
        notification_route_id: None,
        origin_request_id: None,
        secret_until: None,
    }
}

/// Renders `kind` for `to` from `payload`.
pub fn render(kind: &str, to: &str, payload: &Value) -> Result<NewMail, TemplateError> {
    let field = |name: &'static str| {
        payload
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| TemplateError::BadPayload {
                kind: kind.to_owned(),
                field: name,
            })
    };
    match kind {
        LOGIN_CODE => {
            let ttl = payload
                .get("ttl_minutes")
                .and_then(Value::as_u64)
                .ok_or_else(|| TemplateError::BadPayload {
                    kind: kind.to_owned(),
                    field: "ttl_minutes",
                })?;
            Ok(login_code(to, field("code")?, ttl))
        }
        other => Err(TemplateError::UnknownKind(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_code_carries_the_code() {
        let m = render(
            LOGIN_CODE,
            "a@b.test",
            &serde_json::json!({"code": "123456", "ttl_minutes": 10}),
        )
        .unwrap();
        assert!(m.subject.contains("123456"));
        assert!(m.body_text.contains("123456"));
        assert!(m.body_text.contains("10 minutes"));
        assert_eq!(m.to, "a@b.test");
        assert!(matches!(
            render("nope", "a@b.test", &Value::Null),
            Err(TemplateError::UnknownKind(_))
        ));
        assert!(matches!(
            render(LOGIN_CODE, "a@b.test", &serde_json::json!({"code": 5})),
            Err(TemplateError::BadPayload { .. })
        ));
    }
}
