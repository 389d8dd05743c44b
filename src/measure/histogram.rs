//! Latency histograms and the percentile rules burner reports with.
//!
//! Values go into an HdrHistogram (3 significant figures, so a quantile is within 0.1% of
//! the recorded value; integers below 2,048 units are exact), with the exact count, sum,
//! minimum and maximum kept beside it. Quantiles are taken by rank from the histogram's
//! counts, under one of two rules:
//!
//! - [`Rule::KubeBurner`], for the server family, so its numbers compare with kube-burner's:
//!   with `i = p/100 · n`, the `i`-th smallest value when `i` is whole, else the mean of the
//!   `⌊i⌋`-th and the next; the smallest value when `i < 1`. Results are truncated to whole
//!   milliseconds, as kube-burner does.
//! - [`Rule::NearestRank`], for everything burner measures on its own clock: the
//!   `⌈p/100 · n⌉`-th smallest value.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::results::summary::Quantiles;

/// How a percentile is picked from sorted values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    KubeBurner,
    NearestRank,
}

/// What one recorded unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Millis,
    Micros,
}

impl Unit {
    fn per_ms(self) -> f64 {
        match self {
            Unit::Millis => 1.0,
            Unit::Micros => 1000.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    unit: Unit,
    rule: Rule,
    counts: Histogram<u64>,
    sum: u128,
    min: u64,
    max: u64,
}

impl LatencyHistogram {
    pub fn new(unit: Unit, rule: Rule) -> Self {
        Self {
            unit,
            rule,
            counts: Histogram::new(3).expect("3 significant figures are supported"),
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Records a value in this histogram's unit.
    pub fn record(&mut self, value: u64) {
        // `record` grows the histogram to fit (`saturating_record` would not: it clamps to
        // the current bounds); it fails only for values near u64::MAX.
        if self.counts.record(value).is_err() {
            self.counts.saturating_record(value);
        }
        self.sum += u128::from(value);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    pub fn record_duration(&mut self, value: Duration) {
        let units = match self.unit {
            Unit::Millis => value.as_millis(),
            Unit::Micros => value.as_micros(),
        };
        self.record(u64::try_from(units).unwrap_or(u64::MAX));
    }

    pub fn len(&self) -> u64 {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        if other.is_empty() {
            return;
        }
        self.counts
            .add(&other.counts)
            .expect("histograms of the same precision merge");
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The value of the `rank`-th smallest recording (1-based), as the histogram holds it.
    fn at_rank(&self, rank: u64) -> u64 {
        let mut seen = 0;
        for step in self.counts.iter_recorded() {
            seen += step.count_since_last_iteration();
            if seen >= rank {
                // The bucket's highest equivalent value, but never past what was recorded.
                return step.value_iterated_to().clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// The `p`-th percentile (0 < p ≤ 100) under this histogram's rule, in its unit.
    pub fn percentile(&self, p: f64) -> f64 {
        let n = self.len();
        if n == 0 {
            return 0.0;
        }
        let index = p / 100.0 * n as f64;
        match self.rule {
            Rule::NearestRank => self.at_rank((index.ceil() as u64).clamp(1, n)) as f64,
            Rule::KubeBurner => {
                if index < 1.0 {
                    self.at_rank(1) as f64
                } else if index.fract() == 0.0 {
                    self.at_rank(index as u64) as f64
                } else {
                    let below = index.floor() as u64;
                    (self.at_rank(below) as f64 + self.at_rank(below + 1) as f64) / 2.0
                }
            }
        }
    }

    /// The summary quantiles, in milliseconds.
    pub fn quantiles(&self) -> Quantiles {
        let n = self.len();
        if n == 0 {
            return Quantiles::default();
        }
        let per_ms = self.unit.per_ms();
        let ms = |value: f64| {
            let value = value / per_ms;
            match self.rule {
                Rule::KubeBurner => value.trunc(),
                // Microsecond resolution is plenty; more digits would only be noise.
                Rule::NearestRank => (value * 1000.0).round() / 1000.0,
            }
        };
        Quantiles {
            count: n,
            p50: ms(self.percentile(50.0)),
            p95: ms(self.percentile(95.0)),
            p99: ms(self.percentile(99.0)),
            p999: ms(self.percentile(99.9)),
            min: ms(self.min as f64),
            max: ms(self.max as f64),
            avg: ms(self.sum as f64 / n as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(unit: Unit, rule: Rule, values: &[u64]) -> LatencyHistogram {
        let mut histogram = LatencyHistogram::new(unit, rule);
        for &v in values {
            histogram.record(v);
        }
        histogram
    }

    /// The rule kube-burner's statistics library applies, on the plain sorted values.
    fn kube_burner_reference(values: &[u64], p: f64) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        let index = p / 100.0 * sorted.len() as f64;
        if index < 1.0 {
            sorted[0] as f64
        } else if index.fract() == 0.0 {
            sorted[index as usize - 1] as f64
        } else {
            let i = index as usize;
            (sorted[i - 1] + sorted[i]) as f64 / 2.0
        }
    }

    #[test]
    fn the_kube_burner_rule_matches_its_definition_on_exact_values() {
        let mut rng = crate::rng::SplitMix64::new(7);
        for n in [1usize, 2, 3, 10, 99, 100, 101, 1000, 1999] {
            let values: Vec<u64> = (0..n).map(|_| rng.below(2000)).collect();
            let histogram = filled(Unit::Millis, Rule::KubeBurner, &values);
            for p in [50.0, 95.0, 99.0, 99.9] {
                assert_eq!(
                    histogram.percentile(p),
                    kube_burner_reference(&values, p),
                    "n={n} p={p}"
                );
            }
        }
    }

    #[test]
    fn kube_burner_quantiles_truncate_to_whole_milliseconds() {
        // Four pods: the median falls between 1000 and 2000.
        let quantiles =
            filled(Unit::Millis, Rule::KubeBurner, &[1000, 1000, 2000, 3000]).quantiles();
        assert_eq!(quantiles.p50, 1000.0);
        // Three pods: i = 1.5, the mean of the first two.
        let quantiles = filled(Unit::Millis, Rule::KubeBurner, &[1000, 2001, 3000]).quantiles();
        assert_eq!(quantiles.p50, 1500.0, "mean 1500.5 truncated");
        assert_eq!(quantiles.avg, 2000.0, "6001/3 truncated");
        assert_eq!(
            (quantiles.min, quantiles.max, quantiles.count),
            (1000.0, 3000.0, 3)
        );
    }

    #[test]
    fn nearest_rank_picks_a_recorded_value() {
        let values: Vec<u64> = (1..=100).collect();
        let histogram = filled(Unit::Millis, Rule::NearestRank, &values);
        assert_eq!(histogram.percentile(50.0), 50.0);
        assert_eq!(histogram.percentile(99.0), 99.0);
        assert_eq!(histogram.percentile(99.9), 100.0);
        assert_eq!(
            filled(Unit::Millis, Rule::NearestRank, &[7]).percentile(50.0),
            7.0
        );
    }

    #[test]
    fn microseconds_come_out_as_milliseconds_within_a_thousandth() {
        let values: Vec<u64> = (0..1000).map(|i| 2_000_000 + i * 97).collect();
        let quantiles = filled(Unit::Micros, Rule::NearestRank, &values).quantiles();
        let exact_p50 = (2_000_000 + 499 * 97) as f64 / 1000.0;
        assert!(
            (quantiles.p50 - exact_p50).abs() / exact_p50 < 0.001,
            "{quantiles:?}"
        );
        assert_eq!(quantiles.min, 2000.0);
        assert_eq!(quantiles.max, (2_000_000 + 999 * 97) as f64 / 1000.0);
        assert!(quantiles.p99 <= quantiles.max);
    }

    #[test]
    fn merged_histograms_hold_both_sets() {
        let mut a = filled(Unit::Millis, Rule::NearestRank, &[1, 2, 3]);
        a.merge(&filled(Unit::Millis, Rule::NearestRank, &[10, 20]));
        let quantiles = a.quantiles();
        assert_eq!(
            (quantiles.count, quantiles.min, quantiles.max),
            (5, 1.0, 20.0)
        );
        assert_eq!(quantiles.avg, 7.2);
        assert_eq!(
            LatencyHistogram::new(Unit::Millis, Rule::KubeBurner).quantiles(),
            Quantiles::default()
        );
    }
}
