//! Page frame and small rendering helpers (error pages: `error`). Every value reaches
//! the page through maud, which escapes it; nothing is inserted raw.

use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};
use chrono::{DateTime, Utc};
use galaxy_core::Paged;
use galaxy_core::percent::encode_component;
use maud::{DOCTYPE, Markup, html};

use crate::session::ConsoleAdmin;

pub const STYLESHEET: &str = include_str!("console.css");

/// No scripts, no frames, no foreign origins: even a rendering mistake could
/// not run a script.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const NAV: &[(&str, &str)] = &[
    ("/console", "Dashboard"),
    ("/console/mail/deliveries", "Mail"),
    ("/console/mail/dead-letters", "Dead letters"),
    ("/console/notifications/intents", "Intents"),
    ("/console/notifications/routes", "Routes"),
    ("/console/runtime", "Runtime"),
    ("/console/games", "Games"),
    ("/console/users", "Users"),
    ("/console/engine-versions", "Engine versions"),
    ("/console/admins", "Admins"),
    ("/console/audit", "Audit"),
    ("/console/password", "Password"),
];

fn frame(admin: Option<&ConsoleAdmin>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Galaxy console" }
                link rel="stylesheet" href="/console/console.css";
            }
            body {
                header {
                    strong { "Galaxy console" }
                    @if let Some(a) = admin {
                        @for (href, label) in NAV { a href=(href) { (label) } }
                        span.who { "signed in as " (a.principal.username) }
                        form method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(a.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A page answer: HTML, never cached, under the console's CSP.
pub fn respond(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(markup.into_string())
}

pub fn page(admin: &ConsoleAdmin, title: &str, body: Markup) -> HttpResponse {
    respond(StatusCode::OK, frame(Some(admin), title, body))
}

pub fn public_page(status: StatusCode, title: &str, body: Markup) -> HttpResponse {
    respond(status, frame(None, title, body))
}

/// What an action did, with the way back (the answer to every action form).
pub fn done(admin: &ConsoleAdmin, message: &str, back: &str) -> HttpResponse {
    page(
        admin,
        "Done",
        html! {
            p.flash { (message) }
            p { a href=(back) { "Back" } }
        },
    )
}

pub fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn opt_time(t: &Option<DateTime<Utc>>) -> String {
    t.as_ref().map(time).unwrap_or_default()
}

/// "Page N of M" with previous/next links keeping `filters` (already
/// `k=v&` encoded pairs).
pub fn pager<T>(path: &str, filters: &[(&str, &str)], paged: &Paged<T>) -> Markup {
    let pages = if paged.total <= 0 {
        1
    } else {
        (paged.total + i64::from(paged.page_size) - 1) / i64::from(paged.page_size)
    };
    let link = |page: u32| {
        let mut q = format!("{path}?page={page}&page_size={}", paged.page_size);
        for (k, v) in filters.iter().filter(|(_, v)| !v.is_empty()) {
            q.push_str(&format!("&{k}={}", encode_component(v)));
        }
        q
    };
    html! {
        p.pager {
            "Page " (paged.page) " of " (pages) " · " (paged.total) " in all"
            @if paged.page > 1 { " · " a href=(link(paged.page - 1)) { "← previous" } }
            @if i64::from(paged.page) < pages { " · " a href=(link(paged.page + 1)) { "next →" } }
        }
    }
}

/// A one-button POST form with this session's CSRF value.
pub fn action(admin: &ConsoleAdmin, to: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(to) {
            input type="hidden" name="csrf" value=(admin.csrf);
            button type="submit" { (label) }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_are_escaped() {
        let hostile = "<img src=x onerror=alert(1)>";
        let out = maud::html! { td { (hostile) } }.into_string();
        assert_eq!(out, "<td>&lt;img src=x onerror=alert(1)&gt;</td>");
        assert_eq!(super::encode_component("a b&c"), "a%20b%26c");
    }
}
