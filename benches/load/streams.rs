//! The event-stream run: many clients follow `GET /api/events` while a producer queues
//! tasks at a fixed rate. It measures each event's delivery (from the instant the server
//! stamped it to its arrival at a client), API reads with and without the clients
//! connected, the server's memory per client, and how soon the server notices clients
//! that left (bursts of clients connecting and leaving must not leave anything behind).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use orchestrator_core::Timestamp;
use orchestrator_core::model::NewTask;
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::api::{Api, Failed};
use crate::report::{ErrorCount, Latency, Metrics, Outcome, error_lines, latency, latency_lines};

/// Mean time between two API reads of the prober.
const READ_EVERY: Duration = Duration::from_millis(50);
/// How long clients get to connect, and the server to notice them leave.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
/// Times every client connects and leaves again after the measured phase.
const BURSTS: usize = 5;

/// What the event-stream run measures.
#[derive(Debug, Clone)]
pub(crate) struct StreamsConfig {
    pub(crate) clients: usize,
    /// Tasks queued per second in each phase.
    pub(crate) rate: f64,
    /// How long each phase lasts.
    pub(crate) phase: Duration,
}

/// The report of an event-stream run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StreamsReport {
    pub(crate) clients: usize,
    pub(crate) rate: f64,
    pub(crate) phase_seconds: f64,
    /// Events each client was expected to receive, and received, in the measured phase.
    pub(crate) events_expected: u64,
    pub(crate) events_received: u64,
    pub(crate) latencies: Vec<Latency>,
    /// Reads with clients connected over reads without (p50 and p99).
    pub(crate) read_slowdown_p50: f64,
    pub(crate) read_slowdown_p99: f64,
    /// The server's resident memory at the start, right before the clients connected,
    /// with them connected, and after the bursts of clients connecting and leaving
    /// (bytes).
    pub(crate) rss_start: u64,
    pub(crate) rss_before: u64,
    pub(crate) rss_connected: u64,
    pub(crate) rss_after_bursts: u64,
    pub(crate) clients_per_100_mb: f64,
    /// The longest time the server took to notice every client of a burst had left.
    pub(crate) slowest_close_ms: f64,
    pub(crate) errors: Vec<ErrorCount>,
}

/// Clients connected and events received, shared by the clients.
#[derive(Debug, Default)]
struct Tally {
    connected: AtomicU64,
    received: AtomicU64,
}

pub(crate) async fn run(admin: &Api, config: StreamsConfig) -> Result<StreamsReport, Failed> {
    let metrics = Arc::new(Metrics::new());
    let tally = Arc::new(Tally::default());
    let (rss_start, _) = server_stats(admin).await?;
    produce_and_probe(admin, &config, &metrics, "read (no streams)").await;
    // Memory per client counts from here: the phase before warmed the server's caches.
    let (rss_before, _) = server_stats(admin).await?;
    let clients = connect(admin, &config, &metrics, &tally, true).await?;
    let (rss_connected, streams) = server_stats(admin).await?;
    if let Some(streams) = streams
        && streams < config.clients as u64
    {
        return Err(Failed {
            status: 0,
            detail: format!("{streams} of {} clients are following", config.clients),
        });
    }
    let received_before = tally.received.load(Ordering::SeqCst);
    let busy = produce_and_probe(admin, &config, &metrics, "read (streams)").await;
    // The last events are on their way for a moment after the last task was queued.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events_received = tally.received.load(Ordering::SeqCst) - received_before;

    let mut slowest_close = leave(admin, clients).await?;
    for _ in 0..BURSTS {
        let clients = connect(admin, &config, &metrics, &tally, false).await?;
        slowest_close = slowest_close.max(leave(admin, clients).await?);
    }
    let (rss_after_bursts, _) = server_stats(admin).await?;

    let latencies = metrics.latencies();
    let slowdown = |quantile: fn(&Latency) -> f64| {
        let of = |label: &str| latency(&latencies, label).map(quantile);
        match (of("read (streams)"), of("read (no streams)")) {
            (Some(busy), Some(quiet)) if quiet > 0.0 => busy / quiet,
            _ => f64::NAN,
        }
    };
    let per_client = rss_connected.saturating_sub(rss_before) as f64 / config.clients as f64;
    Ok(StreamsReport {
        clients: config.clients,
        rate: config.rate,
        phase_seconds: config.phase.as_secs_f64(),
        events_expected: busy * config.clients as u64,
        events_received,
        read_slowdown_p50: slowdown(|l| l.p50_ms),
        read_slowdown_p99: slowdown(|l| l.p99_ms),
        rss_start,
        rss_before,
        rss_connected,
        rss_after_bursts,
        clients_per_100_mb: 100.0 * 1024.0 * 1024.0 / per_client.max(1.0),
        slowest_close_ms: slowest_close.as_secs_f64() * 1000.0,
        errors: metrics.errors(),
        latencies,
    })
}

