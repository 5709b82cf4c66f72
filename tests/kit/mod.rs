//! The test kit, the one dev-only place for what tests and benches share: a private
//! directory per test, the real binary, the Graph emulator running in-process, and reading a
//! report back. The integration tests include it as `util`, the benches as `kit`
//! (`#[path = "../tests/kit/mod.rs"]`); [`figures`] is what the long benches print.

// Each test binary and bench uses part of the kit.
#![allow(dead_code)]

pub mod figures;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A test's own directory, removed when the test ends.
pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Writes a file into the test directory and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, contents).expect("write test file");
        path
    }

    /// The real binary, run in this directory.
    pub fn hardmatch(&self) -> Command {
        let mut cmd = binary();
        cmd.current_dir(self.path());
        cmd
    }
}

/// The real `hardmatch` binary that cargo built for these tests or benches.
pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hardmatch"))
}

/// The binary with `args`, pointed at the Graph (an emulator) at `url` and signed in with
/// the kit's fixed [`TOKEN`].
pub fn against(url: &str, mut cmd: Command, args: &[&str]) -> Command {
    cmd.args(args)
        .args(["--graph-url", url])
        .env("HARDMATCH_ACCESS_TOKEN", TOKEN);
    cmd
}

/// A file of the repository's samples/ folder.
pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name)
}

/// Runs a command and returns its output, printing both streams if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run hardmatch")
}

