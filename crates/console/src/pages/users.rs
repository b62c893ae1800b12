//! Accounts: list with filters, detail (country counters, sessions), block,
//! unblock, revoke sessions.

use actix_web::{HttpResponse, web};
use galaxy_core::Validator;
use galaxy_user::{AccountFilter, AccountStatus};
use maud::html;
use uuid::Uuid;

use crate::Console;
use crate::error::{ConsoleError, OrPage};
use crate::html;
use crate::pages::{CsrfForm, ListQuery, audited};
use crate::session::ConsoleAdmin;

pub async fn list(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let page = q.page()?;
    let status = match ListQuery::filter(&q.status) {
        None => None,
        Some(s) => Some(AccountStatus::parse(s).ok_or_else(|| {
            ConsoleError::bad_request("status: must be one of active, blocked, deleted")
        })?),
    };
    let text = ListQuery::filter(&q.q);
    if let Some(t) = text {
        Validator::new().text("q", t, 1, 254).finish().html()?;
    }
    let filter = AccountFilter {
        q: text.map(str::to_owned),
        status,
    };
    let list = console.admin.list_users(&filter, page);
    let body = html! {
        form.filters method="get" action="/console/users" {
            label { "Email or name contains " input type="text" name="q" value=(text.unwrap_or("")); }
            " "
            label { "Status " select name="status" {
                option value="" { "every status" }
                @for s in ["active", "blocked", "deleted"] { option value=(s) selected[status.map(AccountStatus::as_str) == Some(s)] { (s) } }
            } }
            " " button type="submit" { "Filter" }
        }
        table {
            tr { th { "Account" } th { "Display name" } th { "Email" } th { "Country" } th { "Status" } th { "Created" } }
            @for a in &list.items {
                tr {
                    td.mono { a href={ "/console/users/" (a.id) } { (a.id) } }
                    td { (a.display_name) }
                    td { (a.email) }
                    td { (a.declared_country.as_deref().unwrap_or("")) }
                    td class={ "status-" (a.status.as_str()) } { (a.status.as_str()) }
                    td { (html::time(&a.created_at)) }
                }
            }
        }
        (html::pager("/console/users", &[("q", text.unwrap_or("")), ("status", status.map_or("", AccountStatus::as_str))], &list))
    };
    Ok(html::page(&admin, "Users", body))
}

pub async fn detail(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ConsoleError> {
    let (a, counters, sessions) = console.admin.user_detail(id.into_inner()).await.html()?;
    let base = format!("/console/users/{}", a.id);
    let body = html! {
        table {
            tr { th { "Id" } td.mono { (a.id) } }
            tr { th { "Display name" } td #display-name { (a.display_name) } }
            tr { th { "Email" } td { (a.email) } }
            tr { th { "Declared country" } td { (a.declared_country.as_deref().unwrap_or("")) } }
            tr { th { "Status" } td class={ "status-" (a.status.as_str()) } #status { (a.status.as_str()) } }
            tr { th { "Created" } td { (html::time(&a.created_at)) } }
        }
        p {
            @if a.status == AccountStatus::Active { (html::action(&admin, &format!("{base}/block"), "Block")) }
            @if a.status == AccountStatus::Blocked { (html::action(&admin, &format!("{base}/unblock"), "Unblock")) }
            (html::action(&admin, &format!("{base}/revoke-sessions"), "Revoke sessions"))
        }
        h2 { "Country counters" }
        table {
            tr { th { "Country" } th { "Requests" } th { "First seen" } th { "Last seen" } }
            @for c in &counters {
                tr { td { (c.country) } td.num { (c.request_count) } td { (html::time(&c.first_seen_at)) } td { (html::time(&c.last_seen_at)) } }
            }
        }
        h2 { "Live sessions" }
        table {
            tr { th { "Session" } th { "Created" } th { "Last seen" } th { "Expires" } th { "Source IP" } th { "User agent" } }
            @for s in &sessions {
                tr {
                    td.mono { (s.id) } td { (html::time(&s.created_at)) } td { (html::time(&s.last_seen_at)) }
                    td { (html::time(&s.expires_at)) } td { (s.source_ip.as_deref().unwrap_or("")) }
                    td { (s.user_agent.as_deref().unwrap_or("")) }
                }
            }
        }
    };
    Ok(html::page(&admin, "User", body))
}

pub async fn operate(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    path: web::Path<(Uuid, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    admin.check(&form.csrf)?;
    let (id, op) = path.into_inner();
    let target = format!("account_id={id}");
    let back = format!("/console/users/{id}");
    let message = match op.as_str() {
        "block" | "unblock" => {
            let blocked = op == "block";
            let action = if blocked {
                "user.block"
            } else {
                "user.unblock"
            };
            let result = console.admin.set_blocked(id, blocked).await.html();
            let a = audited(&console, &admin, action, Some(&target), result).await?;
            format!("Account {} is now {}.", a.id, a.status.as_str())
        }
        "revoke-sessions" => {
            let result = console.admin.revoke_user_sessions(id).await.html();
            let n = audited(
                &console,
                &admin,
                "user.revoke_sessions",
                Some(&target),
                result,
            )
            .await?;
            format!("Revoked {n} session(s) of account {id}.")
        }
        _ => return Err(ConsoleError::not_found("no such user action")),
    };
    Ok(html::done(&admin, &message, &back))
}
