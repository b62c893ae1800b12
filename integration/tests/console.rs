//! The operator console over plain HTTP (a cookie jar, no JavaScript), as
//! a browser without scripts would use it: sign-in, CSRF refusals, bearer
//! tokens kept out, escaping, the audit log; then the same console in a
//! real headless Chromium over WebDriver (the browser tests at the end).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::Duration;

use galaxy_integration::api::{call, get, json_of, post, sign_in};
use galaxy_integration::{Backend, BackendBuilder};
use galaxy_testdb::TestDb;
use serde_json::{Value, json};

const PASSWORD: &str = "console-admin-password-0123";
const HOSTILE: &str = "<img src=x onerror=alert(1)>";
const ESCAPED: &str = "&lt;img src=x onerror=alert(1)&gt;";

async fn backend(db: &TestDb) -> Backend {
    let mut b = BackendBuilder::new(&db.dsn())
        .env("BACKEND_ADMIN_BOOTSTRAP_USER", "admin")
        .env("BACKEND_ADMIN_BOOTSTRAP_PASSWORD", PASSWORD)
        .env("BACKEND_CONSOLE_INSECURE_COOKIE", "true")
        .spawn();
    b.wait_ready(Duration::from_secs(60)).await;
    b
}

/// One browser: its own cookie jar, redirects not followed (they are checked).
struct Console<'a> {
    b: &'a Backend,
    http: reqwest::Client,
}

