//! How long a simulated kubelet step takes: fixed, uniform, normal or log-normal, drawn from
//! a seeded generator so an experiment can inject a known, repeatable ground truth.
//!
//! Written as `2s`, `fixed:2s`, `uniform:1s..3s`, `normal:2s,200ms` (mean, standard
//! deviation) or `lognormal:2s,0.25` (median, shape σ). Draws below zero become zero.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use crate::rng::SplitMix64;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Delay {
    Fixed(Duration),
    Uniform { min: Duration, max: Duration },
    Normal { mean: Duration, std_dev: Duration },
    LogNormal { median: Duration, sigma: f64 },
}

impl Default for Delay {
    fn default() -> Self {
        Delay::Fixed(Duration::ZERO)
    }
}

impl Delay {
    /// Draws one delay.
    pub fn sample(&self, rng: &mut SplitMix64) -> Duration {
        match *self {
            Delay::Fixed(d) => d,
            Delay::Uniform { min, max } => min + (max - min).mul_f64(rng.next_f64()),
            Delay::Normal { mean, std_dev } => {
                seconds(mean.as_secs_f64() + std_dev.as_secs_f64() * rng.next_standard_normal())
            }
            Delay::LogNormal { median, sigma } => {
                seconds(median.as_secs_f64() * (sigma * rng.next_standard_normal()).exp())
            }
        }
    }
}

fn seconds(value: f64) -> Duration {
    Duration::from_secs_f64(value.max(0.0))
}

impl FromStr for Delay {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let duration = |s: &str| {
            humantime::parse_duration(s.trim())
                .map_err(|e| format!("`{}` in `{text}` is not a duration: {e}", s.trim()))
        };
        let (kind, args) = text.split_once(':').unwrap_or(("fixed", text));
        let two = |separator: &str| {
            args.split_once(separator).ok_or_else(|| {
                format!("`{text}`: {kind} takes two values separated by `{separator}`")
            })
        };
        match kind {
            "fixed" => Ok(Delay::Fixed(duration(args)?)),
            "uniform" => {
                let (min, max) = two("..")?;
                let (min, max) = (duration(min)?, duration(max)?);
                if min > max {
                    return Err(format!("`{text}`: the minimum is above the maximum"));
                }
                Ok(Delay::Uniform { min, max })
            }
            "normal" => {
                let (mean, std_dev) = two(",")?;
                Ok(Delay::Normal {
                    mean: duration(mean)?,
                    std_dev: duration(std_dev)?,
                })
            }
            "lognormal" => {
                let (median, sigma) = two(",")?;
                let sigma: f64 = sigma.trim().parse().map_err(|_| {
                    format!("`{text}`: the shape σ `{}` is not a number", sigma.trim())
                })?;
                if !(sigma.is_finite() && sigma >= 0.0) {
                    return Err(format!("`{text}`: the shape σ must be zero or more"));
                }
                Ok(Delay::LogNormal {
                    median: duration(median)?,
                    sigma,
                })
            }
            other => Err(format!(
                "`{other}` is not a delay model; use fixed, uniform, normal or lognormal"
            )),
        }
    }
}

impl fmt::Display for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |d: Duration| humantime::format_duration(d).to_string();
        match *self {
            Delay::Fixed(d) => write!(f, "fixed:{}", show(d)),
            Delay::Uniform { min, max } => write!(f, "uniform:{}..{}", show(min), show(max)),
            Delay::Normal { mean, std_dev } => write!(f, "normal:{},{}", show(mean), show(std_dev)),
            Delay::LogNormal { median, sigma } => write!(f, "lognormal:{},{sigma}", show(median)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_model_and_prints_it_back() {
        for text in [
            "fixed:2s",
            "uniform:1s..3s",
            "normal:2s,200ms",
            "lognormal:2s,0.25",
        ] {
            let delay: Delay = text.parse().unwrap();
            assert_eq!(delay.to_string(), text);
        }
        assert_eq!(
            "1500ms".parse::<Delay>().unwrap(),
            Delay::Fixed(Duration::from_millis(1500))
        );
    }

    #[test]
    fn bad_delays_say_what_is_wrong() {
        assert!(
            "gamma:1s"
                .parse::<Delay>()
                .unwrap_err()
                .contains("not a delay model")
        );
        assert!(
            "uniform:3s..1s"
                .parse::<Delay>()
                .unwrap_err()
                .contains("above the maximum")
        );
        assert!(
            "normal:2s"
                .parse::<Delay>()
                .unwrap_err()
                .contains("two values")
        );
        assert!(
            "fixed:soon"
                .parse::<Delay>()
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(
            "lognormal:2s,-1"
                .parse::<Delay>()
                .unwrap_err()
                .contains("zero or more")
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let delay: Delay = "normal:2s,300ms".parse().unwrap();
        let draw = |seed| {
            let mut rng = SplitMix64::new(seed);
            (0..5).map(|_| delay.sample(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn samples_follow_their_model() {
        let mut rng = SplitMix64::new(1);
        let n = 20_000;
        let mean_of = |delay: Delay, rng: &mut SplitMix64| {
            (0..n).map(|_| delay.sample(rng).as_secs_f64()).sum::<f64>() / n as f64
        };
        let fixed = Delay::Fixed(Duration::from_secs(2));
        assert_eq!(fixed.sample(&mut rng), Duration::from_secs(2));

        let uniform: Delay = "uniform:1s..3s".parse().unwrap();
        assert!((mean_of(uniform, &mut rng) - 2.0).abs() < 0.02);
        for _ in 0..1000 {
            let d = uniform.sample(&mut rng);
            assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(3));
        }

        let normal: Delay = "normal:2s,200ms".parse().unwrap();
        let samples: Vec<f64> = (0..n)
            .map(|_| normal.sample(&mut rng).as_secs_f64())
            .collect();
        let mean = samples.iter().sum::<f64>() / n as f64;
        let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - 2.0).abs() < 0.01, "mean {mean}");
        assert!((var.sqrt() - 0.2).abs() < 0.01, "std dev {}", var.sqrt());

        let lognormal: Delay = "lognormal:2s,0.5".parse().unwrap();
        let mut draws: Vec<f64> = (0..n)
            .map(|_| lognormal.sample(&mut rng).as_secs_f64())
            .collect();
        draws.sort_by(f64::total_cmp);
        let median = draws[n / 2];
        assert!((median - 2.0).abs() < 0.05, "median {median}");
    }
}
