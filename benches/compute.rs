//! The compute stage alone: 1,000,000 rows built in memory (no I/O), anchors parsed, ImmutableIds
//! computed, duplicates checked.
//!
//!     cargo bench --bench compute

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use hardmatch::compute::{compute, ComputeOptions};
use hardmatch::source::{Field, Format, Input, Location, Role, Row};

fn input(rows: usize) -> Input {
    let upn: Arc<str> = Arc::from("UserPrincipalName");
    let guid: Arc<str> = Arc::from("ObjectGUID");
    let rows = (0..rows)
        .map(|i| {
            let mut row = Row::new(Location::Line(i as u64 + 3));
            let id = uuid::Uuid::from_u128(0x9d6b_4c2a_1e3f_4a5b_8c7d_0000_0000_0000 + i as u128);
            row.set(
                Role::Upn,
                Field {
                    value: format!("user{i:07}@contoso.com"),
                    header: upn.clone(),
                    column: 0,
                },
            );
            row.set(
                Role::ObjectGuid,
                Field {
                    value: id.to_string(),
                    header: guid.clone(),
                    column: 1,
                },
            );
            row
        })
        .collect();
    Input {
        name: "bench.csv".into(),
        format: Format::Csv,
        headers: vec![],
        columns: vec![],
        rows,
    }
}

fn bench(c: &mut Criterion) {
    let input = input(1_000_000);
    let options = ComputeOptions::default();
    let mut group = c.benchmark_group("compute");
    group.sample_size(10);
    group.bench_function("1M rows", |b| b.iter(|| compute(&input, &options)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