impl<'a> Console<'a> {
    fn new(b: &'a Backend) -> Self {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self { b, http }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(self.b.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        let html = r
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
        let body = r.text().await.unwrap();
        assert!(
            status == 303 || html,
            "{path} answers HTML: {status} {body}"
        );
        (status, body)
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.b.url(path))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Signs in through the login form; the session's CSRF value.
    async fn sign_in(&self, password: &str) -> String {
        let (status, page) = self.get("/console/login").await;
        assert_eq!(status, 200);
        let csrf = csrf_in(&page);
        let r = self
            .post(
                "/console/login",
                &[
                    ("csrf", &csrf),
                    ("username", "admin"),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        assert_eq!(r.headers()["location"], "/console");
        let (status, page) = self.get("/console").await;
        assert_eq!(status, 200, "{page}");
        csrf_in(&page)
    }
}

fn csrf_in(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

async fn admin_token(b: &Backend) -> String {
    let r = b
        .client
        .post(b.url("/api/v1/admin/auth/login"))
        .json(&json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    json_of(r, 200).await["token"].as_str().unwrap().to_owned()
}

async fn account_status(b: &Backend, admin: &str, id: &str) -> String {
    let r = get(b, &format!("/api/v1/admin/users/{id}"), admin).await;
    json_of(r, 200).await["status"].as_str().unwrap().to_owned()
}

async fn audit(b: &Backend, admin: &str) -> Vec<Value> {
    let r = get(b, "/api/v1/admin/audit?page_size=200", admin).await;
    json_of(r, 200).await["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_csrf_and_bearer_tokens() {
    let db = TestDb::new();
    let b = &backend(&db).await;
    let admin = admin_token(b).await;
    let (user_token, user_id) = sign_in(b, &db, "ann@example.test").await;

    // Signed out: pages send to the login, forms answer 403.
    let anon = Console::new(b);
    let r = anon.http.get(b.url("/console")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/login");

    // The login form's cookie and the session cookie carry the attributes.
    let r = anon.http.get(b.url("/console/login")).send().await.unwrap();
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"),
        "{set}"
    );
    let csrf = csrf_in(&r.text().await.unwrap());
    let r = anon
        .post(
            "/console/login",
            &[
                ("csrf", &csrf),
                ("username", "admin"),
                ("password", "wrong-password-0000"),
            ],
        )
        .await;
    assert_eq!(r.status(), 401);
    let page = r.text().await.unwrap();
    assert!(page.contains("wrong username or password"), "{page}");
    // A login form without its double-submit value is refused.
    let r = Console::new(b)
        .post(
            "/console/login",
            &[
                ("csrf", &csrf),
                ("username", "admin"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);

    let one = Console::new(b);
    let csrf_one = one.sign_in(PASSWORD).await;
    // Signed in, the login page sends to the dashboard.
    let r = one.http.get(b.url("/console/login")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let two = Console::new(b);
    let csrf_two = two.sign_in(PASSWORD).await;
    assert_ne!(csrf_one, csrf_two);

    // The admin API never accepts the console cookie.
    let r = one
        .http
        .get(b.url("/api/v1/admin/admins"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A user's bearer token never opens the console.
    let r = anon
        .http
        .get(b.url("/console/users"))
        .bearer_auth(&user_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = anon
        .http
        .post(b.url(&format!("/console/users/{user_id}/block")))
        .bearer_auth(&user_token)
        .form(&[("csrf", csrf_one.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // … nor does an admin's bearer token (only the cookie does).
    let r = anon
        .http
        .get(b.url("/console"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // Without the CSRF value, or with another session's: 403, nothing changes.
    let block = format!("/console/users/{user_id}/block");
    let r = one.post(&block, &[]).await;
    assert_eq!(r.status(), 403);
    assert!(
        r.text().await.unwrap().contains("<html"),
        "the 403 is a page"
    );
    let r = one.post(&block, &[("csrf", &csrf_two)]).await;
    assert_eq!(r.status(), 403);
    assert_eq!(account_status(b, &admin, &user_id).await, "active");

    // With it: blocked, and the player's token is refused.
    let r = one.post(&block, &[("csrf", &csrf_one)]).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("is now blocked"));
    assert_eq!(account_status(b, &admin, &user_id).await, "blocked");
    let r = get(b, "/api/v1/user/me", &user_token).await;
    assert_eq!(r.status(), 401);

    // A password change keeps this session and signs the other out.
    let new_password = "console-admin-password-4567";
    let r = one
        .post(
            "/console/password",
            &[
                ("csrf", &csrf_one),
                ("current_password", PASSWORD),
                ("new_password", new_password),
            ],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(one.get("/console").await.0, 200);
    assert_eq!(two.get("/console").await.0, 303);
    let r = two
        .post(
            &format!("/console/users/{user_id}/unblock"),
            &[("csrf", &csrf_two)],
        )
        .await;
    assert_eq!(r.status(), 403);

    // After logout the old session's forms are refused and change nothing.
    let r = one.post("/console/logout", &[("csrf", &csrf_one)]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/login");
    let r = one
        .post(
            &format!("/console/users/{user_id}/unblock"),
            &[("csrf", &csrf_one)],
        )
        .await;
    assert_eq!(r.status(), 403);
    let admin = {
        let r = b
            .client
            .post(b.url("/api/v1/admin/auth/login"))
            .json(&json!({"username": "admin", "password": new_password}))
            .send()
            .await
            .unwrap();
        json_of(r, 200).await["token"].as_str().unwrap().to_owned()
    };
    assert_eq!(account_status(b, &admin, &user_id).await, "blocked");

    // Each console action is in the audit log with its admin and target;
    // refused forms are not actions.
    let log = audit(b, &admin).await;
    let console: Vec<_> = log.iter().filter(|e| e["channel"] == "console").collect();
    let actions: Vec<&str> = console
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["admin.logout", "admin.password", "user.block"],
        "{log:?}"
    );
    let blocked = console[2];
    assert_eq!(blocked["admin_username"], "admin");
    assert_eq!(blocked["target"], format!("account_id={user_id}"));
    assert_eq!(blocked["outcome"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_renders_and_hostile_names_are_escaped() {
    let db = TestDb::new();
    let b = &backend(&db).await;
    let admin = admin_token(b).await;
    let (token, user_id) = sign_in(b, &db, "eve@example.test").await;
    let r = call(
        b,
        reqwest::Method::PATCH,
        "/api/v1/user/me",
        &token,
        Some(json!({ "display_name": HOSTILE })),
    )
    .await;
    json_of(r, 200).await;
    let r = post(
        b,
        "/api/v1/admin/engine-versions",
        &admin,
        Some(json!({"version": "1.0.0", "image": "galaxy/game:console-test"})),
    )
    .await;
    json_of(r, 201).await;
    let r = post(
        b,
        "/api/v1/lobby/games",
        &token,
        Some(json!({
            "name": HOSTILE, "race_name": "Vega", "min_players": 2, "max_players": 4,
            "turn_interval_seconds": 3600
        })),
    )
    .await;
    let game = json_of(r, 201).await;

    let c = Console::new(b);
    let csrf = c.sign_in(PASSWORD).await;
    for path in [
        "/console",
        "/console/mail/deliveries",
        "/console/mail/dead-letters",
        "/console/notifications/intents",
        "/console/notifications/routes?status=dead_lettered",
        "/console/runtime",
        "/console/games",
        "/console/games?status=open",
        "/console/users",
        "/console/users?q=eve&status=active",
        "/console/engine-versions",
        "/console/admins",
        "/console/audit",
        "/console/password",
        "/console/users?page=2&page_size=1",
    ] {
        let (status, page) = c.get(path).await;
        assert_eq!(status, 200, "{path}: {page}");
        assert!(
            page.contains(&csrf),
            "{path} carries the session's CSRF value"
        );
        assert!(!page.contains(HOSTILE), "{path} shows the name raw");
    }
    for path in ["/console/users", &format!("/console/users/{user_id}")] {
        let page = c.get(path).await.1;
        assert!(
            page.contains(ESCAPED),
            "{path} shows the display name as text"
        );
        assert!(!page.contains(HOSTILE));
    }
    let page = c.get("/console/games").await.1;
    assert!(page.contains(ESCAPED), "the game name as text");
    assert!(page.contains(game["id"].as_str().unwrap()));

    // Errors are pages too: bad id, bad filter, bad page, no such page.
    for (path, status) in [
        ("/console/users/not-a-uuid", 400),
        ("/console/users?status=nope", 400),
        ("/console/mail/deliveries?page=0", 400),
        ("/console/users/00000000-0000-0000-0000-000000000000", 404),
        ("/console/nothing-here", 404),
        ("/console/logout", 405),
    ] {
        let (got, page) = c.get(path).await;
        assert_eq!(got, status, "{path}: {page}");
        assert!(page.contains("<html"), "{path}");
    }

    // The console is not in the API document; the audit route is.
    let doc: Value = b.get_json("/api/v1/openapi.json").await;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.keys().all(|p| !p.starts_with("/console")));
    assert!(paths.contains_key("/api/v1/admin/audit"));

    // Console actions and API actions both land in the audit log.
    let r = c
        .post(
            "/console/engine-versions",
            &[
                ("csrf", &csrf),
                ("version", "1.1.0"),
                ("image", "galaxy/game:console-next"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = c
        .post(
            "/console/engine-versions/1.0.0/status",
            &[("csrf", &csrf), ("status", "deprecated")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = c
        .post(
            "/console/admins",
            &[
                ("csrf", &csrf),
                ("username", "second"),
                ("password", "second-admin-password"),
            ],
        )
        .await;
    assert!(r.text().await.unwrap().contains("Admin second created"));
    let r = c
        .post(
            &format!("/console/users/{user_id}/revoke-sessions"),
            &[("csrf", &csrf)],
        )
        .await;
    let page = r.text().await.unwrap();
    assert!(
        page.contains(&format!("session(s) of account {user_id}")),
        "{page}"
    );
    // A failing action is audited with its code.
    let r = c
        .post(
            "/console/admins",
            &[
                ("csrf", &csrf),
                ("username", "second"),
                ("password", "second-admin-password"),
            ],
        )
        .await;
    assert_eq!(r.status(), 409);
    let r = post(
        b,
        &format!("/api/v1/admin/users/{user_id}/block"),
        &admin,
        None,
    )
    .await;
    assert_eq!(r.status(), 200);

    let log = audit(b, &admin).await;
    let found = |channel: &str, action: &str, target: &str, outcome: &str| {
        log.iter().any(|e| {
            e["channel"] == channel
                && e["action"] == action
                && e["target"] == target
                && e["outcome"] == outcome
                && e["admin_username"] == "admin"
        })
    };
    assert!(
        found("console", "engine_version.create", "version=1.1.0", "ok"),
        "{log:?}"
    );
    assert!(
        found(
            "console",
            "engine_version.status",
            "version=1.0.0 status=deprecated",
            "ok"
        ),
        "{log:?}"
    );
    assert!(
        found("console", "admin.create", "username=second", "ok"),
        "{log:?}"
    );
    assert!(
        found(
            "console",
            "admin.create",
            "username=second",
            "username_taken"
        ),
        "{log:?}"
    );
    assert!(
        found(
            "console",
            "user.revoke_sessions",
            &format!("account_id={user_id}"),
            "ok"
        ),
        "{log:?}"
    );
    assert!(
        found(
            "api",
            "POST /api/v1/admin/users/{id}/block",
            &format!("id={user_id}"),
            "200"
        ),
        "{log:?}"
    );
    assert!(
        log.iter().any(|e| e["channel"] == "api"
            && e["action"] == "POST /api/v1/admin/engine-versions"
            && e["target"].is_null()
            && e["outcome"] == "201"),
        "an API action without path ids: {log:?}"
    );
    // The audit page lists them (escaped like everything else).
    let page = c.get("/console/audit").await.1;
    assert!(
        page.contains("user.revoke_sessions")
            && page.contains("POST /api/v1/admin/users/{id}/block")
    );
}

// ---- Browser tests: headless Chromium over WebDriver (chromedriver). ----

/// A chromedriver on a free port driving a headless Chromium with its own
/// profile; the process group it leads (driver and browser) is killed on drop.
struct Browser {
    driver: std::process::Child,
    profile: std::path::PathBuf,
    client: Option<fantoccini::Client>,
}

impl Browser {
    /// `None` (with a message) when Chromium is missing outside CI; under
    /// `CI=true` a missing browser fails the test.
    async fn start() -> Option<Self> {
        use std::os::unix::process::CommandExt;
        let have = |bin: &str| {
            std::process::Command::new(bin)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !have("chromedriver") || !have("chromium") {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "chromium and chromedriver are needed for the console browser tests (.ci/run installs them)"
            );
            eprintln!("SKIPPED: chromium/chromedriver missing (install chromium chromium-driver)");
            return None;
        }
        let port = galaxy_integration::free_port();
        let profile = std::env::temp_dir().join(format!(
            "galaxy-console-chromium-{}-{port}",
            std::process::id()
        ));
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let mut browser = Self {
            driver,
            profile,
            client: None,
        };
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-crash-reporter", "--disable-breakpad",
                         "--window-size=1280,900", format!("--user-data-dir={}", browser.profile.display())]
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match fantoccini::ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break browser.client = Some(c),
                Err(e) if std::time::Instant::now() > deadline => panic!("WebDriver session: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        Some(browser)
    }

    fn c(&self) -> &fantoccini::Client {
        self.client.as_ref().expect("session")
    }

    async fn open(&self, b: &Backend, path: &str) -> String {
        self.c().goto(&b.url(path)).await.unwrap();
        self.c().source().await.unwrap()
    }

    /// Clicks the submit button labelled `label` in the form posting to `action`.
    async fn press(&self, action: &str, label: &str) -> String {
        use fantoccini::Locator;
        let css = format!(r#"form[action="{action}"] button"#);
        let buttons = self.c().find_all(Locator::Css(&css)).await.unwrap();
        // The click returns before the browser has navigated: the answer is
        // read only once the page the button was on has gone stale.
        let before = self.c().find(Locator::Css("html")).await.unwrap();
        let mut pressed = false;
        for button in buttons {
            if button.text().await.unwrap() == label {
                button.click().await.unwrap();
                pressed = true;
                break;
            }
        }
        assert!(pressed, "no {label:?} button for {action}");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while before.tag_name().await.is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "{action}: no answer page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.c()
            .wait()
            .for_element(Locator::Css("main"))
            .await
            .expect("the answer page has loaded");
        self.c().source().await.unwrap()
    }

    async fn sign_in(&self, b: &Backend) {
        use fantoccini::Locator;
        self.open(b, "/console/login").await;
        let form = self.c().form(Locator::Css("form")).await.unwrap();
        form.set_by_name("username", "admin").await.unwrap();
        form.set_by_name("password", PASSWORD).await.unwrap();
        form.submit().await.unwrap();
        self.c()
            .wait()
            .for_element(Locator::Css("span.who"))
            .await
            .expect("signed in");
    }

    /// A PNG of the current page into `$CONSOLE_SCREENSHOT_DIR` (docs/console
    /// is refreshed this way), when set.
    async fn screenshot(&self, name: &str) {
        if let Ok(dir) = std::env::var("CONSOLE_SCREENSHOT_DIR") {
            let png = self.c().screenshot().await.unwrap();
            std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
        }
    }

    async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver leads its own process group; the browser is in it.
        // Failures here are reported, not raised: a panic in drop would
        // hide the test's own failure.
        if let Err(e) = std::process::Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.driver.id())])
            .status()
        {
            eprintln!("cannot kill the browser's process group: {e}");
        }
        if let Err(e) = self.driver.wait() {
            eprintln!("cannot reap chromedriver: {e}");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.profile) {
            eprintln!(
                "cannot remove the browser profile {}: {e}",
                self.profile.display()
            );
        }
    }
}

/// Polls `cond` until it holds (20 s).
async fn until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_resends_dead_mail_retries_a_route_and_blocks_a_user() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    // Bounded, so that the browser is always dropped (and killed).
    tokio::time::timeout(Duration::from_secs(180), resend_retry_block(&browser))
        .await
        .expect("the browser scenario finished in time");
    browser.close().await;
}

async fn resend_retry_block(browser: &Browser) {
    use galaxy_notification::proto::push_client::PushClient;
    use galaxy_notification::subscribe_request;
    let db = TestDb::new();
    let smtp = galaxy_testsmtp::SmtpServer::accepting().unwrap();
    smtp.set_reply(galaxy_testsmtp::Reply::reject(550));
    let mut b = BackendBuilder::new(&db.dsn())
        .env("BACKEND_ADMIN_BOOTSTRAP_USER", "admin")
        .env("BACKEND_ADMIN_BOOTSTRAP_PASSWORD", PASSWORD)
        .env("BACKEND_CONSOLE_INSECURE_COOKIE", "true")
        .env("BACKEND_SMTP_HOST", "127.0.0.1")
        .env("BACKEND_SMTP_PORT", smtp.port().to_string())
        .env("BACKEND_SMTP_TLS_MODE", "none")
        .env("BACKEND_SMTP_TIMEOUT", "1s")
        .env("BACKEND_MAIL_CLAIM_LEASE", "3s")
        .env("BACKEND_MAIL_WORKER_INTERVAL", "200ms")
        .env("BACKEND_MAIL_MAX_ATTEMPTS", "1")
        .env("BACKEND_NOTIFICATION_WORKER_INTERVAL", "200ms")
        .env("BACKEND_NOTIFICATION_MAX_ATTEMPTS", "1")
        .spawn();
    b.wait_ready(Duration::from_secs(60)).await;
    let b = &b;
    let admin = admin_token(b).await;

    // Ann's sign-in mail is refused (550) and dead-letters at once.
    let (ann, ann_id) = sign_in(b, &db, "ann@example.test").await;
    let (bob, _) = sign_in(b, &db, "bob@example.test").await;
    let dead = || async {
        let r = get(b, "/api/v1/admin/mail/dead-letters", &admin).await;
        json_of(r, 200).await["items"].as_array().unwrap().clone()
    };
    until("the sign-in mails dead-letter", || async {
        dead().await.len() == 2
    })
    .await;
    // Bob joins Ann's game: the push to Ann has no gateway and dead-letters.
    let r = post(
        b,
        "/api/v1/admin/engine-versions",
        &admin,
        Some(json!({"version": "1.0.0", "image": "galaxy/game:console-test"})),
    )
    .await;
    json_of(r, 201).await;
    let r = post(
        b,
        "/api/v1/lobby/games",
        &ann,
        Some(json!({
            "name": "Console cup", "race_name": "Vega", "min_players": 2, "max_players": 4,
            "turn_interval_seconds": 3600
        })),
    )
    .await;
    let game = json_of(r, 201).await;
    let r = post(
        b,
        &format!("/api/v1/lobby/games/{}/join", game["id"].as_str().unwrap()),
        &bob,
        Some(json!({"race_name": "Sol"})),
    )
    .await;
    json_of(r, 200).await;
    let dead_route = || async {
        let r = get(
            b,
            "/api/v1/admin/notifications/routes?status=dead_lettered",
            &admin,
        )
        .await;
        json_of(r, 200).await["items"].as_array().unwrap().clone()
    };
    until("the push route dead-letters", || async {
        !dead_route().await.is_empty()
    })
    .await;

    browser.sign_in(b).await;
    browser.screenshot("dashboard").await;

    // Resend a dead-lettered delivery and see it sent.
    smtp.set_reply(galaxy_testsmtp::Reply::Accept);
    let delivery = dead().await[0]["id"].as_str().unwrap().to_owned();
    let page = browser.open(b, "/console/mail/dead-letters").await;
    assert!(page.contains(&delivery));
    browser.screenshot("dead-letters").await;
    let done = browser
        .press(
            &format!("/console/mail/deliveries/{delivery}/resend"),
            "Resend",
        )
        .await;
    assert!(done.contains("re-armed"), "{done}");
    until("the resent mail is sent", || async {
        browser
            .open(b, &format!("/console/mail/deliveries/{delivery}"))
            .await;
        let status = browser
            .c()
            .find(fantoccini::Locator::Css("#status"))
            .await
            .unwrap();
        status.text().await.unwrap() == "sent"
    })
    .await;
    browser.screenshot("delivery").await;

    // Retry the dead-lettered route with a gateway subscribed: delivered.
    let route = dead_route().await[0]["id"].as_str().unwrap().to_owned();
    let mut push = PushClient::connect(format!("http://{}", b.grpc))
        .await
        .unwrap();
    let req = subscribe_request("console-test", Some("Bearer test-push-token-0123456789"));
    let _stream = push.subscribe(req.unwrap()).await.unwrap().into_inner();
    browser
        .open(b, "/console/notifications/routes?status=dead_lettered")
        .await;
    browser.screenshot("routes").await;
    let done = browser
        .press(
            &format!("/console/notifications/routes/{route}/retry"),
            "Retry",
        )
        .await;
    assert!(done.contains("re-armed"), "{done}");
    until("the retried route is delivered", || async {
        let page = browser
            .open(b, "/console/notifications/routes?status=delivered")
            .await;
        page.contains(&route)
    })
    .await;

    // Block Ann: her token is refused.
    browser.open(b, &format!("/console/users/{ann_id}")).await;
    browser.screenshot("user").await;
    let done = browser
        .press(&format!("/console/users/{ann_id}/block"), "Block")
        .await;
    assert!(done.contains("is now blocked"), "{done}");
    let r = get(b, "/api/v1/user/me", &ann).await;
    assert_eq!(r.status(), 401);

    browser.open(b, "/console/audit").await;
    browser.screenshot("audit").await;
    let log = audit(b, &admin).await;
    for action in ["mail.resend", "notification.route_retry", "user.block"] {
        assert!(
            log.iter()
                .any(|e| e["action"] == action && e["outcome"] == "ok"),
            "{action}: {log:?}"
        );
    }
}

/// Removes a game's engine container and volume, also when the test fails.
struct EngineGuard(String);

impl Drop for EngineGuard {
    fn drop(&mut self) {
        let id = self.0.parse().unwrap();
        for args in [
            vec!["rm", "-f", "-v", &galaxy_runtime::container_name(id)],
            vec!["volume", "rm", "-f", &galaxy_runtime::volume_name(id)],
        ] {
            let _ = std::process::Command::new("docker").args(&args).output();
        }
    }
}

const ENGINE_IMAGE: &str = "galaxy/game:integration";

#[tokio::test(flavor = "multi_thread")]
async fn browser_forces_a_turn_on_a_running_game() {
    // The real engine image (built once by the game tests' script if missing).
    let docker = |args: &[&str]| {
        std::process::Command::new("docker")
            .args(args)
            .output()
            .expect("the docker CLI is needed for the runtime console test")
    };
    assert!(
        docker(&["info"]).status.success(),
        "no Docker daemon answers"
    );
    if !docker(&["image", "inspect", ENGINE_IMAGE]).status.success() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/engine/build-image.sh");
        let out = std::process::Command::new(script)
            .arg("integration")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let Some(browser) = Browser::start().await else {
        return;
    };
    tokio::time::timeout(Duration::from_secs(240), force_turn(&browser))
        .await
        .expect("the browser scenario finished in time");
    browser.close().await;
}

async fn force_turn(browser: &Browser) {
    let db = TestDb::new();
    let mut b = BackendBuilder::new(&db.dsn())
        .env("BACKEND_ADMIN_BOOTSTRAP_USER", "admin")
        .env("BACKEND_ADMIN_BOOTSTRAP_PASSWORD", PASSWORD)
        .env("BACKEND_CONSOLE_INSECURE_COOKIE", "true")
        .env("BACKEND_RUNTIME_TURN_TICK_INTERVAL", "500ms")
        .env("BACKEND_RUNTIME_START_TIMEOUT", "60s")
        .spawn();
    b.wait_ready(Duration::from_secs(60)).await;
    let b = &b;
    let admin = admin_token(b).await;
    let r = post(
        b,
        "/api/v1/admin/engine-versions",
        &admin,
        Some(json!({"version": "1.0.0", "image": ENGINE_IMAGE})),
    )
    .await;
    json_of(r, 201).await;
    let (ann, _) = sign_in(b, &db, "ann@example.test").await;
    let (bob, _) = sign_in(b, &db, "bob@example.test").await;
    let r = post(
        b,
        "/api/v1/lobby/games",
        &ann,
        Some(json!({
            "name": "Forced", "race_name": "Vega", "min_players": 2, "max_players": 2,
            "turn_interval_seconds": 3600
        })),
    )
    .await;
    let id = json_of(r, 201).await["id"].as_str().unwrap().to_owned();
    let _engine = EngineGuard(id.clone());
    let r = post(
        b,
        &format!("/api/v1/lobby/games/{id}/join"),
        &bob,
        Some(json!({"race_name": "Sol"})),
    )
    .await;
    json_of(r, 200).await;
    let r = post(b, &format!("/api/v1/lobby/games/{id}/start"), &ann, None).await;
    assert_eq!(r.status(), 202);
    b.eventually(Duration::from_secs(90), "game running", || async {
        let r = get(b, &format!("/api/v1/lobby/games/{id}"), &ann).await;
        r.json::<Value>().await.unwrap()["status"] == "running"
    })
    .await;

    browser.sign_in(b).await;
    let page = format!("/console/runtime/{id}");
    let turn = || async {
        browser.open(b, &page).await;
        let cell = browser
            .c()
            .find(fantoccini::Locator::Css("#turn"))
            .await
            .unwrap();
        cell.text().await.unwrap().parse::<i64>().unwrap()
    };
    let before = turn().await;
    browser.screenshot("runtime").await;
    let done = browser
        .press(
            &format!("/console/runtime/{id}/force-next-turn"),
            "Force next turn",
        )
        .await;
    assert!(done.contains("runtime.force_next_turn accepted"), "{done}");
    until("the forced turn is generated", || async {
        turn().await > before
    })
    .await;
    let ops = browser.open(b, &page).await;
    assert!(ops.contains("force_next_turn"), "the operation is listed");
    let log = audit(b, &admin).await;
    assert!(
        log.iter().any(|e| e["action"] == "runtime.force_next_turn"
            && e["target"] == format!("game_id={id}")
            && e["outcome"] == "ok"),
        "{log:?}"
    );
}