/// For one phase, queues tasks at the configured rate (open loop) and reads the first
/// page of tasks every [`READ_EVERY`], recording the reads under `label`; returns how
/// many tasks were queued.
async fn produce_and_probe(
    admin: &Api,
    config: &StreamsConfig,
    metrics: &Arc<Metrics>,
    label: &'static str,
) -> u64 {
    let start = Instant::now();
    let every = Duration::from_secs_f64(1.0 / config.rate);
    let count = (config.phase.as_secs_f64() * config.rate) as u64;
    // The prober has a thread, a runtime and a connection of its own: on the runtime of
    // the clients its answers would wait behind their handling of each event, and its
    // latency would be the load tool's as much as the server's.
    let probing = {
        let (prober, metrics) = (admin.with_own_client(), metrics.clone());
        let end = start + config.phase;
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the prober");
            runtime.block_on(async move {
                let mut gaps = ReadGaps::default();
                let mut next = start + gaps.next();
                while next < end {
                    tokio::time::sleep_until(next.into()).await;
                    match prober.get("/api/tasks?limit=20").await {
                        (Ok(_), took) => metrics.record(label, took),
                        (Err(failed), _) => metrics.error(label, &failed),
                    }
                    next += gaps.next();
                }
            });
        })
    };
    let mut sending = JoinSet::new();
    let mut queued = 0;
    for n in 0..count {
        tokio::time::sleep_until((start + every.mul_f64(n as f64)).into()).await;
        let (admin, metrics) = (admin.clone(), metrics.clone());
        sending.spawn(async move {
            let task = NewTask::new(format!("streams: task {n}"), "queued by the load tool");
            match admin.create_task(&task).await {
                (Ok(_), took) => {
                    metrics.record("enqueue", took);
                    true
                }
                (Err(failed), _) => {
                    metrics.error("enqueue", &failed);
                    false
                }
            }
        });
    }
    while let Some(sent) = sending.join_next().await {
        queued += u64::from(sent.unwrap_or(false));
    }
    let _ = tokio::task::spawn_blocking(move || probing.join()).await;
    queued
}

/// The prober's gaps between reads: exponentially distributed with mean [`READ_EVERY`],
/// so that reads arrive as a Poisson process and see the server as it is on average.
/// Reads at a fixed interval would fall at the same instants as the producer's writes
/// (they share a start and a period) and measure only the moments just after a commit.
/// The same seed every run, so runs read at the same instants.
struct ReadGaps(u64);

impl Default for ReadGaps {
    fn default() -> Self {
        Self(0x5EED)
    }
}

impl ReadGaps {
    fn next(&mut self) -> Duration {
        // SplitMix64: 53 uniform bits, then the inverse of the exponential distribution.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let uniform = ((z >> 11) as f64 + 0.5) / (1_u64 << 53) as f64;
        READ_EVERY.mul_f64(-uniform.ln())
    }
}

