//! A lane that writes of the hollow nodes go through: a client-side rate limit (QPS and
//! burst, as client-go's), a bound on requests in flight, retries with backoff for
//! throttling, conflicts and transient failures, and counters for all of it. A fleet has
//! two: one for node heartbeats, one for pods.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use super::stats::FleetStats;

/// How many times a failed write is tried again.
const MAX_RETRIES: u32 = 6;

pub struct Writer {
    limiter: DefaultDirectRateLimiter,
    in_flight: Semaphore,
    stats: Arc<FleetStats>,
}

impl Writer {
    pub fn new(
        qps: NonZeroU32,
        burst: NonZeroU32,
        concurrency: usize,
        stats: Arc<FleetStats>,
    ) -> Self {
        Self {
            limiter: RateLimiter::direct(Quota::per_second(qps).allow_burst(burst)),
            in_flight: Semaphore::new(concurrency.max(1)),
            stats,
        }
    }

    /// Sends a write made by `request`, again after a backoff if it fails with a status
    /// worth retrying (429, 409, 5xx) or cannot reach the server.
    pub async fn send<T, F, Fut>(&self, mut request: F) -> kube::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = kube::Result<T>>,
    {
        let _slot = self
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let mut attempt = 0;
        loop {
            self.limiter.until_ready().await;
            self.stats.writes.fetch_add(1, Ordering::Relaxed);
            let error = match request().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let retry = match &error {
                kube::Error::Api(status) => {
                    match status.code {
                        429 => self.stats.throttled.fetch_add(1, Ordering::Relaxed),
                        409 if status.is_conflict() => {
                            self.stats.conflicts.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => 0,
                    };
                    status.code == 429 || status.is_conflict() || status.code >= 500
                }
                kube::Error::HyperError(_) | kube::Error::Service(_) => true,
                _ => false,
            };
            if !retry || attempt >= MAX_RETRIES {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                return Err(error);
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }
}

/// 50 ms doubling up to 3.2 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50 << attempt.min(6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn api_error(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: reason.into(),
            ..Default::default()
        }))
    }

    fn writer(stats: &Arc<FleetStats>) -> Writer {
        let n = NonZeroU32::new(1000).unwrap();
        Writer::new(n, n, 4, stats.clone())
    }

    #[tokio::test]
    async fn throttled_writes_are_retried_and_counted() {
        let stats = Arc::new(FleetStats::default());
        let calls = AtomicU32::new(0);
        let result = writer(&stats)
            .send(|| async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(api_error(429, "TooManyRequests")),
                    1 => Err(api_error(409, "Conflict")),
                    _ => Ok("done"),
                }
            })
            .await;
        assert_eq!(result.unwrap(), "done");
        assert_eq!(stats.writes.load(Ordering::Relaxed), 3);
        assert_eq!(stats.retries.load(Ordering::Relaxed), 2);
        assert_eq!(stats.throttled.load(Ordering::Relaxed), 1);
        assert_eq!(stats.conflicts.load(Ordering::Relaxed), 1);
        assert_eq!(stats.write_errors.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_rejected_write_is_not_retried() {
        let stats = Arc::new(FleetStats::default());
        let result: kube::Result<()> = writer(&stats)
            .send(|| async { Err(api_error(422, "Invalid")) })
            .await;
        assert!(result.is_err());
        assert_eq!(stats.writes.load(Ordering::Relaxed), 1);
        assert_eq!(stats.write_errors.load(Ordering::Relaxed), 1);
    }
}