/// Runs a command and returns its output and its peak resident memory in KiB: its own,
/// measured by `examples/peak_memory.rs`, which starts it. Started from the test process
/// itself, the child's peak would include the test process's own high-water mark (every
/// large buffer any test ever held), so a measurement would depend on which tests ran first.
pub fn run_measuring_memory(cmd: &mut Command) -> (Output, u64) {
    let measure = Path::new(env!("CARGO_BIN_EXE_hardmatch")).with_file_name("examples/peak_memory");
    assert!(
        measure.exists(),
        "{} is missing: `cargo test` builds it (or `cargo build --examples`)",
        measure.display()
    );
    let peak = tempfile::NamedTempFile::new().expect("a file for the peak");
    let mut measured = Command::new(&measure);
    measured
        .arg(peak.path())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (name, value) in cmd.get_envs() {
        match value {
            Some(value) => measured.env(name, value),
            None => measured.env_remove(name),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        measured.current_dir(dir);
    }
    let output = measured.output().expect("run hardmatch");
    let peak_kib = std::fs::read_to_string(peak.path())
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no peak measured: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    (output, peak_kib)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts equality and shows both sides in full when they differ.
#[track_caller]
pub fn assert_same(expected: &str, actual: &str) {
    if expected != actual {
        panic!("\n--- expected ---\n{expected}\n--- actual ---\n{actual}\n----------------");
    }
}

/// A Graph emulator running in the test process, for the real binary to talk to over HTTP.
pub struct Graph {
    pub running: hardmatch::emulator::Running,
    runtime: tokio::runtime::Runtime,
    /// The emulator's TLS certificate, when it serves HTTPS (`tls_cert_out`).
    ca_cert: Option<PathBuf>,
}

/// The client secret tests give the emulator's `app-1`: not a secret anywhere else.
pub const CLIENT_SECRET: &str = "emulator-only-secret";

pub const TOKEN: &str = "integration-token";

impl Graph {
    pub fn start(tenant: hardmatch::tenant::Tenant, config: hardmatch::emulator::Config) -> Graph {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let config = hardmatch::emulator::Config {
            access_token: config.access_token.clone().or(Some(TOKEN.into())),
            ..config
        };
        let ca_cert = config.tls_cert_out.clone();
        let running = runtime
            .block_on(hardmatch::emulator::spawn(tenant, config))
            .unwrap();
        Graph {
            running,
            runtime,
            ca_cert,
        }
    }

    /// The sample tenant, no latency.
    pub fn sample() -> Graph {
        Graph::sample_with(fast())
    }

    pub fn sample_with(config: hardmatch::emulator::Config) -> Graph {
        let tenant = hardmatch::tenant::Tenant::load(&sample("tenant.json")).unwrap();
        Graph::start(tenant, config)
    }

    pub fn url(&self) -> &str {
        &self.running.url
    }

    pub fn tenant(&self) -> hardmatch::tenant::Tenant {
        self.running.emulator.tenant()
    }

    pub fn stats(&self) -> hardmatch::emulator::state::Stats {
        self.running.emulator.stats()
    }

    /// The binary pointed at this emulator, signed in with its fixed token.
    pub fn hardmatch(&self, dir: &Dir, args: &[&str]) -> Command {
        against(self.url(), dir.hardmatch(), args)
    }

    /// The binary signed in as `app-1` with the client `secret`, through this emulator's
    /// HTTPS token endpoint (start it with `tls_cert_out` and a generated tenant).
    pub fn hardmatch_with_secret(&self, dir: &Dir, args: &[&str], secret: &str) -> Command {
        let cert = self.ca_cert.as_ref().expect("an emulator serving HTTPS");
        let mut cmd = dir.hardmatch();
        cmd.args(args)
            .args(["--auth", "secret", "--graph-url", self.url()])
            .args(["--login-url", self.url(), "--ca-cert"])
            .arg(cert)
            .env("AZURE_TENANT_ID", "generated")
            .env("AZURE_CLIENT_ID", "app-1")
            .env("AZURE_CLIENT_SECRET", secret)
            .env_remove("HARDMATCH_ACCESS_TOKEN");
        cmd
    }

    /// A token the emulator's token endpoint issued to `app-1` (start it with that client and
    /// [`CLIENT_SECRET`]): unlike the fixed test token, it can expire.
    pub fn issued_token(&self) -> String {
        let tenant = self.tenant().tenant_id;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", "app-1"),
            ("client_secret", CLIENT_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ];
        let request = reqwest::Client::new()
            .post(format!("{}/{tenant}/oauth2/v2.0/token", self.url()))
            .form(&form);
        let answer: serde_json::Value = self.runtime.block_on(async {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            response.json().await.unwrap()
        });
        answer["access_token"].as_str().unwrap().to_string()
    }

    pub fn anchor_of(&self, upn: &str) -> Option<String> {
        self.tenant()
            .users
            .into_iter()
            .find(|u| u.user_principal_name.eq_ignore_ascii_case(upn))
            .and_then(|u| u.on_premises_immutable_id)
    }

    /// Changes a user behind hardmatch's back, as an admin in the portal would.
    pub fn edit_user(&self, upn: &str, changes: serde_json::Value) {
        let id = self
            .tenant()
            .users
            .into_iter()
            .find(|u| u.user_principal_name == upn)
            .unwrap_or_else(|| panic!("no user {upn}"))
            .id;
        let request = reqwest::Client::new()
            .patch(format!("{}/v1.0/users/{id}", self.url()))
            .json(&changes);
        self.send_expecting(request, 204);
    }

    /// Runs one sync cycle from the emulator's directory, as `POST /_emulator/sync` does.
    pub fn sync(&self) -> serde_json::Value {
        let response = self.runtime.block_on(
            reqwest::Client::new()
                .post(format!("{}/_emulator/sync", self.url()))
                .send(),
        );
        let response = response.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        self.runtime.block_on(response.json()).unwrap()
    }

    /// Removes a deleted user from the recycle bin behind hardmatch's back.
    pub fn purge_deleted(&self, id: &str) {
        let request = reqwest::Client::new()
            .delete(format!("{}/v1.0/directory/deletedItems/{id}", self.url()));
        self.send_expecting(request, 204);
    }

    fn send_expecting(&self, request: reqwest::RequestBuilder, status: u16) {
        let response = self.runtime.block_on(request.bearer_auth(TOKEN).send());
        assert_eq!(response.unwrap().status().as_u16(), status);
    }
}

/// An emulator config with no latency, for tests that do not measure time.
pub fn fast() -> hardmatch::emulator::Config {
    hardmatch::emulator::Config {
        latency_ms: (0, 0),
        ..hardmatch::emulator::Config::default()
    }
}

/// A generated migration: `n` cloud-only users and the Get-ADUser export that matches them.
pub fn generated(dir: &Dir, n: usize) -> (hardmatch::tenant::Tenant, PathBuf) {
    (hardmatch::emulator::synthetic::tenant(n), export(dir, n))
}

/// The Get-ADUser export of `n` generated users (those of the synthetic tenant of `n`), as
/// `export.csv` in `dir`.
pub fn export(dir: &Dir, n: usize) -> PathBuf {
    dir.write("export.csv", hardmatch::emulator::synthetic::export_csv(n))
}

/// A report's rows as (upn, outcome) plus the whole record, by column name.
pub fn report_rows(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            headers
                .iter()
                .map(str::to_string)
                .zip(r.iter().map(str::to_string))
                .collect()
        })
        .collect()
}

/// `hardmatch emulator` on the sample tenant with the bearer `token`, no latency and `extra`
/// arguments, as a child process; returns it and the URL it printed.
pub fn emulator_command(token: &str, extra: &[&str]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = binary()
        .args(["emulator", "--tenant"])
        .arg(sample("tenant.json"))
        .args(["--access-token", token, "--latency-ms", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the emulator command");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();
    (child, url)
}
