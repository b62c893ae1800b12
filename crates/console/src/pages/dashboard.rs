//! `/console`: readiness, counts by status, latest failures.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use galaxy_core::{Page, Readiness};
use galaxy_lobby::GameStatus;
use maud::html;

use crate::Console;
use crate::error::{ConsoleError, OrPage};
use crate::html;
use crate::session::ConsoleAdmin;

const LATEST: Page = Page {
    page: 1,
    page_size: 5,
};
/// Only the total of these listings is read.
const COUNT_ONLY: Page = Page {
    page: 1,
    page_size: 1,
};

pub async fn show(
    console: web::Data<Console>,
    readiness: Option<web::Data<Readiness>>,
    admin: ConsoleAdmin,
) -> Result<HttpResponse, ConsoleError> {
    let report = match &readiness {
        Some(r) => Some(r.report().await),
        None => None,
    };
    let mail = console.mail.status_counts().await.html()?;
    let mut routes = Vec::new();
    for status in galaxy_notification::route_statuses() {
        let n = console
            .notifications
            .routes(Some(status), COUNT_ONLY)
            .await
            .html()?
            .total;
        routes.push((*status, n));
    }
    let records = console.runtime.records();
    let mut observed: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &records {
        *observed.entry(r.observed_state.as_str()).or_default() += 1;
    }
    let games: Vec<(&str, i64)> = GameStatus::ALL
        .iter()
        .map(|s| {
            (
                s.as_str(),
                console.lobby.list_games(Some(*s), COUNT_ONLY).total,
            )
        })
        .collect();
    let dead_mail = console.mail.deliveries(true, LATEST).await.html()?;
    let dead_routes = console
        .notifications
        .routes(Some("dead_lettered"), LATEST)
        .await
        .html()?;
    let failing: Vec<_> = records
        .iter()
        .filter(|r| r.last_error.is_some() || r.observed_state.as_str() == "failed")
        .take(5)
        .collect();
    let body = html! {
        div.cards {
            section {
                h2 { "Readiness" }
                @match &report {
                    Some(r) => {
                        p class=(if r.ready { "ok" } else { "bad" }) { (if r.ready { "ready" } else { "not ready" }) }
                        table { @for (name, state) in &r.checks { tr { td { (name) } td class=(if state == "ok" { "ok" } else { "bad" }) { (state) } } } }
                    }
                    None => p { "no readiness report registered" }
                }
            }
            section {
                h2 { "Mail" }
                table {
                    tr { td { "pending" } td.num { (mail.pending) } }
                    tr { td { "retrying" } td.num { (mail.retrying) } }
                    tr { td { "sent" } td.num { (mail.sent) } }
                    tr { td { a href="/console/mail/dead-letters" { "dead_lettered" } } td.num { (mail.dead_lettered) } }
                }
            }
            section {
                h2 { "Notification routes" }
                table { @for (s, n) in &routes { tr { td { a href={ "/console/notifications/routes?status=" (s) } { (s) } } td.num { (n) } } } }
            }
            section {
                h2 { "Runtime" }
                table {
                    @for (s, n) in &observed { tr { td { (s) } td.num { (n) } } }
                    @if observed.is_empty() { tr { td { "no engine containers" } } }
                }
            }
            section {
                h2 { "Games" }
                table { @for (s, n) in &games { tr { td { a href={ "/console/games?status=" (s) } { (s) } } td.num { (n) } } } }
            }
        }
        h2 { "Latest dead-lettered mail" }
        table {
            tr { th { "Delivery" } th { "Kind" } th { "To" } th { "Last error" } th { "Updated" } }
            @for d in &dead_mail.items {
                tr {
                    td.mono { a href={ "/console/mail/deliveries/" (d.id) } { (d.id) } }
                    td { (d.kind) } td { (d.to_address) }
                    td { (d.last_error.as_deref().unwrap_or("")) } td { (html::time(&d.updated_at)) }
                }
            }
        }
        h2 { "Latest dead-lettered routes" }
        table {
            tr { th { "Route" } th { "Channel" } th { "Last error" } th { "Updated" } }
            @for r in &dead_routes.items {
                tr {
                    td.mono { a href={ "/console/notifications/intents/" (r.intent_id) } { (r.id) } }
                    td { (r.channel) } td { (r.last_error.as_deref().unwrap_or("")) } td { (html::time(&r.updated_at)) }
                }
            }
        }
        h2 { "Engines with errors" }
        table {
            tr { th { "Game" } th { "Observed" } th { "Last error" } }
            @for r in &failing {
                tr {
                    td.mono { a href={ "/console/runtime/" (r.game_id) } { (r.game_id) } }
                    td class={ "status-" (r.observed_state) } { (r.observed_state) }
                    td { (r.last_error.as_deref().unwrap_or("")) }
                }
            }
        }
    };
    Ok(html::page(&admin, "Dashboard", body))
}
