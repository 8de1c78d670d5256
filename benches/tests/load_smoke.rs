//! The load tool against the real server on a fresh SQLite file: a few small scenarios
//! run to the end with no error, every task completed once. Not timed: the numbers are
//! for benches/load.sh.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const ADMIN_TOKEN: &str = "load-smoke-admin-token";

/// The server binary next to this test's executable (`cargo test --workspace` builds it).
fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable");
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .join("orchestrator-server");
    assert!(
        binary.is_file(),
        "{} is missing: build it first (cargo build -p orchestrator-server; cargo test \
         --workspace does)",
        binary.display()
    );
    binary
}

/// The server on a fresh SQLite file; killed when dropped.
struct Server {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(server_binary())
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(["--data-dir", &data.path().to_string_lossy()])
            .args(["--admin-token", ADMIN_TOKEN])
            .args(["--rate-limit-enabled", "false"])
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start orchestrator-server");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{url} did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url,
            _data: data,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the load tool against `server` with `args`; returns its JSON report.
fn load(server: &Server, args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_orchestrator-load"))
        .args(["--url", &server.url, "--admin-token", ADMIN_TOKEN, "--json"])
        .args(["--claim-wait-ms", "200"])
        .args(args)
        .output()
        .expect("run orchestrator-load");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "{args:?}: no report ({err}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(output.status.success(), "{args:?}: {report:#}");
    report
}

/// The calls a report has latencies of.
fn calls(report: &Value) -> Vec<&str> {
    report["latencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|latency| latency["call"].as_str().unwrap())
        .collect()
}

#[test]
fn every_scenario_completes_each_task_once() {
    for args in [
        &["--scenario", "shared", "--runners", "3", "--tasks", "30"][..],
        &[
            "--scenario",
            "mix",
            "--runners",
            "2",
            "--slots",
            "2",
            "--tasks",
            "30",
        ],
        &[
            "--scenario",
            "deep",
            "--blocked",
            "100",
            "--runners",
            "2",
            "--tasks",
            "20",
            "--rate",
            "100",
        ],
    ] {
        let server = Server::start();
        let report = load(&server, args);
        let tasks = report["tasks"].as_u64().unwrap();
        assert_eq!(report["checks"]["tasks"], tasks, "{report:#}");
        assert_eq!(report["checks"]["completed"], tasks, "{report:#}");
        assert_eq!(report["checks"]["lost"], 0, "{report:#}");
        assert_eq!(report["checks"]["done_twice"], 0, "{report:#}");
        assert_eq!(report["errors"], serde_json::json!([]), "{report:#}");
        assert!(report["cycles_per_second"].as_f64().unwrap() > 0.0);
        let calls = calls(&report);
        for call in [
            "claim",
            "heartbeat",
            "log batch",
            "completion",
            "enqueue → claim",
        ] {
            assert!(calls.contains(&call), "{call} missing: {calls:?}");
        }
    }
}

#[test]
fn event_stream_clients_receive_every_event_and_are_let_go() {
    let server = Server::start();
    let report = load(
        &server,
        &["--event-streams", "20", "--phase-secs", "1", "--rate", "20"],
    );
    assert_eq!(report["errors"], serde_json::json!([]), "{report:#}");
    let expected = report["events_expected"].as_u64().unwrap();
    assert!(expected >= 20 * 15, "{report:#}");
    assert_eq!(report["events_received"], expected, "{report:#}");
    let calls = calls(&report);
    for call in ["delivery", "read (no streams)", "read (streams)"] {
        assert!(calls.contains(&call), "{call} missing: {calls:?}");
    }
    // Every burst of clients leaving was noticed (the run fails otherwise), and promptly.
    assert!(
        report["slowest_close_ms"].as_f64().unwrap() < 10_000.0,
        "{report:#}"
    );
}
