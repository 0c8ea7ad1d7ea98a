//! Quay's `WORKER_COUNT_*` and `WORKER_CONNECTION_COUNT_*` as limits on requests in flight.
//!
//! Quay serves `/v2` from `WORKER_COUNT_REGISTRY` gunicorn processes with
//! `WORKER_CONNECTION_COUNT_REGISTRY` (or `WORKER_CONNECTION_COUNT`, default 50) gevent
//! connections each, and the web tier (`/api` and the rest) from `WORKER_COUNT_WEB` processes
//! (gunicorn's 1000 connections each, unless set): their product is how many requests each tier
//! handles at once, and further requests wait. Wharf is one async process and needs neither
//! knob, so by default it sets no limit. When a config sets any of them, Wharf honours the
//! product as a bound on requests in flight on `/v2` and on the rest respectively: a request
//! beyond it waits for a slot, as in Quay's listen backlog. A slot is held until the response
//! body has been sent, so streamed blob downloads count as long as they run.
//!
//! Quay's floors apply to the counts (at least 8 registry and 2 web workers, as its gunicorn
//! configurations enforce); a missing count takes Quay's default from the number of cores
//! (registry 4 per core within 8..64, web 2 per core within 2..32).
//! `WORKER_COUNT_SECSCAN` has no counterpart: Wharf serves no security-scan endpoint.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use config::Config;
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

/// In-flight request limits: None is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Concurrency {
    /// `/v2` (and `/keys`), Quay's registry tier.
    pub registry: Option<usize>,
    /// `/api` and everything else, Quay's web tier.
    pub web: Option<usize>,
}

/// gevent connections per registry worker when no count is set (Quay's `util/workers.py`).
const REGISTRY_CONNECTIONS: u32 = 50;
/// gunicorn's default `worker_connections`, which Quay's web tier keeps.
const WEB_CONNECTIONS: u32 = 1000;

impl Concurrency {
    /// The limits `config.yaml` implies (none unless it sets a worker or connection count).
    pub fn from_config(config: &Config) -> Concurrency {
        let tier = |count: Option<u32>,
                    connections: Option<u32>,
                    floor: u32,
                    default_count: u32,
                    default_connections: u32| {
            if count.is_none() && connections.is_none() {
                return None;
            }
            let count = count.map_or(default_count, |c| c.max(floor));
            let connections = connections.unwrap_or(default_connections).max(1);
            usize::try_from(u64::from(count) * u64::from(connections)).ok()
        };
        let cores = cores();
        Concurrency {
            registry: tier(
                config.worker_count_registry,
                config
                    .worker_connection_count_registry
                    .or(config.worker_connection_count),
                8,
                (4 * cores).clamp(8, 64),
                REGISTRY_CONNECTIONS,
            ),
            web: tier(
                config.worker_count_web,
                config
                    .worker_connection_count_web
                    .or(config.worker_connection_count),
                2,
                (2 * cores).clamp(2, 32),
                WEB_CONNECTIONS,
            ),
        }
    }
}

fn cores() -> u32 {
    std::thread::available_parallelism()
        .ok()
        .and_then(|n| u32::try_from(n.get()).ok())
        .unwrap_or(2)
}

/// Lets at most `max` requests through `router` at once; the others wait.
pub(crate) fn limit(router: Router, max: Option<usize>) -> Router {
    match max {
        Some(max) => {
            let slots = Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS)));
            router.layer(axum::middleware::from_fn_with_state(slots, hold_slot))
        }
        None => router,
    }
}

async fn hold_slot(State(slots): State<Arc<Semaphore>>, request: Request, next: Next) -> Response {
    // The semaphore is never closed, so acquiring only fails if it were; then do not limit.
    let permit = slots.acquire_owned().await.ok();
    let response = next.run(request).await;
    // The slot goes back when the body is dropped: after its last byte, or when the client
    // goes away.
    response.map(|body| {
        Body::new(body.map_frame(move |frame| {
            let _slot = &permit;
            frame
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_means_unlimited_and_counts_multiply() {
        let mut config = Config::default();
        assert_eq!(Concurrency::from_config(&config), Concurrency::default());
        config.worker_count_registry = Some(10);
        config.worker_connection_count = Some(20);
        let c = Concurrency::from_config(&config);
        assert_eq!(c.registry, Some(200));
        let web_workers = (2 * cores()).clamp(2, 32);
        assert_eq!(c.web, Some(web_workers as usize * 20));
        config.worker_count_registry = Some(2); // below Quay's floor of 8
        config.worker_connection_count_registry = Some(5);
        assert_eq!(Concurrency::from_config(&config).registry, Some(40));
    }
}
