//! Notification intents (with their routes), routes by status, route retry.

use actix_web::{HttpResponse, web};
use galaxy_notification::{RouteView, is_catalog_kind, route_statuses};
use maud::{Markup, html};
use uuid::Uuid;

use crate::Console;
use crate::error::{ConsoleError, OrPage};
use crate::html;
use crate::pages::{CsrfForm, ListQuery, audited};
use crate::session::ConsoleAdmin;

fn routes_table(admin: &ConsoleAdmin, routes: &[RouteView]) -> Markup {
    html! {
        table {
            tr { th { "Route" } th { "Intent" } th { "Channel" } th { "Recipient" } th { "Status" } th { "Tries" } th { "Last error" } th { "Updated" } th {} }
            @for r in routes {
                tr {
                    td.mono { (r.id) }
                    td.mono { a href={ "/console/notifications/intents/" (r.intent_id) } { (r.intent_id) } }
                    td { (r.channel) }
                    td {
                        @if let Some(a) = r.account_id { a.mono href={ "/console/users/" (a) } { (a) } }
                        @if let Some(addr) = &r.address { " " (addr) }
                    }
                    td class={ "status-" (r.status) } { (r.status) }
                    td.num { (r.attempts) }
                    td {
                        (r.last_error.as_deref().unwrap_or(""))
                        @if let Some(s) = &r.skip_reason { " (" (s) ")" }
                        @if let Some(d) = r.mail_delivery_id { " mail: " a.mono href={ "/console/mail/deliveries/" (d) } { (d) } }
                    }
                    td { (html::time(&r.updated_at)) }
                    td { @if r.status == "dead_lettered" && r.mail_delivery_id.is_none() {
                        (html::action(admin, &format!("/console/notifications/routes/{}/retry", r.id), "Retry"))
                    } }
                }
            }
        }
    }
}

pub async fn intents(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let kind = ListQuery::filter(&q.kind);
    if let Some(k) = kind
        && !is_catalog_kind(k)
    {
        return Err(ConsoleError::bad_request("kind: is not a catalog kind"));
    }
    let list = console
        .notifications
        .intents(kind, q.page()?)
        .await
        .html()?;
    let body = html! {
        form.filters method="get" action="/console/notifications/intents" {
            label { "Kind " select name="kind" {
                option value="" { "every kind" }
                @for spec in galaxy_notification::CATALOG {
                    option value=(spec.kind) selected[kind == Some(spec.kind)] { (spec.kind) }
                }
            } }
            " " button type="submit" { "Filter" }
        }
        table {
            tr { th { "Intent" } th { "Kind" } th { "Idempotency key" } th { "Payload" } th { "Created" } }
            @for i in &list.items {
                tr {
                    td.mono { a href={ "/console/notifications/intents/" (i.id) } { (i.id) } }
                    td { (i.kind) }
                    td.mono { (i.idempotency_key) }
                    td.mono { (i.payload.to_string()) }
                    td { (html::time(&i.created_at)) }
                }
            }
        }
        (html::pager("/console/notifications/intents", &[("kind", kind.unwrap_or(""))], &list))
    };
    Ok(html::page(&admin, "Notification intents", body))
}

pub async fn intent(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ConsoleError> {
    let i = console
        .notifications
        .intent_detail(id.into_inner())
        .await
        .html()?;
    let body = html! {
        table {
            tr { th { "Id" } td.mono { (i.id) } }
            tr { th { "Kind" } td { (i.kind) } }
            tr { th { "Idempotency key" } td.mono { (i.idempotency_key) } }
            tr { th { "Payload" } td.mono { (i.payload.to_string()) } }
            tr { th { "Created" } td { (html::time(&i.created_at)) } }
        }
        h2 { "Routes" }
        (routes_table(&admin, &i.routes))
    };
    Ok(html::page(&admin, "Notification intent", body))
}

pub async fn routes(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let status = ListQuery::filter(&q.status);
    if let Some(s) = status
        && !route_statuses().contains(&s)
    {
        return Err(ConsoleError::bad_request(format!(
            "status: must be one of {}",
            route_statuses().join(", ")
        )));
    }
    let list = console
        .notifications
        .routes(status, q.page()?)
        .await
        .html()?;
    let body = html! {
        form.filters method="get" action="/console/notifications/routes" {
            label { "Status " select name="status" {
                option value="" { "every status" }
                @for s in route_statuses() { option value=(s) selected[status == Some(*s)] { (s) } }
            } }
            " " button type="submit" { "Filter" }
        }
        (routes_table(&admin, &list.items))
        (html::pager("/console/notifications/routes", &[("status", status.unwrap_or(""))], &list))
    };
    Ok(html::page(&admin, "Notification routes", body))
}

pub async fn retry(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    id: web::Path<Uuid>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    admin.check(&form.csrf)?;
    let id = id.into_inner();
    let target = format!("route_id={id}");
    let result = console.notifications.retry_route(id).await.html();
    let r = audited(
        &console,
        &admin,
        "notification.route_retry",
        Some(&target),
        result,
    )
    .await?;
    Ok(html::done(
        &admin,
        &format!("Route {} re-armed: {}, attempts reset.", r.id, r.status),
        &format!("/console/notifications/intents/{}", r.intent_id),
    ))
}
