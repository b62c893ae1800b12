//! Administrators (list, create) and the audit log.

use actix_web::{HttpResponse, web};
use galaxy_core::Validator;
use maud::html;
use serde::Deserialize;

use crate::Console;
use crate::error::{ConsoleError, OrPage};
use crate::html;
use crate::pages::{ListQuery, audited};
use crate::session::ConsoleAdmin;

const MAX_PASSWORD: usize = 1024;

pub async fn list(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let list = console.admin.list_admins(q.page()?);
    let body = html! {
        table {
            tr { th { "Admin" } th { "Username" } th { "Created" } th { "Password changed" } th { "Disabled" } }
            @for a in &list.items {
                tr {
                    td.mono { (a.id) } td { (a.username) } td { (html::time(&a.created_at)) }
                    td { (html::time(&a.password_changed_at)) } td { (html::opt_time(&a.disabled_at)) }
                }
            }
        }
        (html::pager("/console/admins", &[], &list))
        h2 { "Create an admin" }
        form.box method="post" action="/console/admins" {
            input type="hidden" name="csrf" value=(admin.csrf);
            label { "Username (3–64 of a-z 0-9 . _ -) " input type="text" name="username" required; }
            label { "Password (at least 12 characters) " input type="password" name="password" autocomplete="new-password" minlength="12" required; }
            button type="submit" { "Create" }
        }
    };
    Ok(html::page(&admin, "Admins", body))
}

#[derive(Debug, Deserialize)]
pub struct NewAdminForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

pub async fn create(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    form: web::Form<NewAdminForm>,
) -> Result<HttpResponse, ConsoleError> {
    admin.check(&form.csrf)?;
    let u = form.username.as_str();
    let result = async {
        // The admin API's rules for a new admin.
        Validator::new()
            .check(
                (3..=64).contains(&u.len())
                    && u.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                    && u.bytes().all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || matches!(b, b'.' | b'_' | b'-')
                    }),
                "username",
                "must be 3 to 64 of a-z 0-9 . _ - starting with a letter or digit",
            )
            .check(
                (12..=MAX_PASSWORD).contains(&form.password.chars().count()),
                "password",
                format!("must be 12 to {MAX_PASSWORD} characters"),
            )
            .finish()
            .html()?;
        console.admin.create_admin(u, &form.password).await.html()
    }
    .await;
    let target = format!("username={u}");
    let created = audited(&console, &admin, "admin.create", Some(&target), result).await?;
    Ok(html::done(
        &admin,
        &format!("Admin {} created ({}).", created.username, created.id),
        "/console/admins",
    ))
}

pub async fn audit(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let list = console.audit.list(q.page()?).await.html()?;
    let body = html! {
        table {
            tr { th { "When" } th { "Admin" } th { "Channel" } th { "Action" } th { "Target" } th { "Outcome" } }
            @for e in &list.items {
                tr {
                    td { (html::time(&e.at)) }
                    td { (e.admin_username) " " span.mono { (e.admin_id) } }
                    td { (e.channel) }
                    td.mono { (e.action) }
                    td.mono { (e.target.as_deref().unwrap_or("")) }
                    td { (e.outcome) }
                }
            }
        }
        (html::pager("/console/audit", &[], &list))
    };
    Ok(html::page(&admin, "Audit log", body))
}
