//! `docs/quickstart.md` as a newcomer runs it: a stack started by the
//! launcher, then every `sh` block of the page, in order, in bash with
//! `set -euo pipefail`. The values a person reads off the stack's banner
//! and terminal (its URLs, the credentials file, the sign-in codes) are the
//! page's `NAME=…` lines; the test replaces exactly those lines with the
//! started stack's values. Variables and functions a block defines reach
//! the next blocks, as in one shell.
//!
//! It needs what the page needs — Docker, `curl`, `python3` with
//! `websockets` — and fails, never skips, when one is missing.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use serde_json::Value;
use support::{Launcher, Ports};

/// The engine image may have to be built on a fresh machine.
const UP_WITHIN: Duration = Duration::from_secs(900);
/// The backend's own shutdown bound is 10 s; engines are removed after it.
const DOWN_WITHIN: Duration = Duration::from_secs(90);
/// One block (its polling loops are bounded well below this).
const BLOCK_WITHIN: &str = "150";

const EMAIL_A: &str = "alice@example.test";
const EMAIL_B: &str = "bob@example.test";

/// The `sh` fenced blocks of a Markdown page, in order.
fn sh_blocks(page: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        match &mut current {
            None if line.trim_end() == "```sh" => current = Some(String::new()),
            Some(_) if line.trim_end() == "```" => blocks.push(current.take().unwrap()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```sh block");
    blocks
}

/// The tools the page uses; a clear failure instead of a confusing one
/// halfway through.
fn require_tools() {
    for (program, args, hint) in [
        ("bash", &["--version"][..], "bash"),
        ("curl", &["--version"][..], "curl (apt-get install curl)"),
        ("timeout", &["--version"][..], "GNU coreutils' timeout"),
        (
            "python3",
            &["-c", "import websockets.asyncio.client"][..],
            "python3 with websockets (pip install websockets==15.0.1; .ci/run does)",
        ),
    ] {
        let ok = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "the quickstart needs {hint}: `{program}` failed");
    }
}

/// The blocks' shell: a scratch directory, the variables carried from one
/// block to the next, and the process groups of every block (the page
/// starts a push client in the background) to end when the test does.
struct Shell {
    dir: PathBuf,
    state: PathBuf,
    /// Variables a fresh bash already has: not carried.
    baseline: Vec<String>,
    groups: Vec<u32>,
}

impl Shell {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("galaxy-quickstart-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir).unwrap();
        let baseline = Command::new("bash")
            .args(["-c", "compgen -v"])
            .output()
            .expect("bash");
        let baseline = String::from_utf8_lossy(&baseline.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        Self {
            state: dir.join(".state.sh"),
            dir,
            baseline,
            groups: Vec::new(),
        }
    }

    /// Runs `block` after the previous blocks' definitions; its output.
    /// Panics, showing the block, its output and the stack's terminal
    /// (`stack_output`), unless it exits 0.
    fn run(&mut self, n: usize, block: &str, stack_output: impl Fn() -> String) -> String {
        let script = format!(
            "set -euo pipefail\n\
             [ ! -f {state} ] || source {state}\n\
             {block}\n\
             {{\n\
               for __v in $(compgen -v); do\n\
                 case \" {baseline} __v \" in *\" $__v \"*) ;; *) declare -p \"$__v\" ;; esac\n\
               done\n\
               declare -f\n\
             }} > {state}.new\n\
             mv {state}.new {state}\n",
            state = shell_quote(&self.state),
            baseline = self.baseline.join(" "),
        );
        let file = self.dir.join(format!(".block-{n}.sh"));
        std::fs::write(&file, script).unwrap();
        let child = Command::new("timeout")
            .arg(BLOCK_WITHIN)
            .arg("bash")
            .arg(&file)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start bash");
        self.groups.push(child.id());
        let out = child.wait_with_output().expect("run bash");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "──── block {n} ────\n{block}──── output ({}) ────\n{text}",
            out.status
        );
        assert!(
            out.status.success(),
            "quickstart block {n} failed ({}):\n{block}\n── output ──\n{text}\n\
             ── the stack's terminal ──\n{}",
            out.status,
            stack_output()
        );
        text
    }

    /// A variable the blocks defined.
    fn var(&self, name: &str) -> String {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {} && printf %s \"${name}\"",
                shell_quote(&self.state)
            ))
            .output()
            .expect("bash");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        for &group in &self.groups {
            let pid = Pid::from_raw(i32::try_from(group).unwrap()).unwrap();
            // Gone already when its processes ended (the page kills its
            // push client itself).
            rustix::process::kill_process_group(pid, Signal::KILL).ok();
        }
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// The block with the page's `NAME=…` lines for the values a person reads
/// off the stack replaced; records which were.
fn with_stack_values(
    block: &str,
    values: &mut dyn FnMut(&str) -> Option<String>,
    replaced: &mut Vec<String>,
) -> String {
    let mut out = String::new();
    for line in block.lines() {
        let name = line
            .split_once('=')
            .map(|(n, _)| n)
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
        match name.and_then(|n| values(n).map(|v| (n, v))) {
            Some((name, value)) => {
                out.push_str(&format!(
                    "{name}='{value}'  # the test's value for: {line}\n"
                ));
                replaced.push(name.to_owned());
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// The sign-in code the stack's terminal shows for `email`.
fn code_for(l: &Launcher, email: &str) -> String {
    let started = Instant::now();
    loop {
        if let Some(code) = support::code_from_mail(&l.output(), email) {
            return code;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no sign-in mail for {email} shown:\n{}",
            l.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every output line that is a JSON object.
fn json_lines(outputs: &[String]) -> Vec<Value> {
    outputs
        .iter()
        .flat_map(|o| o.lines())
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(Value::is_object)
        .collect()
}

#[test]
fn every_command_of_the_quickstart_runs_against_a_started_stack() {
    require_tools();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let docker = rt.block_on(support::docker());

    let page_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/quickstart.md");
    let page = std::fs::read_to_string(&page_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", page_path.display()));
    let blocks = sh_blocks(&page);
    assert!(blocks.len() >= 10, "only {} sh blocks", blocks.len());

    let ports = Ports::free();
    let mut l = Launcher::start(&ports.args(), &[]);
    let banner = l.wait_for("Enter (or SIGUSR1) shows this again", UP_WITHIN);
    assert!(
        banner.contains(&format!("gateway (--gateway-port {})", ports.gateway)),
        "the quickstart goes through the gateway, which must run:\n{banner}"
    );
    let credentials = l.folder.join("credentials");
    assert!(
        banner.contains(&credentials.display().to_string()),
        "the banner names the credentials file:\n{banner}"
    );

    let mut shell = Shell::new();
    let mut replaced = Vec::new();
    let mut outputs = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let mut values = |name: &str| -> Option<String> {
            match name {
                "GATEWAY" => Some(format!("http://127.0.0.1:{}", ports.gateway)),
                "BACKEND" => Some(format!("http://127.0.0.1:{}", ports.http)),
                "CREDENTIALS" => Some(credentials.display().to_string()),
                "CODE_A" => Some(code_for(&l, EMAIL_A)),
                "CODE_B" => Some(code_for(&l, EMAIL_B)),
                _ => None,
            }
        };
        let block = with_stack_values(block, &mut values, &mut replaced);
        outputs.push(shell.run(i + 1, &block, || l.output()));
    }
    replaced.sort();
    assert_eq!(
        replaced,
        ["BACKEND", "CODE_A", "CODE_B", "CREDENTIALS", "GATEWAY"],
        "the page sets each value read off the stack exactly once"
    );

    // What the page says the steps show.
    let all = outputs.join("\n");
    for shown in [
        "start: 202",
        "status: running",
        "HTTP 400",
        "admin login through the gateway: 404",
        "operation_id",
        "turn: 1",
    ] {
        assert!(
            all.contains(shown),
            "the blocks did not print {shown:?}:\n{all}"
        );
    }

    // The reports after the forced turn show both players' orders applied.
    let objects = json_lines(&outputs);
    for (race, industry, ships) in [("Larks", 11, 3), ("Owls", 10, 10)] {
        let want =
            serde_json::json!({"turn": 1, "race": race, "industry": industry, "ships": ships});
        assert!(
            objects.contains(&want),
            "no report {want} in the blocks' output:\n{}",
            outputs.join("\n")
        );
    }
    // The push client printed its welcome and the game's events.
    let kinds: Vec<&str> = objects
        .iter()
        .filter_map(|o| o.get("type").and_then(Value::as_str).map(|t| (t, o)))
        .map(|(t, o)| match t {
            "event" => o["kind"].as_str().unwrap_or("event"),
            t => t,
        })
        .collect();
    for kind in [
        "welcome",
        "lobby.member_joined",
        "lobby.game_started",
        "runtime.turn_generated",
    ] {
        assert!(
            kinds.contains(&kind),
            "the push client did not print {kind}: {kinds:?}\n{}",
            outputs.join("\n")
        );
    }
    let turn = objects
        .iter()
        .find(|o| o["kind"] == "runtime.turn_generated")
        .map(|o| o["payload"]["turn"].clone());
    assert_eq!(turn, Some(serde_json::json!(1)));

    // Ctrl-C, as the page's last step says, removes everything.
    let game = shell.var("GAME");
    assert!(!game.is_empty(), "the page's GAME variable");
    l.signal_group(Signal::INT);
    let status = l.wait_exit(DOWN_WITHIN);
    assert!(status.success(), "{status}:\n{}", l.output());
    rt.block_on(async {
        assert!(
            !support::network_exists(&docker, &l.stack).await,
            "network {} remains",
            l.stack
        );
        let containers = support::containers_of(&docker, &l.stack, Some(&game)).await;
        assert!(containers.is_empty(), "containers remain: {containers:?}");
        let volume = galaxy_runtime::volume_name(game.parse().unwrap());
        assert!(
            !support::volume_exists(&docker, &volume).await,
            "volume {volume} remains"
        );
    });
    assert!(!l.folder.exists(), "{} remains", l.folder.display());
}
