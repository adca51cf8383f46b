//! A fixed-memory latency histogram with log-linear buckets (HdrHistogram's layout): values
//! below 64 ns have a bucket each; above, every power of two is cut into 64 equal buckets, so
//! a bucket is at most 1/64 of its lower bound wide and a percentile reported at its bucket's
//! middle is within 0.8 % of the true value. Values from 2^42 ns (~73 minutes) on share the
//! last bucket; the exact maximum is kept apart.

/// Buckets per power of two (and the exact buckets below 64 ns).
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Powers of two covered above the exact range: 64 ns up to 2^42 ns.
const OCTAVES: usize = 42 - SUB_BITS as usize;
/// 2,368 buckets: 18.5 KiB a histogram.
const BUCKETS: usize = (OCTAVES + 1) * SUB as usize;

/// See the module documentation.
#[derive(Clone)]
pub(crate) struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    count: u64,
    sum_ns: u128,
    min_ns: u64,
    max_ns: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("max_ns", &self.max_ns)
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            count: 0,
            sum_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
        }
    }
}

/// The bucket of `v` ns.
fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let shift = (63 - v.leading_zeros()) - SUB_BITS;
    let i = (u64::from(shift) + 1) * SUB + ((v >> shift) - SUB);
    (i as usize).min(BUCKETS - 1)
}

/// The lowest value of bucket `i` and its width.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        return (i, 1);
    }
    let shift = i / SUB - 1;
    ((SUB + i % SUB) << shift, 1 << shift)
}

impl Histogram {
    /// Counts one value.
    pub(crate) fn record(&mut self, ns: u64) {
        self.counts[index(ns)] += 1;
        self.count += 1;
        self.sum_ns += u128::from(ns);
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// Values counted.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The largest value counted (exact), 0 when empty.
    pub(crate) fn max(&self) -> u64 {
        self.max_ns
    }

    /// The mean, 0 when empty.
    pub(crate) fn mean(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            (self.sum_ns / u128::from(self.count)) as u64
        }
    }

    /// The `q` quantile (0–1): the middle of the bucket holding the ⌈q·count⌉-th smallest
    /// value, within the exact minimum and maximum; 0 when empty.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (lo, width) = bounds(i);
                return (lo + width / 2).clamp(self.min_ns, self.max_ns);
            }
        }
        self.max_ns
    }

    /// Non-empty stretches for drawing: `(lowest value, count)` per power of two (the exact
    /// buckets below 64 ns together), in order.
    pub(crate) fn octaves(&self) -> Vec<(u64, u64)> {
        self.counts
            .chunks(SUB as usize)
            .enumerate()
            .map(|(o, c)| (bounds(o * SUB as usize).0, c.iter().sum::<u64>()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_range_without_gaps() {
        let mut next = 0;
        for i in 0..BUCKETS {
            let (lo, width) = bounds(i);
            assert_eq!(lo, next, "bucket {i}");
            assert_eq!(index(lo), i);
            assert_eq!(index(lo + width - 1), i);
            next = lo + width;
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    /// Percentiles against the sorted data, over a spread of shapes: within 1 %.
    #[test]
    fn percentiles_are_within_one_percent_of_the_sorted_data() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let shapes: [&dyn Fn(u64) -> u64; 3] = [
            &|r| 1_000 + r % 10_000_000,          // uniform 1 µs–10 ms
            &|r| 14_000_000 + (r % 1000) * 1_000, // a tight mode around 14 ms
            &|r| {
                if r % 100 == 0 {
                    150_000_000 + r % 9_000_000
                } else {
                    2_000_000 + r % 500_000
                }
            }, // 1 % slow
        ];
        for shape in shapes {
            let mut h = Histogram::default();
            let mut values: Vec<u64> = (0..100_000).map(|_| shape(rand())).collect();
            for &v in &values {
                h.record(v);
            }
            values.sort_unstable();
            for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
                let rank = ((q * values.len() as f64).ceil() as usize).max(1);
                let want = values[rank - 1] as f64;
                let got = h.quantile(q) as f64;
                assert!(
                    (got - want).abs() <= want * 0.01,
                    "q{q}: got {got}, sorted data {want}"
                );
            }
            assert_eq!(h.max(), *values.last().unwrap());
            assert_eq!(h.count(), 100_000);
        }
    }

    #[test]
    fn an_empty_histogram_reads_zero_and_small_values_are_exact() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), 0);
        for v in [3, 3, 7, 40] {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), 3);
        assert_eq!(h.quantile(0.75), 7);
        assert_eq!(h.quantile(1.0), 40);
        assert_eq!(h.octaves(), vec![(0, 4)]);
    }
}
