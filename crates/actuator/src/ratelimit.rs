//! A client-side rate limit for the Kubernetes API (kube-rs has none built in, client-go has
//! `--kube-api-qps`/`--kube-api-burst`): a token bucket refilled at `qps` tokens per second
//! holding at most `burst`. It sits under kube's request buffer, so it limits the whole process.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::time::{Instant, Sleep};

/// Token bucket parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateLimit {
    /// Sustained requests per second; must be > 0.
    pub qps: f64,
    /// Requests allowed at once after an idle period; at least 1.
    pub burst: u32,
}

#[derive(Debug)]
struct Bucket {
    limit: RateLimit,
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            tokens: f64::from(limit.burst.max(1)),
            updated: Instant::now(),
        }
    }

    /// Takes one token, or says how long until one is available.
    fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.updated = now;
        let capacity = f64::from(self.limit.burst.max(1));
        self.tokens = (self.tokens + elapsed * self.limit.qps).min(capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            Err(Duration::from_secs_f64(
                missing / self.limit.qps.max(f64::MIN_POSITIVE),
            ))
        }
    }
}

/// Tower layer applying [`RateLimit`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateLimitLayer(pub RateLimit);

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimited {
            inner,
            bucket: Bucket::new(self.0),
            sleep: None,
            reserved: false,
        }
    }
}

/// The service produced by [`RateLimitLayer`].
#[derive(Debug)]
pub(crate) struct RateLimited<S> {
    inner: S,
    bucket: Bucket,
    sleep: Option<Pin<Box<Sleep>>>,
    reserved: bool,
}

impl<S, R> tower::Service<R> for RateLimited<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        while !self.reserved {
            if let Some(sleep) = self.sleep.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                self.sleep = None;
            }
            match self.bucket.try_take(Instant::now()) {
                Ok(()) => self.reserved = true,
                Err(wait) => self.sleep = Some(Box::pin(tokio::time::sleep(wait))),
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.reserved = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn allows_a_burst_then_refills_at_qps() {
        let mut bucket = Bucket::new(RateLimit { qps: 2.0, burst: 3 });
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(bucket.try_take(start), Ok(()));
        }
        let wait = bucket.try_take(start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(bucket.try_take(Instant::now()), Ok(()));
        assert!(bucket.try_take(Instant::now()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn service_waits_for_a_token_before_calling() {
        use tower::{Service as _, ServiceExt as _};
        let layer = RateLimitLayer(RateLimit { qps: 1.0, burst: 1 });
        let mut service = tower::Layer::layer(
            &layer,
            tower::service_fn(|x: u32| async move { Ok::<_, ()>(x) }),
        );
        let start = Instant::now();
        assert_eq!(service.ready().await.unwrap().call(1).await, Ok(1));
        assert_eq!(service.ready().await.unwrap().call(2).await, Ok(2));
        // The second call had to wait one token's worth (1 s) on the paused clock.
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
    }
}
