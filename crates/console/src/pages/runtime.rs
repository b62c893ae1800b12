//! Runtime records and operations (start, stop, force-next-turn, patch),
//! games, and engine versions.

use actix_web::{HttpResponse, web};
use galaxy_core::percent::encode_component;
use galaxy_core::{ApiError, Paged};
use galaxy_lobby::GameStatus;
use galaxy_runtime::{Actor, EngineVersionStatus};
use maud::html;
use serde::Deserialize;
use uuid::Uuid;

use crate::Console;
use crate::error::{ConsoleError, OrPage};
use crate::html;
use crate::pages::{ListQuery, audited};
use crate::session::ConsoleAdmin;

/// The admin API's rules for a version name and an image reference.
fn valid_version(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn valid_image(i: &str) -> bool {
    (1..=255).contains(&i.len()) && i.bytes().all(|b| b.is_ascii_graphic())
}

pub async fn records(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let page = q.page()?;
    let all = console.runtime.records();
    let list = Paged::new(
        page.slice(&all),
        page,
        i64::try_from(all.len()).unwrap_or(i64::MAX),
    );
    let body = html! {
        table {
            tr { th { "Game" } th { "Desired" } th { "Observed" } th { "Version" } th { "Turn" } th { "Next turn" } th { "Last error" } }
            @for r in &list.items {
                tr {
                    td.mono { a href={ "/console/runtime/" (r.game_id) } { (r.game_id) } }
                    td { (r.desired_state) }
                    td class={ "status-" (r.observed_state) } { (r.observed_state) }
                    td { (r.engine_version) }
                    td.num { (r.current_turn) }
                    td { (html::opt_time(&r.next_turn_at)) }
                    td { (r.last_error.as_deref().unwrap_or("")) }
                }
            }
        }
        (html::pager("/console/runtime", &[], &list))
    };
    Ok(html::page(&admin, "Runtime", body))
}

pub async fn record(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    game_id: web::Path<Uuid>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let game_id = game_id.into_inner();
    let r = console
        .runtime
        .record(game_id)
        .ok_or_else(|| ConsoleError::not_found("no runtime record for this game"))?;
    let ops = console
        .runtime
        .operations(game_id, q.page()?)
        .await
        .html()?;
    let game = console.lobby.game_view(game_id);
    let versions = console.runtime.versions();
    let base = format!("/console/runtime/{game_id}");
    let body = html! {
        table {
            tr { th { "Game" } td { span.mono { (r.game_id) } @if let Some(g) = &game { " — " (g.name) } } }
            tr { th { "Desired" } td { (r.desired_state) } }
            tr { th { "Observed" } td class={ "status-" (r.observed_state) } #observed { (r.observed_state) } }
            tr { th { "Container" } td.mono { (r.container_name) " " (r.container_id.as_deref().unwrap_or("")) } }
            tr { th { "Engine version" } td { (r.engine_version) " (" (r.image) ")" } }
            tr { th { "Endpoint" } td.mono { (r.endpoint.as_deref().unwrap_or("")) } }
            tr { th { "Current turn" } td #turn { (r.current_turn) } }
            tr { th { "Next turn" } td { (html::opt_time(&r.next_turn_at)) } }
            tr { th { "Force next turn set" } td { (r.skip_next_wait) } }
            tr { th { "Last error" } td { (r.last_error.as_deref().unwrap_or("")) } }
            tr { th { "Updated" } td { (html::time(&r.updated_at)) } }
        }
        p {
            (html::action(&admin, &format!("{base}/start"), "Start"))
            (html::action(&admin, &format!("{base}/stop"), "Stop"))
            (html::action(&admin, &format!("{base}/force-next-turn"), "Force next turn"))
        }
        form.box method="post" action={ (base) "/patch" } {
            input type="hidden" name="csrf" value=(admin.csrf);
            label { "Patch to engine version " select name="engine_version" {
                @for v in &versions { option value=(v.version) selected[v.version == r.engine_version] { (v.version) " (" (v.status) ")" } }
            } }
            button type="submit" { "Patch" }
        }
        h2 { "Operations" }
        table {
            tr { th { "Operation" } th { "Actor" } th { "Started" } th { "Finished" } th { "Outcome" } th { "Error" } }
            @for o in &ops.items {
                tr {
                    td { (o.operation) } td.mono { (o.actor) }
                    td { (html::time(&o.started_at)) } td { (html::opt_time(&o.finished_at)) }
                    td class={ "status-" (o.outcome) } { (o.outcome) }
                    td { (o.error_message.as_deref().unwrap_or("")) }
                }
            }
        }
        (html::pager(&base, &[], &ops))
    };
    Ok(html::page(&admin, "Runtime record", body))
}

#[derive(Debug, Deserialize)]
pub struct OperationForm {
    #[serde(default)]
    csrf: String,
    engine_version: Option<String>,
}

pub async fn operate(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    path: web::Path<(Uuid, String)>,
    form: web::Form<OperationForm>,
) -> Result<HttpResponse, ConsoleError> {
    admin.check(&form.csrf)?;
    let (game_id, op) = path.into_inner();
    let actor = Actor::Admin(admin.principal.admin_id);
    let rt = &console.runtime;
    let (action, result) = match op.as_str() {
        "start" => (
            "runtime.start",
            rt.restart_game(game_id, actor).await.html(),
        ),
        "stop" => ("runtime.stop", rt.stop_game(game_id, actor).await.html()),
        "force-next-turn" => (
            "runtime.force_next_turn",
            rt.force_next_turn(game_id, actor).await.html(),
        ),
        "patch" => {
            let v = form.engine_version.as_deref().unwrap_or("");
            let result = if !valid_version(v) {
                Err(ConsoleError::bad_request(
                    "engine_version: not a valid version",
                ))
            } else if rt.version(v).is_none() {
                Err(ConsoleError::api(ApiError::conflict(
                    "unknown_engine_version",
                    "no engine version of this name is registered",
                )))
            } else {
                rt.patch_game(game_id, v, actor).await.html()
            };
            ("runtime.patch", result)
        }
        _ => return Err(ConsoleError::not_found("no such runtime operation")),
    };
    let target = match &form.engine_version {
        Some(v) if action == "runtime.patch" => format!("game_id={game_id} engine_version={v}"),
        _ => format!("game_id={game_id}"),
    };
    let op_id = audited(&console, &admin, action, Some(&target), result).await?;
    Ok(html::done(
        &admin,
        &format!("{action} accepted for game {game_id} (operation {op_id})."),
        &format!("/console/runtime/{game_id}"),
    ))
}

pub async fn games(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let status = match ListQuery::filter(&q.status) {
        None => None,
        Some(s) => Some(s.parse::<GameStatus>().map_err(|_| {
            ConsoleError::bad_request(
                "status: must be one of open, starting, running, paused, finished, cancelled",
            )
        })?),
    };
    let list = console.lobby.list_games(status, q.page()?);
    let body = html! {
        form.filters method="get" action="/console/games" {
            label { "Status " select name="status" {
                option value="" { "every status" }
                @for s in GameStatus::ALL { option value=(s.as_str()) selected[status == Some(s)] { (s.as_str()) } }
            } }
            " " button type="submit" { "Filter" }
        }
        table {
            tr { th { "Game" } th { "Name" } th { "Status" } th { "Version" } th { "Players" } th { "Turn" } th { "Owner" } th { "Created" } }
            @for g in &list.items {
                tr {
                    td.mono { a href={ "/console/runtime/" (g.id) } { (g.id) } }
                    td { (g.name) }
                    td class={ "status-" (g.status) } { (g.status) }
                    td { (g.engine_version) }
                    td.num { (g.members.len()) " / " (g.max_players) }
                    td.num { (g.current_turn.map(|t| t.to_string()).unwrap_or_default()) }
                    td.mono { a href={ "/console/users/" (g.owner_id) } { (g.owner_id) } }
                    td { (html::time(&g.created_at)) }
                }
            }
        }
        (html::pager("/console/games", &[("status", status.map_or("", GameStatus::as_str))], &list))
    };
    Ok(html::page(&admin, "Games", body))
}

pub async fn versions(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let page = q.page()?;
    let all = console.runtime.versions();
    let list = Paged::new(
        page.slice(&all),
        page,
        i64::try_from(all.len()).unwrap_or(i64::MAX),
    );
    let statuses = ["active", "deprecated", "disabled"];
    let body = html! {
        table {
            tr { th { "Version" } th { "Image" } th { "Status" } th { "Created" } th { "Change status" } }
            @for v in &list.items {
                tr {
                    td { (v.version) } td.mono { (v.image) }
                    td class={ "status-" (v.status) } { (v.status) }
                    td { (html::time(&v.created_at)) }
                    td {
                        form.inline method="post" action={ "/console/engine-versions/" (encode_component(&v.version)) "/status" } {
                            input type="hidden" name="csrf" value=(admin.csrf);
                            select name="status" { @for s in statuses { option value=(s) selected[v.status.as_str() == s] { (s) } } }
                            " " button type="submit" { "Set" }
                        }
                    }
                }
            }
        }
        (html::pager("/console/engine-versions", &[], &list))
        h2 { "Register an engine version" }
        form.box method="post" action="/console/engine-versions" {
            input type="hidden" name="csrf" value=(admin.csrf);
            label { "Version " input type="text" name="version" required; }
            label { "Image " input type="text" name="image" required; }
            button type="submit" { "Create" }
        }
    };
    Ok(html::page(&admin, "Engine versions", body))
}

#[derive(Debug, Deserialize)]
pub struct NewVersionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    image: String,
}

pub async fn create_version(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    form: web::Form<NewVersionForm>,
) -> Result<HttpResponse, ConsoleError> {
    admin.check(&form.csrf)?;
    let result = if !valid_version(&form.version) {
        Err(ConsoleError::bad_request(
            "version: must be 1-64 characters of letters, digits, '.', '_' or '-'",
        ))
    } else if !valid_image(&form.image) {
        Err(ConsoleError::bad_request(
            "image: must be 1-255 characters without spaces",
        ))
    } else {
        console
            .runtime
            .create_version(&form.version, &form.image)
            .await
            .html()
    };
    let target = format!("version={}", form.version);
    let v = audited(
        &console,
        &admin,
        "engine_version.create",
        Some(&target),
        result,
    )
    .await?;
    Ok(html::done(
        &admin,
        &format!(
            "Engine version {} registered ({}, {}).",
            v.version, v.image, v.status
        ),
        "/console/engine-versions",
    ))
}

#[derive(Debug, Deserialize)]
pub struct StatusForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    status: String,
}

pub async fn version_status(
    console: web::Data<Console>,
    admin: ConsoleAdmin,
    version: web::Path<String>,
    form: web::Form<StatusForm>,
) -> Result<HttpResponse, ConsoleError> {
    admin.check(&form.csrf)?;
    let version = version.into_inner();
    let result = match EngineVersionStatus::parse(&form.status) {
        None => Err(ConsoleError::bad_request(
            "status: must be one of active, deprecated, disabled",
        )),
        Some(s) => console.runtime.set_version_status(&version, s).await.html(),
    };
    let target = format!("version={version} status={}", form.status);
    let v = audited(
        &console,
        &admin,
        "engine_version.status",
        Some(&target),
        result,
    )
    .await?;
    Ok(html::done(
        &admin,
        &format!("Engine version {} is now {}.", v.version, v.status),
        "/console/engine-versions",
    ))
}