/// Connects the configured number of clients and waits until each is following.
/// `measure` records the delivery of the events they receive.
async fn connect(
    admin: &Api,
    config: &StreamsConfig,
    metrics: &Arc<Metrics>,
    tally: &Arc<Tally>,
    measure: bool,
) -> Result<JoinSet<()>, Failed> {
    let address = admin.address()?;
    tally.connected.store(0, Ordering::SeqCst);
    let mut clients = JoinSet::new();
    for _ in 0..config.clients {
        let (address, token) = (address.clone(), admin.token().to_owned());
        let (metrics, tally) = (metrics.clone(), tally.clone());
        clients.spawn(async move {
            if let Err(failed) = follow(&address, &token, measure, &metrics, &tally).await {
                metrics.error("event stream", &failed);
            }
        });
    }
    let deadline = Instant::now() + SETTLE_LIMIT;
    while tally.connected.load(Ordering::SeqCst) < config.clients as u64 {
        if Instant::now() > deadline {
            return Err(Failed {
                status: 0,
                detail: format!(
                    "only {} of {} clients connected within {} s",
                    tally.connected.load(Ordering::SeqCst),
                    config.clients,
                    SETTLE_LIMIT.as_secs()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(clients)
}

/// Closes every client's connection and waits until the server follows no stream;
/// returns how long that took (zero from a server that does not count its streams).
async fn leave(admin: &Api, mut clients: JoinSet<()>) -> Result<Duration, Failed> {
    clients.abort_all();
    while clients.join_next().await.is_some() {}
    let left = Instant::now();
    loop {
        let (_, streams) = server_stats(admin).await?;
        let Some(streams) = streams else {
            return Ok(Duration::ZERO);
        };
        if streams == 0 {
            return Ok(left.elapsed());
        }
        if left.elapsed() > SETTLE_LIMIT {
            return Err(Failed {
                status: 0,
                detail: format!(
                    "{streams} event streams still open {} s after their clients left",
                    SETTLE_LIMIT.as_secs()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One client: follows the event stream over a plain HTTP/1.1 connection, counting the
/// events it receives and, if `measure`, recording how long each took since the server
/// stamped it.
async fn follow(
    address: &str,
    token: &str,
    measure: bool,
    metrics: &Metrics,
    tally: &Tally,
) -> Result<(), Failed> {
    let failed = |err: std::io::Error| Failed {
        status: 0,
        detail: err.to_string(),
    };
    let mut connection = TcpStream::connect(address).await.map_err(failed)?;
    let request = format!(
        "GET /api/events HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\n\r\n"
    );
    connection
        .write_all(request.as_bytes())
        .await
        .map_err(failed)?;
    let mut buffer = Vec::with_capacity(8 * 1024);
    let mut connected = false;
    loop {
        let read = connection.read_buf(&mut buffer).await.map_err(failed)?;
        if read == 0 {
            return Err(Failed {
                status: 0,
                detail: "the server closed the event stream".to_owned(),
            });
        }
        // Whole messages only: the rest waits for the next read.
        let Some(end) = buffer.windows(2).rposition(|pair| pair == b"\n\n") else {
            continue;
        };
        let text = String::from_utf8_lossy(&buffer[..end + 2]).into_owned();
        buffer.drain(..end + 2);
        if !connected {
            if let Some(status) = text.strip_prefix("HTTP/1.1 ")
                && !status.starts_with("200")
            {
                return Err(Failed {
                    status: status.get(..3).and_then(|s| s.parse().ok()).unwrap_or(0),
                    detail: "the event stream was refused".to_owned(),
                });
            }
            if text.contains(": connected") {
                connected = true;
                tally.connected.fetch_add(1, Ordering::SeqCst);
            }
        }
        let arrived = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as i64);
        for stamp in text.split("\"createdAt\":\"").skip(1) {
            tally.received.fetch_add(1, Ordering::Relaxed);
            let stamped = stamp
                .split('"')
                .next()
                .and_then(|stamp| stamp.parse::<Timestamp>().ok());
            if let (true, Some(stamped)) = (measure, stamped) {
                let took = arrived.saturating_sub(stamped.as_millis()).max(0) as u64;
                metrics.record("delivery", Duration::from_millis(took));
            }
        }
    }
}

/// The server's resident memory (bytes) and the event streams it follows now, if it says.
async fn server_stats(admin: &Api) -> Result<(u64, Option<u64>), Failed> {
    let (health, _) = admin.get("/api/health?detailed=true").await;
    let health: Value = health?;
    let stats = &health["stats"];
    Ok((
        stats["memoryUsage"]["rss"].as_u64().unwrap_or(0),
        stats["eventStreams"].as_u64(),
    ))
}

impl Outcome for StreamsReport {
    /// Every client received every event and no call failed.
    fn holds(&self) -> bool {
        self.errors.is_empty() && self.events_received >= self.events_expected
    }

    fn markdown_row(&self, label: &str) -> String {
        let ms = |call: &str, quantile: fn(&Latency) -> f64| {
            latency(&self.latencies, call)
                .map_or("–".to_owned(), |l| format!("{:.1}", quantile(l)))
        };
        format!(
            "| {label} | {} | {}/s | {} / {} | {} / {} | {} / {} | {:.1} / {:.1} | {:.0} | {:.0} → {:.0} | {:.0} | {} |",
            self.clients,
            self.rate,
            ms("delivery", |l| l.p50_ms),
            ms("delivery", |l| l.p99_ms),
            ms("read (no streams)", |l| l.p50_ms),
            ms("read (no streams)", |l| l.p99_ms),
            ms("read (streams)", |l| l.p50_ms),
            ms("read (streams)", |l| l.p99_ms),
            self.read_slowdown_p50,
            self.read_slowdown_p99,
            self.clients_per_100_mb,
            mib(self.rss_start),
            mib(self.rss_after_bursts),
            self.slowest_close_ms,
            self.errors.iter().map(|e| e.count).sum::<u64>()
                + self.events_expected.saturating_sub(self.events_received),
        )
    }

    fn text(&self) -> String {
        let mut out = format!(
            "{} event-stream clients, {}/s tasks queued, {:.0} s per phase\n",
            self.clients, self.rate, self.phase_seconds
        );
        out.push_str(&format!(
            "  events: {} of {} received\n",
            self.events_received, self.events_expected
        ));
        out.push_str(&latency_lines(&self.latencies));
        out.push_str(&format!(
            "  reads with the clients over reads without: p50 {:.2}×, p99 {:.2}×\n",
            self.read_slowdown_p50, self.read_slowdown_p99
        ));
        out.push_str(&format!(
            "  server memory: {:.1} MiB at the start, {:.1} MiB before the clients, {:.1} MiB \
             connected ({:.0} clients per 100 MB), {:.1} MiB after {BURSTS} bursts\n",
            mib(self.rss_start),
            mib(self.rss_before),
            mib(self.rss_connected),
            self.clients_per_100_mb,
            mib(self.rss_after_bursts)
        ));
        out.push_str(&format!(
            "  clients that left were noticed within {:.0} ms\n",
            self.slowest_close_ms
        ));
        out.push_str(&error_lines(&self.errors));
        out
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
