//! The runner over TLS: the orchestrator behind a TLS endpoint (socat, with a certificate
//! from a private CA made by openssl for the test), `connect --ca-cert`, and a task run
//! start to finish over https.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use support::{ADMIN_TOKEN, Cli, Server, agent_script, on_path, repository, skip_without_tool};

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(output.status.success(), "openssl {args:?}: {output:?}");
}

/// A CA (`ca.pem`) and a certificate it signed for 127.0.0.1 (`server.pem`, `server.key`).
fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]);
    ca.extend(["-subj", "/CN=orchestrator test CA"]);
    openssl(dir, &ca);
    let mut request = vec!["req"];
    request.extend(ec);
    request.extend(["-keyout", "server.key", "-out", "server.csr"]);
    request.extend(["-subj", "/CN=127.0.0.1"]);
    openssl(dir, &request);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

/// socat terminating TLS on a free port and passing the bytes to `to_port`; killed when
/// dropped.
struct TlsEndpoint {
    child: Child,
    port: u16,
}

impl TlsEndpoint {
    fn start(dir: &Path, to_port: u16) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let child = Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
                dir.join("server.pem").display(),
                dir.join("server.key").display()
            ))
            .arg(format!("TCP:127.0.0.1:{to_port}"))
            .stdout(Stdio::null())
            // It reports the refused handshake the test provokes.
            .stderr(Stdio::null())
            .spawn()
            .expect("start socat");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "socat did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }
}

impl Drop for TlsEndpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `token` pointing at `url` instead of the address the server minted it with.
fn token_for(token: &str, url: &str) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let decoded = String::from_utf8(engine.decode(token).unwrap()).unwrap();
    let (_, secret) = decoded.split_once('|').unwrap();
    engine.encode(format!("{url}|{secret}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_connects_over_tls_with_a_private_ca_and_completes_a_task() {
    let test = "a_runner_connects_over_tls_with_a_private_ca_and_completes_a_task";
    if !(on_path("openssl") && on_path("socat")) {
        skip_without_tool(
            test,
            "openssl and socat are needed (apt install openssl socat)",
        );
        return;
    }
    let pki = tempfile::tempdir().unwrap();
    certificates(pki.path());
    let server = Server::start().await;
    let server_port: u16 = server.url.rsplit(':').next().unwrap().parse().unwrap();
    let endpoint = TlsEndpoint::start(pki.path(), server_port);
    let https = format!("https://127.0.0.1:{}", endpoint.port);
    let repo = repository(&[("README.md", "# app\n")]);
    let repo_dir = repo.path().to_string_lossy().into_owned();
    let cli = Cli::new();

    // The public roots do not vouch for a private CA: the error says what to pass.
    let refused = cli
        .command()
        .args([
            "connect",
            &token_for(&server.connection_token().await, &https),
        ])
        .args(["-d", &repo_dir])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        said.contains("certificate") && said.contains("--ca-cert"),
        "{said}"
    );

    let ca = pki.path().join("ca.pem").to_string_lossy().into_owned();
    let connected = cli.run(&[
        "connect",
        &token_for(&server.connection_token().await, &https),
        "-d",
        &repo_dir,
        "--ca-cert",
        &ca,
    ]);
    assert!(
        connected.contains(&format!("connected to {https}")),
        "{connected}"
    );
    let status = cli.run(&["status"]);
    assert!(
        status.contains(&https) && status.contains("queued"),
        "{status}"
    );

    // Claims, heartbeats, logs and the completion all go over https.
    let scripts = tempfile::tempdir().unwrap();
    let agent = agent_script(
        scripts.path(),
        "agent.sh",
        "echo over tls\nmkdir -p src\nprintf 'SECURE = True\\n' > src/secure.py",
    );
    let task = server.create_task("Over TLS", &["src/"]).await;
    let id = task["id"].as_str().unwrap().to_owned();
    // The admin commands reach the connected server with the same CA.
    let queue = cli.run(&["queue", "--admin-token", ADMIN_TOKEN]);
    assert!(queue.contains("Over TLS"), "{queue}");
    let (status, said) = cli
        .start_agent(&agent, &["--once"])
        .wait(Duration::from_secs(60));
    assert!(status.success(), "{said}");
    let done = server.task(&id).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["verificationStatus"], "PASSED", "{done}");

    // A file that holds no certificate is refused at connect, by name.
    let bogus = pki.path().join("server.csr").to_string_lossy().into_owned();
    let output = cli
        .command()
        .args([
            "connect",
            &token_for(&server.connection_token().await, &https),
        ])
        .args(["-d", &repo_dir, "--ca-cert", &bogus])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(said.contains("holds no PEM certificate"), "{said}");
}
