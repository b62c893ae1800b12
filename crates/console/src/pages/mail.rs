//! Mail deliveries, their attempts, dead letters and resend.

use actix_web::{HttpResponse, web};
use galaxy_core::Paged;
use galaxy_mail::Delivery;
use maud::{Markup, html};
use uuid::Uuid;

use crate::Console;
use crate::error::{ConsoleError, OrPage};
use crate::html;
use crate::pages::{CsrfForm, ListQuery, audited};
use crate::session::ConsoleAdmin;

fn table(admin: &ConsoleAdmin, list: &Paged<Delivery>, path: &str) -> Markup {
    html! {
        table {
            tr { th { "Delivery" } th { "Kind" } th { "To" } th { "Status" } th { "Tries" } th { "Last error" } th { "Created" } th {} }
            @for d in &list.items {
                tr {
                    td.mono { a href={ "/console/mail/deliveries/" (d.id) } { (d.id) } }
                    td { (d.kind) }
                    td { (d.to_address) }
                    td class={ "status-" (d.status) } { (d.status) }
                    td.num { (d.cycle_attempts) }
                    td { (d.last_error.as_deref().unwrap_or("")) }
                    td { (html::time(&d.created_at)) }
                    td { @if d.status != "sent" { (html::action(admin, &format!("/console/mail/deliveries/{}/resend", d.id), "Resend")) } }
                }
            }
        }
        (html::pager(path, &[], list))
    }
}

pub async fn deliveries(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let list = console.mail.deliveries(false, q.page()?).await.html()?;
    Ok(html::page(
        &admin,
        "Mail deliveries",
        table(&admin, &list, "/console/mail/deliveries"),
    ))
}

pub async fn dead_letters(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let list = console.mail.deliveries(true, q.page()?).await.html()?;
    Ok(html::page(
        &admin,
        "Dead-lettered mail",
        table(&admin, &list, "/console/mail/dead-letters"),
    ))
}

pub async fn delivery(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    id: web::Path<Uuid>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let id = id.into_inner();
    let d = console.mail.delivery(id).await.html()?;
    let attempts = console.mail.attempts(id, q.page()?).await.html()?;
    let body = html! {
        table {
            tr { th { "Id" } td.mono { (d.id) } }
            tr { th { "Kind" } td { (d.kind) } }
            tr { th { "To" } td { (d.to_address) } }
            tr { th { "Status" } td class={ "status-" (d.status) } #status { (d.status) } }
            tr { th { "Tries this cycle" } td { (d.cycle_attempts) } }
            tr { th { "Next try" } td { (html::time(&d.next_attempt_at)) } }
            tr { th { "Last error" } td { (d.last_error.as_deref().unwrap_or("")) } }
            tr { th { "Notification route" } td.mono { (d.notification_route_id.map(|r| r.to_string()).unwrap_or_default()) } }
            tr { th { "Created" } td { (html::time(&d.created_at)) } }
            tr { th { "Sent" } td { (html::opt_time(&d.sent_at)) } }
        }
        @if d.status != "sent" { p { (html::action(&admin, &format!("/console/mail/deliveries/{}/resend", d.id), "Resend")) } }
        h2 { "Attempts" }
        table {
            tr { th { "#" } th { "Started" } th { "Finished" } th { "Outcome" } th { "SMTP code" } th { "Error" } }
            @for a in &attempts.items {
                tr {
                    td.num { (a.attempt_no) }
                    td { (html::time(&a.started_at)) }
                    td { (html::opt_time(&a.finished_at)) }
                    td { (a.outcome.as_deref().unwrap_or("in progress")) }
                    td.num { (a.smtp_code.map(|c| c.to_string()).unwrap_or_default()) }
                    td { (a.error.as_deref().unwrap_or("")) }
                }
            }
        }
        (html::pager(&format!("/console/mail/deliveries/{id}"), &[], &attempts))
    };
    Ok(html::page(&admin, "Mail delivery", body))
}

pub async fn resend(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    id: web::Path<Uuid>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    admin.check(&form.csrf)?;
    let id = id.into_inner();
    let target = format!("delivery_id={id}");
    let result = console.mail.resend(id).await.html();
    let d = audited(&console, &admin, "mail.resend", Some(&target), result).await?;
    Ok(html::done(
        &admin,
        &format!("Delivery {} re-armed: {}, due now.", d.id, d.status),
        &format!("/console/mail/deliveries/{}", d.id),
    ))
}
