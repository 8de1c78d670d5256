//! Claim + complete cycles per second, in process, on each store.
//!
//! `cargo bench -p orchestrator-benches --bench claim_cycle`; PostgreSQL is measured when
//! `ORCHESTRATOR_TEST_DATABASE_URL` is set.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use orchestrator_benches::{
    BenchStore, Completion, claim_complete_cycles, postgres, queue, sqlite,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn bench_store(c: &mut Criterion, rt: &tokio::runtime::Runtime, bench: BenchStore) {
    let mut group = c.benchmark_group(format!("claim_complete/{}", bench.name));
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    // (runners, agent slots per runner filled by one batch claim, how tasks complete)
    let cases = [
        (1, 1, Completion::StoreAction),
        (8, 1, Completion::StoreAction),
        (1, 8, Completion::StoreAction),
        (1, 1, Completion::Runner),
    ];
    for (runners, slots, completion) in cases {
        let mut name = format!("{runners}_runners_x{slots}_slots");
        if completion == Completion::Runner {
            name.push_str("_runner_completion");
        }
        group.bench_function(name, |b| {
            b.to_async(rt).iter_custom(|cycles| {
                let store = bench.store.clone();
                async move {
                    queue(&store, cycles).await;
                    claim_complete_cycles(&store, cycles, runners, slots, completion).await
                }
            });
        });
    }
    group.finish();
    rt.block_on(bench.cleanup());
}

fn claim_cycle(c: &mut Criterion) {
    let rt = runtime();
    let sqlite = rt.block_on(sqlite());
    bench_store(c, &rt, sqlite);
    match rt.block_on(postgres()) {
        Some(store) => bench_store(c, &rt, store),
        None => eprintln!("PostgreSQL skipped: set ORCHESTRATOR_TEST_DATABASE_URL"),
    }
}

criterion_group!(benches, claim_cycle);
criterion_main!(benches);
