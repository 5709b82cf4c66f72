//! The compute stage alone: 1,000,000 rows built in memory (no I/O), anchors parsed, ImmutableIds
//! computed, duplicates checked.
//!
//!     cargo bench --bench compute

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use hardmatch::compute::{compute, ComputeOptions};
use hardmatch::source::{Field, Format, Input, Location, Role, Row};

/// The rows own their values here (as a decoded export's would); read from a UTF-8 file they
/// would borrow them, which the compute stage does not see.
fn input(rows: usize) -> Input<'static> {
    let rows = (0..rows)
        .map(|i| {
            let mut row = Row::with_capacity(Location::Line(i as u64 + 3), 2);
            let id = uuid::Uuid::from_u128(0x9d6b_4c2a_1e3f_4a5b_8c7d_0000_0000_0000 + i as u128);
            row.set(
                Role::Upn,
                Field {
                    value: format!("user{i:07}@contoso.com").into(),
                    column: 0,
                },
            );
            row.set(
                Role::ObjectGuid,
                Field {
                    value: id.to_string().into(),
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
        columns: vec![
            (Role::Upn, Arc::from("UserPrincipalName")),
            (Role::ObjectGuid, Arc::from("ObjectGUID")),
        ],
        rows,
        notes: Vec::new(),
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
