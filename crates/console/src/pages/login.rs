//! Sign-in, sign-out and password change: the admin login service's calls
//! (same limits, same argon2) with the token kept in the session cookie.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use galaxy_core::{SourceIp, Validator};
use maud::{Markup, html};
use serde::Deserialize;

use crate::Console;
use crate::error::{ConsoleError, OrPage};
use crate::html;
use crate::pages::{CsrfForm, audited};
use crate::session::{self, ConsoleAdmin, LOGIN_COOKIE, SESSION_COOKIE};

const MAX_PASSWORD: usize = 1024;
/// The login form's double-submit cookie lives as long as a form may sit open.
const LOGIN_FORM_TTL: i64 = 3600;

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

fn login_page(csrf: &str, username: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.error { (e) } }
        form.box method="post" action="/console/login" {
            input type="hidden" name="csrf" value=(csrf);
            label { "Username " input type="text" name="username" value=(username) autocomplete="username" required; }
            label { "Password " input type="password" name="password" autocomplete="current-password" required; }
            button type="submit" { "Sign in" }
        }
    }
}

fn login_answer(
    console: &Console,
    status: StatusCode,
    username: &str,
    error: Option<&str>,
) -> HttpResponse {
    let csrf = uuid::Uuid::new_v4().simple().to_string();
    let mut res = html::public_page(status, "Sign in", login_page(&csrf, username, error));
    if let Ok(v) = header::HeaderValue::from_str(&console.cookies.set_cookie(
        LOGIN_COOKIE,
        &csrf,
        LOGIN_FORM_TTL,
    )) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

pub async fn form(console: web::Data<Console>, admin: Option<ConsoleAdmin>) -> HttpResponse {
    if admin.is_some() {
        return see_other("/console");
    }
    login_answer(&console, StatusCode::OK, "", None)
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

pub async fn submit(
    req: HttpRequest,
    console: web::Data<Console>,
    ip: SourceIp,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, ConsoleError> {
    let expected = session::cookie(&req, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !session::same(&expected, &form.csrf) {
        tracing::warn!("console login refused: CSRF value mismatch");
        return Err(ConsoleError::forbidden(
            "this sign-in form has expired; reload the page and try again",
        ));
    }
    let valid = Validator::new()
        .text("username", &form.username, 1, 64)
        .check(
            (1..=MAX_PASSWORD).contains(&form.password.chars().count()),
            "password",
            format!("must be 1 to {MAX_PASSWORD} characters"),
        )
        .finish();
    if valid.is_err() {
        return Ok(login_answer(
            &console,
            StatusCode::BAD_REQUEST,
            &form.username,
            Some("enter a username (1–64 characters) and a password"),
        ));
    }
    match console
        .admin
        .login(&form.username, &form.password, ip.0)
        .await
    {
        Ok((token, expires_at)) => {
            let max_age = (expires_at - chrono::Utc::now()).num_seconds().max(1);
            let mut res = see_other("/console");
            for c in [
                console.cookies.set_cookie(SESSION_COOKIE, &token, max_age),
                console.cookies.set_cookie(LOGIN_COOKIE, "", 0),
            ] {
                if let Ok(v) = header::HeaderValue::from_str(&c) {
                    res.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            Ok(res)
        }
        Err(e) => {
            let ConsoleError::Page { status, detail, .. } = ConsoleError::api(e) else {
                return Err(ConsoleError::SignedOut);
            };
            Ok(login_answer(
                &console,
                status,
                &form.username,
                Some(&detail),
            ))
        }
    }
}

pub async fn logout(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    admin.check(&form.csrf)?;
    let target = admin.principal.admin_id.to_string();
    let done = console.admin.logout(&admin.principal).await.html();
    audited(&console, &admin, "admin.logout", Some(&target), done).await?;
    let mut res = see_other("/console/login");
    if let Ok(v) = header::HeaderValue::from_str(&console.cookies.set_cookie(SESSION_COOKIE, "", 0))
    {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

fn password_body(admin: &ConsoleAdmin) -> Markup {
    html! {
        p { "Changing the password signs out every other session of " (admin.principal.username) "." }
        form.box method="post" action="/console/password" {
            input type="hidden" name="csrf" value=(admin.csrf);
            label { "Current password " input type="password" name="current_password" autocomplete="current-password" required; }
            label { "New password (at least 12 characters) " input type="password" name="new_password" autocomplete="new-password" minlength="12" required; }
            button type="submit" { "Change password" }
        }
    }
}

pub async fn password_form(admin: ConsoleAdmin) -> HttpResponse {
    html::page(&admin, "Change password", password_body(&admin))
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

pub async fn change_password(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, ConsoleError> {
    admin.check(&form.csrf)?;
    let target = admin.principal.admin_id.to_string();
    let result = async {
        Validator::new()
            .check(
                (12..=MAX_PASSWORD).contains(&form.new_password.chars().count()),
                "new_password",
                format!("must be 12 to {MAX_PASSWORD} characters"),
            )
            .check(
                form.current_password.chars().count() <= MAX_PASSWORD,
                "current_password",
                "too long",
            )
            .finish()
            .html()?;
        console
            .admin
            .change_password(&admin.principal, &form.current_password, &form.new_password)
            .await
            .html()
    }
    .await;
    audited(&console, &admin, "admin.password", Some(&target), result).await?;
    Ok(html::done(
        &admin,
        "Password changed; your other sessions are signed out.",
        "/console",
    ))
}
